"""The two-phase trainer: a run, an exact resume, skipped non-finite steps, and stops on divergence and collapse."""

from __future__ import annotations

import math
import os
import pickle
import signal
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Tuple
from unittest import mock

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hypernerfgan_ns.engine.trainer import (
    INTERRUPTED_EXIT_CODE,
    REPEATED_STOP_SECONDS,
    HyperNeRFGANTrainer,
    HyperNeRFGANTrainerConfig,
    read_checkpoint,
    saved_checkpoints,
)
from hypernerfgan_ns.errors import CheckpointError
from hypernerfgan_ns.metrics.quality_curve import METRICS_FILENAME, QualityCurve, QualityCurveConfig, read_curve
from hypernerfgan_ns.pipelines.adversarial_pipeline import FAKE_OPACITY, AdversarialPipeline
from hypernerfgan_ns.training.progressive_growing import ProgressiveGrowingConfig
from hypernerfgan_ns.utils.precision import GradScalerWithHostScale
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.utils import writer
from nerfstudio.utils.eval_utils import eval_setup
from tests.helpers import latest_checkpoint, micro_config, replaced, train


def test_a_run_trains_both_networks_and_writes_a_complete_checkpoint(tmp_path: Path) -> None:
    config = micro_config(tmp_path, max_num_iterations=3)
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    pipeline: AdversarialPipeline = trainer.pipeline
    generator_before = [p.detach().clone() for p in pipeline.model.generator.parameters()]
    ema_before = [p.detach().clone() for p in pipeline.model.generator_ema.parameters()]
    discriminator_before = [p.detach().clone() for p in pipeline.discriminator.parameters()]
    trainer.train()

    def changed(before, module):
        return any(not torch.equal(b, a) for b, a in zip(before, module.parameters()))

    assert changed(generator_before, pipeline.model.generator)
    assert changed(ema_before, pipeline.model.generator_ema)
    assert changed(discriminator_before, pipeline.discriminator)
    assert set(trainer.optimizers.optimizers) == {"generator", "discriminator"}

    state = latest_checkpoint(config.get_checkpoint_dir())
    assert state["step"] == 2
    keys = set(state["pipeline"])
    assert {"augment.p", "_model.viewed_latent"} <= keys
    assert any(key.startswith("_model.generator_ema.") for key in keys)
    assert any(key.startswith("discriminator.") for key in keys)
    assert set(state["optimizers"]) == {"generator", "discriminator"}
    assert "random_states" in state


@pytest.mark.parametrize("growing", [False, True], ids=["", "progressive-growing"])
def test_resumed_run_continues_exactly_like_an_uninterrupted_one(tmp_path: Path, growing: bool) -> None:
    """Also in the middle of progressive growing: resumed after 12 images, halfway through the 8-pixel block's
    fade-in (4 -> 8 -> 16 pixels, 8 images per stage)."""

    def config(folder: str, iterations: int, timestamp: str = "run") -> HyperNeRFGANTrainerConfig:
        run = micro_config(
            tmp_path / folder, max_num_iterations=iterations, steps_per_eval_batch=4, timestamp=timestamp
        )
        if growing:
            run.pipeline.progressive_growing = ProgressiveGrowingConfig(
                start_downscale=4, images_per_stage=8, fade_images=8
            )
        return run

    straight = config("straight", 6)
    checkpoints = train(config("halves", 3, timestamp="first"))
    second_half = replaced(config("halves", 6, timestamp="second"), load_dir=checkpoints)
    resumed = latest_checkpoint(train(second_half))
    uninterrupted = latest_checkpoint(train(straight))

    assert resumed["step"] == uninterrupted["step"] == 5
    assert resumed["pipeline"].keys() == uninterrupted["pipeline"].keys()
    assert resumed["pipeline"].pop("_extra_state") == uninterrupted["pipeline"].pop("_extra_state")
    for key, value in uninterrupted["pipeline"].items():
        assert torch.allclose(resumed["pipeline"][key].float(), value.float(), atol=1e-6), key
    for name in ("generator", "discriminator"):
        for index, slot in uninterrupted["optimizers"][name]["state"].items():
            resumed_slot = resumed["optimizers"][name]["state"][index]
            assert torch.allclose(resumed_slot["exp_avg_sq"], slot["exp_avg_sq"], atol=1e-9)


def test_a_resumed_run_ends_at_its_max_num_iterations_not_that_many_more(tmp_path: Path, capsys) -> None:
    """`--max-num-iterations` is the whole run's, as the uninterrupted run's: nerfstudio 1.1.5 trained that many more
    from the checkpoint (nerfstudio#3096). A run resumed at its end trains nothing and says how to train on."""
    checkpoints = train(micro_config(tmp_path, max_num_iterations=3, timestamp="first"))
    assert latest_checkpoint(checkpoints)["step"] == 2
    resumed = micro_config(tmp_path, max_num_iterations=5, timestamp="resumed", load_dir=checkpoints)
    assert latest_checkpoint(train(resumed))["step"] == 4, "two more iterations, to five in all"
    capsys.readouterr()
    finished = micro_config(tmp_path, max_num_iterations=5, timestamp="finished", load_dir=resumed.get_checkpoint_dir())
    train(finished)
    assert "has trained 5 iterations" in capsys.readouterr().out
    assert not any(finished.get_checkpoint_dir().glob("*.ckpt"))


def trainer_signalled_at_step_2(tmp_path: Path, *signals: int) -> Tuple[HyperNeRFGANTrainerConfig, HyperNeRFGANTrainer]:
    """A micro run's trainer that sends itself `signals`, one after another, as its step 2 begins."""
    config = micro_config(tmp_path, max_num_iterations=100)
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    train_iteration = trainer.train_iteration

    def iteration(step: int):
        if step == 2:
            for signum in signals:  # each reaches the handler installed when it arrives
                os.kill(os.getpid(), signum)
        return train_iteration(step)

    trainer.train_iteration = iteration  # type: ignore[method-assign]
    return config, trainer


def test_sigterm_of_a_time_limit_stops_after_the_iteration_with_a_checkpoint(tmp_path: Path, capsys) -> None:
    """A scheduler's time limit (SLURM, Kubernetes), `docker stop` or `timeout` sends SIGTERM before it kills: the run
    stops as after a Ctrl-C, saved and resumable, with the status shells report (128 + 15). It was killed unsaved."""
    config, trainer = trainer_signalled_at_step_2(tmp_path, signal.SIGTERM)

    def not_the_trainers(signum: int, frame) -> None:
        raise RuntimeError("SIGTERM reached the handler the test set before training")

    before = signal.signal(signal.SIGTERM, not_the_trainers)
    try:
        with pytest.raises(SystemExit) as stopped:
            trainer.train()
        assert signal.getsignal(signal.SIGTERM) is not_the_trainers, "the handler before training is back"
    finally:
        signal.signal(signal.SIGTERM, before)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert latest_checkpoint(config.get_checkpoint_dir())["step"] == 2
    output = " ".join(capsys.readouterr().out.split())
    assert "SIGTERM" in output and "Resume with" in output


def test_a_stop_signal_delivered_twice_at_once_is_one_stop_with_a_checkpoint(tmp_path: Path) -> None:
    """`timeout -s INT` (as tools/gpu_check.sh stops its trainings) signals the command, then its process group: two
    SIGINTs at once. When the second came after the first's handler had run, it quit the run unsaved (a
    KeyboardInterrupt, no checkpoint); it is the same stop. A Ctrl-C a while later still quits at once."""
    config, trainer = trainer_signalled_at_step_2(tmp_path, signal.SIGINT, signal.SIGINT)  # command, process group
    with pytest.raises(SystemExit) as stopped:
        trainer.train()
    assert stopped.value.code == INTERRUPTED_EXIT_CODE
    assert latest_checkpoint(config.get_checkpoint_dir())["step"] == 2

    trainer.stop_requested_at = time.monotonic() - REPEATED_STOP_SECONDS  # a first Ctrl-C, a second ago
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.request_stop(signal.SIGINT, None)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def test_a_non_finite_step_is_skipped_counted_and_leaves_the_weights_alone(tmp_path: Path) -> None:
    config = micro_config(tmp_path, max_num_iterations=1)
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    original = trainer.pipeline.get_discriminator_loss_dict

    def poisoned(step):
        losses, metrics = original(step)
        return {name: value * float("nan") for name, value in losses.items()}, metrics

    trainer.pipeline.get_discriminator_loss_dict = poisoned
    before = [p.detach().clone() for p in trainer.pipeline.discriminator.parameters()]
    trainer.pipeline.train()
    _, _, metrics = trainer.train_iteration(0)
    assert trainer.skipped_steps == 1 and float(metrics["skipped_steps"]) == 1.0
    assert all(torch.equal(b, a) for b, a in zip(before, trainer.pipeline.discriminator.parameters()))
    trainer.pipeline.get_discriminator_loss_dict = original
    trainer.train_iteration(1)
    assert trainer.consecutive_skipped_steps == 0


def test_an_fp16_overflow_is_skipped_by_the_grad_scaler_which_lowers_its_scale(tmp_path: Path, capsys) -> None:
    """The GPU presets' iteration (fp16 autocast and a grad scaler, what a T4 trains with), run on the CPU: a step
    whose fp16 gradients overflow leaves the weights alone, is counted and said to be the scaler's, and at the
    lowered scale both kinds of step (plain and R1) are taken."""
    config = micro_config(tmp_path, max_num_iterations=4)
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.mixed_precision = True  # nerfstudio turns it off on a CPU
    assert isinstance(trainer.grad_scaler, GradScalerWithHostScale), "the scaler a GPU trains with"
    # 2^40 overflows fp16 (largest 65,504) at once; the first back-off lands at 2^10, where every step fits.
    trainer.grad_scaler = GradScalerWithHostScale("cpu", init_scale=2.0**40, backoff_factor=2.0**-30)
    trainer.setup()
    pipeline = trainer.pipeline
    pipeline.train()
    trained = [*pipeline.model.generator.parameters(), *pipeline.discriminator.parameters()]
    autocast_dtype = torch.get_autocast_dtype("cpu")
    torch.set_autocast_dtype("cpu", torch.float16)  # a GPU's; the CPU's bfloat16 has fp32's range and never overflows
    read = torch.amp.GradScaler.get_scale  # torch's: each call reads the scale from the device
    try:
        before = [p.detach().clone() for p in trained]
        trainer.train_iteration(1)
        assert trainer.skipped_steps == 1 and trainer.grad_scaler.get_scale() == 2.0**10
        assert all(torch.equal(b, a) for b, a in zip(before, trained))
        output = " ".join(capsys.readouterr().out.split())
        assert "Step 1: fp16 gradients overflowed at loss scale 1.09951e+12" in output
        assert "lowered its scale to 1024" in output

        assert pipeline.r1_gamma > 0 and config.pipeline.loss.r1_interval == 2
        for step, with_r1 in ((2, True), (3, False)):
            before = [p.detach().clone() for p in trained]
            with mock.patch.object(torch.amp.GradScaler, "get_scale", autospec=True, side_effect=read) as device_reads:
                _, losses, _ = trainer.train_iteration(step)
            assert device_reads.call_count == 1, "one wait for the device per iteration (R1 reads no more)"
            assert ("r1" in losses) == with_r1
            assert trainer.skipped_steps == 1 and trainer.consecutive_skipped_steps == 0, f"step {step} was skipped"
            assert all(torch.isfinite(loss) for loss in losses.values())
            assert any(not torch.equal(b, a) for b, a in zip(before, trained))
        assert trainer.grad_scaler.get_scale() == 2.0**10
    finally:
        torch.set_autocast_dtype("cpu", autocast_dtype)


def test_training_stops_with_a_message_after_too_many_skipped_steps(tmp_path: Path, capsys) -> None:
    config = micro_config(tmp_path, max_num_iterations=2)
    checkpoint = train(config)
    saved = sorted(checkpoint.glob("*.ckpt"))
    saved_bytes = saved[-1].read_bytes()

    diverging = replaced(micro_config(tmp_path, max_num_iterations=10, timestamp="diverging"), load_dir=checkpoint)
    diverging.max_consecutive_skipped_steps = 3
    trainer: HyperNeRFGANTrainer = diverging.setup(local_rank=0, world_size=1)
    trainer.setup()

    def nan_loss(step):
        return {"generator": torch.tensor(float("nan"), requires_grad=True)}, {}

    trainer.pipeline.get_discriminator_loss_dict = nan_loss
    with pytest.raises(SystemExit) as exit_info:
        trainer.train()
    assert exit_info.value.code == 3
    output = capsys.readouterr().out
    assert "Training diverged" in output and "3 iterations in a row" in output
    assert not any(diverging.get_checkpoint_dir().glob("*.ckpt")), "a diverged run must not write a checkpoint"
    assert sorted(checkpoint.glob("*.ckpt")) == saved and saved[-1].read_bytes() == saved_bytes


def sink_density_at(
    trainer: HyperNeRFGANTrainer, step: int, passes: int, raw_density: float = -1e4
) -> List[Dict[str, Any]]:
    """Makes the generator collapse at `step`, the first `passes` times the loop reaches it, by sinking the raw
    density's bias to `raw_density`: as the paper's target network did at Adam 0.01 on the CPU (docs/ablations.md),
    where the raw density fell below zero everywhere within two iterations and no weight moved again. Returns, for
    each iteration run, its step with the generator's weights and the random-number state it started from."""
    train_iteration = trainer.train_iteration
    generator = trainer.pipeline.model.generator
    started: List[Dict[str, Any]] = []

    def iteration(iteration_step: int):
        started.append(
            {
                "step": iteration_step,
                "weights": [p.detach().clone() for p in generator.parameters()],
                "random": torch.get_rng_state(),
            }
        )
        if iteration_step == step and sum(run["step"] == step for run in started) <= passes:
            with torch.no_grad():
                generator.field.layers[-1].bias[-1] = raw_density
        return train_iteration(iteration_step)

    trainer.train_iteration = iteration  # type: ignore[method-assign]
    return started


def density_bias(trainer: HyperNeRFGANTrainer) -> str:
    """The raw density's bias in a checkpoint's pipeline state."""
    return f"_model.generator.field.layers.{len(trainer.pipeline.model.generator.field.layers) - 1}.bias"


def train_through_a_collapse_rewound_to_step_2(
    config: HyperNeRFGANTrainerConfig, capsys
) -> Tuple[HyperNeRFGANTrainer, str]:
    """Trains an 8-iteration run whose fakes empty at step 4 (the collapse counted at step 6, after 3 empty iterations)
    and checks that it went on from step 2's state with other random numbers. Returns the trainer and what it printed,
    flattened."""
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    started = sink_density_at(trainer, step=4, passes=1)
    trainer.train()

    assert [run["step"] for run in started] == [0, 1, 2, 3, 4, 5, 6, 3, 4, 5, 6, 7]
    output = " ".join(capsys.readouterr().out.split())
    assert "since step 4, up to step 6. Rewinding to step 2 (" in output
    first, second = (run for run in started if run["step"] == 3)
    assert all(torch.equal(a, b) for a, b in zip(first["weights"], second["weights"])), "step 2's weights again"
    assert not torch.equal(first["random"], second["random"]), "the same random numbers would collapse again"
    return trainer, output


def test_a_collapse_rewinds_to_the_checkpoint_before_it_and_trains_on_with_other_random_numbers(
    tmp_path: Path, capsys
) -> None:
    """Checkpoints every 2 steps; the fakes empty at step 4 and the collapse is counted at step 6. Training goes
    back to step 2's checkpoint, deletes step 4's (a dead generator that --load-dir would resume), draws other
    random numbers from step 3 on, and trains to the end; the curve keeps the points of the generator it went on
    with."""
    curve = QualityCurveConfig(interval_images=8, num_generated=8)
    config = micro_config(
        tmp_path, max_num_iterations=8, steps_per_save=2, max_consecutive_empty_iterations=3, quality_curve=curve
    )
    config.pipeline.evaluation.metrics = ("swd",)
    config.logging.steps_per_log = 1  # every iteration's scalars written at once: the dead ones reach tensorboard
    trainer, output = train_through_a_collapse_rewound_to_step_2(config, capsys)
    checkpoints = config.get_checkpoint_dir()
    assert f"({checkpoints / 'step-000000002.ckpt'})" in output.replace(" ", ""), "the path, however the line wraps"
    assert "rewind 1 of 3" in output and "Deleted the collapsed generator's checkpoints: step-000000004.ckpt" in output
    assert trainer.collapse_rewinds_done == 1 and trainer.last_completed_step == 7
    assert [path.name for path in saved_checkpoints(checkpoints)] == ["step-000000007.ckpt"]
    assert float(latest_checkpoint(checkpoints)["pipeline"][density_bias(trainer)][-1]) > -1e4
    points = read_curve(config.get_base_dir() / METRICS_FILENAME)
    assert [point["step"] for point in points] == [0, 2, 4, 6, 8], "each point once, from the generator that trained on"
    logs = EventAccumulator(str(config.get_base_dir())).Reload()
    swd = logs.Scalars("Quality/swd")
    assert [event.step for event in swd] == [0, 1, 3, 5, 7], "tensorboard too shows only the branch trained on"
    assert [event.value for event in swd] == pytest.approx([point["swd"] for point in points])
    opacity = [event.step for event in logs.Scalars(f"Train Metrics Dict/{FAKE_OPACITY}")]
    assert opacity == list(range(8)), "each iteration once"


def test_a_collapse_before_any_checkpoint_rewinds_to_the_start_of_the_session(tmp_path: Path, capsys) -> None:
    curve = QualityCurveConfig(interval_images=8, num_generated=8)
    config = micro_config(tmp_path, max_num_iterations=5, max_consecutive_empty_iterations=2, quality_curve=curve)
    config.pipeline.evaluation.metrics = ("swd",)
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    started = sink_density_at(trainer, step=1, passes=1)
    trainer.train()

    assert [run["step"] for run in started] == [0, 1, 2, 0, 1, 2, 3, 4]
    logs = EventAccumulator(str(config.get_base_dir())).Reload()
    opacity = [event.value for event in logs.Scalars(f"Train Metrics Dict/{FAKE_OPACITY}")]
    assert len(opacity) == 1 and opacity[0] > 0, "step 0's scalars of the generator trained on, not the dead one's"
    swd = [event.step for event in logs.Scalars("Quality/swd")]
    assert swd == [0, 1, 3, 4], "the first point (scored before training, logged at step 0) is kept, once"
    assert "Rewinding to the start of this session (no checkpoint was written before it)" in " ".join(
        capsys.readouterr().out.split()
    )
    first, second = (run for run in started if run["step"] == 0)
    assert all(torch.equal(a, b) for a, b in zip(first["weights"], second["weights"])), "the initial weights again"
    assert not torch.equal(first["random"], second["random"])
    state = latest_checkpoint(config.get_checkpoint_dir())
    assert state["step"] == 4 and float(state["pipeline"][density_bias(trainer)][-1]) > -1e4


def train_to_a_collapse_after_one_rewind(
    config: HyperNeRFGANTrainerConfig, capsys
) -> Tuple[HyperNeRFGANTrainer, str]:
    """Trains a run (`collapse_rewinds=1`) whose generator collapses at step 4 twice: once rewound, then stopped with
    the collapse's exit status. Returns the trainer and what it printed, the message's panel flattened."""
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    sink_density_at(trainer, step=4, passes=2)
    with pytest.raises(SystemExit) as stopped:
        trainer.train()
    assert stopped.value.code == 3
    output = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "rewind 1 of 1" in output
    return trainer, output


def test_a_collapse_rewinds_to_the_state_kept_in_memory_when_it_is_newer_than_every_checkpoint(
    tmp_path: Path, capsys
) -> None:
    """No checkpoint before the end; a rewind point every 2 iterations. The fakes empty at step 4 (no point is kept
    then, nor at step 6), the collapse is counted at step 6: training goes back to step 2's state, not to the start."""
    config = micro_config(
        tmp_path, max_num_iterations=8, max_consecutive_empty_iterations=3, collapse_rewind_interval=2
    )
    trainer, output = train_through_a_collapse_rewound_to_step_2(config, capsys)
    assert "Rewinding to step 2 (the state kept in memory every 2 iterations)" in output
    assert trainer.rewind_point is not None and trainer.rewind_point.step == 6, "kept again once the fakes recovered"
    state = latest_checkpoint(config.get_checkpoint_dir())
    assert state["step"] == 7 and float(state["pipeline"][density_bias(trainer)][-1]) > -1e4


def test_a_collapse_that_outlasts_its_rewinds_writes_the_state_kept_in_memory_as_the_checkpoint_to_resume(
    tmp_path: Path, capsys
) -> None:
    """The way on from a run that the collapse stops is the newest healthy state, also where it was only in memory:
    written as a checkpoint, named in the message, and resumable."""
    config = micro_config(
        tmp_path, max_num_iterations=40, max_consecutive_empty_iterations=3, collapse_rewinds=1,
        collapse_rewind_interval=2,
    )
    trainer, output = train_to_a_collapse_after_one_rewind(config, capsys)
    assert "Rewinding to step 2 (the state kept in memory" in output
    kept = config.get_checkpoint_dir() / "step-000000002.ckpt"
    assert [path.name for path in saved_checkpoints(config.get_checkpoint_dir())] == [kept.name]
    assert f"--load-checkpoint{kept}" in output.replace(" ", ""), "the path, however the panel wraps it"
    state = read_checkpoint(kept)
    assert state["step"] == 2 and float(state["pipeline"][density_bias(trainer)][-1]) > -1e4
    resumed = micro_config(tmp_path, max_num_iterations=4, timestamp="resumed", load_checkpoint=kept)
    trainer = resumed.setup(local_rank=0, world_size=1)
    trainer.setup()
    trainer.train()
    assert latest_checkpoint(resumed.get_checkpoint_dir())["step"] == 3


def test_a_softplus_generator_that_renders_nothing_visible_counts_as_collapsed(tmp_path: Path, capsys) -> None:
    """A softplus density is never exactly zero, so its dead generator's fakes have a mean opacity far below
    anything visible but above zero: the guard counts them empty all the same."""
    config = micro_config(tmp_path, max_num_iterations=5, max_consecutive_empty_iterations=2)
    config.pipeline.model.density_softplus_shift = 1.0
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    started = sink_density_at(trainer, step=1, passes=1, raw_density=-20.0)
    opacities: List[float] = []
    account = trainer.account_for_empty_fakes

    def counted(step: int, fake_opacity: float) -> None:
        opacities.append(fake_opacity)
        account(step, fake_opacity)

    trainer.account_for_empty_fakes = counted  # type: ignore[method-assign]
    trainer.train()

    assert [run["step"] for run in started] == [0, 1, 2, 0, 1, 2, 3, 4], "the collapse at step 1 was rewound"
    assert 0 < opacities[1] < config.empty_fakes_opacity, "nothing visible, though not exactly nothing"
    assert opacities[0] > 1e3 * config.empty_fakes_opacity, "a healthy generator's fakes are far above the limit"
    output = " ".join(capsys.readouterr().out.split())
    assert "its fakes have rendered nothing visible (mean opacity at most 1e-06)" in output


def test_a_ctrl_c_in_the_iteration_that_collapsed_stops_after_the_rewind_with_a_healthy_checkpoint(
    tmp_path: Path, capsys
) -> None:
    """The loop entered again after a rewind must not forget the stop asked for: one iteration, then the save."""
    config = micro_config(tmp_path, max_num_iterations=5, max_consecutive_empty_iterations=2)
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    started = sink_density_at(trainer, step=1, passes=1)
    train_iteration = trainer.train_iteration

    def iteration(step: int):
        if len(started) == 2:  # the iteration in which the collapse is counted
            trainer.request_stop(signal.SIGINT, None)
        return train_iteration(step)

    trainer.train_iteration = iteration  # type: ignore[method-assign]
    with pytest.raises(SystemExit) as stopped:
        trainer.train()
    assert stopped.value.code == INTERRUPTED_EXIT_CODE
    assert [run["step"] for run in started] == [0, 1, 2, 0]
    assert "Rewinding to the start of this session" in " ".join(capsys.readouterr().out.split())
    state = latest_checkpoint(config.get_checkpoint_dir())
    assert state["step"] == 0 and float(state["pipeline"][density_bias(trainer)][-1]) > -1e4


def test_a_generator_that_collapses_again_after_its_rewinds_stops_training_and_keeps_the_checkpoint_before_it(
    tmp_path: Path, capsys
) -> None:
    """Checkpoints every 2 steps, only the latest kept: without the guard only dead ones (steps 4, 6) would be left.
    The collapse recurs after the one rewind allowed, so training stops with the way on."""
    config = micro_config(
        tmp_path, max_num_iterations=40, steps_per_save=2, max_consecutive_empty_iterations=5, collapse_rewinds=1
    )
    trainer, output = train_to_a_collapse_after_one_rewind(config, capsys)
    assert "Rewinding to step 2" in output
    assert "collapsed to empty scenes" in output and "5 iterations in a row, since step 4, up to step 8" in output
    assert "training stops after 1 rewind with other random numbers" in output
    healthy = config.get_checkpoint_dir() / "step-000000002.ckpt"
    saved = [path.name for path in saved_checkpoints(config.get_checkpoint_dir())]
    assert saved == [healthy.name, "step-000000006.ckpt"]
    assert f"--load-checkpoint{healthy}" in output.replace(" ", ""), "the path, however the panel wraps it"
    assert "--optimizers.generator.optimizer.lr 0.000625" in output
    assert float(latest_checkpoint(config.get_checkpoint_dir())["pipeline"][density_bias(trainer)][-1]) == -1e4
    assert float(torch.load(healthy, weights_only=False)["pipeline"][density_bias(trainer)][-1]) > -1e4


def test_saving_only_the_latest_checkpoint_deletes_the_older_ones_it_wrote_and_nothing_else(tmp_path: Path) -> None:
    config = micro_config(tmp_path, max_num_iterations=4, steps_per_save=1, save_only_latest_checkpoint=True)
    checkpoints = config.get_checkpoint_dir()
    checkpoints.mkdir(parents=True)
    (checkpoints / "best.ckpt").write_bytes(b"a user's own")
    train(config)
    assert sorted(path.name for path in checkpoints.iterdir()) == ["best.ckpt", "step-000000003.ckpt"]


def test_a_run_resumed_with_another_learning_rate_trains_at_that_rate(tmp_path: Path, capsys) -> None:
    """The way on from a collapse. torch's load_state_dict brings back the checkpoint's learning rate, so the
    configured one was silently ignored; the moment estimates still come from the checkpoint."""
    checkpoints = train(micro_config(tmp_path, max_num_iterations=2, timestamp="first"))
    slower = micro_config(tmp_path, max_num_iterations=3, timestamp="slower", load_dir=checkpoints)
    slower.optimizers["generator"]["optimizer"].lr = 0.001
    trainer: HyperNeRFGANTrainer = slower.setup(local_rank=0, world_size=1)
    trainer.setup()
    generator, discriminator = (trainer.optimizers.optimizers[name] for name in ("generator", "discriminator"))
    assert generator.param_groups[0]["lr"] == 0.001
    assert discriminator.param_groups[0]["lr"] == slower.optimizers["discriminator"]["optimizer"].lr == 0.0025
    assert all(slot["step"] == 2 for slot in generator.state.values()) and len(generator.state) > 0
    output = " ".join(capsys.readouterr().out.split())
    assert "The generator optimizer resumes with this run's lr 0.0025 -> 0.001" in output
    assert "discriminator optimizer resumes" not in output


def test_a_run_with_a_nerfstudio_scheduler_writes_checkpoints_that_ns_render_and_resume_read(tmp_path: Path) -> None:
    """Past its warm-up, nerfstudio's exponential decay computes the rate with numpy, and torch keeps that numpy
    scalar in both state dicts; a checkpoint holding one is refused by torch.load(weights_only=True), so none is
    written, and one written before that still resumes."""
    config = micro_config(tmp_path, max_num_iterations=3, timestamp="scheduled")
    for group in config.optimizers.values():
        group["scheduler"] = ExponentialDecaySchedulerConfig(warmup_steps=1, lr_final=1e-4, max_steps=10)
    checkpoints = train(config)
    state = latest_checkpoint(checkpoints)  # as ns-render and ns-eval load it
    rates = [state["schedulers"]["generator"]["_last_lr"][0], state["optimizers"]["generator"]["param_groups"][0]["lr"]]
    assert all(type(rate) is float for rate in rates) and rates[0] == rates[1] < 0.0025
    resumed = train(replaced(config, max_num_iterations=4, timestamp="resumed", load_dir=checkpoints))
    assert latest_checkpoint(resumed)["step"] == 3

    # A checkpoint written before the numbers were made plain, as such a run wrote it: the resume still reads it.
    old = sorted(checkpoints.glob("step-*.ckpt"))[-1]
    state["schedulers"]["generator"]["_last_lr"] = [np.float64(rates[0])]
    state["optimizers"]["generator"]["param_groups"][0]["lr"] = np.float64(rates[1])
    torch.save(state, old)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(old, weights_only=True)
    assert isinstance(read_checkpoint(old)["schedulers"]["generator"]["_last_lr"][0], np.float64)
    resumed_old = train(replaced(config, max_num_iterations=4, timestamp="resumed-old", load_dir=checkpoints))
    assert latest_checkpoint(resumed_old)["step"] == 3


def test_a_resumed_or_evaluated_run_sees_the_octaves_its_step_opened(tmp_path: Path) -> None:
    config = micro_config(tmp_path, max_num_iterations=3)
    config.pipeline.model.frequency_annealing_images = 64  # 4 octaves over 16 iterations of 4 images
    checkpoints = train(config)
    state = latest_checkpoint(checkpoints)
    pipeline = config.pipeline.setup(device="cpu", test_mode="test")
    encoding = pipeline.model.generator_ema.field.encoding
    assert encoding.octave_weights.sum() == 0, "a new pipeline starts with the octaves closed"
    pipeline.load_pipeline(state["pipeline"], state["step"])
    alpha = 4 * (state["step"] + 1) * 4 / 64  # octaves x images seen / annealing images = 0.75
    first_octave = (1 - math.cos(math.pi * alpha)) / 2
    torch.testing.assert_close(encoding.octave_weights, torch.tensor([first_octave, 0.0, 0.0, 0.0]))


def test_ctrl_c_while_the_first_curve_point_is_scored_stops_before_the_first_iteration(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """The first point scores the new generator (minutes on a CPU); a Ctrl-C then must not be lost."""
    curve = QualityCurveConfig(interval_images=8, num_generated=8)
    config = micro_config(tmp_path, max_num_iterations=3, quality_curve=curve)
    start = QualityCurve.start

    def start_then_ctrl_c(curve: QualityCurve, step: int) -> None:
        start(curve, step)
        os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C reaches the process

    monkeypatch.setattr(QualityCurve, "start", start_then_ctrl_c)
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as stopped:
        trainer.train()
    assert stopped.value.code == INTERRUPTED_EXIT_CODE
    assert trainer.last_completed_step is None and not any(config.get_checkpoint_dir().glob("*.ckpt"))
    assert "before the first iteration" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is handler
    assert not writer.EVENT_STORAGE, "the first point's scalars are written out, not left for the next run"
    assert [event.step for event in EventAccumulator(str(config.get_base_dir())).Reload().Scalars("Quality/swd")] == [0]


@pytest.mark.parametrize(
    "change, flags",
    [
        ({"gradient_accumulation_steps": {"generator": 2}}, ["--gradient-accumulation-steps", "not supported"]),
        ({"log_gradients": True}, ["--log-gradients", "not supported"]),
        ({"patch_size": 12}, ["--pipeline.datamanager.patch-size", "got 12", "try 8 or 16."]),
        ({"batch_size": 6}, ["--pipeline.datamanager.batch-size", "--pipeline.discriminator.mbstd-group-size",
                             "groups of 2 or 3."]),
        ({"num_coarse_samples": 1}, ["--pipeline.model.num-coarse-samples", "got 1"]),
    ],
    ids=["gradient-accumulation", "log-gradients", "patch-size", "batch-size", "samples-per-ray"],
)
def test_options_that_cannot_work_are_refused_at_start_naming_the_flags(tmp_path: Path, capsys, change, flags) -> None:
    """A flag that cannot work is said at start, in a panel naming it and what fits, and leaves no run folder (a
    batch the minibatch-std groups do not divide failed in the first iteration, after the curve's first point)."""
    config = micro_config(tmp_path)
    (name, value), = change.items()
    for part in (config, config.pipeline.datamanager, config.pipeline.model):
        if hasattr(part, name):
            setattr(part, name, value)
    config.save_config()
    with pytest.raises(SystemExit) as stopped:
        config.setup(local_rank=0, world_size=1).setup()
    output = " ".join(capsys.readouterr().out.split())
    assert stopped.value.code == 2 and "ConfigError" in output
    assert all(flag in output for flag in flags), output
    assert not config.get_base_dir().exists()


def test_a_run_that_fails_to_start_leaves_no_run_folder_behind(tmp_path: Path, capsys) -> None:
    """ns-train writes config.yml before the data is read; a wrong folder must not leave a run without checkpoints
    at each retry. The output folder and the runs already in it stay."""
    earlier = micro_config(tmp_path, timestamp="earlier")
    earlier.save_config()
    (earlier.get_base_dir() / "metrics.jsonl").write_text("")
    empty = tmp_path / "empty"
    empty.mkdir()
    messages = {}
    for data, timestamp in ((empty, "empty-folder"), (tmp_path / "missing", "missing-folder")):
        config = micro_config(tmp_path, data=str(data), timestamp=timestamp)
        config.save_config()
        with pytest.raises(SystemExit):
            config.setup(local_rank=0, world_size=1).setup()
        messages[timestamp] = capsys.readouterr().out
        assert not config.get_base_dir().exists()
    assert "is empty" in messages["empty-folder"] and "does not exist" in messages["missing-folder"]
    assert sorted(path.name for path in earlier.get_base_dir().iterdir()) == ["config.yml", "metrics.jsonl"]
    # A run folder of its own experiment: nothing of it is left, down to the output folder.
    alone = micro_config(tmp_path / "alone", data=str(empty), timestamp="run")
    alone.save_config()
    with pytest.raises(SystemExit):
        alone.setup(local_rank=0, world_size=1).setup()
    assert list((tmp_path / "alone").iterdir()) == []


def test_a_gpu_preset_on_the_cpu_says_what_to_expect_without_a_grad_scaler_warning(tmp_path: Path, capsys) -> None:
    """fp16 presets on a CPU: the start says iterations and curve points are slow there and which preset fits, and
    nerfstudio's grad scaler, built for fp16 and then turned off, does not warn about CUDA."""
    config = micro_config(tmp_path, mixed_precision=True, quality_curve=QualityCurveConfig(interval_images=8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    out = " ".join(capsys.readouterr().out.split())
    assert "is sized for a GPU" in out and "1,000 samples each" in out and "hypernerfgan-tiny" in out, out
    assert not trainer.mixed_precision and not trainer.grad_scaler.is_enabled()
    assert [str(warning.message) for warning in caught if "CUDA is not available" in str(warning.message)] == []
    fp32 = micro_config(tmp_path, timestamp="fp32")
    fp32.setup(local_rank=0, world_size=1)
    assert "sized for a GPU" not in capsys.readouterr().out


def test_resuming_from_a_checkpoint_that_does_not_fit_says_why_and_what_to_do(tmp_path: Path, capsys) -> None:
    """Another method's checkpoint was a screen of tensor shapes in a traceback; a cut-short or foreign file another
    traceback. Each is now one message naming the file and the fix: for the first, the network options its run set
    otherwise (a preset's default that changed since it began, given on the command line again)."""
    first = micro_config(tmp_path, max_num_iterations=2, timestamp="first")
    checkpoints = train(first)
    wider = micro_config(tmp_path, timestamp="wider", load_dir=checkpoints)
    wider.pipeline.model.hidden_width = 32
    cut_short = tmp_path / "cut_short.ckpt"
    cut_short.write_bytes((checkpoints / "step-000000001.ckpt").read_bytes()[:5000])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"step": 3, "pipeline": {}}, foreign)
    cases = [
        (wider, ["does not fit the networks this run", "tensors of another shape", "says ns-train hypernerfgan-tiny",
                 "sets otherwise: --pipeline.model.hidden-width 16 (here 32)."]),
        (micro_config(tmp_path, timestamp="cut", load_checkpoint=cut_short), ["cannot be read", "--load-step"]),
        (micro_config(tmp_path, timestamp="foreign", load_checkpoint=foreign), ["not a checkpoint of a HyperNeRFGAN"]),
    ]
    for config, expected in cases:
        with pytest.raises(SystemExit):
            config.setup(local_rank=0, world_size=1).setup()
        out = " ".join(capsys.readouterr().out.replace("│", " ").split())  # the panel's lines joined
        assert "CheckpointError" in out and all(text in out for text in expected), out
        assert "Traceback" not in out


def test_load_dir_without_checkpoints_says_where_they_are(tmp_path: Path) -> None:
    """The run folder is the folder users point --load-dir at; its checkpoints are one folder down."""
    first = micro_config(tmp_path, max_num_iterations=1, timestamp="first")
    train(first)
    run_folder_hint = f"It is a run folder: resume with --load-dir {first.get_checkpoint_dir()}."
    for load_dir, hint in ((first.get_base_dir(), run_folder_hint),
                           (tmp_path / "empty", "Point --load-dir at a run's nerfstudio_models folder.")):
        trainer = micro_config(tmp_path, timestamp="second", load_dir=load_dir).setup(local_rank=0, world_size=1)
        with pytest.raises(CheckpointError) as error:
            trainer.checkpoint_to_resume()
        assert str(error.value) == f"No checkpoint (step-*.ckpt) in {load_dir}. {hint}"


def test_a_save_cut_short_leaves_no_partial_checkpoint_for_load_dir_to_pick(tmp_path: Path, monkeypatch) -> None:
    config = micro_config(tmp_path, max_num_iterations=2)
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    trainer.train()

    def write_half_then_die(contents, path) -> None:
        Path(path).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt  # a kill while saving

    monkeypatch.setattr(torch, "save", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(step=5)
    assert [path.name for path in config.get_checkpoint_dir().iterdir()] == ["step-000000001.ckpt"]


def test_a_run_resumed_with_another_batch_or_gpu_count_counts_images_on_from_its_checkpoint(tmp_path: Path) -> None:
    """Images seen drive the EMA ramp, the octaves' annealing, the growing stages and the curve. They were recounted
    from the step at the resuming run's batch x processes: a run trained on 2 GPUs and resumed (or rendered) on one
    went back to half its images. The pipeline's state now keeps the count; ns-eval and ns-render load it too."""
    first = micro_config(tmp_path, max_num_iterations=2, timestamp="first")
    checkpoints = train(first)  # batch 4: 8 images after step 1
    assert latest_checkpoint(checkpoints)["pipeline"]["_extra_state"] == {"step": 1, "images_seen": 8}
    second = micro_config(tmp_path, max_num_iterations=4, timestamp="second", load_dir=checkpoints)
    second.pipeline.datamanager.batch_size = 2  # as a run resumed on half the processes counts on
    trainer: HyperNeRFGANTrainer = second.setup(local_rank=0, world_size=1)
    trainer.setup()
    assert trainer.pipeline.images_seen(1) == 8 and trainer.pipeline.images_seen(3) == 12
    trainer.train()
    assert latest_checkpoint(second.get_checkpoint_dir())["pipeline"]["_extra_state"] == {"step": 3, "images_seen": 12}
    second.save_config()
    _, evaluated, _, step = eval_setup(second.get_base_dir() / "config.yml", test_mode="inference")
    assert step == 3 and evaluated.images_seen(step) == 12, "a render opens the octaves the training had opened"

    # A checkpoint written before the count was kept loads as it did: counted at the loading run's batch.
    old = latest_checkpoint(checkpoints)
    del old["pipeline"]["_extra_state"]
    torch.save(old, tmp_path / "old.ckpt")
    third = micro_config(tmp_path, timestamp="third", load_checkpoint=tmp_path / "old.ckpt")
    trainer = third.setup(local_rank=0, world_size=1)
    trainer.setup()
    assert trainer.pipeline.images_seen(1) == 8
