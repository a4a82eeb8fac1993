"""The adversarial losses: StyleGAN2's non-saturating logistic loss or R3GAN's relativistic pairing loss, and the
zero-centred gradient penalties R1 (on reals) and R2 (on fakes).

    logistic (StyleGAN2)
        D main:  softplus(D(fake)) + softplus(-D(real))   = -log(1 - sigmoid(D(fake))) - log(sigmoid(D(real)))
        G main:  softplus(-D(fake))                        = -log(sigmoid(D(fake)))
    relativistic (RpGAN, as in R3GAN: Huang et al. 2024, "The GAN is dead; long live the GAN!")
        D main:  softplus(D(fake_i) - D(real_i))           each fake against the real it is paired with
        G main:  softplus(D(real_i) - D(fake_i))
    D reg:   gamma / 2 * ||grad_x D(x)||^2 on real x (R1) and, with r2_gamma, on fake x (R2), lazily: every N-th
             discriminator step, weighted by N

The logistic loss asks D whether each image is real; the relativistic one asks which of a pair is the real, so a
generator that pleases D with one mode gains nothing against reals of the others. R3GAN regularises it with R1 and R2
at one weight, under which it proves local convergence (in its experiments R1 alone did not keep training stable).

The lazy penalties are added to the main discriminator loss of every N-th iteration, where stylegan2-ada runs them as
a separate "Dreg" phase with its own optimizer step (its one-step "Dboth" phase is the non-lazy case). The optimizer
therefore still takes exactly one step per iteration, so unlike a separate regularisation step it needs no rescaling
of Adam's learning rate and betas: 0.0025 and (0, 0.99) are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from nerfstudio.configs.base_config import PrintableConfig

Objective = Literal["logistic", "relativistic"]


@dataclass
class AdversarialLossConfig(DefaultsForMissingFields, PrintableConfig):
    """The adversarial objective, and the weights and schedule of its gradient penalties."""

    objective: Objective = "logistic"
    """logistic: StyleGAN2's non-saturating loss, each image's logit against a fixed target (the paper's);
    relativistic: R3GAN's pairing loss, each fake's logit against a real's (see the module docstring)."""
    r1_gamma: Optional[float] = None
    """Weight of the R1 penalty on real images; None: the dataset preset's (1.0, or 0.1 for chairs); 0: off."""
    r2_gamma: Optional[float] = 0.0
    """Weight of the R2 penalty on fakes (R3GAN pairs it with R1); None: R1's weight; 0: off (StyleGAN2, the paper)."""
    r1_interval: int = 16
    """Apply R1 (and R2) every this many iterations, multiplied by this many (lazy regularisation); 1: every one."""

    def __post_init__(self) -> None:
        if self.r1_interval < 1:
            raise ValueError(f"r1_interval must be at least 1, got {self.r1_interval}.")


def generator_loss(
    fake_logits: Float[Tensor, "batch 1"],
    real_logits: Optional[Float[Tensor, "batch 1"]] = None,
    objective: Objective = "logistic",
) -> Float[Tensor, ""]:
    """Make the discriminator call the fakes real (logistic), or more real than their paired reals (relativistic,
    which needs `real_logits`: constants for the generator, so computed without a graph)."""
    if objective == "logistic":
        return F.softplus(-fake_logits).mean()
    if real_logits is None:
        raise ValueError("The relativistic generator loss compares each fake with a real: pass real_logits.")
    return F.softplus(real_logits - fake_logits).mean()


def discriminator_loss(
    real_logits: Float[Tensor, "batch 1"], fake_logits: Float[Tensor, "batch 1"], objective: Objective = "logistic"
) -> Float[Tensor, ""]:
    """Real patches to +inf and fakes to -inf (logistic), or each real above the fake paired with it (relativistic)."""
    if objective == "logistic":
        return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
    return F.softplus(fake_logits - real_logits).mean()


def gradient_penalty(
    logits: Float[Tensor, "batch 1"],
    images: Float[Tensor, "batch 3 height width"],
    loss_scale: float = 1.0,
) -> Float[Tensor, "batch"]:
    """||grad_x D(x)||^2 per image (R1 on reals, R2 on fakes), differentiable (create_graph) so that it can be
    minimised.

    Under fp16 autocast the gradient of the raw logits can underflow, so it is taken of the logits multiplied by the
    grad scaler's current scale and divided back afterwards (`loss_scale`; 1 without a scaler). An overflow then
    shows up as a non-finite penalty, which the trainer's grad-scaler step skips like any other overflow.

    Args:
        logits: D's output for `images`.
        images: the (pre-augmentation) patches, with requires_grad set before D was applied.
        loss_scale: the grad scaler's scale.
    """
    (gradients,) = torch.autograd.grad(
        outputs=logits.sum() * loss_scale, inputs=images, create_graph=True, only_inputs=True
    )
    gradients = gradients.float() / loss_scale
    return gradients.square().sum(dim=[1, 2, 3])
