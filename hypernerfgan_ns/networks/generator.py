"""The generator: hypernetwork + target field. A latent z becomes a whole 3D object, a NeRF of its own.

    weights = generator.object_weights(z)              # once per object (or per rendered camera)
    fields  = generator.field(points, weights, noise)  # as often as there are ray chunks
"""

from __future__ import annotations

from typing import Optional

import torch
from jaxtyping import Float
from torch import Tensor, nn

from hypernerfgan_ns.fields.target_field import ObjectWeights, TargetField
from hypernerfgan_ns.networks.hypernetwork import HyperNetwork


class Generator(nn.Module):
    """z -> per-object weights of the target field.

    Args:
        num_hidden_layers: hidden layers of the target MLP.
        hidden_width: width of the target MLP.
        skip_layer: target layer after which the encoded input is concatenated again (None: no skip).
        num_octaves: positional-encoding frequencies of the target field.
        latent_dim: dimensionality of z.
        w_dim: dimensionality of w.
        mapping_layers: layers of the mapping network.
        mapping_lr_multiplier: learning-rate multiplier of the mapping network.
        w_avg_beta: decay of the running mean of w used for truncation.
        fmm_rank: rank of every layer's factorised modulation.
        density_prior_radius: radius of the target field's soft density sphere.
        density_prior_slope: strength of that sphere (0: off).
        object_radius: the target field's density is zero outside this sphere (None: unbounded).
        density_softplus_shift: the target field's density is softplus(raw - shift) (None: relu(raw)).
    """

    def __init__(
        self,
        num_hidden_layers: int,
        hidden_width: int,
        skip_layer: Optional[int],
        num_octaves: int,
        latent_dim: int,
        w_dim: int,
        mapping_layers: int,
        mapping_lr_multiplier: float,
        w_avg_beta: float,
        fmm_rank: int,
        density_prior_radius: float = 0.0,
        density_prior_slope: float = 0.0,
        object_radius: Optional[float] = None,
        density_softplus_shift: Optional[float] = None,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.field = TargetField(
            num_hidden_layers, hidden_width, skip_layer, num_octaves, density_prior_radius, density_prior_slope,
            object_radius, density_softplus_shift,
        )
        self.hypernetwork = HyperNetwork(
            self.field.layer_shapes(),
            latent_dim=latent_dim,
            w_dim=w_dim,
            mapping_layers=mapping_layers,
            mapping_lr_multiplier=mapping_lr_multiplier,
            w_avg_beta=w_avg_beta,
            rank=fmm_rank,
        )

    def object_weights(
        self, z: Float[Tensor, "objects latent_dim"], truncation_psi: float = 1.0
    ) -> ObjectWeights:
        """The target-field weights of each latent's object, computed in float32 even under mixed precision.

        The hypernetwork is tiny next to the target field, and its outputs set every weight of the object: fp16
        there would cost precision (and the running mean of w) for no speed. The field casts them when it runs.
        """
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self.field.object_weights(self.hypernetwork(z.float(), truncation_psi=truncation_psi))
