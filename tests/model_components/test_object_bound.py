"""Which samples can have density: the count per pixel of a prior camera, the most a patch holds, and the packing."""

from __future__ import annotations

import torch

from hypernerfgan_ns.cameras.camera_prior import CameraPriorConfig
from hypernerfgan_ns.data.datamanagers.random_pose_patch_datamanager import IDENTITY_POSE, pixel_centres
from hypernerfgan_ns.model_components.colliders import ObjectShellCollider
from hypernerfgan_ns.model_components.object_bound import bins_meeting_sphere, most_in_a_patch, points_inside_first
from hypernerfgan_ns.model_components.ray_samplers import LinspaceSampler

RESOLUTION, SAMPLES = 24, 12


def samples_inside(prior: CameraPriorConfig, sampler: LinspaceSampler, poses: torch.Tensor) -> torch.Tensor:
    """Per camera and pixel, how many of its ray's samples lie in the object sphere: [cameras, pixels]."""
    cameras = prior.cameras(poses, RESOLUTION)
    indices = torch.arange(len(poses))[:, None].expand(-1, RESOLUTION * RESOLUTION)[..., None]
    coords = pixel_centres(RESOLUTION).expand(len(poses), -1, -1)
    rays = cameras.generate_rays(camera_indices=indices, coords=coords)
    rays = ObjectShellCollider(prior.radius, prior.near, prior.far)(rays.flatten())
    positions = sampler(rays).frustums.get_positions()
    inside = torch.linalg.vector_norm(positions, dim=-1) <= prior.object_radius
    return inside.sum(-1).view(len(poses), RESOLUTION * RESOLUTION)


def count_table(prior: CameraPriorConfig, sampler: LinspaceSampler, training: bool) -> torch.Tensor:
    directions = prior.cameras(IDENTITY_POSE[None], RESOLUTION).generate_rays(
        camera_indices=torch.zeros(RESOLUTION * RESOLUTION, 1, dtype=torch.long), coords=pixel_centres(RESOLUTION)
    ).directions
    return bins_meeting_sphere(
        directions, prior.radius, prior.near, prior.far, sampler.fraction_ranges(SAMPLES, training), prior.object_radius
    )


def test_the_count_per_pixel_holds_every_sample_a_prior_camera_puts_in_the_sphere() -> None:
    prior = CameraPriorConfig()
    sampler = LinspaceSampler(num_samples=SAMPLES)
    poses = prior.sample_poses(16, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    stratified = torch.stack([samples_inside(prior, sampler.train(), poses) for _ in range(8)])
    bound = count_table(prior, sampler, training=True)
    assert (stratified <= bound).all(), "no stratified sample falls outside its interval's count"
    assert (stratified.amax(dim=(0, 1)) >= bound - 2).all(), "and the count is tight"
    exact = samples_inside(prior, sampler.eval(), poses)
    assert (exact == count_table(prior, sampler, training=False)).all(), "fixed samples: the count, in every pose"
    fraction = exact[0].sum() / (RESOLUTION * RESOLUTION * SAMPLES)
    assert 0.2 < fraction < 0.3, "a quarter of a view's samples lie in the sphere"


def test_the_most_in_a_patch_is_the_largest_window_sum() -> None:
    counts = torch.randint(0, 9, (11, 13))
    for patch in (1, 4, 11):
        brute = max(
            int(counts[row : row + patch, column : column + patch].sum())
            for row in range(11 - patch + 1)
            for column in range(13 - patch + 1)
        )
        assert most_in_a_patch(counts, patch) == brute
    for patch, stride in ((5, 2), (4, 3), (3, 4)):  # a lattice of pixels `stride` apart, from any first pixel
        steps = torch.arange(patch) * stride
        brute = max(
            int(counts[(row + steps)[:, None], (column + steps)[None, :]].sum())
            for row in range(11 - steps[-1])
            for column in range(13 - steps[-1])
        )
        assert most_in_a_patch(counts, patch, stride) == brute


def test_points_inside_come_first_in_their_order() -> None:
    inside = torch.tensor([[False, True, False, True, True], [True, False, False, False, False]])
    assert points_inside_first(inside).tolist() == [[1, 3, 4, 0, 2], [0, 1, 2, 3, 4]]
