"""pi-GAN's progressive growing: the generator renders, and the discriminator judges, small patches first.

    stage 0   patches of P / D pixels, cut from the images downscaled D times          (D = start_downscale)
    stage 1   P / (D / 2) pixels; the discriminator's block for the new resolution fades in
    ...
    last      P pixels of the full-resolution images, to the end of training

A patch of P / d pixels of the images downscaled d times covers what a full-resolution patch covers, through the
same camera: only its pixels are d times coarser. So with D = 4 `hypernerfgan-tiny`'s 32 x 32 whole images start as
8 x 8 whole images, and the paper configuration's 64 x 64 patches of 128 x 128 images as 16 x 16 patches of 32 x 32
images. An early iteration renders d^2 fewer rays, and the discriminator enters at its block for the patch's
resolution, skipping log2(d) blocks of the largest activations: most of an iteration's arithmetic.

The generator renders one ray per coarse pixel, so the real patches are the photos sampled at those rays' pixel
centres (`coarse_real_patches`), not averaged over each pixel's area: a point-sampled render cannot look like an
averaged photo, and a discriminator that tells the two apart teaches the generator nothing about the object (FID 72.5
against 104.5 on `hypernerfgan-tiny`, docs/ablations.md).

When a stage begins, the discriminator's new block is blended in as in progressive GANs (StyleGAN's fade-in): its
output is mixed with the previous stage's path (the patch box-filtered to half its side, through that resolution's
from-RGB layer), the new block's share rising linearly from 0 to 1 over `fade_images`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, NamedTuple, Optional

from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from nerfstudio.configs.base_config import PrintableConfig


class GrowthStage(NamedTuple):
    """Where training stands in the growing schedule."""

    downscale: int
    """The patches' and the images' sides are divided by this (1: the configured patch of the full images)."""
    fade: float
    """Share of the discriminator's newest block, in [0, 1]; the rest goes through the previous stage's path."""


@dataclass
class ProgressiveGrowingConfig(DefaultsForMissingFields, PrintableConfig):
    """Training at a fraction of the patch's resolution first, doubling it stage by stage (pi-GAN)."""

    start_downscale: int = 1
    """The first stage's patches and images are this many times smaller on a side (a power of two); 1: no growing,
    every patch at the full resolution (the paper)."""
    images_per_stage: int = 2_000
    """Training images of each stage below the full resolution; the last stage lasts the rest of training."""
    fade_images: int = 1_000
    """Over the first this many images of a stage, the discriminator's block for the new resolution fades in
    (at most a stage long); 0: it takes over at once."""

    def __post_init__(self) -> None:
        start = self.start_downscale
        if start < 1 or start & (start - 1):
            raise ValueError(f"progressive_growing.start_downscale must be a power of two (1: off), got {start}.")
        if start > 1 and self.images_per_stage < 1:
            raise ValueError(
                f"progressive_growing.images_per_stage must be at least 1 image, got {self.images_per_stage}."
            )
        if not 0 <= self.fade_images <= max(self.images_per_stage, 0):
            raise ValueError(
                f"progressive_growing.fade_images ({self.fade_images}) must lie between 0 and images_per_stage "
                f"({self.images_per_stage}): a block fades in within its stage."
            )

    @property
    def enabled(self) -> bool:
        """Whether training starts below the full resolution."""
        return self.start_downscale > 1

    def first_patch_size(self, patch_size: int) -> int:
        """The side of the first stage's patches, the smallest the discriminator judges: `patch_size` without
        growing."""
        return patch_size // self.start_downscale

    def downscales(self) -> List[int]:
        """The stages' downscale factors in order: start_downscale, ..., 2, 1."""
        factors, factor = [], self.start_downscale
        while factor >= 1:
            factors.append(factor)
            factor //= 2
        return factors

    def stage(self, images_seen: int) -> GrowthStage:
        """The stage of the iteration that follows `images_seen` training images."""
        factors = self.downscales()
        index = min(images_seen // self.images_per_stage, len(factors) - 1) if self.enabled else 0
        if index == 0 or self.fade_images == 0:
            return GrowthStage(factors[index], 1.0)
        into_stage = images_seen - index * self.images_per_stage
        return GrowthStage(factors[index], min(1.0, into_stage / self.fade_images))

    def unfit_reason(
        self, patch_size: int, resolution: int, smallest_patch: int, scaled_patches: bool
    ) -> Optional[str]:
        """Why this schedule cannot train patches of `patch_size` px of `resolution` px images with a discriminator
        whose smallest input is `smallest_patch` px (and GRAF's scaled patches, if asked for), or None."""
        if not self.enabled:
            return None
        start = self.start_downscale
        if patch_size % start or resolution % start or patch_size // start < smallest_patch:
            return (
                f"patches of {patch_size} px of {resolution} px images cannot start {start}x smaller: both must "
                f"divide by {start}, and the discriminator needs patches of at least {smallest_patch} px"
            )
        if scaled_patches and patch_size < resolution:
            return (
                "progressive growing and scaled patches (annealed or whole-image) both make coarse patches: choose one"
            )
        return None

    def describe(self, patch_size: int) -> str:
        """The schedule in words, for the console."""
        if not self.enabled:
            return "off"
        sides = [f"{patch_size // factor}" for factor in self.downscales()]
        return (
            f"patches of {' -> '.join(sides)} px, {self.images_per_stage:,} images per stage, each new "
            f"discriminator block faded in over {self.fade_images:,}"
        )
