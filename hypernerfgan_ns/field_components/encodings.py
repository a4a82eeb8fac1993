"""Positional encoding of 3D points for the target NeRF.

The layout is the original NeRF code's, which HyperNeRFGAN's checkpoints were trained with: the raw point first,
then for each octave k = 0..L-1 the sines of the three coordinates at frequency 2^k, then their cosines. nerfstudio's
`NeRFEncoding` orders channels differently and scales by 2*pi, so imported weights would not line up with it.

Coarse-to-fine training (BARF, Lin et al. 2021) can fade the octaves in one after another: with progress
alpha in [0, L], octave k is weighted by (1 - cos(pi * clamp(alpha - k, 0, 1))) / 2, so at alpha = 0 only the raw
point is seen and at alpha = L every octave at full weight, as without annealing.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from jaxtyping import Float
from torch import Tensor, nn


class PositionalEncoding(nn.Module):
    """x -> [x, sin(2^0 x), cos(2^0 x), ..., sin(2^(L-1) x), cos(2^(L-1) x)].

    Args:
        num_octaves: number of frequencies L (10 gives 3 + 3 * 2 * 10 = 63 channels).
        in_dim: dimensionality of the points.
    """

    def __init__(self, num_octaves: int = 10, in_dim: int = 3) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.num_octaves = num_octaves
        self.register_buffer("frequencies", 2.0 ** torch.arange(num_octaves, dtype=torch.float32), persistent=False)
        # Not saved: the training progress that sets it is (the checkpoint's step).
        self.register_buffer("octave_weights", torch.ones(num_octaves), persistent=False)
        self.all_octaves_open = True

    def set_progress(self, alpha: float) -> None:
        """Opens the octaves up to `alpha` (0: none, num_octaves or more: all, as without annealing).

        Called after every training iteration, so it costs nothing once every octave is open (always, without
        annealing), and otherwise computes the weights where they live: no host-to-device copy, which on a GPU
        would wait for the queued work.
        """
        all_open = alpha >= self.num_octaves
        if all_open and self.all_octaves_open:
            return  # the weights are already all ones
        k = torch.arange(self.num_octaves, dtype=self.octave_weights.dtype, device=self.octave_weights.device)
        self.octave_weights.copy_((1.0 - torch.cos(math.pi * (alpha - k).clamp(0.0, 1.0))) / 2.0)
        self.all_octaves_open = all_open

    def get_out_dim(self) -> int:
        """Number of output channels."""
        return self.in_dim * (1 + 2 * self.num_octaves)

    def forward(
        self, positions: Float[Tensor, "*batch in_dim"], dtype: Optional[torch.dtype] = None
    ) -> Float[Tensor, "*batch out_dim"]:
        """The encoding in `dtype` (None: the positions'), computed in the positions' precision: the sines of fp16
        autocast's target MLP are those of float32 angles, rounded once.

        Where nothing is differentiated (rendered points need no gradient) each sine and cosine is written straight
        into its channels of the output, in `dtype`: four operations instead of the general path's six (angles,
        sines, cosines, their interleaving, the raw point's concatenation, the cast), writing 93 channels per point
        instead of 276 (10 octaves), the same values to float rounding (vectorised and strided sines may differ in
        the last bit). The general path serves gradients, annealed octaves and compiled code (which fuses it into
        one kernel)."""
        dtype = dtype or positions.dtype
        scaled = positions[..., None, :] * self.frequencies[:, None]  # [..., octaves, in_dim]
        if positions.requires_grad or not self.all_octaves_open or torch.compiler.is_compiling():
            periodic = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=-2)  # [..., octaves, 2, in_dim]
            if not self.all_octaves_open:
                periodic = periodic * self.octave_weights[:, None, None].to(periodic.dtype)
            return torch.cat([positions, periodic.flatten(-3)], dim=-1).to(dtype)
        encoded = positions.new_empty((*positions.shape[:-1], self.get_out_dim()), dtype=dtype)
        periodic = encoded[..., self.in_dim :].unflatten(-1, (self.num_octaves, 2, self.in_dim))
        torch.sin(scaled, out=periodic[..., 0, :])
        torch.cos(scaled, out=periodic[..., 1, :])
        encoded[..., : self.in_dim] = positions
        return encoded
