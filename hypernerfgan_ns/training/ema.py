"""Exponential moving average of the generator's weights, the generator that is shown and evaluated.

As in StyleGAN, the decay is a half-life measured in *images*, so it does not depend on the batch size or the
number of devices: after each iteration that consumed `batch` images,

    beta = 0.5 ** (batch / half_life),  half_life = min(half_life_images, images_seen * rampup)

The ramp-up keeps the average from being dominated by the random initialisation early in training. Buffers (the
mapping network's running mean of w) are copied, not averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from nerfstudio.configs.base_config import PrintableConfig

MIN_HALF_LIFE = 1e-8
"""Lower bound of the half-life (in images), so that beta is defined at the first step."""


@dataclass
class EMAConfig(DefaultsForMissingFields, PrintableConfig):
    """Generator exponential moving average."""

    half_life_images: float = 20_000
    """Half-life of the average, in training images (StyleGAN's ema_kimg = 20)."""
    rampup: Optional[float] = 0.05
    """Cap the half-life at this fraction of the images seen so far; None: no ramp-up."""

    def beta(self, images_seen: int, batch_images: int) -> float:
        """Decay for an iteration of `batch_images` images after `images_seen` images in total."""
        half_life = self.half_life_images
        if self.rampup is not None:
            half_life = min(half_life, images_seen * self.rampup)
        return 0.5 ** (batch_images / max(half_life, MIN_HALF_LIFE))


@torch.no_grad()
def update_ema(ema_module: nn.Module, module: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * module for parameters; buffers copied. One multi-tensor operation each,
    not one per parameter."""
    torch._foreach_lerp_(list(ema_module.parameters()), list(module.parameters()), 1.0 - beta)
    torch._foreach_copy_(list(ema_module.buffers()), list(module.buffers()))
