"""Sliced Wasserstein distance on Laplacian-pyramid patches (ProGAN's SWD): a GAN metric without a trained network.

Each image is decomposed into a Laplacian pyramid; from every level, random 7x7 neighbourhoods are taken as
descriptors (147 numbers), normalised per colour channel, and the two sets of descriptors (real and generated) are
compared by the sliced Wasserstein distance: project both on random directions, sort, and average the distances
between matching order statistics. Coarse levels measure colours and shapes, fine levels textures and edges.
Values are reported x 1000, as in ProGAN; lower is better, 0 for identical distributions.

It needs no download, which is why the tests and the training curve use it; FID and KID (Inception features)
are the papers' metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from nerfstudio.configs.base_config import PrintableConfig

GAUSSIAN_TAPS = (1.0, 4.0, 6.0, 4.0, 1.0)
"""Binomial 5-tap filter of the Laplacian pyramid."""

REPORT_SCALE = 1e3
"""SWD values are reported multiplied by this, as ProGAN does."""


@dataclass
class SWDConfig(DefaultsForMissingFields, PrintableConfig):
    """Sliced Wasserstein distance settings."""

    descriptor_size: int = 7
    """Side of the square neighbourhoods taken as descriptors."""
    descriptors_per_image: int = 128
    """Neighbourhoods drawn per image and pyramid level."""
    num_projections: int = 512
    """Random directions the descriptors are projected on."""
    min_resolution: int = 16
    """Coarsest pyramid level."""
    seed: int = 0
    """Seed of the descriptor positions and projections, so that two evaluations are comparable."""


def _gaussian_kernel(channels: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    taps = torch.tensor(GAUSSIAN_TAPS, device=device, dtype=dtype)
    kernel = torch.outer(taps, taps)
    return (kernel / kernel.sum()).expand(channels, 1, len(GAUSSIAN_TAPS), len(GAUSSIAN_TAPS))


def _downsample(images: Tensor) -> Tensor:
    kernel = _gaussian_kernel(images.shape[1], images.device, images.dtype)
    pad = len(GAUSSIAN_TAPS) // 2
    return F.conv2d(F.pad(images, [pad] * 4, mode="reflect"), kernel, stride=2, groups=images.shape[1])


def _upsample(images: Tensor, size: Tuple[int, int]) -> Tensor:
    """Twice the side, to `size`: an odd side's level downsamples to half of one more pixel."""
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def laplacian_pyramid(images: Float[Tensor, "batch 3 height width"], min_resolution: int) -> List[Tensor]:
    """Band-pass levels from the finest to the coarsest, the last one being the low-pass residual."""
    levels = []
    current = images
    while current.shape[-1] // 2 >= min_resolution:
        lower = _downsample(current)
        levels.append(current - _upsample(lower, (current.shape[-2], current.shape[-1])))
        current = lower
    levels.append(current)
    return levels


def _descriptors(level: Tensor, count: int, size: int, generator: torch.Generator) -> Tensor:
    """Random size x size neighbourhoods of every image, normalised per channel: [images * count, 3 * size^2]."""
    batch, channels, height, width = level.shape
    ys = torch.randint(0, height - size + 1, (batch, count), generator=generator)
    xs = torch.randint(0, width - size + 1, (batch, count), generator=generator)
    offsets = torch.arange(size)
    rows = (ys[..., None] + offsets).to(level.device)  # [batch, count, size]
    cols = (xs[..., None] + offsets).to(level.device)
    batch_index = torch.arange(batch, device=level.device)[:, None, None, None]
    patches = level.permute(0, 2, 3, 1)[batch_index, rows[..., :, None], cols[..., None, :]]  # [b, n, s, s, c]
    patches = patches.reshape(-1, size * size, channels)
    patches = (patches - patches.mean(dim=(0, 1))) / (patches.std(dim=(0, 1)) + 1e-8)
    return patches.reshape(patches.shape[0], -1)


def sliced_wasserstein(
    a: Float[Tensor, "n dim"], b: Float[Tensor, "n dim"], num_projections: int, generator: torch.Generator
) -> float:
    """Mean over random unit directions of the 1D Wasserstein-1 distance between the projected sets."""
    directions = torch.randn(a.shape[1], num_projections, generator=generator).to(a)
    directions = directions / directions.norm(dim=0, keepdim=True)
    # Each direction's projections side by side in memory: the sort runs along contiguous rows (2x faster on the CPU
    # than along the columns of `a @ directions`), the same values.
    projected_a = torch.sort((a @ directions).t().contiguous(), dim=1).values
    projected_b = torch.sort((b @ directions).t().contiguous(), dim=1).values
    return float((projected_a - projected_b).abs().mean())


def sliced_wasserstein_distance(
    real: Float[Tensor, "batch 3 height width"],
    fake: Float[Tensor, "batch 3 height width"],
    config: Optional[SWDConfig] = None,
) -> Dict[str, float]:
    """SWD x 1000 per pyramid level (`swd_<resolution>`) and averaged (`swd`), for two equally large image sets.

    Args:
        real: reference images in [0, 1].
        fake: generated images in [0, 1], same count and size.
        config: descriptor and projection settings.
    """
    config = config or SWDConfig()
    if real.shape != fake.shape:
        raise ValueError(
            f"SWD compares equally many images of one size; got {tuple(real.shape)} and {tuple(fake.shape)}."
        )
    generator = torch.Generator().manual_seed(config.seed)
    results: Dict[str, float] = {}
    real_levels = laplacian_pyramid(real.float(), config.min_resolution)
    fake_levels = laplacian_pyramid(fake.float(), config.min_resolution)
    count, size = config.descriptors_per_image, config.descriptor_size
    for real_level, fake_level in zip(real_levels, fake_levels):
        position_seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
        # The same positions in both sets: a fresh generator from one seed for each.
        real_desc = _descriptors(real_level, count, size, torch.Generator().manual_seed(position_seed))
        fake_desc = _descriptors(fake_level, count, size, torch.Generator().manual_seed(position_seed))
        value = sliced_wasserstein(real_desc, fake_desc, config.num_projections, generator) * REPORT_SCALE
        results[f"swd_{real_level.shape[-1]}"] = value
    results["swd"] = sum(results.values()) / len(results)
    return results
