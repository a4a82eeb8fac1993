"""The camera prior: where the unseen cameras of an unposed image collection are assumed to be.

A GAN trained on unposed photos never sees a camera pose. It renders its objects from cameras drawn from this
prior instead, and the discriminator only accepts the renders if the prior matches how the photos were taken. Every
camera sits on a sphere around the object's centre (the world origin), looks at the origin, and keeps world +z up.
The azimuth is uniform; the elevation is uniform over the sphere's *area* (its sine is uniform), so cameras do not
bunch up at the pole.

World and camera conventions are nerfstudio's: camera-to-world matrices in OpenGL convention (the camera looks
along its -z axis, +y is up in the image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from jaxtyping import Float
from torch import Tensor

from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.configs.base_config import PrintableConfig


@dataclass
class CameraPriorConfig(PrintableConfig):
    """Distribution of the cameras that took an unposed image collection (defaults: HyperNeRFGAN's ShapeNet setup)."""

    radius: float = 4.0
    """Distance from every camera to the object's centre, the world origin."""
    fov: float = 0.6911112070083618
    """Field of view of the square images, in radians (0.6911 rad = 39.6 degrees)."""
    near: float = 3.0
    """Distance from the camera where volume rendering starts (radius minus the object's half extent)."""
    far: float = 5.0
    """Distance from the camera where volume rendering stops."""
    azimuth_range: Tuple[float, float] = (-180.0, 180.0)
    """Azimuth range in degrees, around world +z; sampled uniformly."""
    elevation_range: Tuple[float, float] = (0.0, 90.0)
    """Elevation range in degrees above the horizontal plane; sampled uniformly over the sphere's area."""
    orbit_elevation: float = 30.0
    """Elevation in degrees of the ring of orbit cameras shown in the viewer and used for 360-degree videos."""

    def __post_init__(self) -> None:
        if not 0 < self.near < self.radius < self.far:
            raise ValueError(
                f"The camera prior needs 0 < near < radius < far (the object's centre between the planes), got "
                f"near={self.near}, radius={self.radius}, far={self.far}."
            )
        if not 0 < self.fov < math.pi:
            raise ValueError(f"The camera prior's field of view must be in (0, pi) radians, got {self.fov}.")
        low, high = self.elevation_range
        if not -90.0 <= low <= high <= 90.0:
            raise ValueError(
                f"elevation_range must satisfy -90 <= low <= high <= 90 degrees, got {self.elevation_range}."
            )
        if self.azimuth_range[0] > self.azimuth_range[1]:
            raise ValueError(f"azimuth_range must be (low, high) with low <= high, got {self.azimuth_range}.")

    @property
    def object_radius(self) -> float:
        """Radius of the sphere around the origin that every camera of the prior renders whole: each of its points
        lies between `near` and `far` from any camera at `radius`. It is where an object can be."""
        return min(self.radius - self.near, self.far - self.radius)

    def focal_length(self, resolution: int) -> float:
        """Focal length in pixels of a square image of `resolution` pixels with this field of view."""
        return 0.5 * resolution / math.tan(0.5 * self.fov)

    def sample_poses(
        self, num_cameras: int, generator: Optional[torch.Generator] = None
    ) -> Float[Tensor, "num_cameras 3 4"]:
        """Draws camera-to-world matrices from the prior."""
        uniform = torch.rand(num_cameras, 2, generator=generator)
        azimuth_low, azimuth_high = self.azimuth_range
        azimuth = azimuth_low + (azimuth_high - azimuth_low) * uniform[:, 0]
        sin_low, sin_high = (math.sin(math.radians(e)) for e in self.elevation_range)
        elevation = torch.rad2deg(torch.asin(sin_low + (sin_high - sin_low) * uniform[:, 1]))
        return look_at_origin_poses(azimuth, elevation, self.radius)

    def orbit_poses(self, num_cameras: int) -> Float[Tensor, "num_cameras 3 4"]:
        """A closed ring of cameras at `orbit_elevation`, evenly spaced in azimuth: a 360-degree orbit."""
        azimuth = torch.arange(num_cameras, dtype=torch.float32) * (360.0 / num_cameras) - 180.0
        elevation = torch.full_like(azimuth, self.orbit_elevation)
        return look_at_origin_poses(azimuth, elevation, self.radius)

    def cameras(self, camera_to_worlds: Float[Tensor, "num_cameras 3 4"], resolution: int) -> Cameras:
        """nerfstudio cameras with these poses and the prior's intrinsics, for square images of `resolution`."""
        focal = self.focal_length(resolution)
        return Cameras(
            camera_to_worlds=camera_to_worlds,
            fx=focal,
            fy=focal,
            cx=resolution / 2.0,
            cy=resolution / 2.0,
            width=resolution,
            height=resolution,
            camera_type=CameraType.PERSPECTIVE,
        )


def look_at_origin_poses(
    azimuth_degrees: Float[Tensor, "num_cameras"],
    elevation_degrees: Float[Tensor, "num_cameras"],
    radius: float,
) -> Float[Tensor, "num_cameras 3 4"]:
    """Camera-to-world matrices of cameras on a sphere of `radius`, looking at the origin with world +z up.

    The camera's right axis is the azimuth circle's tangent, so the construction has no singularity at the poles.
    """
    azimuth = torch.deg2rad(azimuth_degrees.float())
    elevation = torch.deg2rad(elevation_degrees.float())
    cos_e, sin_e = torch.cos(elevation), torch.sin(elevation)
    cos_a, sin_a = torch.cos(azimuth), torch.sin(azimuth)
    backward = torch.stack([cos_e * cos_a, cos_e * sin_a, sin_e], dim=-1)  # camera +z: from the origin to the camera
    right = torch.stack([-sin_a, cos_a, torch.zeros_like(sin_a)], dim=-1)
    up = torch.cross(backward, right, dim=-1)
    position = radius * backward
    return torch.stack([right, up, backward, position], dim=-1)
