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
    fused_on_cuda: bool = True
    """On CUDA, Adam's fused kernel: one launch per step for all parameters, and the grad scaler skips an
    overflowing step on the GPU without waiting for it. Elsewhere (and with False) the multi-tensor implementation,
    a few launches per step instead of several per parameter."""

    def setup(self, params) -> torch.optim.Optimizer:
        """Adam over `params` with the implementation chosen for their device."""
        params = list(params)
        on_cuda = bool(params) and all(p.is_cuda for p in params)
        implementation = {"fused": True} if on_cuda and self.fused_on_cuda else {"foreach": True}
        return torch.optim.Adam(
            params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay, **implementation
        )
