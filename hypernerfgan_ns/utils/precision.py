"""The precision an autocast region runs a tensor's matmuls and convolutions in."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def autocast_dtype(tensor: Tensor) -> Optional[torch.dtype]:
    """The dtype autocast runs matmuls and convolutions of `tensor` in, or None where autocast is off on its device.

    Code that casts its operands to it once, up front, spares autocast a cast per call: on a GPU each cast is a
    kernel launch, a fixed cost per iteration."""
    device_type = tensor.device.type
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)
