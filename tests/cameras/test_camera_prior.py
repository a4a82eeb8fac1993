"""The camera prior: cameras on the sphere, looking at the origin, distributed as documented."""

from __future__ import annotations

import math

import pytest
import torch

from hypernerfgan_ns.cameras.camera_prior import CameraPriorConfig


def assert_looks_at_origin(poses: torch.Tensor, radius: float) -> None:
    positions = poses[:, :, 3]
    forward = -poses[:, :, 2]
    assert torch.allclose(positions.norm(dim=-1), torch.full((len(poses),), radius), atol=1e-5)
    assert torch.allclose(forward, -positions / radius, atol=1e-5)
    rotations = poses[:, :, :3]
    assert torch.allclose(rotations.transpose(1, 2) @ rotations, torch.eye(3).expand(len(poses), 3, 3), atol=1e-5)
    assert torch.allclose(torch.det(rotations), torch.ones(len(poses)), atol=1e-5)


def test_orbit_cameras_look_at_the_origin_from_the_prior_radius() -> None:
    prior = CameraPriorConfig(radius=4.0, orbit_elevation=30.0)
    poses = prior.orbit_poses(24)
    assert_looks_at_origin(poses, 4.0)
    elevation = torch.rad2deg(torch.asin(poses[:, 2, 3] / 4.0))
    assert torch.allclose(elevation, torch.full((24,), 30.0), atol=1e-4)
    azimuth = torch.rad2deg(torch.atan2(poses[:, 1, 3], poses[:, 0, 3]))
    steps = torch.remainder(azimuth.diff(), 360.0)
    assert torch.allclose(steps, torch.full((23,), 15.0), atol=1e-3)  # a closed 360-degree ring


def test_the_image_centre_ray_of_a_nerfstudio_camera_passes_through_the_origin() -> None:
    prior = CameraPriorConfig()
    cameras = prior.cameras(prior.sample_poses(5, torch.Generator().manual_seed(0)), resolution=64)
    bundle = cameras.generate_rays(camera_indices=torch.arange(5)[:, None], coords=torch.full((5, 2), 32.0))
    closest = bundle.origins + bundle.directions * (-(bundle.origins * bundle.directions).sum(-1, keepdim=True))
    assert closest.norm(dim=-1).max() < 1e-4
    assert torch.allclose(cameras.fx, torch.full_like(cameras.fx, 32 / math.tan(prior.fov / 2)))


def test_sampled_cameras_are_uniform_over_the_sphere_area_within_the_ranges() -> None:
    prior = CameraPriorConfig(elevation_range=(0.0, 90.0), azimuth_range=(-180.0, 180.0))
    poses = prior.sample_poses(20000, torch.Generator().manual_seed(1))
    assert_looks_at_origin(poses[:100], prior.radius)
    sin_elevation = poses[:, 2, 3] / prior.radius
    assert sin_elevation.min() >= 0.0
    # Uniform over the upper hemisphere's area <=> sin(elevation) uniform on [0, 1].
    histogram = torch.histc(sin_elevation, bins=10, min=0.0, max=1.0) / len(sin_elevation)
    assert torch.allclose(histogram, torch.full((10,), 0.1), atol=0.015)
    azimuth = torch.atan2(poses[:, 1, 3], poses[:, 0, 3])
    shares = torch.histc(azimuth, bins=8, min=-math.pi, max=math.pi) / len(azimuth)
    assert torch.allclose(shares, torch.full((8,), 0.125), atol=0.015)


def test_restricted_ranges_are_respected() -> None:
    prior = CameraPriorConfig(elevation_range=(10.0, 20.0), azimuth_range=(0.0, 90.0))
    poses = prior.sample_poses(1000)
    elevation = torch.rad2deg(torch.asin(poses[:, 2, 3] / prior.radius))
    azimuth = torch.rad2deg(torch.atan2(poses[:, 1, 3], poses[:, 0, 3]))
    assert elevation.min() >= 10.0 - 1e-3 and elevation.max() <= 20.0 + 1e-3
    assert azimuth.min() >= -1e-3 and azimuth.max() <= 90.0 + 1e-3


def test_the_object_sphere_is_rendered_whole_by_every_prior_camera() -> None:
    prior = CameraPriorConfig(radius=4.0, near=3.0, far=5.5)
    assert prior.object_radius == pytest.approx(1.0)
    # Points on the sphere of that radius are between near and far from cameras anywhere on the prior's sphere.
    cameras = prior.sample_poses(200)[:, :, 3]
    directions = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    distances = torch.cdist(cameras, directions * prior.object_radius)
    assert distances.min() >= prior.near - 1e-4 and distances.max() <= prior.far + 1e-4


def test_invalid_priors_are_rejected_with_a_message() -> None:
    with pytest.raises(ValueError, match="near < radius < far"):
        CameraPriorConfig(near=5.0, far=3.0)
    with pytest.raises(ValueError, match="near < radius < far"):
        CameraPriorConfig(radius=6.0, near=3.0, far=5.0)
    with pytest.raises(ValueError, match="elevation_range"):
        CameraPriorConfig(elevation_range=(0.0, 120.0))
