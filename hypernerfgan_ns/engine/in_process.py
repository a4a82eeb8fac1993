"""Running trainings inside one Python process (a study, a benchmark) without them seeing each other's state."""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

import torch

from hypernerfgan_ns.engine.trainer import HyperNeRFGANTrainer
from nerfstudio.utils import profiler, writer


@contextlib.contextmanager
def own_event_writers(flush: bool = True) -> Iterator[None]:
    """Gives one in-process training its own nerfstudio event writers and profiler.

    nerfstudio keeps them in module-level lists that every trainer appends to, so without this a second row would
    also log into the first row's tensorboard folder. `flush=False` drops the pending events instead of writing
    them (for iterations run outside nerfstudio's training loop, which never set the step its console log needs).
    """
    writers_before, profilers_before = len(writer.EVENT_WRITERS), len(profiler.PROFILER)
    try:
        yield
    finally:
        if flush:
            if "step" in writer.GLOBAL_BUFFER:
                writer.write_out_storage()
            else:
                # No iteration ran in this process yet (a training that failed in its first one): nerfstudio's
                # console writer would raise a KeyError for the missing step, replacing the error on its way out.
                HyperNeRFGANTrainer.write_scalars_without_an_iteration()
        for added in writer.EVENT_WRITERS[writers_before:]:
            if isinstance(added, writer.TensorboardWriter):
                added.tb_writer.close()
        del writer.EVENT_WRITERS[writers_before:]
        del profiler.PROFILER[profilers_before:]
        writer.EVENT_STORAGE.clear()
        writer.GLOBAL_BUFFER.pop("step", None)  # the next training's first log must not take this one's last step


def release_memory() -> None:
    """Frees a finished row's networks before the next row is built (on a GPU, its cached blocks too)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
