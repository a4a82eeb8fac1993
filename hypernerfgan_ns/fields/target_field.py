"""The target field: the small NeRF MLP whose weights the hypernetwork writes, one set per object.

It maps a 3D position (positional encoding, 10 octaves, 63 channels) to RGB (sigmoid) and density (ReLU of the
raw output plus Gaussian noise during training, or EG3D's shifted softplus of it). There is no view direction
anywhere: colour depends on position only (a Lambertian world), which removes the texture-versus-lighting ambiguity
of unposed photos.

All objects of a batch are evaluated at once with batched matmuls: points arrive grouped per object
([objects, points, 3]) and layer l computes h_b <- act(h_b W_{l,b}^T + bias_l) for every object b in one `baddbmm`.
Nothing is materialised per point beyond the activations themselves.

Our two additions to the reference field, both off for imported reference checkpoints:

- A density prior: a soft sphere added to the raw density, slope * (radius - |x|). A freshly initialised generator
  then renders an object-sized blob on a white background instead of fog filling the frame, which gives the
  discriminator something object-like from the first step. The generator learns to reshape it; a slope of 0 turns
  it off.
- A bound: density is zero outside the object sphere (`object_radius`, the part of the scene every prior camera
  renders whole). Nothing can then be drawn where no object can be: no bar reaching the frame's edge, no wall at
  the far plane, whatever the weights.

Eager, each layer is a `baddbmm` that writes the bias into its output before the matmul, then a ReLU pass over it,
and in the backward a threshold pass and a bias sum: memory traffic, not arithmetic. Compiled
(`--pipeline.model.compile-target-field`, `utils.compiling`), inductor fuses the bias with the ReLU, their backward
passes with each other, and the encoding and the output heads into a kernel each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor, nn

from hypernerfgan_ns.errors import ConfigError
from hypernerfgan_ns.field_components.encodings import PositionalEncoding
from hypernerfgan_ns.field_components.fmm import FMMFactors, ModulatedLinearBase, modulated_weight, stack_factors
from hypernerfgan_ns.utils.precision import autocast_dtype
from nerfstudio.field_components.field_heads import FieldHeadNames

HIDDEN_ACTIVATION_GAIN = math.sqrt(2.0)
"""Gain after each hidden ReLU, keeping the activations' second moment at one (StyleGAN's bias_act 'relu').
Since relu(g x) = g relu(x), it is folded into the layer's per-object weight and bias rather than applied to the
activations."""

RGB_CHANNELS = 3
"""Colour channels of the output layer; the last output channel is the raw density."""

BOUND_MARGIN = 1e-4
"""Relative margin by which `may_have_density` reaches past the object sphere: points that rounding could put on
either side of the bound are always queried, and the field's own bound decides them."""


def batched_affine(
    inputs: Float[Tensor, "objects points in_features"],
    weights: Float[Tensor, "objects in_features out_features"],
    bias: Float[Tensor, "out_features"],
) -> Float[Tensor, "objects points out_features"]:
    """inputs @ weights + bias, per object. Eager, one `baddbmm` (one operation; it writes the bias into its output
    before the matmul adds to it). Compiled, a `bmm` and an addition, which inductor fuses with the ReLU that follows:
    the bias is then added in the pass that applies the ReLU instead of in two passes of its own."""
    if torch.compiler.is_compiling():
        return torch.bmm(inputs, weights) + bias
    return torch.baddbmm(bias, inputs, weights)


def skip_affine(
    encoded: Float[Tensor, "objects points encoded_features"],
    hidden: Float[Tensor, "objects points hidden_features"],
    weights: Float[Tensor, "objects in_features out_features"],
    bias: Float[Tensor, "out_features"],
) -> Float[Tensor, "objects points out_features"]:
    """[encoded, hidden] @ weights + bias, per object, without concatenating the inputs: the layer after the skip
    connection as two matmuls into one output, the encoding's rows of the weights, then the hidden rows'. The
    concatenation would write every point's encoding again (63 of the paper's 191 input features), and its output is
    what the layer saves for backward, besides the encoding and the hidden activations already saved for their own
    layers; split, the layer saves those two and nothing new, and its backward computes no gradient for the encoding
    of rendered points, which need none. Eager, the second matmul accumulates into the first's output in place."""
    encoded_weights, hidden_weights = weights.split([encoded.shape[-1], hidden.shape[-1]], dim=-2)
    if torch.compiler.is_compiling():
        return torch.bmm(encoded, encoded_weights) + torch.bmm(hidden, hidden_weights) + bias
    return torch.baddbmm(bias, encoded, encoded_weights).baddbmm_(hidden, hidden_weights)


@dataclass
class ObjectWeights:
    """Every target layer's weights for a batch of objects, as the field multiplies by them: what the hypernetwork
    makes of a batch of z.

    Each layer's modulated, row-normalised weight matrix is kept transposed ([in, out] per object) and times the
    activation gain that follows the layer, and the layers of one shape and gain stay stacked as the modulation made
    them: casting them to the render's precision is then one operation per group, not one per layer, and the gain
    is applied once per batch of objects, not once per pass of the field."""

    groups: List[Float[Tensor, "layers objects in_features out_features"]]
    """The layers of one shape and gain, stacked: `TargetField.layer_groups` says which."""
    group_layers: List[List[int]]
    """The layer indices in each group, in stacking order."""

    @property
    def num_objects(self) -> int:
        """Number of objects in the batch."""
        return self.groups[0].shape[1]

    @property
    def layers(self) -> List[Float[Tensor, "objects in_features out_features"]]:
        """One weight matrix per layer, in layer order (views of the groups)."""
        return self.layers_in(self.groups[0].dtype)

    def layers_in(self, dtype: torch.dtype) -> List[Float[Tensor, "objects in_features out_features"]]:
        """One weight matrix per layer in `dtype`, in layer order: one cast per group (none when it matches)."""
        by_layer: Dict[int, Tensor] = {}
        for group, indices in zip(self.groups, self.group_layers):
            by_layer.update(zip(indices, group.to(dtype).unbind(0)))
        return [by_layer[index] for index in range(len(by_layer))]

    def select(self, indices: Union[Tensor, slice]) -> "ObjectWeights":
        """The weights of a subset of the objects (an index tensor, or a slice: a view, no copy)."""
        return ObjectWeights([group[:, indices] for group in self.groups], self.group_layers)


class TargetField(nn.Module):
    """Batched per-object NeRF MLP, position only.

    Args:
        num_hidden_layers: hidden layers (4 or 8 in the paper), each followed by ReLU * sqrt(2).
        hidden_width: width of every hidden layer.
        skip_layer: 0-based hidden layer after whose output the encoded input is concatenated again; None: no skip.
        num_octaves: positional-encoding frequencies.
        density_prior_radius: radius of the soft sphere added to the raw density.
        density_prior_slope: raw density added per unit of distance inside that sphere (0: no prior).
        object_radius: density is zero farther than this from the origin; None: unbounded (the reference).
        density_softplus_shift: density = softplus(raw - shift), EG3D's activation, instead of relu(raw); None: ReLU
            (the reference's).
    """

    def __init__(
        self,
        num_hidden_layers: int,
        hidden_width: int,
        skip_layer: Optional[int],
        num_octaves: int,
        density_prior_radius: float = 0.0,
        density_prior_slope: float = 0.0,
        object_radius: Optional[float] = None,
        density_softplus_shift: Optional[float] = None,
    ) -> None:
        super().__init__()
        self.density_softplus_shift = density_softplus_shift
        self.density_prior_radius = density_prior_radius
        self.density_prior_slope = density_prior_slope
        if object_radius is not None and object_radius <= 0:
            raise ConfigError(f"object_radius must be positive (or None for no bound), got {object_radius}.")
        self.object_radius = object_radius
        if skip_layer is not None and not 0 <= skip_layer < num_hidden_layers - 1:
            raise ConfigError(
                f"The skip connection must follow a hidden layer that another follows (0..{num_hidden_layers - 2} for "
                f"{num_hidden_layers} hidden layers; -1: none), got {skip_layer} (--pipeline.model.skip-layer, "
                "--pipeline.model.num-hidden-layers, or the dataset preset's skip_layer and num_hidden_layers)."
            )
        self.skip_layer = skip_layer
        self.encoding = PositionalEncoding(num_octaves=num_octaves)
        encoded = self.encoding.get_out_dim()
        in_features = [encoded] + [
            hidden_width + (encoded if index == skip_layer else 0) for index in range(num_hidden_layers)
        ]
        out_features = [hidden_width] * num_hidden_layers + [RGB_CHANNELS + 1]
        self.layers = nn.ModuleList([ModulatedLinearBase(i, o) for i, o in zip(in_features, out_features)])
        bias_gains = [gain for gain, width in zip(self.layer_gains(), out_features) for _ in range(width)]
        self.bias_gains: Tensor
        self.register_buffer("bias_gains", torch.tensor(bias_gains), persistent=False)
        """Every layer's gain once per output feature: all the biases are scaled by it in one operation."""

    def layer_shapes(self) -> List[Tuple[int, int]]:
        """(out_features, in_features) of every layer, the last one being the RGB + density output."""
        return [(layer.out_features, layer.in_features) for layer in self.layers]

    def layer_gains(self) -> List[float]:
        """The gain each layer's weight and bias are multiplied by: the hidden layers' ReLU gain, none on the
        output layer."""
        return [HIDDEN_ACTIVATION_GAIN] * (len(self.layers) - 1) + [1.0]

    def layer_groups(self) -> List[List[int]]:
        """The layers' indices grouped by weight shape and gain (in a deep MLP most hidden layers share both)."""
        groups: Dict[Tuple[Tuple[int, int], float], List[int]] = {}
        for index, key in enumerate(zip(self.layer_shapes(), self.layer_gains())):
            groups.setdefault(key, []).append(index)
        return list(groups.values())

    def object_weights(self, factors: List[FMMFactors]) -> ObjectWeights:
        """Combines the shared weights with the hypernetwork's per-object factors (FMM), times each layer's gain.

        Layers of one shape are modulated in one stacked call: on the paper's MLP six of the nine layers are
        128 x 128, so the modulation's operations, forward and backward, are paid four times instead of nine."""
        gains, layer_groups = self.layer_gains(), self.layer_groups()
        groups = []
        for group in layer_groups:
            if len(group) == 1:
                stacked = modulated_weight(self.layers[group[0]].weight, factors[group[0]]).unsqueeze(0)
            else:
                base = torch.stack([self.layers[index].weight for index in group])
                stacked = modulated_weight(base, stack_factors([factors[index] for index in group]))
            if gains[group[0]] != 1.0:
                stacked = stacked * gains[group[0]]
            groups.append(stacked.transpose(-1, -2))
        return ObjectWeights(groups, layer_groups)

    def forward(
        self,
        positions: Float[Tensor, "objects points 3"],
        weights: ObjectWeights,
        density_noise_std: float = 0.0,
    ) -> Dict[FieldHeadNames, Tensor]:
        """Colour and density of each object at its own points.

        Args:
            positions: world-space points, grouped per object (object b's points use object b's weights).
            weights: the objects' target-layer weights.
            density_noise_std: std of the Gaussian noise added to the raw density before the ReLU (training only).

        Returns:
            RGB in [0, 1] as [objects, points, 3] and density >= 0 as [objects, points, 1].
        """
        dtype = autocast_dtype(positions) or positions.dtype
        encoded = self.encoding(positions, dtype)
        biases = (torch.cat([layer.bias for layer in self.layers]) * self.bias_gains).to(dtype)
        biases = biases.split([layer.out_features for layer in self.layers])
        h = encoded
        last = len(self.layers) - 1
        for index, (weight, bias) in enumerate(zip(weights.layers_in(dtype), biases)):
            if self.skip_layer is not None and index == self.skip_layer + 1:  # its input: [encoding, hidden]
                h = skip_affine(encoded, h, weight, bias)
            else:
                h = batched_affine(h, weight, bias)
            if index == last:
                break
            h = F.relu(h, inplace=True)  # the affine map does not need its output for backward
        return self.output_heads(h, positions, density_noise_std)

    def may_have_density(self, positions: Float[Tensor, "*points 3"]) -> Bool[Tensor, "*points"]:
        """The points the bound leaves density at (and those within `BOUND_MARGIN` past it, which the bound decides
        when the field runs): the only ones the MLP needs to run at. All of them for an unbounded field."""
        if self.object_radius is None:
            return torch.ones(positions.shape[:-1], dtype=torch.bool, device=positions.device)
        return torch.linalg.vector_norm(positions, dim=-1) <= self.object_radius * (1.0 + BOUND_MARGIN)

    def output_heads(
        self,
        raw: Float[Tensor, "*points 4"],
        positions: Float[Tensor, "*points 3"],
        density_noise_std: float = 0.0,
    ) -> Dict[FieldHeadNames, Tensor]:
        """The last layer's raw outputs as colour in [0, 1] and density >= 0: the density prior and noise are added
        before the activation (ReLU, or the shifted softplus), and the density is zeroed outside the object sphere."""
        raw_rgb, raw_density = raw[..., :RGB_CHANNELS], raw[..., RGB_CHANNELS:]
        distance = None
        if self.density_prior_slope != 0.0 or self.object_radius is not None:
            distance = torch.linalg.vector_norm(positions, dim=-1, keepdim=True)
        if self.density_prior_slope != 0.0:
            raw_density = raw_density + self.density_prior_slope * (self.density_prior_radius - distance)
        if density_noise_std > 0.0:
            raw_density = raw_density + torch.randn_like(raw_density) * density_noise_std
        if self.density_softplus_shift is None:
            density = F.relu(raw_density)
        else:  # not flat: a point without density still has a gradient towards some, fading with its raw value
            density = F.softplus(raw_density - self.density_softplus_shift)
        if self.object_radius is not None:
            density = density.masked_fill(distance > self.object_radius, 0.0)
        return {FieldHeadNames.RGB: torch.sigmoid(raw_rgb), FieldHeadNames.DENSITY: density}
