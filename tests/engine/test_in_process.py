"""Trainings run one after another in one process (a study's rows) do not see each other's logging state."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hypernerfgan_ns.engine.in_process import own_event_writers
from nerfstudio.utils import writer


def test_a_training_writes_out_its_events_and_leaves_no_writer_event_or_step_to_the_next(tmp_path: Path) -> None:
    writers_before = list(writer.EVENT_WRITERS)
    with own_event_writers():
        writer.setup_event_writer(False, True, False, log_dir=tmp_path, experiment_name="row")
        writer.GLOBAL_BUFFER["step"] = 7  # as nerfstudio's loop leaves it after its last iteration
        writer.put_scalar("loss", 0.5, step=7)
    assert writer.EVENT_WRITERS == writers_before and not writer.EVENT_STORAGE
    assert "step" not in writer.GLOBAL_BUFFER, "a next row failing in its first iteration would log at step 7"
    logged = EventAccumulator(str(tmp_path)).Reload().Scalars("loss")
    assert [(event.step, event.value) for event in logged] == [(7, 0.5)]
