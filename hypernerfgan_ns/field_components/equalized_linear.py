"""Fully connected layer with an equalized learning rate (StyleGAN's parametrisation).

Weights are stored as N(0, 1) / lr_multiplier and scaled at run time by lr_multiplier / sqrt(fan_in). Adam's
per-parameter normalisation then gives every layer the same effective learning rate, and `lr_multiplier` slows a
whole layer down without a separate optimizer (the mapping network trains 100x slower than the rest).
"""

from __future__ import annotations

import math
from typing import Literal, Tuple

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

Activation = Literal["linear", "lrelu", "relu"]

ACTIVATION_GAINS = {"linear": 1.0, "lrelu": math.sqrt(2.0), "relu": math.sqrt(2.0)}
"""Output gains that keep the activations' second moment at one through a non-linearity (He initialisation).

All three activations are positively homogeneous, act(g x) = g act(x) for g > 0, so layers fold the gain into
their (small) weight and bias instead of multiplying the (large) activations: one pass less over every activation,
forward and backward."""

LEAKY_RELU_SLOPE = 0.2
"""Negative slope of the leaky ReLU."""


def apply_activation(x: Tensor, activation: Activation, inplace: bool = False) -> Tensor:
    """Applies the activation *without* its gain (fold `ACTIVATION_GAINS` into the preceding layer).

    `inplace=True` overwrites `x`, which is then the one tensor kept for backward (the activation's output), instead
    of keeping both its input and output: only for an `x` that nothing else needs, such as a fresh layer output.
    """
    if activation == "lrelu":
        return F.leaky_relu(x, LEAKY_RELU_SLOPE, inplace=inplace)
    if activation == "relu":
        return F.relu(x, inplace=inplace)
    return x


class EqualizedLinear(nn.Module):
    """y = g * act(x W^T * lr_multiplier / sqrt(fan_in) + b * lr_multiplier), with W initialised
    N(0, 1 / lr_multiplier^2) and g the activation's gain (`ACTIVATION_GAINS`, folded into weight and bias).

    Args:
        in_features: input width.
        out_features: output width.
        activation: non-linearity applied after the bias.
        lr_multiplier: scales this layer's effective learning rate.
        bias_init: initial value of the bias.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: Activation = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.activation: Activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features) * ACTIVATION_GAINS[activation]
        self.bias_gain = lr_multiplier * ACTIVATION_GAINS[activation]
        self.lr_multiplier = lr_multiplier

    def scaled(self, weight: Tensor, bias: Tensor, dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
        """`weight` and `bias` (this layer's, or those of layers like it side by side) in `dtype`, times the gains;
        a gain of 1 is not multiplied (one operation less, forward and backward)."""
        weight = weight.to(dtype) * self.weight_gain
        bias = bias.to(dtype)
        if self.bias_gain != 1.0:
            bias = bias * self.bias_gain
        return weight, bias

    def forward(self, x: Float[Tensor, "*batch in_features"]) -> Float[Tensor, "*batch out_features"]:
        weight, bias = self.scaled(self.weight, self.bias, x.dtype)
        return apply_activation(F.linear(x, weight, bias), self.activation)

    def extra_repr(self) -> str:
        out_features, in_features = self.weight.shape
        return f"in={in_features}, out={out_features}, activation={self.activation}, lr_multiplier={self.lr_multiplier}"
