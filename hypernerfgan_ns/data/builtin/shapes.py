"""Random instances of three object categories, built from analytic primitives.

A GAN learns a category from many different instances, so every sampler draws its proportions, optional parts and
colours at random within plausible ranges. World axes: +x is the object's front (a car's bonnet, a chair's seat
edge, a plane's nose), +y its left, +z up. Each instance is built in convenient units, then its bounding box is
centred on the origin and it is scaled so it lies entirely inside the sphere of radius `FIT_RADIUS_RANGE[1]` (< 1,
the region the camera prior renders). Everything is drawn from the given torch.Generator, so an instance is
reproducible from the generator's seed.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch

from hypernerfgan_ns.data.builtin.primitives import (
    Scene,
    box,
    cylinder,
    ellipsoid,
    prism,
    rotation_about,
    scene_bounding_radius,
    scene_bounds,
    transform_scene,
)

FIT_RADIUS_RANGE = (0.86, 0.94)
"""Every instance is scaled so its bounding sphere about the origin has a radius drawn from this range."""

X_AXIS = (1.0, 0.0, 0.0)
"""World +x: the object's front."""
Y_AXIS = (0.0, 1.0, 0.0)
"""World +y: the object's left."""
Z_AXIS = (0.0, 0.0, 1.0)
"""World +z: up."""
SIDE_PROFILE_AXES = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]).T
"""Prism axes for a profile drawn in the xz plane (length, height) and extruded along y (width)."""

CAR_BODY_COLOURS = (
    (0.80, 0.08, 0.08),  # red
    (0.10, 0.25, 0.70),  # blue
    (0.88, 0.88, 0.86),  # white
    (0.62, 0.64, 0.66),  # silver
    (0.18, 0.18, 0.20),  # charcoal
    (0.92, 0.75, 0.10),  # yellow
    (0.10, 0.45, 0.22),  # green
    (0.90, 0.42, 0.08),  # orange
    (0.35, 0.10, 0.40),  # purple
    (0.55, 0.75, 0.90),  # light blue
)
"""Common car paints; a sampled body colour is one of these with its hue, saturation and value jittered."""
GLASS_COLOUR = (0.12, 0.15, 0.2)
"""Windows: dark bluish glass."""
TYRE_COLOUR = (0.07, 0.07, 0.07)
"""Tyres: near-black rubber."""
HUBCAP_COLOUR = (0.7, 0.7, 0.72)
"""Wheel hubs: light metal."""
HEADLIGHT_COLOUR = (0.95, 0.93, 0.75)
"""Headlights: pale yellow."""
TAILLIGHT_COLOUR = (0.75, 0.05, 0.05)
"""Tail lights: red."""
TRIM_COLOUR = (0.15, 0.15, 0.16)
"""Bumpers and grille: dark plastic."""

WOOD_COLOURS = (
    (0.55, 0.36, 0.20),  # oak
    (0.40, 0.24, 0.13),  # walnut
    (0.72, 0.56, 0.38),  # pine
    (0.28, 0.16, 0.09),  # dark stain
    (0.82, 0.72, 0.55),  # birch
)
"""Wooden chair parts."""
FABRIC_COLOURS = (
    (0.60, 0.12, 0.12),  # burgundy
    (0.15, 0.25, 0.45),  # navy
    (0.25, 0.45, 0.30),  # green
    (0.75, 0.70, 0.60),  # beige
    (0.35, 0.35, 0.38),  # grey
    (0.80, 0.55, 0.20),  # mustard
    (0.20, 0.50, 0.55),  # teal
)
"""Upholstered seats and backs."""
METAL_COLOURS = (
    (0.12, 0.12, 0.13),  # black steel
    (0.65, 0.66, 0.68),  # chrome
)
"""Metal chair legs."""

AIRFRAME_COLOURS = (
    (0.92, 0.92, 0.92),  # white
    (0.85, 0.86, 0.88),  # light grey
    (0.90, 0.90, 0.84),  # cream
    (0.72, 0.80, 0.88),  # pale blue
)
"""Light fuselage paints, as on most aircraft."""
ACCENT_COLOURS = (
    (0.75, 0.08, 0.10),  # red
    (0.08, 0.20, 0.60),  # blue
    (0.05, 0.45, 0.45),  # teal
    (0.95, 0.60, 0.05),  # orange
    (0.25, 0.12, 0.45),  # purple
    (0.10, 0.40, 0.15),  # green
)
"""Tail-fin and engine liveries."""
MILITARY_GREY = (0.45, 0.48, 0.50)
"""The occasional all-grey plane."""
COLOUR_JITTER = (0.03, 0.12, 0.08)
"""Largest random change of a palette colour's hue, saturation and value."""


Range = Tuple[float, float]
"""A (low, high) interval that a proportion is drawn from uniformly."""


class _Sampler:
    """Draws uniform numbers, choices and jittered colours from one torch.Generator."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=self.generator))

    def within(self, interval: Range) -> float:
        """A uniform draw from a (low, high) range."""
        return self.uniform(*interval)

    def chance(self, probability: float) -> bool:
        return float(torch.rand((), generator=self.generator)) < probability

    def choice(self, options: Sequence):
        return options[int(torch.randint(len(options), (), generator=self.generator))]

    def colour(self, palette: Sequence[Tuple[float, float, float]]) -> Tuple[float, float, float]:
        """A palette colour with its hue, saturation and value jittered by up to COLOUR_JITTER."""
        hue, saturation, value = colorsys.rgb_to_hsv(*self.choice(palette))
        hue = (hue + self.uniform(-COLOUR_JITTER[0], COLOUR_JITTER[0])) % 1.0
        saturation = min(max(saturation + self.uniform(-COLOUR_JITTER[1], COLOUR_JITTER[1]), 0.0), 1.0)
        value = min(max(value + self.uniform(-COLOUR_JITTER[2], COLOUR_JITTER[2]), 0.0), 1.0)
        return colorsys.hsv_to_rgb(hue, saturation, value)


def fit_to_sphere(scene: Scene, radius: float) -> Scene:
    """The scene with its bounding box centred on the origin, scaled so its bounding radius is `radius`."""
    low, high = scene_bounds(scene)
    centred = transform_scene(scene, 1.0, -(low + high) / 2)
    return transform_scene(centred, radius / scene_bounding_radius(centred), (0.0, 0.0, 0.0))


def _quad_along(
    start: Tuple[float, float], end: Tuple[float, float], inset: float, outside: float, inside: float
) -> torch.Tensor:
    """A thin quadrilateral lying along the segment start -> end (2D), shortened by `inset` at both ends.

    It extends `outside` to the segment's right (seen walking from start to end) and `inside` to its left: a pane of
    glass set into a slanted face of a convex profile listed counter-clockwise.
    """
    p0, p1 = torch.tensor(start), torch.tensor(end)
    along = (p1 - p0) / (p1 - p0).norm()
    right = torch.stack([along[1], -along[0]])
    a, b = p0 + inset * along, p1 - inset * along
    return torch.stack([a - inside * right, b - inside * right, b + outside * right, a + outside * right])


@dataclass(frozen=True)
class CarProportions:
    """Ranges of a car's proportions, in units of half its body length (the body spans x in [-1, 1])."""

    half_width: Range = (0.36, 0.46)
    """Half the body's width."""
    wheel_radius: Range = (0.15, 0.21)
    """Radius of the tyres; the wheels stand on z = 0."""
    wheel_half_width: Range = (0.05, 0.075)
    """Half the tyres' width."""
    wheel_protrusion: Range = (0.3, 0.7)
    """How far the tyres stick out of the body's sides, as a fraction of their half width."""
    body_clearance: Range = (0.45, 0.75)
    """Height of the body's underside, as a fraction of the wheel radius."""
    body_height: Range = (0.2, 0.34)
    """Height of the body below the cabin."""
    front_bevel: Range = (0.05, 0.2)
    """Length of the bonnet's sloped front edge."""
    rear_bevel: Range = (0.03, 0.15)
    """Length of the boot's sloped rear edge."""
    bevel_drop: float = 0.6
    """Height of a bevel as a fraction of its length."""
    cabin_height: Range = (0.17, 0.3)
    """Height of the cabin above the body."""
    cabin_length: Range = (0.85, 1.25)
    """Length of the cabin at its foot."""
    cabin_centre: Range = (-0.3, 0.0)
    """Position of the cabin's middle along the body (negative: towards the rear)."""
    windscreen_run: Range = (0.22, 0.42)
    """Horizontal run of the sloped windscreen."""
    rear_window_run: Range = (0.05, 0.45)
    """Horizontal run of the rear window (short: hatchback or estate; long: fastback)."""
    cabin_width: Range = (0.8, 0.92)
    """Cabin width as a fraction of the body's."""
    pillar: Range = (0.03, 0.05)
    """Width of the roof pillars and window frames."""
    pane_thickness: float = 0.012
    """How far the glass panes stand out of the cabin's faces."""
    window_corner_inset: float = 1.5
    """Side windows keep this many pillar widths from the cabin's sloped edges."""
    b_pillar_position: Range = (-0.1, 0.1)
    """Position of the pillar between the side windows, as a fraction of the cabin length from its middle."""
    wheelbase: Range = (0.58, 0.7)
    """Half the distance between the axles, as a fraction of the half length."""
    hub_radius: Range = (0.45, 0.65)
    """Radius of the hubcaps as a fraction of the wheel radius."""
    hub_protrusion: float = 0.01
    """Half thickness of the hubcaps, which sit on the tyres' outer faces."""
    light_depth: float = 0.012
    """Half depth of the head and tail lights set into the front and rear faces."""
    light_drop: Range = (0.03, 0.06)
    """Distance of the headlights' centre below the top of the front face."""
    light_inset: Range = (0.07, 0.12)
    """Distance of the lights' centre from the body's sides."""
    light_half_width: Range = (0.05, 0.09)
    """Half width of a light."""
    light_half_height: Range = (0.02, 0.035)
    """Half height of a light."""
    tail_light_drop: float = 0.05
    """Distance of the tail lights' centre below the top of the rear face."""
    bumper_half_depth: float = 0.03
    """Half depth of the bumpers."""
    bumper_half_height: Range = (0.025, 0.045)
    """Half height of the bumpers."""
    bumper_gap: float = 0.01
    """Height of the bumpers' underside above the body's."""
    bumper_overhang: float = 1.01
    """Bumper width as a fraction of the body's."""
    grille_probability: float = 0.6
    """Chance of a dark grille between the headlights."""
    grille_width: Range = (0.3, 0.5)
    """Half width of the grille as a fraction of the body's half width."""
    grille_half_height: Range = (0.025, 0.045)
    """Half height of the grille."""
    grille_half_depth: float = 0.01
    """Half depth of the grille."""
    spoiler_probability: float = 0.25
    """Chance of a rear spoiler."""
    spoiler_height: Range = (0.04, 0.08)
    """Height of the spoiler above the boot."""
    spoiler_half_size: Tuple[float, float, float] = (0.06, 0.9, 0.01)
    """Half depth, half width (fraction of the body's half width) and half thickness of the spoiler's wing."""
    spoiler_setback: float = 0.08
    """Distance of the spoiler from the rear face."""
    spoiler_strut: float = 0.015
    """Half width of the spoiler's struts."""
    spoiler_strut_spread: float = 0.6
    """Lateral position of the struts as a fraction of the half width."""


@dataclass(frozen=True)
class ChairProportions:
    """Ranges of a chair's proportions, in metres-like units (a seat is about 0.5 wide); the front is +x."""

    metal_frame_probability: float = 0.25
    """Chance of metal rather than wooden legs and frame."""
    upholstered_probability: float = 0.5
    """Chance of a fabric seat and back (else they are made of the frame's material)."""
    seat_half_depth: Range = (0.22, 0.3)
    """Half the seat's depth (x)."""
    seat_half_width: Range = (0.22, 0.3)
    """Half the seat's width (y)."""
    seat_half_thickness: Range = (0.02, 0.045)
    """Half the thickness of a plain seat."""
    cushion_half_thickness: Range = (0.035, 0.06)
    """Half the thickness of an upholstered seat."""
    seat_height: Range = (0.4, 0.5)
    """Height of the seat's top above the floor."""
    round_leg_probability: float = 0.5
    """Chance of round (else square) legs."""
    leg_half_width: Range = (0.014, 0.03)
    """Radius or half width of the legs."""
    leg_inset: Range = (0.0, 0.04)
    """Extra distance of the legs from the seat's edges."""
    stretcher_probability: float = 0.4
    """Chance of bars between the legs."""
    stretcher_height: Range = (0.4, 0.8)
    """Height of the stretchers as a fraction of the legs' half height."""
    stretcher_thickness: float = 0.6
    """Half thickness of the stretchers as a fraction of the legs'."""
    back_height: Range = (0.35, 0.6)
    """Height of the back above the seat."""
    back_half_thickness: Range = (0.015, 0.035)
    """Half thickness of the back."""
    back_tilt_degrees: Range = (0.0, 14.0)
    """Backwards tilt of the back."""
    back_width: Range = (0.85, 1.0)
    """Width of the back as a fraction of the seat's."""
    panel_probability: float = 0.6
    """Chance of a solid back panel (else posts, a top rail and slats)."""
    panel_lift: Range = (0.0, 0.35)
    """Gap between seat and panel, bridged by two posts, as a fraction of the back's height."""
    rail_half_height: Range = (0.03, 0.06)
    """Half height of the top rail of a slatted back."""
    slat_counts: Tuple[int, ...] = (2, 3, 4, 5)
    """Possible numbers of slats."""
    slat_fill: float = 0.45
    """Fraction of the width between the posts covered by slats (the rest is gaps)."""
    slat_thickness: float = 0.7
    """Slat thickness as a fraction of the back's."""
    armrest_probability: float = 0.35
    """Chance of armrests."""
    armrest_height: Range = (0.18, 0.26)
    """Height of the armrests above the seat."""
    armrest_half_width: Range = (0.02, 0.04)
    """Half width of the armrests."""
    armrest_length: float = 0.9
    """Armrest length as a fraction of the seat's depth."""
    armrest_half_thickness: float = 0.018
    """Half thickness of the armrests and half width of their supports."""
    armrest_support_position: float = 0.75
    """Position of the armrests' front supports as a fraction of the seat's half depth."""


@dataclass(frozen=True)
class PlaneProportions:
    """Ranges of an aeroplane's proportions, in units where its fuselage is about 2 long; the nose is +x."""

    military_probability: float = 0.12
    """Chance of an all-grey plane."""
    wings_in_body_colour_probability: float = 0.5
    """Chance that the wings share the fuselage's colour (else another light airframe colour)."""
    radius: Range = (0.07, 0.11)
    """Radius of the fuselage's cylindrical barrel."""
    barrel_rear: Range = (0.3, 0.5)
    """Distance of the barrel's rear end behind the origin."""
    barrel_front: Range = (0.35, 0.6)
    """Distance of the barrel's front end ahead of the origin."""
    nose_length: Range = (0.12, 0.3)
    """Length of the ellipsoidal nose ahead of the barrel."""
    tail_length: Range = (0.35, 0.55)
    """Length of the tail cone behind the barrel."""
    tail_rise: float = 0.25
    """Upward shift of the tail cone's axis (fraction of the radius): its underside sweeps up towards the fin."""
    tail_flattening: float = 0.75
    """Vertical semi-axis of the tail cone as a fraction of the radius."""
    canopy_position: float = 0.05
    """Position of the cockpit canopy along the nose, as a fraction of the nose length."""
    canopy_semi_axes: Tuple[float, float, float] = (0.4, 0.62, 0.5)
    """Canopy semi-axes: fraction of the nose length, then of the radius (twice)."""
    canopy_height: float = 0.58
    """Height of the canopy's centre as a fraction of the radius."""
    root_chord: Range = (0.3, 0.48)
    """Wing chord at the fuselage."""
    taper: Range = (0.25, 0.55)
    """Wing tip chord as a fraction of the root chord."""
    span: Range = (0.75, 1.0)
    """Length of one wing."""
    sweep: Range = (0.05, 0.4)
    """How far behind the root's leading edge the tip's leading edge sits."""
    wing_position: Range = (-0.05, 0.15)
    """Position of the wing root's middle along the fuselage."""
    low_wing_probability: float = 0.75
    """Chance of wings under the fuselage's axis (else above it)."""
    low_wing_height: Range = (-0.6, -0.3)
    """Height of low wings as a fraction of the radius."""
    high_wing_height: Range = (0.4, 0.7)
    """Height of high wings as a fraction of the radius."""
    wing_half_thickness: Range = (0.012, 0.02)
    """Half thickness of the wings (tail surfaces are proportionally thinner)."""
    dihedral_degrees: Range = (0.0, 6.0)
    """Upward angle of the wings."""
    engine_probability: float = 0.65
    """Chance of engines under the wings."""
    engine_radius: Range = (0.45, 0.65)
    """Engine radius as a fraction of the fuselage's."""
    engine_half_length: Range = (0.09, 0.15)
    """Half length of the engines."""
    engine_accent_probability: float = 0.4
    """Chance that the engines wear the accent colour."""
    single_engine_pair_probability: float = 0.7
    """Chance of one engine per wing (else two)."""
    single_engine_position: Tuple[float, ...] = (0.35,)
    """Span fraction of the engine when there is one per wing."""
    twin_engine_positions: Tuple[float, ...] = (0.3, 0.6)
    """Span fractions of the engines when there are two per wing."""
    engine_lead: float = 0.4
    """How far an engine's middle sits ahead of the wing's leading edge, as a fraction of its half length."""
    stabiliser_root: Range = (0.15, 0.24)
    """Chord of the horizontal stabiliser at the fuselage."""
    stabiliser_span: Range = (0.3, 0.42)
    """Length of one stabiliser as a fraction of the wing span."""
    stabiliser_sweep: Range = (0.03, 0.15)
    """Sweep of the stabiliser's leading edge."""
    stabiliser_taper: float = 0.5
    """Stabiliser tip chord as a fraction of its root chord."""
    stabiliser_height: float = 0.3
    """Height of a fuselage-mounted stabiliser, as a fraction of the radius."""
    stabiliser_thickness: float = 0.8
    """Tail surface thickness as a fraction of the wings'."""
    tail_margin: float = 0.02
    """Distance of the stabiliser's root trailing edge from the end of the tail cone."""
    t_tail_probability: float = 0.2
    """Chance of a T-tail: the stabiliser on top of the fin."""
    t_tail_height: float = 0.95
    """Height of a T-tail's stabiliser as a fraction of the fin's height."""
    t_tail_lead: float = 0.3
    """How far a T-tail's stabiliser reaches ahead of the fin tip, as a fraction of its root chord."""
    fin_height: Range = (0.22, 0.36)
    """Height of the vertical fin."""
    fin_root: Range = (0.2, 0.32)
    """Chord of the fin at the fuselage."""
    fin_taper: Range = (0.4, 0.7)
    """Fin tip chord as a fraction of its root chord."""
    fin_sweep: Range = (0.08, 0.2)
    """Sweep of the fin's leading edge."""
    fin_margin: float = 0.01
    """Distance of the fin's trailing edge from the end of the tail cone."""
    fin_base: float = 0.2
    """Height of the fin's root as a fraction of the radius (inside the rising tail cone)."""


CAR_PROPORTIONS = CarProportions()
"""Proportion ranges of the built-in cars."""
CHAIR_PROPORTIONS = ChairProportions()
"""Proportion ranges of the built-in chairs."""
PLANE_PROPORTIONS = PlaneProportions()
"""Proportion ranges of the built-in aeroplanes."""
SIDES = (-1.0, 1.0)
"""Right (-y) and left (+y): most parts come in mirrored pairs."""


def sample_car(generator: torch.Generator, proportions: CarProportions = CAR_PROPORTIONS) -> Scene:
    """A car: bevelled body, glass cabin with a body-coloured roof and pillars, four wheels, lights and bumpers."""
    rng, p = _Sampler(generator), proportions
    paint = rng.colour(CAR_BODY_COLOURS)
    half_length = 1.0
    half_width = rng.within(p.half_width)
    wheel_radius = rng.within(p.wheel_radius)
    wheel_half_width = rng.within(p.wheel_half_width)
    body_bottom = wheel_radius * rng.within(p.body_clearance)
    body_top = body_bottom + rng.within(p.body_height)
    front_bevel = rng.within(p.front_bevel)
    rear_bevel = rng.within(p.rear_bevel)
    front_face_top = body_top - front_bevel * p.bevel_drop
    rear_face_top = body_top - rear_bevel * p.bevel_drop
    body_profile = torch.tensor(
        [
            [-half_length, body_bottom],
            [half_length, body_bottom],
            [half_length, front_face_top],
            [half_length - front_bevel, body_top],
            [-half_length + rear_bevel, body_top],
            [-half_length, rear_face_top],
        ]
    )
    scene: Scene = [prism(body_profile, half_width, paint, axes=SIDE_PROFILE_AXES)]

    # Cabin: a trapezoid in side view, sitting on the body, set back from the bonnet.
    cabin_height = rng.within(p.cabin_height)
    cabin_length = rng.within(p.cabin_length)
    cabin_centre = rng.within(p.cabin_centre)
    windscreen_run = rng.within(p.windscreen_run)
    rear_run = rng.within(p.rear_window_run)
    cabin_half_width = half_width * rng.within(p.cabin_width)
    rear_foot, front_foot = cabin_centre - cabin_length / 2, cabin_centre + cabin_length / 2
    rear_top, front_top = rear_foot + rear_run, front_foot - windscreen_run
    cabin_top = body_top + cabin_height
    cabin_profile = [(rear_foot, body_top), (front_foot, body_top), (front_top, cabin_top), (rear_top, cabin_top)]
    scene.append(prism(torch.tensor(cabin_profile), cabin_half_width, paint, axes=SIDE_PROFILE_AXES))

    # Glass: panes along the windscreen and rear window, and side windows split by a B-pillar.
    pillar = rng.within(p.pillar)
    pane = p.pane_thickness
    for start, end in ((cabin_profile[1], cabin_profile[2]), (cabin_profile[3], cabin_profile[0])):
        quad = _quad_along(start, end, inset=pillar, outside=pane, inside=pane)
        scene.append(prism(quad, cabin_half_width - pillar, GLASS_COLOUR, axes=SIDE_PROFILE_AXES))
    window_bottom, window_top = body_top + pillar, cabin_top - pillar
    b_pillar = cabin_centre + rng.within(p.b_pillar_position) * cabin_length
    corner_inset = pillar * p.window_corner_inset
    for limit_rear, limit_front in ((-math.inf, b_pillar - pillar / 2), (b_pillar + pillar / 2, math.inf)):
        corners = []
        for z in (window_bottom, window_top):
            fraction = (z - body_top) / cabin_height
            front = front_foot + (front_top - front_foot) * fraction - corner_inset
            rear = rear_foot + (rear_top - rear_foot) * fraction + corner_inset
            corners.append((max(rear, limit_rear), min(front, limit_front)))
        (rear_low, front_low), (rear_high, front_high) = corners
        if front_low - rear_low > pillar and front_high - rear_high > pillar:
            window = torch.tensor(
                [[rear_low, window_bottom], [front_low, window_bottom], [front_high, window_top],
                 [rear_high, window_top]]
            )
            scene.append(prism(window, cabin_half_width + pane, GLASS_COLOUR, axes=SIDE_PROFILE_AXES))

    # Wheels and hubs, protruding slightly from the body's sides.
    wheelbase_half = half_length * rng.within(p.wheelbase)
    wheel_y = half_width - wheel_half_width * rng.within(p.wheel_protrusion)
    hub_radius = wheel_radius * rng.within(p.hub_radius)
    for x in (-wheelbase_half, wheelbase_half):
        for side in SIDES:
            wheel_centre = (x, side * wheel_y, wheel_radius)
            scene.append(cylinder(wheel_centre, Y_AXIS, wheel_radius, wheel_half_width, TYRE_COLOUR))
            hub_centre = (x, side * (wheel_y + wheel_half_width), wheel_radius)
            scene.append(cylinder(hub_centre, Y_AXIS, hub_radius, p.hub_protrusion, HUBCAP_COLOUR))

    # Lights and bumpers on the front and rear faces.
    light_z = front_face_top - rng.within(p.light_drop)
    light_y = half_width - rng.within(p.light_inset)
    light_half = (p.light_depth, rng.within(p.light_half_width), rng.within(p.light_half_height))
    rear_light_z = rear_face_top - p.tail_light_drop
    for side in SIDES:
        scene.append(box((half_length, side * light_y, light_z), light_half, HEADLIGHT_COLOUR))
        scene.append(box((-half_length, side * light_y, rear_light_z), light_half, TAILLIGHT_COLOUR))
    bumper_half = (p.bumper_half_depth, half_width * p.bumper_overhang, rng.within(p.bumper_half_height))
    bumper_z = body_bottom + bumper_half[2] + p.bumper_gap
    for x in (-half_length, half_length):
        scene.append(box((x, 0.0, bumper_z), bumper_half, TRIM_COLOUR))
    if rng.chance(p.grille_probability):
        grille_half = (p.grille_half_depth, half_width * rng.within(p.grille_width), rng.within(p.grille_half_height))
        scene.append(box((half_length, 0.0, (light_z + bumper_z) / 2 + p.bumper_gap), grille_half, TRIM_COLOUR))
    if rng.chance(p.spoiler_probability):
        spoiler_z = body_top + rng.within(p.spoiler_height)
        spoiler_x = -half_length + p.spoiler_setback
        depth, width_fraction, thickness = p.spoiler_half_size
        scene.append(box((spoiler_x, 0.0, spoiler_z), (depth, half_width * width_fraction, thickness), paint))
        strut_half = (p.spoiler_strut, p.spoiler_strut, (spoiler_z - body_top) / 2)
        for side in SIDES:
            strut_centre = (spoiler_x, side * half_width * p.spoiler_strut_spread, (body_top + spoiler_z) / 2)
            scene.append(box(strut_centre, strut_half, TRIM_COLOUR))
    return fit_to_sphere(scene, rng.within(FIT_RADIUS_RANGE))


def sample_chair(generator: torch.Generator, proportions: ChairProportions = CHAIR_PROPORTIONS) -> Scene:
    """A chair: seat, back (solid panel or slats), four legs, optional stretchers and armrests; front is +x."""
    rng, p = _Sampler(generator), proportions
    metal = rng.chance(p.metal_frame_probability)
    frame = rng.colour(METAL_COLOURS if metal else WOOD_COLOURS)
    upholstered = rng.chance(p.upholstered_probability)
    cushion = rng.colour(FABRIC_COLOURS) if upholstered else frame
    seat_half_depth = rng.within(p.seat_half_depth)
    seat_half_width = rng.within(p.seat_half_width)
    seat_half_thickness = rng.within(p.cushion_half_thickness if upholstered else p.seat_half_thickness)
    seat_height = rng.within(p.seat_height)
    seat_half = (seat_half_depth, seat_half_width, seat_half_thickness)
    scene: Scene = [box((0.0, 0.0, seat_height - seat_half_thickness), seat_half, cushion)]

    # Legs: round or square, inset from the seat's corners.
    round_legs = rng.chance(p.round_leg_probability)
    leg_half = rng.within(p.leg_half_width)
    inset = leg_half + rng.within(p.leg_inset)
    leg_half_height = (seat_height - 2 * seat_half_thickness) / 2
    leg_x, leg_y = seat_half_depth - inset, seat_half_width - inset
    for sx in SIDES:
        for sy in SIDES:
            centre = (sx * leg_x, sy * leg_y, leg_half_height)
            if round_legs:
                scene.append(cylinder(centre, Z_AXIS, leg_half, leg_half_height, frame))
            else:
                scene.append(box(centre, (leg_half, leg_half, leg_half_height), frame))
    if rng.chance(p.stretcher_probability):
        stretcher_z = leg_half_height * rng.within(p.stretcher_height)
        bar = leg_half * p.stretcher_thickness
        for sy in SIDES:
            scene.append(box((0.0, sy * leg_y, stretcher_z), (leg_x, bar, bar), frame))
        scene.append(box((-leg_x, 0.0, stretcher_z), (bar, leg_y, bar), frame))

    # Back: rises from the seat's rear edge, tilted backwards a little.
    back_height = rng.within(p.back_height)
    back_half_thickness = rng.within(p.back_half_thickness)
    tilt = math.radians(rng.within(p.back_tilt_degrees))
    back_rotation = rotation_about(Y_AXIS, -tilt)
    back_x = -seat_half_depth + back_half_thickness

    def along_back(y: float, height: float) -> Tuple[float, float, float]:
        """The point `height` up the tilted back (measured along it) at lateral position y."""
        return (back_x - math.sin(tilt) * height, y, seat_height + math.cos(tilt) * height)

    back_half_width = seat_half_width * rng.within(p.back_width)
    post_y = back_half_width - leg_half
    if rng.chance(p.panel_probability):  # solid panel, upholstered or plain, on posts when lifted off the seat
        panel_bottom = back_height * rng.within(p.panel_lift)
        panel_half = (back_half_thickness, back_half_width, (back_height - panel_bottom) / 2)
        scene.append(box(along_back(0.0, (back_height + panel_bottom) / 2), panel_half, cushion, back_rotation))
        post = (back_half_thickness, leg_half, panel_bottom / 2 + back_half_thickness)
        for sy in SIDES:
            scene.append(box(along_back(sy * post_y, panel_bottom / 2), post, frame, back_rotation))
    else:  # posts, a top rail and vertical slats
        rail_half_height = rng.within(p.rail_half_height)
        post = (back_half_thickness, leg_half, back_height / 2)
        for sy in SIDES:
            scene.append(box(along_back(sy * post_y, back_height / 2), post, frame, back_rotation))
        rail = (back_half_thickness, back_half_width, rail_half_height)
        scene.append(box(along_back(0.0, back_height - rail_half_height), rail, frame, back_rotation))
        num_slats = int(rng.choice(p.slat_counts))
        inner = back_half_width - 2 * leg_half
        slat_half = (back_half_thickness * p.slat_thickness, inner / num_slats * p.slat_fill,
                     back_height / 2 - rail_half_height)
        for index in range(num_slats):
            y = -inner + (2 * index + 1) * inner / num_slats
            scene.append(box(along_back(y, slat_half[2]), slat_half, frame, back_rotation))

    if rng.chance(p.armrest_probability):  # armrests on supports at the front corners
        arm_height = rng.within(p.armrest_height)
        arm_half = (seat_half_depth * p.armrest_length, rng.within(p.armrest_half_width), p.armrest_half_thickness)
        support = (p.armrest_half_thickness, p.armrest_half_thickness, arm_height / 2)
        for sy in SIDES:
            y = sy * (seat_half_width - arm_half[1])
            scene.append(box((0.0, y, seat_height + arm_height), arm_half, frame))
            support_x = seat_half_depth * p.armrest_support_position
            scene.append(box((support_x, y, seat_height + arm_height / 2), support, frame))
    return fit_to_sphere(scene, rng.within(FIT_RADIUS_RANGE))


def sample_plane(generator: torch.Generator, proportions: PlaneProportions = PLANE_PROPORTIONS) -> Scene:
    """An aeroplane: fuselage with nose and tail cone, swept wings, tailplane, fin, optional engines; nose is +x."""
    rng, p = _Sampler(generator), proportions
    military = rng.chance(p.military_probability)
    body = MILITARY_GREY if military else rng.colour(AIRFRAME_COLOURS)
    accent = body if military else rng.colour(ACCENT_COLOURS)
    wing_colour = body if rng.chance(p.wings_in_body_colour_probability) else rng.colour(AIRFRAME_COLOURS)

    radius = rng.within(p.radius)
    barrel_rear, barrel_front = -rng.within(p.barrel_rear), rng.within(p.barrel_front)
    nose_length = rng.within(p.nose_length)
    tail_length = rng.within(p.tail_length)
    barrel_half = (barrel_front - barrel_rear) / 2
    canopy = p.canopy_semi_axes
    scene: Scene = [
        cylinder(((barrel_front + barrel_rear) / 2, 0.0, 0.0), X_AXIS, radius, barrel_half, body),
        ellipsoid((barrel_front, 0.0, 0.0), (nose_length, radius, radius), body),
        ellipsoid((barrel_rear, 0.0, radius * p.tail_rise), (tail_length, radius, radius * p.tail_flattening), body),
        ellipsoid(
            (barrel_front + nose_length * p.canopy_position, 0.0, radius * p.canopy_height),
            (nose_length * canopy[0], radius * canopy[1], radius * canopy[2]),
            GLASS_COLOUR,
        ),
    ]

    # Main wings: one convex trapezoid each side (a swept pair is not convex), with dihedral.
    root_chord = rng.within(p.root_chord)
    tip_chord = root_chord * rng.within(p.taper)
    span = rng.within(p.span)
    sweep = rng.within(p.sweep)
    wing_x = rng.within(p.wing_position) + root_chord / 2
    low_wing = rng.chance(p.low_wing_probability)
    wing_z = radius * rng.within(p.low_wing_height if low_wing else p.high_wing_height)
    wing_half_thickness = rng.within(p.wing_half_thickness)
    dihedral = math.radians(rng.within(p.dihedral_degrees))
    planform = torch.tensor(
        [[wing_x, 0.0], [wing_x - sweep, span], [wing_x - sweep - tip_chord, span], [wing_x - root_chord, 0.0]]
    )
    for side in SIDES:
        axes = rotation_about(X_AXIS, side * dihedral) @ torch.diag(torch.tensor([1.0, side, 1.0]))
        scene.append(prism(planform, wing_half_thickness, wing_colour, centre=(0.0, 0.0, wing_z), axes=axes))

    if rng.chance(p.engine_probability):  # engines hanging under the wings
        engine_radius = radius * rng.within(p.engine_radius)
        engine_half_length = rng.within(p.engine_half_length)
        engine_colour = accent if rng.chance(p.engine_accent_probability) else body
        single = rng.chance(p.single_engine_pair_probability)
        for fraction in p.single_engine_position if single else p.twin_engine_positions:
            y = span * fraction
            x = wing_x - sweep * fraction + engine_half_length * p.engine_lead
            z = wing_z + y * math.tan(dihedral) - engine_radius - wing_half_thickness
            for side in SIDES:
                scene.append(cylinder((x, side * y, z), X_AXIS, engine_radius, engine_half_length, engine_colour))

    # Tail: horizontal stabiliser and vertical fin at the end of the tail cone.
    tail_end = barrel_rear - tail_length
    stab_root = rng.within(p.stabiliser_root)
    stab_span = span * rng.within(p.stabiliser_span)
    stab_sweep = rng.within(p.stabiliser_sweep)
    t_tail = rng.chance(p.t_tail_probability)
    fin_height = rng.within(p.fin_height)
    fin_root = rng.within(p.fin_root)
    fin_tip = fin_root * rng.within(p.fin_taper)
    fin_sweep = rng.within(p.fin_sweep)
    fin_x = tail_end + fin_root + p.fin_margin
    fin_base = radius * p.fin_base
    if t_tail:  # the stabiliser sits on top of the fin, above the fin's swept-back tip
        stab_x = fin_x - fin_sweep + stab_root * p.t_tail_lead
        stab_z = fin_base + fin_height * p.t_tail_height
    else:
        stab_x = tail_end + stab_root + p.tail_margin
        stab_z = radius * p.stabiliser_height
    stab_tip = stab_root * p.stabiliser_taper
    stabiliser = torch.tensor(
        [[stab_x, 0.0], [stab_x - stab_sweep, stab_span], [stab_x - stab_sweep - stab_tip, stab_span],
         [stab_x - stab_root, 0.0]]
    )
    tail_thickness = wing_half_thickness * p.stabiliser_thickness
    for side in SIDES:
        axes = torch.diag(torch.tensor([1.0, side, 1.0]))
        scene.append(prism(stabiliser, tail_thickness, wing_colour, centre=(0.0, 0.0, stab_z), axes=axes))
    fin = torch.tensor(
        [[fin_x, fin_base], [fin_x - fin_sweep, fin_base + fin_height],
         [fin_x - fin_sweep - fin_tip, fin_base + fin_height], [fin_x - fin_root, fin_base]]
    )
    scene.append(prism(fin, wing_half_thickness, accent, axes=SIDE_PROFILE_AXES))
    return fit_to_sphere(scene, rng.within(FIT_RADIUS_RANGE))


BUILTIN_SHAPES: Dict[str, Callable[[torch.Generator], Scene]] = {
    "cars": sample_car,
    "chairs": sample_chair,
    "planes": sample_plane,
}
"""Instance samplers of the built-in categories, by dataset name."""


def sample_scenes(name: str, count: int, seed: int) -> List[Scene]:
    """`count` instances of a category from one seeded generator (for tests and previews)."""
    generator = torch.Generator().manual_seed(seed)
    return [BUILTIN_SHAPES[name](generator) for _ in range(count)]
