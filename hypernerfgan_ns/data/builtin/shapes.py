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


class _Sampler:
    """Draws uniform numbers, choices and jittered colours from one torch.Generator."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=self.generator))

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


def _fit(scene: Scene, sampler: _Sampler) -> Scene:
    return fit_to_sphere(scene, sampler.uniform(*FIT_RADIUS_RANGE))


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


def sample_car(generator: torch.Generator) -> Scene:
    """A car: bevelled body, glass cabin with a body-coloured roof and pillars, four wheels, lights and bumpers."""
    rng = _Sampler(generator)
    paint = rng.colour(CAR_BODY_COLOURS)
    half_length = 1.0
    half_width = rng.uniform(0.36, 0.46)
    wheel_radius = rng.uniform(0.15, 0.21)
    wheel_half_width = rng.uniform(0.05, 0.075)
    body_bottom = wheel_radius * rng.uniform(0.45, 0.75)
    body_top = body_bottom + rng.uniform(0.2, 0.34)
    front_bevel = rng.uniform(0.05, 0.2)
    rear_bevel = rng.uniform(0.03, 0.15)
    body_profile = torch.tensor(
        [
            [-half_length, body_bottom],
            [half_length, body_bottom],
            [half_length, body_top - front_bevel * 0.6],
            [half_length - front_bevel, body_top],
            [-half_length + rear_bevel, body_top],
            [-half_length, body_top - rear_bevel * 0.6],
        ]
    )
    scene: Scene = [prism(body_profile, half_width, paint, axes=SIDE_PROFILE_AXES)]

    # Cabin: a trapezoid in side view, sitting on the body, set back from the bonnet.
    cabin_height = rng.uniform(0.17, 0.3)
    cabin_length = rng.uniform(0.85, 1.25)
    cabin_centre = rng.uniform(-0.3, 0.0)
    windscreen_run = rng.uniform(0.22, 0.42)
    rear_run = rng.uniform(0.05, 0.45)
    cabin_half_width = half_width * rng.uniform(0.8, 0.92)
    rear_foot, front_foot = cabin_centre - cabin_length / 2, cabin_centre + cabin_length / 2
    rear_top, front_top = rear_foot + rear_run, front_foot - windscreen_run
    cabin_top = body_top + cabin_height
    cabin_profile = [(rear_foot, body_top), (front_foot, body_top), (front_top, cabin_top), (rear_top, cabin_top)]
    scene.append(prism(torch.tensor(cabin_profile), cabin_half_width, paint, axes=SIDE_PROFILE_AXES))

    # Glass: panes along the windscreen and rear window, and side windows split by a B-pillar.
    pillar = rng.uniform(0.03, 0.05)
    pane = 0.012
    for start, end in ((cabin_profile[1], cabin_profile[2]), (cabin_profile[3], cabin_profile[0])):
        quad = _quad_along(start, end, inset=pillar, outside=pane, inside=pane)
        scene.append(prism(quad, cabin_half_width - pillar, GLASS_COLOUR, axes=SIDE_PROFILE_AXES))
    window_bottom, window_top = body_top + pillar, cabin_top - pillar
    b_pillar = cabin_centre + rng.uniform(-0.1, 0.1) * cabin_length
    for segment_rear, segment_front in ((None, b_pillar - pillar / 2), (b_pillar + pillar / 2, None)):
        corners = []
        for z in (window_bottom, window_top):
            fraction = (z - body_top) / cabin_height
            front = front_foot + (front_top - front_foot) * fraction - pillar * 1.5
            rear = rear_foot + (rear_top - rear_foot) * fraction + pillar * 1.5
            corners.append(
                (max(rear, segment_rear) if segment_rear is not None else rear,
                 min(front, segment_front) if segment_front is not None else front)
            )
        (rear_low, front_low), (rear_high, front_high) = corners
        if front_low - rear_low > pillar and front_high - rear_high > pillar:
            window = torch.tensor([[rear_low, window_bottom], [front_low, window_bottom],
                                   [front_high, window_top], [rear_high, window_top]])
            scene.append(prism(window, cabin_half_width + pane, GLASS_COLOUR, axes=SIDE_PROFILE_AXES))

    # Wheels and hubs, protruding slightly from the body's sides.
    wheelbase_half = half_length * rng.uniform(0.58, 0.7)
    wheel_y = half_width - wheel_half_width * rng.uniform(0.3, 0.7)
    hub_radius = wheel_radius * rng.uniform(0.45, 0.65)
    for x in (-wheelbase_half, wheelbase_half):
        for side in (-1.0, 1.0):
            scene.append(cylinder((x, side * wheel_y, wheel_radius), Y_AXIS, wheel_radius, wheel_half_width, TYRE_COLOUR))
            hub_y = side * (wheel_y + wheel_half_width)
            scene.append(cylinder((x, hub_y, wheel_radius), Y_AXIS, hub_radius, 0.01, HUBCAP_COLOUR))

    # Lights and bumpers on the front and rear faces.
    light_z = body_top - front_bevel * 0.6 - rng.uniform(0.03, 0.06)
    light_y = half_width - rng.uniform(0.07, 0.12)
    light_half = (0.012, rng.uniform(0.05, 0.09), rng.uniform(0.02, 0.035))
    rear_light_z = body_top - rear_bevel * 0.6 - 0.05
    for side in (-1.0, 1.0):
        scene.append(box((half_length, side * light_y, light_z), light_half, HEADLIGHT_COLOUR))
        scene.append(box((-half_length, side * light_y, rear_light_z), light_half, TAILLIGHT_COLOUR))
    bumper_half = (0.03, half_width * 1.01, rng.uniform(0.025, 0.045))
    bumper_z = body_bottom + bumper_half[2] + 0.01
    for x in (-half_length, half_length):
        scene.append(box((x, 0.0, bumper_z), bumper_half, TRIM_COLOUR))
    if rng.chance(0.6):
        grille_half = (0.01, half_width * rng.uniform(0.3, 0.5), rng.uniform(0.025, 0.045))
        scene.append(box((half_length, 0.0, (light_z + bumper_z) / 2 + 0.01), grille_half, TRIM_COLOUR))
    if rng.chance(0.25):  # rear spoiler
        spoiler_z = body_top + rng.uniform(0.04, 0.08)
        scene.append(box((-half_length + 0.08, 0.0, spoiler_z), (0.06, half_width * 0.9, 0.01), paint))
        for side in (-1.0, 1.0):
            scene.append(box((-half_length + 0.08, side * half_width * 0.6, (body_top + spoiler_z) / 2),
                             (0.015, 0.015, (spoiler_z - body_top) / 2), TRIM_COLOUR))
    return _fit(scene, rng)


def sample_chair(generator: torch.Generator) -> Scene:
    """A chair: seat, back (solid panel or slats), four legs, optional stretchers and armrests; front is +x."""
    rng = _Sampler(generator)
    frame = rng.colour(METAL_COLOURS) if rng.chance(0.25) else rng.colour(WOOD_COLOURS)
    upholstered = rng.chance(0.5)
    cushion = rng.colour(FABRIC_COLOURS) if upholstered else frame
    seat_half_depth = rng.uniform(0.22, 0.3)
    seat_half_width = rng.uniform(0.22, 0.3)
    seat_half_thickness = rng.uniform(0.02, 0.045) if not upholstered else rng.uniform(0.035, 0.06)
    seat_height = rng.uniform(0.4, 0.5)
    seat_z = seat_height - seat_half_thickness
    scene: Scene = [box((0.0, 0.0, seat_z), (seat_half_depth, seat_half_width, seat_half_thickness), cushion)]

    # Legs: round or square, inset from the seat's corners.
    round_legs = rng.chance(0.5)
    leg_half = rng.uniform(0.014, 0.03)
    inset = leg_half + rng.uniform(0.0, 0.04)
    leg_half_height = (seat_height - 2 * seat_half_thickness) / 2
    leg_xy = [(sx * (seat_half_depth - inset), sy * (seat_half_width - inset)) for sx in (-1, 1) for sy in (-1, 1)]
    for x, y in leg_xy:
        if round_legs:
            scene.append(cylinder((x, y, leg_half_height), Z_AXIS, leg_half, leg_half_height, frame))
        else:
            scene.append(box((x, y, leg_half_height), (leg_half, leg_half, leg_half_height), frame))
    if rng.chance(0.4):  # stretchers between the legs
        stretcher_z = leg_half_height * rng.uniform(0.4, 0.8)
        bar = leg_half * 0.6
        for sy in (-1, 1):
            scene.append(box((0.0, sy * (seat_half_width - inset), stretcher_z),
                             (seat_half_depth - inset, bar, bar), frame))
        scene.append(box((-(seat_half_depth - inset), 0.0, stretcher_z), (bar, seat_half_width - inset, bar), frame))

    # Back: rises from the seat's rear edge, tilted backwards a little.
    back_height = rng.uniform(0.35, 0.6)
    back_half_thickness = rng.uniform(0.015, 0.035)
    tilt = math.radians(rng.uniform(0.0, 14.0))
    back_rotation = rotation_about(Y_AXIS, -tilt)
    back_bottom = seat_height
    back_x = -seat_half_depth + back_half_thickness

    def along_back(x: float, y: float, height: float) -> Tuple[float, float, float]:
        """A point `height` up the tilted back (measured along it) at lateral position y and depth offset x."""
        return (back_x + x - math.sin(tilt) * height, y, back_bottom + math.cos(tilt) * height)

    back_half_width = seat_half_width * rng.uniform(0.85, 1.0)
    if rng.chance(0.6):  # solid panel, upholstered or plain, with supports down to the seat
        panel_bottom = back_height * rng.uniform(0.0, 0.35)
        panel_half = (back_half_thickness, back_half_width, (back_height - panel_bottom) / 2)
        scene.append(box(along_back(0.0, 0.0, (back_height + panel_bottom) / 2), panel_half, cushion, back_rotation))
        if panel_bottom > 0:
            for sy in (-1, 1):
                post = (back_half_thickness, leg_half, panel_bottom / 2 + back_half_thickness)
                scene.append(box(along_back(0.0, sy * (back_half_width - leg_half), panel_bottom / 2), post,
                                 frame, back_rotation))
    else:  # posts, a top rail and vertical slats
        rail_half_height = rng.uniform(0.03, 0.06)
        for sy in (-1, 1):
            post = (back_half_thickness, leg_half, back_height / 2)
            scene.append(box(along_back(0.0, sy * (back_half_width - leg_half), back_height / 2), post, frame,
                             back_rotation))
        rail = (back_half_thickness, back_half_width, rail_half_height)
        scene.append(box(along_back(0.0, 0.0, back_height - rail_half_height), rail, frame, back_rotation))
        num_slats = int(rng.choice((2, 3, 4, 5)))
        inner_half_width = back_half_width - 2 * leg_half
        slat_half = (back_half_thickness * 0.7, inner_half_width / num_slats * 0.45, back_height / 2 - rail_half_height)
        for index in range(num_slats):
            y = -inner_half_width + (2 * index + 1) * inner_half_width / num_slats
            scene.append(box(along_back(0.0, y, slat_half[2]), slat_half, frame, back_rotation))

    if rng.chance(0.35):  # armrests on supports at the front corners
        arm_height = rng.uniform(0.18, 0.26)
        arm_half = (seat_half_depth * 0.9, rng.uniform(0.02, 0.04), 0.018)
        for sy in (-1, 1):
            y = sy * (seat_half_width - arm_half[1])
            scene.append(box((0.0, y, seat_height + arm_height), arm_half, frame))
            support = (0.018, 0.018, arm_height / 2)
            scene.append(box((seat_half_depth * 0.75, y, seat_height + arm_height / 2), support, frame))
    return _fit(scene, rng)


def sample_plane(generator: torch.Generator) -> Scene:
    """An aeroplane: fuselage with nose and tail cone, swept wings, tailplane, fin, optional engines; nose is +x."""
    rng = _Sampler(generator)
    military = rng.chance(0.12)
    body = MILITARY_GREY if military else rng.colour(AIRFRAME_COLOURS)
    accent = body if military else rng.colour(ACCENT_COLOURS)
    wing_colour = body if rng.chance(0.5) else rng.colour(AIRFRAME_COLOURS)

    radius = rng.uniform(0.07, 0.11)
    barrel_rear, barrel_front = -rng.uniform(0.3, 0.5), rng.uniform(0.35, 0.6)
    nose_length = rng.uniform(0.12, 0.3)
    tail_length = rng.uniform(0.35, 0.55)
    barrel_half = (barrel_front - barrel_rear) / 2
    scene: Scene = [
        cylinder(((barrel_front + barrel_rear) / 2, 0.0, 0.0), X_AXIS, radius, barrel_half, body),
        ellipsoid((barrel_front, 0.0, 0.0), (nose_length, radius, radius), body),
        # The tail cone rises a little so the fuselage's underside sweeps up towards the fin.
        ellipsoid((barrel_rear, 0.0, radius * 0.25), (tail_length, radius, radius * 0.75), body),
    ]
    # Cockpit windscreen: a dark canopy where the nose meets the barrel.
    scene.append(ellipsoid((barrel_front + nose_length * 0.25, 0.0, radius * 0.45),
                           (nose_length * 0.45, radius * 0.7, radius * 0.55), GLASS_COLOUR))

    # Main wings: one convex trapezoid each side (a swept pair is not convex), with dihedral.
    root_chord = rng.uniform(0.3, 0.48)
    tip_chord = root_chord * rng.uniform(0.25, 0.55)
    span = rng.uniform(0.75, 1.0)
    sweep = rng.uniform(0.05, 0.4)
    wing_x = rng.uniform(-0.05, 0.15) + root_chord / 2
    wing_z = radius * (rng.uniform(-0.6, -0.3) if rng.chance(0.75) else rng.uniform(0.4, 0.7))
    wing_half_thickness = rng.uniform(0.012, 0.02)
    dihedral = math.radians(rng.uniform(0.0, 6.0))
    for side in (-1.0, 1.0):
        planform = torch.tensor([[wing_x, 0.0], [wing_x - sweep, span], [wing_x - sweep - tip_chord, span],
                                 [wing_x - root_chord, 0.0]])
        axes = rotation_about(X_AXIS, side * dihedral) @ torch.diag(torch.tensor([1.0, side, 1.0]))
        scene.append(prism(planform, wing_half_thickness, wing_colour, centre=(0.0, 0.0, wing_z), axes=axes))

    if rng.chance(0.65):  # engines hanging under the wings
        engine_radius = radius * rng.uniform(0.45, 0.65)
        engine_half_length = rng.uniform(0.09, 0.15)
        engine_colour = accent if rng.chance(0.4) else body
        for fraction in ((0.35,) if rng.chance(0.7) else (0.3, 0.6)):
            y = span * fraction
            x = wing_x - sweep * fraction + engine_half_length * 0.4
            z = wing_z + y * math.tan(dihedral) - engine_radius - wing_half_thickness
            for side in (-1.0, 1.0):
                scene.append(cylinder((x, side * y, z), X_AXIS, engine_radius, engine_half_length, engine_colour))

    # Tail: horizontal stabiliser and vertical fin at the end of the tail cone.
    tail_end = barrel_rear - tail_length
    stab_root = rng.uniform(0.15, 0.24)
    stab_span = span * rng.uniform(0.3, 0.42)
    stab_sweep = rng.uniform(0.03, 0.15)
    stab_x = tail_end + stab_root + 0.02
    t_tail = rng.chance(0.2)
    fin_height = rng.uniform(0.22, 0.36)
    fin_root = rng.uniform(0.2, 0.32)
    fin_tip = fin_root * rng.uniform(0.4, 0.7)
    fin_sweep = rng.uniform(0.08, 0.2)
    fin_x = tail_end + fin_root + 0.01
    fin_base = radius * 0.2
    stab_z = fin_base + fin_height * 0.95 if t_tail else radius * 0.3
    if t_tail:  # the stabiliser sits on top of the fin, above the fin's swept-back tip
        stab_x = fin_x - fin_sweep + stab_root * 0.3
    for side in (-1.0, 1.0):
        planform = torch.tensor([[stab_x, 0.0], [stab_x - stab_sweep, stab_span],
                                 [stab_x - stab_sweep - stab_root * 0.5, stab_span], [stab_x - stab_root, 0.0]])
        axes = torch.diag(torch.tensor([1.0, side, 1.0]))
        scene.append(prism(planform, wing_half_thickness * 0.8, wing_colour, centre=(0.0, 0.0, stab_z), axes=axes))
    fin = torch.tensor([[fin_x, fin_base], [fin_x - fin_sweep, fin_base + fin_height],
                        [fin_x - fin_sweep - fin_tip, fin_base + fin_height], [fin_x - fin_root, fin_base]])
    scene.append(prism(fin, wing_half_thickness, accent, axes=SIDE_PROFILE_AXES))
    return _fit(scene, rng)


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
