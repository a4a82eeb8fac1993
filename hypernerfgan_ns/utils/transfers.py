"""Small tensors made on the host, moved to the training device without making either side wait."""

from __future__ import annotations

from typing import TypeVar, Union

import torch
from torch import Tensor

from nerfstudio.cameras.rays import RayBundle

TensorOrBundle = TypeVar("TensorOrBundle", Tensor, RayBundle)


def to_device(batch: TensorOrBundle, device: Union[torch.device, str]) -> TensorOrBundle:
    """A CPU tensor (or ray bundle) on the training device; to a GPU through pinned memory and without blocking, so
    that the copy neither waits for the GPU's queued work nor makes it wait."""
    if torch.device(device).type != "cuda":
        return batch.to(device)
    if isinstance(batch, Tensor):
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.pin_memory()._apply_fn_to_fields(lambda field: field.to(device, non_blocking=True))
