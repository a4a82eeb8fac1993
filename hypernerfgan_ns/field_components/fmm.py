"""Factorised multiplicative modulation (FMM): how the hypernetwork writes a layer of each object's NeRF.

For a target layer with a shared weight W0 (c_out x c_in), the hypernetwork emits two thin matrices per object,
A (c_out x r) and B (r x c_in), and the object's weight is

    W = W0 * (1 + A B / sqrt(r)),  then every output row of W scaled to unit L2 norm ("demodulation").

Generating r (c_in + c_out) numbers instead of c_in c_out is the memory trick of HyperNeRFGAN: 2,560 instead of
16,384 for a 128 x 128 layer with r = 10. The 1/sqrt(r) keeps A B at unit variance when A and B are; the row
normalisation keeps every layer's output scale independent of the modulation, as StyleGAN2's demodulation does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from hypernerfgan_ns.field_components.equalized_linear import EqualizedLinear

DEMODULATION_EPS = 1e-8
"""Added to each row norm before dividing (the reference implementation's value)."""


@dataclass
class FMMFactors:
    """The low-rank factors of one target layer's modulation, for a batch of objects (or of several layers of one
    shape, stacked along a leading dimension: `stack_factors`)."""

    left: Float[Tensor, "*layers objects out_features rank"]
    """A: one column per rank component, one row per output feature."""
    right: Float[Tensor, "*layers objects rank in_features"]
    """B: one row per rank component, one column per input feature."""


class FMMHead(nn.Module):
    """Maps a style vector w to the FMM factors of one target layer.

    Its output is laid out as [A flattened row-major, then B flattened row-major], the layout of HyperNeRFGAN's
    `affine` layers, so that imported weights map one to one.

    Args:
        w_dim: width of the style vector.
        in_features: c_in of the target layer.
        out_features: c_out of the target layer.
        rank: r, the rank of the modulation.
    """

    def __init__(self, w_dim: int, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.affine = EqualizedLinear(w_dim, self.num_generated(), bias_init=0.0)

    def num_generated(self) -> int:
        """Numbers generated per object for this layer: r (c_in + c_out)."""
        return self.rank * (self.in_features + self.out_features)

    def forward(self, w: Float[Tensor, "objects w_dim"]) -> FMMFactors:
        return fmm_factors([self], w)[0]


def fmm_factors(heads: Sequence[FMMHead], w: Float[Tensor, "objects w_dim"]) -> List[FMMFactors]:
    """Every head's factors from one matmul: the heads read the same w with the same gains, so their weights side by
    side are one affine layer. One matmul and one split instead of a matmul and two slices per target layer, forward
    and backward: on a GPU, where each operation costs a fixed launch, that is a fixed cost per iteration saved."""
    weight, bias = heads[0].affine.scaled(
        torch.cat([head.affine.weight for head in heads]), torch.cat([head.affine.bias for head in heads]), w.dtype
    )
    sizes = [size for head in heads for size in (head.out_features * head.rank, head.rank * head.in_features)]
    parts = F.linear(w, weight, bias).split(sizes, dim=1)
    return [
        FMMFactors(
            left=left.reshape(-1, head.out_features, head.rank), right=right.reshape(-1, head.rank, head.in_features)
        )
        for head, left, right in zip(heads, parts[0::2], parts[1::2])
    ]


def modulated_weight(
    base_weight: Float[Tensor, "*layers out_features in_features"], factors: FMMFactors
) -> Float[Tensor, "*layers objects out_features in_features"]:
    """W = W0 * (1 + A B / sqrt(r)), each output row L2-normalised: one weight matrix per object.

    Several layers of one shape can be modulated in one call, their base weights stacked as [layers, out, in] and
    their factors as [layers, objects, ...]: the same arithmetic, one set of operations for all of them."""
    left, right = factors.left, factors.right
    rank = left.shape[-1]
    product = torch.bmm(left.flatten(0, -3), right.flatten(0, -3))
    if left.dim() > 3:
        product = product.view(*left.shape[:-1], right.shape[-1])
    weight = base_weight.unsqueeze(-3) * (1.0 + product / math.sqrt(rank))
    return weight / (weight.norm(dim=-1, keepdim=True) + DEMODULATION_EPS)


def stack_factors(factors: Sequence[FMMFactors]) -> FMMFactors:
    """The factors of several layers of one shape as one [layers, objects, ...] pair, for `modulated_weight`."""
    return FMMFactors(left=torch.stack([f.left for f in factors]), right=torch.stack([f.right for f in factors]))


class ModulatedLinearBase(nn.Module):
    """The shared part of a target layer: W0 (initialised N(0, 1)) and the bias, which is not generated."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}"
