"""EG3D's blur of the discriminator's input: reals and fakes alike, through a Gaussian that fades to nothing.

    sigma(images seen) = initial_sigma * max(0, 1 - images seen / fade_images)      (pixels of the training patch)

A new generator renders smooth blobs (the smoother with the encoding's octaves faded in), while the photos have
edges and texture. A discriminator that sees both sharp tells them apart by fine detail the generator cannot make
yet; blurred alike, they differ first in what it can change: silhouette, size and colour. EG3D (Chan et al., 2022)
blurs both sides from 10 px at 512 px over its first 200,000 images, blur then augmentation, R1 through both.

The blur is applied before the adaptive augmentation in every discriminator call of training (both phases, R1's
reals); evaluation compares unblurred renders with unblurred photos. Borders are reflected, so a blurred patch gains
no frame. The derivatives of every order are depthwise convolutions (`networks.conv_gradients`), so R1's double
backward stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from hypernerfgan_ns.networks.conv_gradients import depthwise_filter
from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from nerfstudio.configs.base_config import PrintableConfig


@dataclass
class DiscriminatorInputBlurConfig(DefaultsForMissingFields, PrintableConfig):
    """The Gaussian blur of every image the discriminator sees in training, fading out (EG3D)."""

    initial_sigma: float = 0.0
    """Standard deviation of the Gaussian at the first image, in pixels of the training patch; 0: no blur (the
    paper). The kernel reaches out `ceil(sigma_truncation * initial_sigma)` pixels, fewer than the patch's side."""
    fade_images: int = 5_000
    """Training images over which sigma falls linearly to 0; from then on the discriminator sees the images as
    they are."""
    sigma_truncation: float = 3.0
    """The kernel's radius in standard deviations: its weights beyond are below 1.2% of the centre's at 3."""

    def __post_init__(self) -> None:
        if self.initial_sigma < 0:
            raise ValueError(f"input_blur.initial_sigma must be at least 0 pixels (0: off), got {self.initial_sigma}.")
        if self.initial_sigma > 0 and self.fade_images < 1:
            raise ValueError(
                f"input_blur.fade_images must be at least 1 image when the blur is on, got {self.fade_images}."
            )

    @property
    def enabled(self) -> bool:
        """Whether the discriminator's input is blurred at the start of training."""
        return self.initial_sigma > 0

    @property
    def radius(self) -> int:
        """Pixels the kernel reaches on each side of its centre: fixed for the whole fade (the Gaussian narrows inside
        it), so the blur is one convolution shape, which cuDNN's benchmark mode (on in `ns-train`) tunes once rather
        than at every iteration."""
        return math.ceil(self.sigma_truncation * self.initial_sigma)

    def sigma(self, images_seen: int) -> float:
        """The blur's standard deviation in pixels after `images_seen` training images (0: none)."""
        if not self.enabled:
            return 0.0
        return self.initial_sigma * max(0.0, 1.0 - images_seen / self.fade_images)

    def kernel(self, images_seen: int, device: torch.device | str) -> Optional[Float[Tensor, "1 1 taps taps"]]:
        """The normalised 2D Gaussian after `images_seen` images, built on `device` from host numbers (nothing read
        back); None once the blur has faded out."""
        sigma = self.sigma(images_seen)
        if sigma <= 0:
            return None
        offsets = torch.arange(-self.radius, self.radius + 1, dtype=torch.float32, device=device)
        weights = torch.exp(offsets.square() * (-0.5 / sigma**2))
        weights = weights / weights.sum()
        return torch.outer(weights, weights)[None, None]

    def unfit_reason(self, smallest_patch: int) -> Optional[str]:
        """Why the kernel cannot blur patches of `smallest_patch` pixels (a reflected border must be shorter than the
        side), or None."""
        if self.enabled and self.radius >= smallest_patch:
            return (
                f"a blur of sigma {self.initial_sigma:g} px reaches {self.radius} px on each side "
                f"({self.sigma_truncation:g} sigma), as far as the {smallest_patch} px patches"
            )
        return None


def blur_images(
    images: Float[Tensor, "batch 3 height width"], kernel: Optional[Float[Tensor, "1 1 taps taps"]]
) -> Float[Tensor, "batch 3 height width"]:
    """`images` convolved with `kernel` channel by channel, borders reflected (the same size out); None: as they are."""
    if kernel is None:
        return images
    radius = kernel.shape[-1] // 2
    return depthwise_filter(F.pad(images, [radius] * 4, mode="reflect"), kernel)
