"""Reading StyleGAN2-ADA network pickles (HyperNeRFGAN's published checkpoints) without running their code.

Such a pickle stores each network class's *source code* beside its state (`torch_utils.persistence`), and
unpickling it normally executes that source. Executing code from a downloaded file is not acceptable, and not
needed: only the tensors matter. This unpickler resolves every global the pickle names to a harmless stand-in that
just records its arguments and state, except an allow-list of functions that rebuild tensors (and the storage
loader, which goes through `torch.load(weights_only=True)`). The embedded source stays an inert string.

The result mirrors the pickle's structure: `persistent_object`s and `PickledObject`s whose `state` holds the
modules' `_parameters`, `_buffers` and `_modules`, from which `state_dict_of` collects a `state_dict`.
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Tuple

import torch
from torch import Tensor

from hypernerfgan_ns.errors import CheckpointError

PERSISTENCE_RECONSTRUCTOR = ("torch_utils.persistence", "_reconstruct_persistent_obj")
"""The function a persistent class reduces to; called with the metadata (class name, source, state)."""


def load_storage_safely(data: bytes) -> Any:
    """Rebuilds a pickled tensor storage through torch's weights-only loader (never an arbitrary object)."""
    return torch.load(io.BytesIO(data), weights_only=True)


ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): load_storage_safely,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): torch.Size,
}
"""Globals a pickle may call for real: they build tensors and containers and nothing else."""


@dataclass
class PersistentObject:
    """An instance of a class whose source the pickle embeds (`torch_utils.persistence`)."""

    class_name: str
    """Name of the class in its embedded module."""
    module_src: str
    """The embedded source code: kept as text, never executed."""
    state: Dict[str, Any]
    """The instance's `__dict__` (for an nn.Module: `_parameters`, `_buffers`, `_modules`, attributes)."""


@dataclass
class PickledObject:
    """Any other object the pickle builds: what it was said to be, and what it was given."""

    qualified_name: str
    """`module.name` of the class or function the pickle named."""
    args: Tuple[Any, ...] = ()
    """Arguments it was called with."""
    state: Any = None
    """State it was given (`__setstate__` or `__dict__`)."""
    attributes: Dict[str, Any] = field(default_factory=dict)
    """Slot state, if any."""


def stand_in(module: str, name: str) -> type:
    """A class that records instead of running: what `find_class` returns for every unknown global."""

    def construct(cls, *args: Any, **kwargs: Any) -> PickledObject:
        return PickledObject(qualified_name=f"{module}.{name}", args=args)

    return type(f"StandIn[{module}.{name}]", (), {"__new__": construct})


def reconstruct_persistent(meta: Dict[str, Any]) -> PersistentObject:
    """Stand-in for `_reconstruct_persistent_obj`: keeps the metadata, runs nothing."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise CheckpointError(f"Unexpected persistent-object metadata in the pickle: {type(meta).__name__}.")
    return PersistentObject(
        class_name=str(meta.get("class_name")), module_src=str(meta.get("module_src", "")), state=dict(meta["state"])
    )


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose globals are tensor builders or inert stand-ins."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == PERSISTENCE_RECONSTRUCTOR:
            return reconstruct_persistent
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[(module, name)]
        return stand_in(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError("The pickle uses persistent ids (a torch.save file?); expected a network pickle.")


def set_state(obj: Any, state: Any) -> None:
    """BUILD for stand-ins: record the state instead of applying it."""
    if isinstance(obj, PickledObject):
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            obj.state, obj.attributes = state
        else:
            obj.state = state


PickledObject.__setstate__ = set_state  # type: ignore[attr-defined]


def load_network_pickle(path: Path) -> Dict[str, Any]:
    """The top-level dictionary of a StyleGAN2-ADA network pickle (G, D, G_ema, ...), read without running code."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist. Pass the .pkl file of a HyperNeRFGAN network snapshot.")
    try:
        with open(path, "rb") as file:
            content = RestrictedUnpickler(file).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path} is not a readable network pickle: {error}") from error
    if not isinstance(content, dict):
        raise CheckpointError(f"{path} holds a {type(content).__name__}; a network pickle holds a dict with G_ema.")
    return content


def module_state(obj: Any) -> Dict[str, Any]:
    """The `__dict__` an nn.Module was pickled with, whichever way it was pickled."""
    if isinstance(obj, PersistentObject):
        return obj.state
    if isinstance(obj, PickledObject) and isinstance(obj.state, dict):
        return obj.state
    raise CheckpointError(f"Expected a network module in the pickle, found {describe(obj)}.")


def state_dict_of(obj: Any, prefix: str = "") -> Dict[str, Tensor]:
    """Parameters and buffers of a pickled module tree, keyed as `module.state_dict()` would key them."""
    state = module_state(obj)
    tensors: Dict[str, Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is None:
                continue
            if not isinstance(value, Tensor):
                raise CheckpointError(f"The pickle's tensor {prefix}{name} is a {describe(value)}, not a tensor.")
            tensors[prefix + name] = value.detach().clone()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            tensors.update(state_dict_of(child, f"{prefix}{name}."))
    return tensors


def describe(obj: Any) -> str:
    """A short name for what the pickle held, for error messages."""
    if isinstance(obj, PersistentObject):
        return f"persistent {obj.class_name}"
    if isinstance(obj, PickledObject):
        return obj.qualified_name
    return type(obj).__name__
