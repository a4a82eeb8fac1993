"""The hypernetwork: a latent code z in, the modulation of every layer of one small NeRF out.

    z ~ N(0, I) --mapping network--> w --one FMM head per target layer--> (A, B) per layer

The mapping network normalises z by its second moment and applies a few equalized-lr fully connected layers with a
small learning-rate multiplier (StyleGAN's mapping). It also tracks the running mean of w, so that samples can be
truncated towards the average object: w' = w_avg + psi (w - w_avg). psi = 1 is the untruncated distribution,
psi = 0 gives the same average object for every z.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.distributed as dist
from jaxtyping import Float
from torch import Tensor, nn

from hypernerfgan_ns.field_components.equalized_linear import EqualizedLinear
from hypernerfgan_ns.field_components.fmm import FMMFactors, FMMHead, fmm_factors

SECOND_MOMENT_EPS = 1e-8
"""Stabiliser of the z normalisation."""


def mean_over_processes(value: Tensor) -> Tensor:
    """The average of `value` over all processes of a distributed run (`value` itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def normalize_second_moment(
    z: Float[Tensor, "objects latent_dim"], eps: float = SECOND_MOMENT_EPS
) -> Float[Tensor, "objects latent_dim"]:
    """Scales each latent to unit mean square, so the mapping sees inputs on the sphere of radius sqrt(dim)."""
    return z * (z.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z -> w with a running average of w for truncation.

    Args:
        latent_dim: dimensionality of z.
        w_dim: dimensionality of w.
        num_layers: fully connected layers, each followed by a leaky ReLU.
        lr_multiplier: learning-rate multiplier of every layer.
        w_avg_beta: decay of the running average of w, updated on every training forward pass with the batch mean
            over all training processes (like synchronised batch norm), so that DDP replicas stay identical.
    """

    def __init__(
        self, latent_dim: int, w_dim: int, num_layers: int, lr_multiplier: float, w_avg_beta: float
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.w_avg_beta = w_avg_beta
        widths = [latent_dim] + [w_dim] * num_layers
        self.layers = nn.Sequential(
            *[
                EqualizedLinear(widths[i], widths[i + 1], activation="lrelu", lr_multiplier=lr_multiplier)
                for i in range(num_layers)
            ]
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self, z: Float[Tensor, "objects latent_dim"], truncation_psi: float = 1.0
    ) -> Float[Tensor, "objects w_dim"]:
        w = self.layers(normalize_second_moment(z.float()))
        if self.training:
            with torch.no_grad():
                self.w_avg.copy_(torch.lerp(mean_over_processes(w.detach().mean(dim=0)), self.w_avg, self.w_avg_beta))
        if truncation_psi != 1.0:
            w = torch.lerp(self.w_avg.to(w.dtype), w, truncation_psi)
        return w


class HyperNetwork(nn.Module):
    """Mapping network plus one FMM head per target layer.

    Args:
        layer_shapes: (out_features, in_features) of every target layer, in order.
        latent_dim: dimensionality of z.
        w_dim: dimensionality of w.
        mapping_layers: layers of the mapping network.
        mapping_lr_multiplier: learning-rate multiplier of the mapping network.
        w_avg_beta: decay of the running average of w.
        rank: rank r of every layer's modulation.
    """

    def __init__(
        self,
        layer_shapes: Sequence[Tuple[int, int]],
        latent_dim: int,
        w_dim: int,
        mapping_layers: int,
        mapping_lr_multiplier: float,
        w_avg_beta: float,
        rank: int,
    ) -> None:
        super().__init__()
        self.mapping = MappingNetwork(latent_dim, w_dim, mapping_layers, mapping_lr_multiplier, w_avg_beta)
        self.heads = nn.ModuleList(
            [FMMHead(w_dim, in_features, out_features, rank) for out_features, in_features in layer_shapes]
        )

    def num_generated(self) -> int:
        """Numbers the heads generate per object, over all target layers."""
        return sum(head.num_generated() for head in self.heads)

    def forward(self, z: Float[Tensor, "objects latent_dim"], truncation_psi: float = 1.0) -> List[FMMFactors]:
        w = self.mapping(z, truncation_psi=truncation_psi)
        return fmm_factors(self.heads, w)
