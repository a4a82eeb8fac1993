"""Adam with explicit betas: GANs train with beta1 = 0 (no momentum), which nerfstudio's Adam config cannot say."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple, Type

import torch

from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from nerfstudio.engine.optimizers import AdamOptimizerConfig


@dataclass
class GANAdamOptimizerConfig(DefaultsForMissingFields, AdamOptimizerConfig):
    """Adam as StyleGAN trains with it."""

    _target: Type = torch.optim.Adam
    lr: float = 0.0025
    """Learning rate."""
    betas: Tuple[float, float] = (0.0, 0.99)
    """Adam's (beta1, beta2): no momentum, a long second-moment average."""
    eps: float = 1e-8
    """Adam's epsilon."""
