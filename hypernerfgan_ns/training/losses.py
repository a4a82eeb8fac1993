"""The adversarial losses, as in StyleGAN2: non-saturating logistic loss and the R1 gradient penalty.

    D main:  softplus(D(fake)) + softplus(-D(real))          = -log(1 - sigmoid(D(fake))) - log(sigmoid(D(real)))
    D reg:   gamma / 2 * ||grad_x D(x)||^2 on real x, lazily: every N-th discriminator step, weighted by N
    G main:  softplus(-D(fake))                               = -log(sigmoid(D(fake)))

The lazy R1 term is added to the main discriminator loss of every N-th iteration, where stylegan2-ada runs it as a
separate "Dreg" phase with its own optimizer step (its one-step "Dboth" phase is the non-lazy case). The optimizer
therefore still takes exactly one step per iteration, so unlike a separate regularisation step it needs no rescaling
of Adam's learning rate and betas: 0.0025 and (0, 0.99) are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from nerfstudio.configs.base_config import PrintableConfig


@dataclass
class AdversarialLossConfig(DefaultsForMissingFields, PrintableConfig):
    """Weights and schedule of the adversarial losses."""

    r1_gamma: Optional[float] = None
    """Weight of the R1 penalty on real images; None: the dataset preset's (1.0, or 0.1 for chairs); 0: off."""
    r1_interval: int = 16
    """Apply R1 every this many iterations, multiplied by this many (lazy regularisation); 1: every iteration."""

    def __post_init__(self) -> None:
        if self.r1_interval < 1:
            raise ValueError(f"r1_interval must be at least 1, got {self.r1_interval}.")


def generator_loss(fake_logits: Float[Tensor, "batch 1"]) -> Float[Tensor, ""]:
    """Non-saturating generator loss: make the discriminator call the fakes real."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(
    real_logits: Float[Tensor, "batch 1"], fake_logits: Float[Tensor, "batch 1"]
) -> Float[Tensor, ""]:
    """Logistic discriminator loss: real patches to +inf, fakes to -inf."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(
    real_logits: Float[Tensor, "batch 1"],
    real_images: Float[Tensor, "batch 3 height width"],
    loss_scale: float = 1.0,
) -> Float[Tensor, "batch"]:
    """||grad_x D(x)||^2 per real image, differentiable (create_graph) so that it can be minimised.

    Under fp16 autocast the gradient of the raw logits can underflow, so it is taken of the logits multiplied by the
    grad scaler's current scale and divided back afterwards (`loss_scale`; 1 without a scaler). An overflow then
    shows up as a non-finite penalty, which the trainer's grad-scaler step skips like any other overflow.

    Args:
        real_logits: D's output for `real_images`.
        real_images: the (pre-augmentation) real patches, with requires_grad set before D was applied.
        loss_scale: the grad scaler's scale.
    """
    (gradients,) = torch.autograd.grad(
        outputs=real_logits.sum() * loss_scale, inputs=real_images, create_graph=True, only_inputs=True
    )
    gradients = gradients.float() / loss_scale
    return gradients.square().sum(dim=[1, 2, 3])
