"""`torch.compile` for the networks' hot paths (`--pipeline.model.compile-target-field`,
`--pipeline.discriminator.compile`), and the error a user can act on where no compiler works.

A function is compiled rather than a module, with the module passed as its first argument: one compiled function
per process serves every module of one structure (a graph each, shared), and copies of a model (the EMA generator,
`copy.deepcopy`) never call into the module they were copied from. Under a `TorchDispatchMode` (the bench's
counters) compiled code runs eager, as torch.compile does there.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import torch

from hypernerfgan_ns.errors import ConfigError

Function = TypeVar("Function", bound=Callable[..., Any])


@functools.lru_cache(maxsize=None)
def compiled(function: Function) -> Function:
    """`function` through `torch.compile` (inductor), made once per process on first use; each new structure, shape,
    precision or grad mode it is called with compiles a graph at that call."""
    return torch.compile(function)  # type: ignore[return-value]


def call_compiled(function: Callable[..., Any], option: str, *args: Any, **kwargs: Any) -> Any:
    """`compiled(function)(*args, **kwargs)`; where the compiler fails (no C++ compiler on the CPU, no Triton on a
    GPU), a `ConfigError` that names the option turning it off."""
    try:
        return compiled(function)(*args, **kwargs)
    except torch._dynamo.exc.BackendCompilerFailed as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"torch.compile could not compile {function.__qualname__} ({option}): {first_line} It needs a working C++ "
            f"compiler on the CPU and Triton on a GPU; install them, or train without it: {option} False."
        ) from error
