"""Colours in [0, 1] as the 8-bit values pictures, videos, meshes and kept samples are written with."""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float, UInt8
from torch import Tensor

MAX_PIXEL_VALUE = 255
"""Colours in [0, 1] are written as 8-bit values."""


def to_uint8(values: Float[Tensor, "*shape"]) -> UInt8[np.ndarray, "*shape"]:
    """Colours in [0, 1] as 8-bit values, on the CPU (rounded, as Inception's input quantisation rounds)."""
    return (values.clamp(0.0, 1.0) * MAX_PIXEL_VALUE).round().to(torch.uint8).cpu().numpy()
