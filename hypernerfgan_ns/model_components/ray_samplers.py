"""Sampling along rays as the original NeRF code, and therefore HyperNeRFGAN, does it.

nerfstudio's `UniformSampler` places samples at the centres of N equal bins, each with the bin's width. The NeRF
code that HyperNeRFGAN was trained with places N samples at evenly spaced distances *including* near and far; a
sample's interval reaches to the next sample, and the last sample's interval is infinite, so any density at the
far plane renders opaque. Trained generators depend on that convention (they learn to keep the far plane empty),
so we reproduce it, while returning nerfstudio's `RaySamples` so that nerfstudio's renderers and `PDFSampler`
work on top unchanged.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hypernerfgan_ns.errors import ConfigError
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.model_components.ray_samplers import Sampler

FAR_PLANE_DELTA = 1e10
"""Interval length of the last sample on a ray when the far plane is opaque: effectively infinite."""

MIN_SAMPLES_PER_RAY = 2
"""The fewest samples a ray can be rendered with: near and far, the linspace's two ends."""


def require_samples_per_ray(num_samples: int, option: str) -> None:
    """Refuses a count of samples per ray that cannot render, naming the `option` that set it (and its remedy)."""
    if num_samples < MIN_SAMPLES_PER_RAY:
        raise ConfigError(
            f"A ray needs at least {MIN_SAMPLES_PER_RAY} samples to be rendered, got {num_samples} ({option})."
        )


class LinspaceSampler(Sampler):
    """N samples at linspace(near, far, N) per ray; stratified within midpoint intervals during training.

    Frustums have zero length (start = end = the sample's distance), so positions are exactly the sample points;
    `deltas` carry the intervals. The normalised spacing bins handed to a following `PDFSampler` are the
    midpoint intervals around each sample.

    Args:
        num_samples: samples per ray (at least 2).
        train_stratified: jitter each sample uniformly within its midpoint interval in training mode.
        opaque_far_plane: give the last sample an infinite interval (the reference convention) instead of the
            spacing of the others.
        spacing_bins: make the spacing bins a following `PDFSampler` needs; False leaves them None (nothing else
            reads them), seven operations fewer per render.
    """

    def __init__(
        self, num_samples: int, train_stratified: bool = True, opaque_far_plane: bool = True, spacing_bins: bool = True
    ) -> None:
        super().__init__(num_samples=num_samples)
        require_samples_per_ray(num_samples, "--pipeline.model.num-coarse-samples")
        self.train_stratified = train_stratified
        self.opaque_far_plane = opaque_far_plane
        self.spacing_bins = spacing_bins
        self._fraction_ranges: Dict[Tuple[int, bool, torch.device, torch.dtype], Tuple[Tensor, Tensor]] = {}

    def fraction_ranges(
        self,
        num_samples: int,
        training: bool,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> Tuple[Float[Tensor, "samples"], Float[Tensor, "samples"]]:
        """Where each sample can lie along its ray, as fractions of the way from near to far: its midpoint interval
        when stratified in training, its linspace point otherwise (lower == upper)."""
        fractions = torch.linspace(0.0, 1.0, num_samples, device=device, dtype=dtype)
        if not (self.train_stratified and training):
            return fractions, fractions
        mid_fractions = 0.5 * (fractions[1:] + fractions[:-1])
        return torch.cat([fractions[:1], mid_fractions]), torch.cat([mid_fractions, fractions[-1:]])

    def lower_fractions_and_widths(
        self, num_samples: int, training: bool, device: torch.device, dtype: torch.dtype
    ) -> Tuple[Float[Tensor, "samples"], Float[Tensor, "samples"]]:
        """`fraction_ranges` as each interval's start and width, made once per sample count, mode, device and dtype:
        every render draws within the same intervals, and on a GPU each operation that made them again would be a
        kernel launch per render."""
        key = (num_samples, training, device, dtype)
        if key not in self._fraction_ranges:
            lower, upper = self.fraction_ranges(num_samples, training, device=device, dtype=dtype)
            self._fraction_ranges[key] = (lower, upper - lower)
        return self._fraction_ranges[key]

    def generate_ray_samples(
        self, ray_bundle: Optional[RayBundle] = None, num_samples: Optional[int] = None
    ) -> RaySamples:
        assert ray_bundle is not None and ray_bundle.nears is not None and ray_bundle.fars is not None
        num_samples = num_samples or self.num_samples
        assert num_samples is not None
        nears, fars = ray_bundle.nears, ray_bundle.fars  # [rays, 1]
        lower, widths = self.lower_fractions_and_widths(num_samples, self.training, nears.device, nears.dtype)
        if self.train_stratified and self.training:
            jitter = torch.rand((*nears.shape[:-1], num_samples), device=nears.device, dtype=nears.dtype)
            fractions = torch.addcmul(lower, widths, jitter)
        else:
            fractions = lower.expand(*nears.shape[:-1], num_samples)
        distances = nears + (fars - nears) * fractions  # [rays, samples]
        last_delta = (
            torch.full_like(nears, FAR_PLANE_DELTA) if self.opaque_far_plane else (fars - nears) / (num_samples - 1)
        )

        pdf_spacing: Dict[str, Any] = {}  # what a following PDFSampler places its samples by
        if self.spacing_bins:
            bin_edges = torch.cat(
                [torch.zeros_like(nears), 0.5 * (fractions[..., 1:] + fractions[..., :-1]), torch.ones_like(nears)], -1
            )

            def spacing_to_euclidean_fn(spacing: Float[Tensor, "*rays bins"]) -> Float[Tensor, "*rays bins"]:
                return nears + (fars - nears) * spacing

            pdf_spacing = dict(
                spacing_starts=bin_edges[..., :-1, None],
                spacing_ends=bin_edges[..., 1:, None],
                spacing_to_euclidean_fn=spacing_to_euclidean_fn,
            )
        return point_samples(ray_bundle, distances, last_delta, **pdf_spacing)


def point_samples(
    ray_bundle: RayBundle,
    distances: Float[Tensor, "*rays samples"],
    last_delta: Float[Tensor, "*rays 1"],
    **spacing: Any,
) -> RaySamples:
    """Samples at these sorted distances along the rays as zero-length frustums (positions exactly there), each with
    the interval to the next sample and the last one with `last_delta`: the original NeRF code's convention."""
    deltas = torch.cat([distances[..., 1:] - distances[..., :-1], last_delta], dim=-1)
    ray_samples = ray_bundle.get_ray_samples(bin_starts=distances[..., None], bin_ends=distances[..., None], **spacing)
    ray_samples.deltas = deltas[..., None]
    return ray_samples


def merged_samples(
    ray_bundle: RayBundle, coarse: RaySamples, importance: RaySamples
) -> Tuple[RaySamples, Int[Tensor, "*rays samples"]]:
    """The coarse samples and the importance samples placed from them, as one set of point samples sorted by
    distance, and the order that sorts what was computed at them (the coarse samples' values, then the importance
    samples', along the samples' dimension).

    pi-GAN's hierarchical sampling: every sample is evaluated once, and all of them are composited. nerfstudio's
    `PDFSampler` with `include_original` instead returns intervals between the merged bin edges, whose centres are
    new points, so the coarse samples would be evaluated a second time. An importance sample lies at the centre of
    its interval (where the field is queried at it); the last sample keeps the coarse pass's last interval (the far
    plane's convention: infinite where it is opaque)."""
    importance_distances = 0.5 * (importance.frustums.starts + importance.frustums.ends)[..., 0]
    distances = torch.cat([coarse.frustums.starts[..., 0], importance_distances], dim=-1)
    distances, order = distances.sort(dim=-1)
    return point_samples(ray_bundle, distances, coarse.deltas[..., -1, :]), order
