"""A CPU ray caster for the built-in procedural datasets.

The rays are nerfstudio's, pixel for pixel (`Cameras.generate_rays` with the camera prior's intrinsics): a rendered
image and the nerfstudio camera with the same pose see the same thing at the same pixel. Shading is Lambertian under
lights fixed in the world, with no view-dependent term, so a surface point has one colour from every view: the GAN's
radiance field has no view direction and could not reproduce anything else.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Tuple

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from hypernerfgan_ns.cameras.camera_prior import CameraPriorConfig
from hypernerfgan_ns.data.builtin.primitives import Scene, intersect, scene_bounding_radius, single_threaded

DEFAULT_SUPERSAMPLING = 2
"""Sub-pixel samples per image axis (2: four colour samples per pixel), averaged for anti-aliasing."""
AMBIENT_LIGHT = 0.38
"""Light reaching every surface whatever its orientation, so faces turned away from the lights are not black."""
KEY_LIGHT_DIRECTION = (0.45, 0.3, 1.0)
"""World-space direction towards the main light (normalised on use): high up, slightly in front and to the side."""
KEY_LIGHT_INTENSITY = 0.5
"""Strength of the main light on a surface facing it."""
FILL_LIGHT_DIRECTION = (-0.6, -0.45, 0.15)
"""World-space direction towards a weaker light opposite the key light, so the shadowed sides keep some shape."""
FILL_LIGHT_INTENSITY = 0.18
"""Strength of the fill light on a surface facing it."""
BACKGROUND_COLOUR = 1.0
"""Value of every channel where a ray misses the object: pure white."""
CULLING_MARGIN = 1e-3
"""Added to the scene's bounding radius when discarding the rays that cannot hit it."""


@dataclass
class RenderedView:
    """One rendered image of a scene."""

    rgb: Float[Tensor, "resolution resolution 3"]
    """Colour in [0, 1], averaged over the sub-pixel samples; exactly 1 where only background is seen."""
    depth: Float[Tensor, "resolution resolution"]
    """Distance along the pixel-centre ray (unit direction) to the surface; +inf where it hits nothing."""
    mask: Bool[Tensor, "resolution resolution"]
    """Whether the pixel-centre ray hits the object."""


@functools.lru_cache(maxsize=8)
def _camera_directions(
    resolution: int, focal: float, centre: float, supersampling: int
) -> Float[Tensor, "resolution resolution samples 3"]:
    """Camera-space ray directions (not normalised) through the stratified sub-pixel sample positions.

    Pixel (row y, column x) covers [x, x+1) x [y, y+1); sample k of s along an axis sits at offset (k + 0.5) / s,
    so s = 1 is the pixel centre, where nerfstudio puts its rays.
    """
    offsets = (torch.arange(supersampling, dtype=torch.float64) + 0.5) / supersampling
    pixels = torch.arange(resolution, dtype=torch.float64)
    xs = (pixels[:, None] + offsets[None]).reshape(-1)
    ys = xs.clone()
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    directions = torch.stack([(x - centre) / focal, -(y - centre) / focal, -torch.ones_like(x)], dim=-1)
    directions = directions.reshape(resolution, supersampling, resolution, supersampling, 3).permute(0, 2, 1, 3, 4)
    return directions.reshape(resolution, resolution, supersampling * supersampling, 3).float()


def camera_rays(
    camera_to_world: Float[Tensor, "3 4"], prior: CameraPriorConfig, resolution: int, supersampling: int = 1
) -> Tuple[Float[Tensor, "3"], Float[Tensor, "resolution resolution samples 3"]]:
    """The camera's origin and unit ray directions through every sub-pixel sample (samples = supersampling^2).

    With `supersampling=1` these are exactly nerfstudio's pixel-centre rays for `prior.cameras(...)`.
    """
    directions = _camera_directions(resolution, prior.focal_length(resolution), resolution / 2.0, supersampling)
    camera_to_world = camera_to_world.float()
    world = directions @ camera_to_world[:3, :3].T
    return camera_to_world[:3, 3], world / world.norm(dim=-1, keepdim=True)


def shade(
    normals: Float[Tensor, "num_rays 3"], albedo: Float[Tensor, "num_rays 3"]
) -> Float[Tensor, "num_rays 3"]:
    """Lambertian colour under the fixed world lights: depends on the surface point only, never on the view."""
    key = torch.tensor(KEY_LIGHT_DIRECTION) / math.dist(KEY_LIGHT_DIRECTION, (0.0, 0.0, 0.0))
    fill = torch.tensor(FILL_LIGHT_DIRECTION) / math.dist(FILL_LIGHT_DIRECTION, (0.0, 0.0, 0.0))
    irradiance = (
        AMBIENT_LIGHT
        + KEY_LIGHT_INTENSITY * (normals @ key).clamp(min=0.0)
        + FILL_LIGHT_INTENSITY * (normals @ fill).clamp(min=0.0)
    )
    return (albedo * irradiance[:, None]).clamp(0.0, 1.0)


@single_threaded
def trace(
    scene: Scene, origin: Float[Tensor, "3"], directions: Float[Tensor, "num_rays 3"]
) -> Tuple[Float[Tensor, "num_rays 3"], Float[Tensor, "num_rays"], Bool[Tensor, "num_rays"]]:
    """Colour, hit distance (+inf: miss) and hit mask of rays from one origin; misses are background white.

    Rays that miss the scene's bounding sphere are not intersected with the primitives at all: most of an image.
    """
    num_rays = directions.shape[0]
    colour = torch.full((num_rays, 3), BACKGROUND_COLOUR)
    distance = torch.full((num_rays,), torch.inf)
    mask = torch.zeros(num_rays, dtype=torch.bool)
    radius = scene_bounding_radius(scene) + CULLING_MARGIN
    along = directions @ origin
    closest_sq = float(origin @ origin) - along**2
    candidates = ((closest_sq <= radius**2) & (along < 0)).nonzero().squeeze(-1)
    if candidates.numel() == 0:
        return colour, distance, mask
    hits = intersect(scene, origin.expand(candidates.shape[0], 3), directions[candidates])
    seen = candidates[hits.hit]
    colour[seen] = shade(hits.normal[hits.hit], hits.colour[hits.hit])
    distance[seen] = hits.t[hits.hit]
    mask[seen] = True
    return colour, distance, mask


@single_threaded
def render_scene(
    scene: Scene,
    camera_to_world: Float[Tensor, "3 4"],
    prior: CameraPriorConfig,
    resolution: int,
    supersampling: int = DEFAULT_SUPERSAMPLING,
) -> RenderedView:
    """Renders a square image of the scene from a camera with the prior's intrinsics.

    Colour averages `supersampling`^2 stratified samples per pixel; depth and mask come from the pixel-centre ray
    (one of the samples when `supersampling` is odd, one extra ray otherwise).
    """
    if supersampling < 1:
        raise ValueError(f"supersampling must be at least 1, got {supersampling}.")
    origin, directions = camera_rays(camera_to_world, prior, resolution, supersampling)
    samples = supersampling * supersampling
    directions = directions.reshape(-1, 3)
    num_samples = directions.shape[0]
    if supersampling % 2 == 0:  # no sample at the pixel centre: trace the centre rays in the same batch
        directions = torch.cat([directions, camera_rays(camera_to_world, prior, resolution, 1)[1].reshape(-1, 3)])
    colour, distance, mask = trace(scene, origin, directions)
    rgb = colour[:num_samples].reshape(resolution, resolution, samples, 3).mean(dim=2)
    if supersampling % 2 == 1:
        centre = samples // 2
        depth = distance.reshape(resolution, resolution, samples)[..., centre]
        hit = mask.reshape(resolution, resolution, samples)[..., centre]
    else:
        depth = distance[num_samples:].reshape(resolution, resolution)
        hit = mask[num_samples:].reshape(resolution, resolution)
    return RenderedView(rgb=rgb, depth=depth, mask=hit)
