"""The reference-compatible sampler, the camera-following collider, and importance sampling on top."""

from __future__ import annotations

import torch

from hypernerfgan_ns.model_components.colliders import ObjectShellCollider
from hypernerfgan_ns.model_components.ray_samplers import FAR_PLANE_DELTA, LinspaceSampler, merged_samples
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.model_components.ray_samplers import PDFSampler


def rays(num_rays: int, near: float = 3.0, far: float = 5.0) -> RayBundle:
    directions = torch.nn.functional.normalize(torch.randn(num_rays, 3), dim=-1)
    return RayBundle(
        origins=torch.zeros(num_rays, 3),
        directions=directions,
        pixel_area=torch.ones(num_rays, 1),
        camera_indices=torch.zeros(num_rays, 1, dtype=torch.long),
        nears=torch.full((num_rays, 1), near),
        fars=torch.full((num_rays, 1), far),
    )


def test_samples_include_near_and_far_with_an_opaque_far_plane() -> None:
    sampler = LinspaceSampler(num_samples=5).eval()
    samples = sampler(rays(2))
    distances = samples.frustums.starts[0, :, 0]
    assert torch.allclose(distances, torch.tensor([3.0, 3.5, 4.0, 4.5, 5.0]))
    assert torch.equal(samples.frustums.starts, samples.frustums.ends)  # positions are the samples themselves
    assert torch.allclose(samples.deltas[0, :-1, 0], torch.full((4,), 0.5))
    assert samples.deltas[0, -1, 0] == FAR_PLANE_DELTA
    finite = LinspaceSampler(num_samples=5, opaque_far_plane=False).eval()(rays(1))
    assert torch.isclose(finite.deltas[0, -1, 0], torch.tensor(0.5))


def test_density_at_the_far_plane_renders_opaque() -> None:
    samples = LinspaceSampler(num_samples=4).eval()(rays(1))
    density = torch.tensor([0.0, 0.0, 0.0, 0.01]).view(1, 4, 1)
    assert torch.isclose(samples.get_weights(density).sum(), torch.tensor(1.0))


def test_stratified_samples_stay_in_their_midpoint_intervals_and_vary() -> None:
    sampler = LinspaceSampler(num_samples=5).train()
    first = sampler(rays(100)).frustums.starts[..., 0]
    second = sampler(rays(100)).frustums.starts[..., 0]
    lower = torch.tensor([3.0, 3.25, 3.75, 4.25, 4.75])
    upper = torch.tensor([3.25, 3.75, 4.25, 4.75, 5.0])
    assert ((first >= lower) & (first <= upper)).all()
    assert not torch.allclose(first, second)


def test_samples_without_spacing_bins_are_the_same_samples() -> None:
    bundle = rays(4)
    for training in (False, True):
        with_bins = LinspaceSampler(num_samples=6).train(training)
        without = LinspaceSampler(num_samples=6, spacing_bins=False).train(training)
        torch.manual_seed(0)
        expected = with_bins(bundle)
        torch.manual_seed(0)
        samples = without(bundle)
        assert samples.spacing_starts is None and samples.spacing_to_euclidean_fn is None
        assert expected.spacing_starts is not None
        assert torch.equal(samples.frustums.get_positions(), expected.frustums.get_positions())
        assert torch.equal(samples.deltas, expected.deltas)


def test_importance_sampler_concentrates_samples_where_the_density_is() -> None:
    bundle = rays(8)
    coarse = LinspaceSampler(num_samples=16).eval()(bundle)
    distances = coarse.frustums.starts[..., 0]
    density = torch.exp(-((distances - 4.2) ** 2) / (2 * 0.05**2))[..., None] * 50
    weights = coarse.get_weights(density)
    fine = PDFSampler(num_samples=32, include_original=False).eval()(bundle, coarse, weights)
    centres = (fine.frustums.starts + fine.frustums.ends)[..., 0] / 2
    near_peak = ((centres - 4.2).abs() < 0.3).float().mean()
    assert near_peak > 0.6, f"only {near_peak:.0%} of the importance samples lie near the density peak"
    assert ((coarse.frustums.starts[..., 0] - 4.2).abs() < 0.3).float().mean() < 0.4


def test_merged_samples_keep_every_coarse_and_importance_sample_once_in_order_of_distance() -> None:
    """pi-GAN's hierarchical sampling: the coarse samples where they were (not re-split into new intervals), the
    importance samples at their intervals' centres, each interval reaching to the next sample of the merged set."""
    for opaque, training in ((True, False), (False, True)):
        bundle = rays(6)
        coarse = LinspaceSampler(num_samples=8, opaque_far_plane=opaque).train(training)(bundle)
        distances = coarse.frustums.starts[..., 0]
        weights = coarse.get_weights(torch.exp(-((distances - 4.2) ** 2) / 0.02)[..., None] * 50)
        importance = PDFSampler(num_samples=5, include_original=False).train(training)(bundle, coarse, weights)
        merged, order = merged_samples(bundle, coarse, importance)

        centres = (importance.frustums.starts + importance.frustums.ends)[..., 0] / 2
        values = torch.cat([distances, centres], dim=-1)  # what a field computed, coarse pass first
        merged_distances = merged.frustums.starts[..., 0]
        assert merged_distances.shape == (6, 13) and torch.equal(merged.frustums.starts, merged.frustums.ends)
        assert torch.equal(values.gather(1, order), merged_distances)
        assert (merged_distances[:, 1:] >= merged_distances[:, :-1]).all()
        assert torch.allclose(merged.frustums.get_positions(), bundle.origins[:, None] + bundle.directions[:, None]
                              * merged_distances[..., None])
        deltas = merged.deltas[..., 0]
        assert torch.allclose(deltas[:, :-1], merged_distances[:, 1:] - merged_distances[:, :-1])
        assert torch.equal(deltas[:, -1], coarse.deltas[:, -1, 0])
        assert (deltas[:, -1] == FAR_PLANE_DELTA).all() == opaque


def test_collider_keeps_the_training_shell_for_cameras_at_any_distance() -> None:
    collider = ObjectShellCollider(radius=4.0, near=3.0, far=5.0)
    bundle = rays(3)
    bundle.nears = bundle.fars = None
    bundle.origins = torch.tensor([[4.0, 0, 0], [0, 6.0, 0], [0, 0, 0.5]])
    collided = collider(bundle)
    assert torch.allclose(collided.nears[:, 0], torch.tensor([3.0, 5.0, 1e-3]))
    assert torch.allclose(collided.fars[:, 0], torch.tensor([5.0, 7.0, 1.5]))
