"""Mixed precision: the dtype an autocast region runs a tensor's matmuls and convolutions in, and a grad scaler whose
scale the host reads once per change."""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

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


class GradScalerWithHostScale(torch.amp.GradScaler):
    """torch's grad scaler, with `get_scale` read from the device once after each change of the scale rather than at
    every call.

    The scale lives on the device and changes only in `update` (and `load_state_dict`), so between two updates every
    read after the first returns what the first returned. torch's `get_scale` reads it each time, and each read makes
    the host wait for the device's queued work: the trainer's once per iteration (to see whether the scaler skipped a
    step) is the one an iteration needs; R1's penalty, which unscales its gradients by the same scale in the middle
    of the D phase, would wait there for the D phase's render and discriminator forward too."""

    def __init__(self, device: str = "cuda", **kwargs: Any) -> None:
        super().__init__(device, **kwargs)
        self._host_scale: Optional[float] = None

    def get_scale(self) -> float:
        if self._host_scale is None:
            self._host_scale = super().get_scale()
        return self._host_scale

    def update(self, new_scale: Union[float, Tensor, None] = None) -> None:
        super().update(new_scale)
        self._host_scale = None

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._host_scale = None

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)
        self._host_scale = None
