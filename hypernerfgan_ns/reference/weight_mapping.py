"""From the reference implementation's generator weights to ours.

HyperNeRFGAN's `NeRFGenerator` (gmum/HyperNeRFGAN, `training/networks.py`) and our `Generator` compute the same
function with the same parametrisation (StyleGAN's equalized learning rate, FMM with demodulation, the same
positional encoding and skip), so the weights map one to one:

    mapping.fc{k}.{weight,bias}                      -> hypernetwork.mapping.layers.{k}.{weight,bias}
    synthesis.pts_linears.{i}.{weight,bias}          -> field.layers.{i}.{weight,bias}          (W0 and the bias)
    synthesis.pts_linears.{i}.affine.{weight,bias}   -> hypernetwork.heads.{i}.affine.{weight,bias}
    synthesis.output_linear.*                        -> layer L (the RGB + density output) likewise

The architecture (depth, width, skip, rank, latent sizes) is read from the tensors' shapes. The reference keeps no
running mean of w (it cannot truncate); ours is estimated from the imported mapping network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import Tensor

from hypernerfgan_ns.errors import CheckpointError
from hypernerfgan_ns.networks.generator import Generator

POSITION_DIM = 3
"""The encoded input is a 3D point."""
OUTPUT_CHANNELS = 4
"""RGB and density."""
W_AVG_SAMPLES = 10_000
"""Latents averaged to estimate the running mean of w that the reference does not store."""
REFERENCE_W_AVG = "mapping.w_avg"
"""Where a reference generator would keep the running mean of w (StyleGAN's mappings do; HyperNeRFGAN's does not)."""


@dataclass(frozen=True)
class ReferenceArchitecture:
    """What the shapes of a reference generator's tensors say about it."""

    latent_dim: int
    w_dim: int
    mapping_layers: int
    num_hidden_layers: int
    hidden_width: int
    skip_layer: Optional[int]
    num_octaves: int
    fmm_rank: int


def require(state: Dict[str, Tensor], name: str, dims: int) -> Tensor:
    """The named tensor, which must exist with `dims` dimensions."""
    if name not in state:
        raise CheckpointError(f"The reference generator has no tensor '{name}'; is this a HyperNeRFGAN NeRF generator?")
    tensor = state[name]
    if tensor.dim() != dims:
        raise CheckpointError(f"The reference tensor '{name}' has shape {tuple(tensor.shape)}; expected {dims} dims.")
    return tensor


def detect_architecture(state: Dict[str, Tensor]) -> ReferenceArchitecture:
    """Reads the architecture from the shapes of a reference G / G_ema state dict."""
    mapping_layers = len({m.group(1) for key in state if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", key))})
    hidden_layers = len(
        {m.group(1) for key in state if (m := re.fullmatch(r"synthesis\.pts_linears\.(\d+)\.weight", key))}
    )
    if mapping_layers == 0 or hidden_layers == 0:
        raise CheckpointError(
            "The reference generator has no mapping.fc*/synthesis.pts_linears.* tensors; is this a NeRFGenerator?"
        )
    first = require(state, "synthesis.pts_linears.0.weight", 2)
    width, encoded = first.shape
    if (encoded - POSITION_DIM) % (2 * POSITION_DIM) != 0:
        raise CheckpointError(f"The first target layer takes {encoded} inputs, which is no positional encoding of 3D.")
    skip_layers = [
        index - 1
        for index in range(1, hidden_layers)
        if require(state, f"synthesis.pts_linears.{index}.weight", 2).shape[1] == width + encoded
    ]
    if len(skip_layers) > 1:
        raise CheckpointError(
            f"The reference generator has several skip connections ({skip_layers}); one is supported."
        )
    affine_out = require(state, "synthesis.pts_linears.0.affine.weight", 2).shape[0]
    if affine_out % (width + encoded) != 0:
        raise CheckpointError(
            f"synthesis.pts_linears.0.affine.weight emits {affine_out} numbers, not a multiple of c_in + c_out = "
            f"{width + encoded}: not an FMM layer."
        )
    return ReferenceArchitecture(
        latent_dim=require(state, "mapping.fc0.weight", 2).shape[1],
        w_dim=require(state, f"mapping.fc{mapping_layers - 1}.weight", 2).shape[0],
        mapping_layers=mapping_layers,
        num_hidden_layers=hidden_layers,
        hidden_width=width,
        skip_layer=skip_layers[0] if skip_layers else None,
        num_octaves=(encoded - POSITION_DIM) // (2 * POSITION_DIM),
        fmm_rank=affine_out // (width + encoded),
    )


def reference_to_ours(state: Dict[str, Tensor], architecture: ReferenceArchitecture) -> Dict[str, Tensor]:
    """Renames the reference tensors to our Generator's state-dict keys (without w_avg)."""
    mapped: Dict[str, Tensor] = {}
    for index in range(architecture.mapping_layers):
        for kind, dims in (("weight", 2), ("bias", 1)):
            mapped[f"hypernetwork.mapping.layers.{index}.{kind}"] = require(state, f"mapping.fc{index}.{kind}", dims)
    hidden = [f"synthesis.pts_linears.{i}" for i in range(architecture.num_hidden_layers)]
    sources = hidden + ["synthesis.output_linear"]
    for index, source in enumerate(sources):
        for kind, dims in (("weight", 2), ("bias", 1)):
            mapped[f"field.layers.{index}.{kind}"] = require(state, f"{source}.{kind}", dims)
            mapped[f"hypernetwork.heads.{index}.affine.{kind}"] = require(state, f"{source}.affine.{kind}", dims)
    known = set(sources) | {f"mapping.fc{i}" for i in range(architecture.mapping_layers)}
    unexpected = sorted(
        key for key in state if key != REFERENCE_W_AVG and key.rsplit(".", 1)[0].removesuffix(".affine") not in known
    )
    if unexpected:
        raise CheckpointError(f"The reference generator has tensors this importer does not know: {unexpected[:5]}.")
    return mapped


@torch.no_grad()
def load_reference_weights(generator: Generator, state: Dict[str, Tensor], seed: int = 0) -> None:
    """Copies reference weights into `generator` (which must have the detected architecture) and estimates w_avg."""
    architecture = detect_architecture(state)
    mapped = reference_to_ours(state, architecture)
    ours = generator.state_dict()
    for key, tensor in mapped.items():
        if key not in ours or ours[key].shape != tensor.shape:
            expected = tuple(ours[key].shape) if key in ours else "nothing"
            raise CheckpointError(f"Reference tensor for {key} has shape {tuple(tensor.shape)}; ours is {expected}.")
    if REFERENCE_W_AVG in state:
        mapped["hypernetwork.mapping.w_avg"] = state[REFERENCE_W_AVG]
    else:
        mapped["hypernetwork.mapping.w_avg"] = estimate_w_avg(generator, mapped, architecture, seed)
    generator.load_state_dict(mapped, strict=True)


def estimate_w_avg(
    generator: Generator, mapped: Dict[str, Tensor], architecture: ReferenceArchitecture, seed: int
) -> Tensor:
    """Mean of w over `W_AVG_SAMPLES` latents, computed with the imported mapping network."""
    mapping = generator.hypernetwork.mapping
    prefix = "hypernetwork.mapping."
    mapping_state = {key.removeprefix(prefix): value for key, value in mapped.items() if key.startswith(prefix)}
    mapping.load_state_dict({**mapping_state, "w_avg": torch.zeros(architecture.w_dim)})
    was_training = mapping.training
    mapping.eval()
    latents = torch.randn(W_AVG_SAMPLES, architecture.latent_dim, generator=torch.Generator().manual_seed(seed))
    w_avg = mapping(latents.to(mapping.w_avg.device)).mean(dim=0)
    mapping.train(was_training)
    return w_avg
