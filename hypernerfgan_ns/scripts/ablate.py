"""`hypernerfgan ablate`: the ablations the seeds ran by hand (samples per ray, patch size, augmentation, R1), as one
reproducible study.

    hypernerfgan ablate --method hypernerfgan-tiny --data cars --iterations 400 --output ablations/tiny-cars

Every row (`ablation_rows.py`) changes one thing of the method, trains it in-process on the same number of images
from the same seed (as ns-train seeds), scores its EMA generator (SWD always; FID and KID when Inception weights are
on the machine) and renders a sheet of seeds x views. Its quality curve is scored by the same protocol, so a last
point on as many samples is the row's score. Per row, in `DIR/<row>/`:

    <method>/<timestamp>/   a normal nerfstudio run: config.yml, nerfstudio_models/, tensorboard logs
                            (open it with ns-viewer, ns-render, ns-eval, hypernerfgan samples)
    samples.png             the sample sheet
    scored_samples.zip      without the Inception weights only: the scored samples, for FID where the weights are
                            (those of the curve's last point instead, when that is the row's score)
    study.json              the study's settings, written when the row starts
    result.json             scores, timings and the machine it trained on, written last: its presence means the
                            row is finished

and for the study `DIR/ablation.md` (the table) and `DIR/ablation.json`, rewritten after every row, and
`DIR/curves.png`, the rows' quality curves (`metrics.quality_curve`) side by side.

With several seeds (`--seed 0 1 2`) the study runs once per seed, into `DIR/seed-S/` each, and `DIR/seeds.md` and
`DIR/seeds.json` set the seeds side by side: each row's FID per seed (SWD where a row has no FID), their mean, and on
how many seeds the row beats the baseline trained from the same seed, the rule a change is kept by. A seed's study is
an ordinary one: `--jobs N` trains N seeds at once, each in a process of its own (its log in `DIR/seed-S/ablate.log`),
and seeds trained by commands of their own (`--seed 1 --output DIR/seed-1`) are reused by the command with all of
them, which then writes the comparison. A row that does
not fit the method (a patch larger than its images) is skipped with the reason; a row whose training fails is
recorded as failed and the study goes on. Rerunning the same command continues an interrupted study: finished rows
are reused, an unfinished row continues from its last checkpoint (Ctrl-C and a time limit's SIGTERM save one; a lost
session leaves the last periodic one); where the weights are, it also adds FID and KID to finished rows scored
without them (a study run on a GPU machine that lacks them). A row that ended by itself (it diverged, its generator
collapsed to empty scenes, its options cannot work) is one of the study's results and is reused too, so that the
rerun which adds FID on another machine does not train it for hours to the same end; one that failed for its machine
(out of memory, any other error) is trained again.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Literal, Optional, Sequence, Tuple

import torch
from rich.markup import escape
from rich.table import Table

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.engine.in_process import own_event_writers, release_memory
from hypernerfgan_ns.engine.trainer import (
    INTERRUPTED_EXIT_CODE,
    INTERRUPTED_EXIT_CODES,
    HyperNeRFGANTrainer,
    HyperNeRFGANTrainerConfig,
    saved_checkpoints,
)
from hypernerfgan_ns.errors import ConfigError, HyperNeRFGANError, InceptionUnavailableError, TrainingDivergedError
from hypernerfgan_ns.method_configs import METHODS, method_config
from hypernerfgan_ns.metrics.evaluation import GANEvaluationConfig, evaluate_generator, without_inception_metrics
from hypernerfgan_ns.metrics.inception import find_inception_weights
from hypernerfgan_ns.metrics.quality_curve import METRICS_FILENAME, point_scores, read_curve
from hypernerfgan_ns.metrics.sample_archive import evaluate_keeping_samples
from hypernerfgan_ns.scripts.ablation_rows import ROWS, dataparser_config
from hypernerfgan_ns.scripts.plot_curves import PlotCommand
from hypernerfgan_ns.scripts.samples import SamplesCommand
from hypernerfgan_ns.scripts.score_samples import RealSummaries, score_kept_samples
from hypernerfgan_ns.utils.config_diff import config_changes
from hypernerfgan_ns.utils.machine import cpu_description
from nerfstudio.scripts.train import _set_random_seed
from nerfstudio.utils.rich_utils import CONSOLE

DEFAULT_NUM_GENERATED = 256
"""EMA samples scored per row: enough for a stable SWD, few enough for a CPU study."""

DEFAULT_SAMPLE_SEEDS = 4
"""Objects (rows) on each sample sheet."""

DEFAULT_SAMPLE_VIEWS = 4
"""Views (columns) per object on each sample sheet: 90 degrees apart."""

STUDY_VISUALIZER = "tensorboard"
"""Rows log to tensorboard only: a viewer would start a server per row and wait for a user after training."""

RESULT_FILENAME = "result.json"
"""A row's scores, or the failure its training ended in by itself; written last, so that its presence marks a finished
row."""

STUDY_FILENAME = "study.json"
"""The study's settings, written when a row starts: an unfinished run continues only under the settings it began
with."""

SAMPLES_FILENAME = "samples.png"
"""A row's sample sheet."""

KEPT_SAMPLES_FILENAME = "scored_samples.zip"
"""A row's scored samples, kept when FID could not be computed, for a rerun where the Inception weights are."""

REPORT_MARKDOWN = "ablation.md"
"""The study's table."""

REPORT_JSON = "ablation.json"
"""The study's results, machine-readable."""

CURVES_FILENAME = "curves.png"
"""The rows' quality curves in one figure."""

FID_UNAVAILABLE = "n/a: no Inception weights"
"""FID cell of rows scored without Inception weights."""

FID_NOT_ASKED = "n/a: not in the evaluation's metrics"
"""FID cell when the method's evaluation config leaves FID out."""

NOT_APPLICABLE = "-"
"""Cell of a value a skipped or failed row does not have."""

SEED_FOLDER = "seed-{seed}"
"""A seed's study, inside the study folder, when the study has several seeds."""

SEEDS_MARKDOWN = "seeds.md"
"""The rows compared across seeds."""

SEEDS_JSON = "seeds.json"
"""The rows compared across seeds, machine-readable."""

SEED_POLL_SECONDS = 1.0
"""How often the command looks whether a seed's process has ended (`--jobs`)."""

SEED_LOG = "ablate.log"
"""The output of a seed's study trained in a process of its own (`--jobs`), in its folder."""

RowStatus = Literal["done", "failed", "skipped", "pending"]


class AblationError(HyperNeRFGANError):
    """A study that cannot run as asked: bad options, or an output folder holding another study's rows."""


# ----------------------------------------------------------------------------------------------------------------------
# The rows' configs (the rows themselves: `ablation_rows.py`).


RowName = Literal[tuple(ROWS)]  # type: ignore[valid-type]
"""A registered row name (tyro lists them in --help)."""

MethodName = Literal[tuple(METHODS)]  # type: ignore[valid-type]
"""A registered HyperNeRFGAN method."""


def row_config(base: HyperNeRFGANTrainerConfig, row: str) -> HyperNeRFGANTrainerConfig:
    """A copy of `base` with the row's change applied (`base` is left as it was)."""
    if row not in ROWS:
        raise AblationError(f"Unknown ablation row '{row}'. The rows are: {', '.join(ROWS)}.")
    config = copy.deepcopy(base)
    ROWS[row].change(config)
    return config


def unfit_reason(config: HyperNeRFGANTrainerConfig) -> Optional[str]:
    """Why a row's config cannot be trained with this method, or None: checked before any work, so it is skipped."""
    data = config.pipeline.datamanager
    patch, resolution = data.patch_size, dataparser_config(config).resolution
    if data.scales_patches and patch == resolution:
        return f"patches already cover the method's whole {resolution}x{resolution} images: nothing to scale"
    reason = data.unfit_reason(resolution) or config.pipeline.discriminator.unfit_reason(patch)
    if reason is not None:
        return reason
    smallest = config.pipeline.discriminator.final_resolution
    growing = config.pipeline.progressive_growing
    reason = growing.unfit_reason(
        patch_size=patch,
        resolution=resolution,
        smallest_patch=smallest,
        scaled_patches=data.scales_patches,
    )
    return reason or config.pipeline.input_blur.unfit_reason(smallest_patch=growing.first_patch_size(patch))


# ----------------------------------------------------------------------------------------------------------------------
# Results.


@dataclass
class RowResult:
    """What the study knows about one row; a finished row's is stored in `DIR/<row>/result.json`."""

    row: str
    """The row's name."""
    description: str
    """What the row changes."""
    status: RowStatus
    """done (trained and scored), failed, skipped (does not fit the method), or pending (not run yet)."""
    study: Dict[str, Any]
    """The study's settings; a stored row is reused only by a study with the same ones."""
    changes: Dict[str, List[Any]] = field(default_factory=dict)
    """Config fields the row changed: {dotted name: [method's value, row's value]}."""
    iterations: Optional[int] = None
    """Iterations trained (fewer than asked when training failed)."""
    train_seconds: Optional[float] = None
    """Wall-clock seconds of training (setup and scoring, the quality curve's included, excluded)."""
    eval_seconds: Optional[float] = None
    """Wall-clock seconds of scoring and the sample sheet."""
    metrics: Dict[str, float] = field(default_factory=dict)
    """`evaluate_generator`'s results: swd, and fid, kid, kid_std with Inception weights."""
    fid_note: Optional[str] = None
    """Why there is no FID, if there is none."""
    message: Optional[str] = None
    """Why the row was skipped or failed."""
    config: Optional[str] = None
    """The run's config.yml, relative to the study folder."""
    samples: Optional[str] = None
    """The sample sheet, relative to the study folder."""
    kept_samples: Optional[str] = None
    """The scored samples as PNGs, relative to the study folder, when FID was left out for want of the Inception
    weights: the same command run where the weights are adds FID and KID from them."""
    machine: Optional[str] = None
    """Where the row trained (`trained_on`); None in rows stored before it was recorded. Rows compare fairly only
    on one machine: the same code and seed end at other figures on another processor."""

    def cells(self) -> List[str]:
        """The row of the table: row, what it changes, iterations, seconds, SWD, FID, samples."""
        changes = self.description if self.changes or self.row == "baseline" else f"{self.description} (= the method)"
        if self.status == "done":
            fid = self.metrics.get("fid")
            return [
                self.row,
                changes,
                str(self.iterations),
                f"{self.train_seconds:.0f}",
                f"{self.metrics['swd']:.2f}",
                f"{fid:.2f}" if fid is not None else (self.fid_note or NOT_APPLICABLE),
                self.samples or NOT_APPLICABLE,
            ]
        first_line = (self.message or "").strip().splitlines()[0] if self.message else ""
        status = f"{self.status}: {first_line}" if first_line else self.status
        iterations = str(self.iterations) if self.iterations is not None else NOT_APPLICABLE
        seconds = f"{self.train_seconds:.0f}" if self.train_seconds is not None else NOT_APPLICABLE
        return [self.row, changes, iterations, seconds, status, NOT_APPLICABLE, NOT_APPLICABLE]


TABLE_HEADER = ("row", "what it changes", "iterations", "seconds", "SWD", "FID", "samples")
"""Columns of the table. seconds: training wall-clock without the quality curve's scoring; SWD (x1000) and FID: lower
is better."""


def write_json(path: Path, value: Any) -> None:
    """Writes JSON atomically: readers never see half a file, an interruption leaves the old one."""
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(value, indent=2, default=str) + "\n", encoding="utf8")


def markdown_cell(text: str, link: bool = False) -> str:
    """A table cell: pipes escaped, and a relative link to a file when asked."""
    escaped = text.replace("|", "\\|")
    return f"[{escaped}]({text})" if link and text != NOT_APPLICABLE else escaped


def markdown_table(results: Sequence[RowResult]) -> str:
    """The study as a Markdown table; the samples column links to each sheet."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + " --- |" * len(TABLE_HEADER)]
    for result in results:
        cells = result.cells()
        cells = [markdown_cell(cell, link=index == len(cells) - 1) for index, cell in enumerate(cells)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def console_table(results: Sequence[RowResult], title: str) -> Table:
    """The study as a rich table."""
    table = Table(title=title)
    for name in TABLE_HEADER:
        table.add_column(name, justify="right" if name in ("iterations", "seconds", "SWD", "FID") else "left")
    for result in results:
        table.add_row(*(escape(cell) for cell in result.cells()))
    return table


# ----------------------------------------------------------------------------------------------------------------------
# Running rows.


@dataclass
class SeedComparison:
    """One row across the seeds of a study: its score per seed, and against the baseline of each seed."""

    row: str
    """The row's name."""
    metric: Literal["fid", "swd"]
    """The score compared: FID where every finished row has one, else SWD (x1000). Lower is better."""
    scores: Dict[int, Optional[float]]
    """The row's score per seed; None where it did not finish (skipped, failed, pending)."""
    baseline_scores: Dict[int, Optional[float]]
    """The baseline's score per seed (None without a finished baseline)."""
    train_seconds: Dict[int, Optional[float]]
    """Training seconds per seed (a failed row's too; the table counts the seeds the row finished on)."""
    baseline_train_seconds: Dict[int, Optional[float]]
    """The baseline's training seconds per seed."""

    @property
    def mean(self) -> Optional[float]:
        """The mean score over the seeds the row finished on; None if it finished on none."""
        values = [value for value in self.scores.values() if value is not None]
        return sum(values) / len(values) if values else None

    @property
    def differences(self) -> Dict[int, float]:
        """Score minus the baseline's, per seed where both finished (negative: the row is better)."""
        return {
            seed: value - baseline
            for seed, value in self.scores.items()
            if value is not None and (baseline := self.baseline_scores.get(seed)) is not None
        }

    def verdict(self) -> str:
        """On how many seeds the row beats the baseline, by how much."""
        if self.row == "baseline":
            return NOT_APPLICABLE
        differences = self.differences
        if not differences:
            return "no baseline to compare with"
        better = sum(difference < 0 for difference in differences.values())
        by = ", ".join(f"{difference:+.1f}" for difference in differences.values())
        if better == len(differences):
            summary = "better on every seed"
        elif better == 0:
            summary = "worse on every seed" if all(d > 0 for d in differences.values()) else "not better on any seed"
        else:
            summary = f"better on {better} of {len(differences)} seeds"
        if len(differences) < len(self.scores):
            summary += f" compared ({len(differences)} of {len(self.scores)})"
        return f"{summary} ({by})"

    @property
    def seconds_ratio(self) -> Optional[float]:
        """The row's training seconds over the baseline's, summed over the seeds where both finished: what the change
        costs per image on this machine."""
        pairs = [
            (seconds, baseline)
            for seed, seconds in self.train_seconds.items()
            if self.scores[seed] is not None
            and seconds is not None
            and (baseline := self.baseline_train_seconds.get(seed)) is not None
        ]
        return sum(seconds for seconds, _ in pairs) / sum(baseline for _, baseline in pairs) if pairs else None

    def cells(self) -> List[str]:
        """The comparison table's row: row, score per seed, mean, against the baseline, mean training seconds and
        their ratio to the baseline's."""
        per_seed = " / ".join(NOT_APPLICABLE if value is None else f"{value:.1f}" for value in self.scores.values())
        finished = [seed for seed, score in self.scores.items() if score is not None]
        seconds = [self.train_seconds[seed] for seed in finished if self.train_seconds.get(seed) is not None]
        mean, ratio = self.mean, self.seconds_ratio
        return [
            self.row,
            per_seed,
            NOT_APPLICABLE if mean is None else f"{mean:.1f}",
            self.verdict(),
            f"{sum(seconds) / len(seconds):.0f}" if seconds else NOT_APPLICABLE,
            NOT_APPLICABLE if ratio is None or self.row == "baseline" else f"{ratio:.2f}x",
        ]


def compare_seeds(results_by_seed: Dict[int, Sequence[RowResult]]) -> List[SeedComparison]:
    """Each row's results across the seeds, in the rows' order; FID is compared where every finished row has it."""
    finished = [result for results in results_by_seed.values() for result in results if result.status == "done"]
    metric: Literal["fid", "swd"] = "fid" if all("fid" in result.metrics for result in finished) else "swd"

    by_row = {seed: {result.row: result for result in results} for seed, results in results_by_seed.items()}

    def seconds(row: str) -> Dict[int, Optional[float]]:
        return {seed: rows[row].train_seconds if row in rows else None for seed, rows in by_row.items()}

    def scores(row: str) -> Dict[int, Optional[float]]:
        return {
            seed: rows[row].metrics[metric] if row in rows and rows[row].status == "done" else None
            for seed, rows in by_row.items()
        }

    names = [row for row in ROWS if any(row in rows for rows in by_row.values())]
    return [
        SeedComparison(
            row=row,
            metric=metric,
            scores=scores(row),
            baseline_scores=scores("baseline"),
            train_seconds=seconds(row),
            baseline_train_seconds=seconds("baseline"),
        )
        for row in names
    ]


def seed_comparison_header(comparisons: Sequence[SeedComparison], seeds: Sequence[int]) -> List[str]:
    """Columns of the comparison table."""
    metric = comparisons[0].metric.upper() if comparisons else "FID"
    scores = f"{metric}, seeds {' / '.join(map(str, seeds))}"
    return ["row", scores, "mean", "against the baseline", "seconds", "seconds against the baseline"]


def write_seed_comparison(output: Path, comparisons: Sequence[SeedComparison], seeds: Sequence[int]) -> None:
    """DIR/seeds.md and DIR/seeds.json."""
    header = seed_comparison_header(comparisons, seeds)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for comparison in comparisons:
        lines.append("| " + " | ".join(markdown_cell(cell) for cell in comparison.cells()) + " |")
    notes = (
        f"Seeds {', '.join(map(str, seeds))}, each study in {SEED_FOLDER.format(seed='S')}/. Lower is better. Against "
        "the baseline: the row's score minus the baseline's from the same seed, per seed; a change is kept where it is "
        "better on every seed. seconds: mean training wall-clock; against the baseline's, over the seeds both "
        "finished: what the change costs per image on this machine.\n"
    )
    with atomic_output(output / SEEDS_MARKDOWN) as temporary:
        table = "\n".join(lines)
        temporary.write_text(f"# Ablation across seeds\n\n{notes}\n{table}\n", encoding="utf8")
    write_json(
        output / SEEDS_JSON,
        {
            "seeds": list(seeds),
            "rows": [
                {**dataclasses.asdict(comparison), "mean": comparison.mean, "verdict": comparison.verdict()}
                for comparison in comparisons
            ],
        },
    )


def training_failure(error: SystemExit) -> Optional[str]:
    """The message of a training that failed on its own (it diverged, or the row's options cannot work); None for an
    exit the study must not absorb (the data, an interruption).

    The trainer turns its errors into SystemExit after printing them; the original error is the exit's context.
    """
    original = error.__context__
    if isinstance(original, ConfigError):
        return str(original)
    if isinstance(original, TrainingDivergedError) or error.code == TrainingDivergedError.exit_code:
        return str(original) if original is not None else f"training diverged (exit status {error.code})"
    return None


@dataclass
class AblationStudy:
    """Trains, scores and tabulates rows of one method; `run` is the whole study, `run_row` one row."""

    base: HyperNeRFGANTrainerConfig
    """The method's config with the study's data, iterations and seed applied; rows change copies of it."""
    output: Path
    """The study folder: one folder per row, and the table."""
    num_generated: int = DEFAULT_NUM_GENERATED
    """EMA samples scored per row (against all training images)."""
    sample_seeds: int = DEFAULT_SAMPLE_SEEDS
    """Objects on each sample sheet."""
    sample_views: int = DEFAULT_SAMPLE_VIEWS
    """Views per object on each sample sheet."""
    on_top_of: Tuple[str, ...] = ()
    """Rows whose changes every row starts from, the baseline included: a study of the other candidates around a
    kept one (`lr-x4`), so that combinations need no rows of their own."""

    def __post_init__(self) -> None:
        # Absolute, so that the runs' config.yml open from any folder (nerfstudio stores output_dir as given).
        self.output = Path(self.output).expanduser().resolve()
        if self.output.exists() and not self.output.is_dir():
            raise AblationError(
                f"{self.output} is a file; --output names the study's folder (a new one, or an earlier study's to "
                "continue it)."
            )
        self.on_top_of = tuple(dict.fromkeys(self.on_top_of))
        if self.on_top_of:
            self.base = copy.deepcopy(self.base)
            for row in self.on_top_of:
                if row not in ROWS:
                    raise AblationError(f"Unknown row '{row}' in --on-top-of. The rows are: {', '.join(ROWS)}.")
                ROWS[row].change(self.base)
        for option, value in {
            "--iterations": self.base.max_num_iterations,
            "--num-generated": self.num_generated,
            "--sample-seeds": self.sample_seeds,
            "--sample-views": self.sample_views,
        }.items():
            if value < 1:
                raise AblationError(f"{option} must be at least 1, got {value}.")

    @property
    def settings(self) -> Dict[str, Any]:
        """What makes two rows comparable: a stored row is reused only under the same settings."""
        return {
            "method": self.base.method_name,
            "data": str(dataparser_config(self.base).data),
            "iterations": self.base.max_num_iterations,
            "seed": self.base.machine.seed,
            "num_generated": self.num_generated,
            # Only when set, so that the rows of studies made before the option are still reused.
            **({"on_top_of": list(self.on_top_of)} if self.on_top_of else {}),
        }

    def protocol(self) -> GANEvaluationConfig:
        """How every row is scored: the method's evaluation with SWD, on the study's samples from its seed. Each
        row's run scores its quality curve so too (on the curve's own number of samples), and ns-eval on its folder."""
        base = self.base.pipeline.evaluation
        metrics = tuple(base.metrics) + (() if "swd" in base.metrics else ("swd",))
        return dataclasses.replace(base, metrics=metrics, num_generated=self.num_generated, seed=self.base.machine.seed)

    def evaluation_config(self) -> Tuple[GANEvaluationConfig, Optional[str]]:
        """The scoring protocol of every row, as this machine can run it, and why FID is left out (None when it is
        computed)."""
        evaluation = self.protocol()
        if "fid" not in evaluation.metrics:
            return evaluation, FID_NOT_ASKED
        try:
            find_inception_weights(evaluation.inception_weights)
        except InceptionUnavailableError as error:
            CONSOLE.print(f"[yellow]FID/KID: {FID_UNAVAILABLE}; every row is scored by SWD only.[/yellow]")
            CONSOLE.print(escape(str(error)))
            return without_inception_metrics(evaluation), FID_UNAVAILABLE
        return evaluation, None

    # ------------------------------------------------------------------ the study

    def run(self, rows: Optional[Sequence[str]] = None) -> List[RowResult]:
        """Runs the rows (all by default) in the table's order; writes the report after each and returns it."""
        requested = list(ROWS) if rows is None else list(dict.fromkeys(rows))
        unknown = [row for row in requested if row not in ROWS]
        if unknown:
            raise AblationError(f"Unknown ablation rows {unknown}. The rows are: {', '.join(ROWS)}.")
        self.output.mkdir(parents=True, exist_ok=True)
        evaluation, fid_note = self.evaluation_config()
        results = {row: self.stored_result(row) or self.pending(row) for row in ROWS if row in requested}
        # Rows of this study finished by earlier commands stay in the table.
        results.update({row: self.stored_result(row, quiet=True) for row in ROWS if row not in requested})
        results = {row: result for row, result in results.items() if result is not None}
        if fid_note is None:
            self.add_missing_fid(results.values(), evaluation)
        order = [row for row in ROWS if row in results]
        self.write_report([results[row] for row in order])
        for row in order:
            if results[row].status == "pending":
                results[row] = self.run_row(row, evaluation, fid_note)
                self.write_report([results[row] for row in order])
        final = [results[row] for row in order]
        CONSOLE.print(console_table(final, self.title()))
        CONSOLE.print(f"[bold green]Wrote[/bold green] {self.output / REPORT_MARKDOWN} and {self.output / REPORT_JSON}")
        self.plot_curves(final)
        return final

    def plot_curves(self, results: Sequence[RowResult]) -> None:
        """DIR/curves.png: the quality curves of the finished rows that recorded one."""
        curves = {
            result.row: self.output / Path(result.config).parent / METRICS_FILENAME
            for result in results
            if result.status == "done" and result.config is not None
        }
        curves = {row: path for row, path in curves.items() if path.is_file()}
        if curves:
            PlotCommand(
                runs=tuple(curves.values()),
                output=self.output / CURVES_FILENAME,
                labels=tuple(curves),
                title=self.title(),
            ).main()

    def add_missing_fid(self, results: Iterable[RowResult], evaluation: GANEvaluationConfig) -> None:
        """Adds FID and KID to finished rows that were scored without the Inception weights, from their kept samples."""
        real_summaries: RealSummaries = {}  # the rows' training images are the same: one Inception pass
        for result in results:
            if result.status != "done" or "fid" in result.metrics or result.kept_samples is None:
                continue
            kept = self.output / result.kept_samples
            if result.config is None or not kept.is_file():
                CONSOLE.print(f"[yellow]{result.row} has no FID and its kept samples {escape(str(kept))} are missing.")
                continue
            (scores,) = score_kept_samples(self.output / result.config, [kept], evaluation, real_summaries)
            result.metrics.update(scores)
            result.fid_note = None
            write_json(self.output / result.row / RESULT_FILENAME, dataclasses.asdict(result))
            CONSOLE.print(f"[bold]{result.row}[/bold]: FID {scores['fid']:.2f} from the samples it kept.")

    def pending(self, row: str) -> RowResult:
        """A row not run yet, with the fields it changes."""
        changes = config_changes(self.base, row_config(self.base, row))
        description = ROWS[row].description
        if row == "baseline" and self.on_top_of:
            description = f"the method with {' + '.join(self.on_top_of)}"
        return RowResult(row=row, description=description, status="pending", study=self.settings, changes=changes)

    def stored_result(self, row: str, quiet: bool = False) -> Optional[RowResult]:
        """The row's finished result from an earlier command, if any; refuses one from a study with other settings."""
        path = self.output / row / RESULT_FILENAME
        if not path.is_file():
            return None
        try:
            result = RowResult(**json.loads(path.read_text(encoding="utf8")))
        except (ValueError, TypeError) as error:
            if not quiet:
                CONSOLE.print(f"[yellow]Ignoring {escape(str(path))}, unreadable ({error}); training {row} again.")
            return None
        if result.study != self.settings:
            if quiet:
                return None
            differences = {
                key: (value, self.settings.get(key))
                for key, value in result.study.items()
                if self.settings.get(key) != value
            }
            raise AblationError(
                f"{path.parent} holds the row '{row}' of another study (stored vs asked: {differences}). Use another "
                f"--output for this study, or delete {path.parent} to train the row again."
            )
        if quiet:
            return result
        if result.status == "failed":
            CONSOLE.print(
                f"[yellow]Reusing [bold]{row}[/bold], which failed in an earlier command: "
                f"{escape(result.message or '')}\nIt would end the same way from the same seed; delete "
                f"{escape(str(path))} to train it again (after a fix)."
            )
        else:
            CONSOLE.print(f"Reusing [bold]{row}[/bold], finished earlier ({escape(str(path))}).")
        return result

    def unfinished_checkpoint(self, row_folder: Path, runs: Path) -> Optional[Path]:
        """The newest checkpoint of a row's unfinished runs, if they began under this study's settings: the row
        continues from it (the trainer's --max-num-iterations counts the whole run, so it ends on the study's
        budget), exactly as it would have gone on."""
        models = runs.glob("*/nerfstudio_models")
        checkpoints = sorted((path for run in models for path in saved_checkpoints(run)), key=lambda path: path.name)
        started = row_folder / STUDY_FILENAME
        if not checkpoints or not started.is_file():
            return None
        try:
            settings = json.loads(started.read_text(encoding="utf8"))
        except ValueError:
            return None
        return checkpoints[-1] if settings == self.settings else None

    def title(self) -> str:
        """The table's caption: the settings every row shares."""
        s = self.settings
        on_top_of = f" (every row on top of {' + '.join(self.on_top_of)})" if self.on_top_of else ""
        return (
            f"Ablation of {s['method']}{on_top_of} on {s['data']}: {s['iterations']} iterations, seed {s['seed']}, "
            f"{s['num_generated']} EMA samples scored, on {device_name(self.base)}"
        )

    def write_report(self, results: Sequence[RowResult]) -> None:
        """DIR/ablation.md and DIR/ablation.json, for the rows so far."""
        notes = (
            f"{self.title()}.\n\nseconds: training wall-clock without the quality curve's scoring. SWD: sliced "
            "Wasserstein distance x1000 of EMA samples to the training images; FID: Frechet Inception distance. Lower "
            "is better for both. Each row's run folder (config.yml for ns-viewer, ns-render, ns-eval) is listed in "
            "ablation.json.\n"
        )
        machines = machines_note(results)
        if machines:
            notes += f"\n{machines}"
        with atomic_output(self.output / REPORT_MARKDOWN) as temporary:
            temporary.write_text(f"# Ablation\n\n{notes}\n{markdown_table(results)}\n", encoding="utf8")
        write_json(
            self.output / REPORT_JSON,
            {
                "study": self.settings,
                "device": device_name(self.base),
                "rows": [dataclasses.asdict(result) for result in results],
            },
        )

    # ------------------------------------------------------------------ one row

    def run_row(self, row: str, evaluation: GANEvaluationConfig, fid_note: Optional[str]) -> RowResult:
        """Trains, scores and draws one row; returns its result (also stored, last, when it is finished)."""
        config = row_config(self.base, row)
        config.pipeline.evaluation = self.protocol()
        result = self.pending(row)
        reason = unfit_reason(config)
        if reason is None and row != "baseline" and not result.changes:
            reason = f"it changes nothing in {config.method_name} as the study configures it"
        if reason is not None:
            CONSOLE.print(f"[yellow]Skipping {row}: {escape(reason)}.")
            return dataclasses.replace(result, status="skipped", message=reason)

        row_folder = self.output / row
        runs = row_folder / config.method_name
        checkpoint = self.unfinished_checkpoint(row_folder, runs)
        if checkpoint is not None:
            CONSOLE.print(f"Continuing the unfinished run of {row} from {escape(str(checkpoint))}.")
            config.load_dir = checkpoint.parent
        elif runs.exists():
            CONSOLE.print(f"Removing the unfinished run of {row} in {escape(str(runs))}.")
            shutil.rmtree(runs)
        write_json(row_folder / STUDY_FILENAME, self.settings)
        config.output_dir = self.output
        config.experiment_name = row
        config.vis = STUDY_VISUALIZER
        config.set_timestamp()
        started, attempt = config.timestamp, 1
        while config.get_base_dir().exists():  # continued within the second its run began: a folder of its own
            attempt += 1
            config.timestamp = f"{started}_{attempt}"
        result.config = str((config.get_base_dir() / "config.yml").relative_to(self.output))
        result.machine = trained_on(config)
        CONSOLE.rule(f"[bold]{row}[/bold]: {escape(ROWS[row].description)}")

        trainer: Optional[HyperNeRFGANTrainer] = None
        start = scoring_start = time.perf_counter()
        try:
            with own_event_writers():
                config.save_config()
                _set_random_seed(config.machine.seed)
                trainer = config.setup(local_rank=0, world_size=1)
                trainer.setup()
                trainer.train()
                result.train_seconds = trainer.clock.train_seconds  # without the quality curve's scoring
                result.iterations = config.max_num_iterations
                scoring_start = time.perf_counter()
                final_point = self.final_curve_point(config, evaluation, fid_note)
                if final_point is not None:
                    result.metrics = point_scores(final_point)
                    if fid_note == FID_UNAVAILABLE:
                        kept = config.get_base_dir() / final_point["samples"]
                        result.kept_samples = Path(os.path.relpath(kept, self.output)).as_posix()
                else:
                    result.metrics = self.score_row(trainer, evaluation, fid_note, row_folder / KEPT_SAMPLES_FILENAME)
                    if fid_note == FID_UNAVAILABLE:
                        result.kept_samples = str((row_folder / KEPT_SAMPLES_FILENAME).relative_to(self.output))
            trainer = None
            release_memory()
            swd = result.metrics.get("swd", math.nan)
            if not math.isfinite(swd):
                message = f"SWD is {swd}: the generator renders non-finite colours"
                return self.failed(result, None, start, message, ended_by_itself=True)
            self.draw_samples(config)
        except SystemExit as error:
            message = training_failure(error)
            if message is None:
                if error.code in INTERRUPTED_EXIT_CODES:
                    CONSOLE.print(
                        f"Stopped during {row}. Run the same command again to continue (finished rows stay, {row} "
                        "continues from its checkpoint)."
                    )
                raise
            return self.failed(result, trainer, start, message, ended_by_itself=True)
        except Exception as error:  # pylint: disable=broad-except
            # Out of memory, a setting the code rejects, ...: this row's problem, not the study's.
            CONSOLE.print_exception(max_frames=4)
            return self.failed(result, trainer, start, f"{type(error).__name__}: {error}", ended_by_itself=False)
        finally:
            trainer = None
            release_memory()

        result.fid_note = fid_note if "fid" not in result.metrics else None
        result.samples = str((row_folder / SAMPLES_FILENAME).relative_to(self.output))
        result.eval_seconds = time.perf_counter() - scoring_start
        result.status = "done"
        write_json(row_folder / RESULT_FILENAME, dataclasses.asdict(result))
        CONSOLE.print(f"[bold green]{row} done[/bold green]: SWD {result.metrics['swd']:.2f}.")
        return result

    @staticmethod
    def final_curve_point(
        config: HyperNeRFGANTrainerConfig, evaluation: GANEvaluationConfig, fid_note: Optional[str]
    ) -> Optional[Dict[str, Any]]:
        """The last point of the row's quality curve if it scored the trained generator as the row is scored: after
        the last iteration, on as many samples, with every metric (and, without the Inception weights, keeping its
        samples for a later FID). It is then the row's score, which a second scoring would only repeat."""
        curve = config.get_base_dir() / METRICS_FILENAME
        points = read_curve(curve) if curve.is_file() else []
        if not points:
            return None
        point = points[-1]
        if point["step"] != config.max_num_iterations or point.get("num_generated") != evaluation.num_generated:
            return None
        if any(name not in point for name in evaluation.metrics):
            return None
        if fid_note == FID_UNAVAILABLE and "samples" not in point:
            return None
        return point

    @staticmethod
    def score_row(
        trainer: HyperNeRFGANTrainer, evaluation: GANEvaluationConfig, fid_note: Optional[str], kept: Path
    ) -> Dict[str, float]:
        """The row's scores; without the Inception weights, its samples are also kept in `kept` for a later FID."""
        pipeline = trainer.pipeline
        if fid_note != FID_UNAVAILABLE:
            return evaluate_generator(pipeline, evaluation, pipeline.config.swd)
        return evaluate_keeping_samples(pipeline, evaluation, kept, {"run": str(trainer.config.get_base_dir())})

    def draw_samples(self, config: HyperNeRFGANTrainerConfig) -> None:
        """The row's sample sheet, by `hypernerfgan samples` from the run folder (which so opens like any run)."""
        SamplesCommand(
            load_config=config.get_base_dir() / "config.yml",
            output=self.output / config.experiment_name / SAMPLES_FILENAME,
            num_seeds=self.sample_seeds,
            views=self.sample_views,
            resolution=dataparser_config(config).resolution,
        ).main()

    def failed(
        self,
        result: RowResult,
        trainer: Optional[HyperNeRFGANTrainer],
        start: float,
        message: str,
        ended_by_itself: bool,
    ) -> RowResult:
        """The row as failed, with how far its training got. A training that `ended_by_itself` (it diverged, it
        collapsed, its options cannot work) would end so again from the same seed: that is a result, stored as a
        finished row's is. Any other failure (out of memory, ...) belongs to the machine: a rerun trains the row again,
        from the start, not from its last checkpoint (which led to the failure), since its settings marker goes."""
        CONSOLE.print(f"[bold red]{result.row} failed[/bold red]: {escape(message)}")
        (self.output / result.row / STUDY_FILENAME).unlink(missing_ok=True)
        if result.iterations is None:  # it failed in training: how far it got
            completed = trainer.last_completed_step if trainer is not None else None
            result = dataclasses.replace(
                result,
                iterations=completed + 1 if completed is not None else 0,
                train_seconds=trainer.clock.train_seconds if trainer is not None else time.perf_counter() - start,
            )
        result = dataclasses.replace(result, status="failed", message=message)
        if ended_by_itself:
            write_json(self.output / result.row / RESULT_FILENAME, dataclasses.asdict(result))
        return result


def device_name(config: HyperNeRFGANTrainerConfig) -> str:
    """The device rows train on, for the report."""
    if config.machine.device_type == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name()})"
    return config.machine.device_type


def trained_on(config: HyperNeRFGANTrainerConfig) -> str:
    """The machine a row trains on, as precisely as it changes the row's figures: the GPU's name or the CPU's model
    and the threads torch computes with (the same seed ends elsewhere with another count), and torch's version."""
    device = device_name(config)
    if device == "cpu":
        threads = torch.get_num_threads()
        device = f"cpu ({cpu_description()}, {threads} thread{'s' if threads > 1 else ''})"
    return f"{device}, torch {torch.__version__}"


def machines_note(results: Sequence[RowResult]) -> str:
    """The report's line on where its rows trained: one machine, or which rows trained on which (rows reused from
    an earlier command may come from another machine, whose figures differ by about a seed's noise)."""
    rows_by_machine: Dict[str, List[str]] = {}
    for result in results:
        if result.machine is not None:
            rows_by_machine.setdefault(result.machine, []).append(result.row)
    if not rows_by_machine:
        return ""
    if len(rows_by_machine) == 1:
        return f"Every row trained on {next(iter(rows_by_machine))}.\n"
    machines = "; ".join(f"{machine}: {', '.join(rows)}" for machine, rows in rows_by_machine.items())
    return (
        f"The rows trained on {len(rows_by_machine)} machines, whose figures differ by about a seed's noise (compare "
        f"rows of one machine): {machines}.\n"
    )


def study_config(
    method: str,
    data: Path,
    iterations: int,
    seed: int,
    curve_interval_images: Optional[int] = None,
    curve_num_generated: Optional[int] = None,
    curve_at_start: bool = True,
) -> HyperNeRFGANTrainerConfig:
    """A registered method's config set up for a study: its data, its fixed budget, its seed, how often its quality
    curve is scored and on how many samples (None: as the method does), and whether its untrained generator is."""
    config = method_config(method)
    config.pipeline.datamanager.data = None
    config.pipeline.datamanager.dataparser.data = data
    config.max_num_iterations = iterations
    config.machine.seed = seed
    if curve_interval_images is not None:
        config.quality_curve = dataclasses.replace(
            config.quality_curve, interval_images=curve_interval_images, interval_growth=1.0
        )  # evenly spaced: rows compare point by point
    if curve_num_generated is not None:
        config.quality_curve = dataclasses.replace(config.quality_curve, num_generated=curve_num_generated)
    if not curve_at_start:
        config.quality_curve = dataclasses.replace(config.quality_curve, at_start=False)
    return config


# ----------------------------------------------------------------------------------------------------------------------
# The command.


@dataclass
class AblateCommand:
    """Train and compare ablations of a method (samples per ray, patch size, augmentation, R1) into one table."""

    method: MethodName
    """The method every row starts from: hypernerfgan, hypernerfgan-lite or hypernerfgan-tiny."""
    data: Path
    """Training images: a built-in set (cars, chairs, planes), a folder, a zip or an SRN folder, as for ns-train."""
    iterations: int
    """Training iterations of the baseline. Every row sees the same images (iterations x batch): rows that change the
    batch (`batch-xF`) train for iterations / F."""
    output: Path
    """Study folder: DIR/<row>/ per row, DIR/ablation.md and DIR/ablation.json. Reuse it to continue a study."""
    rows: Tuple[RowName, ...] = tuple(ROWS)
    """Rows to run, by name; default: all of them."""
    num_generated: int = DEFAULT_NUM_GENERATED
    """EMA samples scored per row, against all training images (the papers use 1k to 50k)."""
    seed: Tuple[int, ...] = (0,)
    """Seed of every row's training (as ns-train seeds it) and of the scored samples; several seeds run the study once
    per seed (DIR/seed-S/) and compare the rows across them (DIR/seeds.md)."""
    sample_seeds: int = DEFAULT_SAMPLE_SEEDS
    """Objects (rows) on each row's sample sheet."""
    sample_views: int = DEFAULT_SAMPLE_VIEWS
    """Views (columns) per object on each row's sample sheet."""
    curve_interval_images: Optional[int] = None
    """Score each row's quality curve (metrics.jsonl in its run folder) every this many images, evenly spaced; None:
    as the method does; 0: no curve."""
    curve_num_generated: Optional[int] = None
    """EMA samples each point of a row's curve scores; None: as the method does (1,000 for the GPU presets, whose
    points on a CPU take minutes each; 128 for the tiny preset). The table's scores use --num-generated."""
    curve_at_start: bool = True
    """Score each row's untrained generator as its curve's first point (0 images). Rows that change only how the
    networks train (rates, R1, the EMA) start from the baseline's generator, so within a seed that point is the
    baseline's; on a CPU it is one more evaluation per row, minutes at 1,000 samples."""
    on_top_of: Tuple[RowName, ...] = ()
    """Rows whose changes every row starts from, the baseline included (e.g. lr-x4: the other candidates with the
    faster learning rate); default: none, every row changes the method alone."""
    jobs: int = 1
    """Seeds trained at once (with several seeds), each in a process of its own with its share of the CPU's threads
    (OMP_NUM_THREADS, unless set): for a GPU one small training leaves mostly idle, or cores one tiny model does not
    fill. A seed ends at other figures with another thread count, so rows compare under the same jobs. 1: one seed
    after another in this process."""

    def command_line(self, seed: int, output: Path) -> List[str]:
        """The `hypernerfgan ablate` arguments of this study for one seed into `output`, as a process of its own."""
        arguments = ["--method", self.method, "--data", str(self.data), "--iterations", str(self.iterations)]
        arguments += ["--output", str(output), "--rows", *self.rows, "--num-generated", str(self.num_generated)]
        arguments += ["--seed", str(seed), "--sample-seeds", str(self.sample_seeds)]
        arguments += ["--sample-views", str(self.sample_views)]
        if self.curve_interval_images is not None:
            arguments += ["--curve-interval-images", str(self.curve_interval_images)]
        if self.curve_num_generated is not None:
            arguments += ["--curve-num-generated", str(self.curve_num_generated)]
        if not self.curve_at_start:
            arguments += ["--no-curve-at-start"]
        if self.on_top_of:
            arguments += ["--on-top-of", *self.on_top_of]
        return arguments

    def seed_process(self, seed: int) -> List[str]:
        """The command that trains one seed's study in a process of its own."""
        cli = [sys.executable, "-m", "hypernerfgan_ns.scripts.cli", "ablate"]
        return cli + self.command_line(seed, self.seed_folder(seed))

    @property
    def folder(self) -> Path:
        """The study folder, absolute."""
        return Path(self.output).expanduser().resolve()

    def seed_folder(self, seed: int) -> Path:
        """Where the study of one of several seeds goes."""
        return self.folder / SEED_FOLDER.format(seed=seed)

    def train_side_by_side(self, seeds: Sequence[int]) -> None:
        """Each seed's study in a process of its own, `jobs` at a time; refuses to go on if any did not finish (a
        rerun of the same command continues them)."""
        threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // self.jobs))
        environment = {**os.environ, "OMP_NUM_THREADS": threads}
        waiting, running, failed = list(seeds), {}, []
        each = f"{threads} thread{'' if threads == '1' else 's'} each"
        CONSOLE.print(f"Training seeds {', '.join(map(str, seeds))}, {self.jobs} at a time, {each}.")

        def forward(signum: int, _frame: Any) -> None:  # a time limit's SIGTERM reaches this process only
            for process, _ in running.values():
                process.send_signal(signum)

        previous = signal.signal(signal.SIGTERM, forward)
        try:
            while waiting or running:
                while waiting and len(running) < self.jobs:
                    seed = waiting.pop(0)
                    folder = self.seed_folder(seed)
                    folder.mkdir(parents=True, exist_ok=True)
                    log = open(folder / SEED_LOG, "a", encoding="utf8")
                    try:
                        process = subprocess.Popen(
                            self.seed_process(seed), stdout=log, stderr=subprocess.STDOUT, env=environment
                        )
                    except BaseException:
                        log.close()
                        raise
                    running[seed] = (process, log)
                    CONSOLE.print(f"Seed {seed}: started, its log in {folder / SEED_LOG}")
                for seed, (process, log) in list(running.items()):
                    if process.poll() is not None:
                        log.close()
                        del running[seed]
                        if process.returncode == 0:
                            CONSOLE.print(f"Seed {seed}: finished")
                        else:
                            CONSOLE.print(f"Seed {seed}: stopped (exit status {process.returncode})")
                            failed.append(seed)
                time.sleep(SEED_POLL_SECONDS)
        except BaseException as error:
            # Ctrl-C reached the seeds' processes too; any other error (a process that could not start) stops them
            # as Ctrl-C does, so that none trains on unwatched: each saves a checkpoint and stops.
            interrupted = isinstance(error, KeyboardInterrupt)
            for process, log in running.values():
                if not interrupted:
                    process.send_signal(signal.SIGINT)
                process.wait()
                log.close()
            if not interrupted:
                raise
            CONSOLE.print("[yellow]Interrupted. Run the same command again to continue the seeds' studies.[/yellow]")
            sys.exit(INTERRUPTED_EXIT_CODE)
        finally:
            signal.signal(signal.SIGTERM, previous)
        if failed:
            logs = ", ".join(str(self.seed_folder(seed) / SEED_LOG) for seed in failed)
            raise AblationError(
                f"The studies of seeds {', '.join(map(str, failed))} did not finish (see {logs}). Run the same command "
                "again to continue them; finished rows are reused."
            )

    def study(self, seed: int, output: Path) -> AblationStudy:
        """The study of one seed."""
        return AblationStudy(
            base=study_config(
                self.method,
                self.data,
                self.iterations,
                seed,
                self.curve_interval_images,
                self.curve_num_generated,
                self.curve_at_start,
            ),
            output=output,
            num_generated=self.num_generated,
            sample_seeds=self.sample_seeds,
            sample_views=self.sample_views,
            on_top_of=self.on_top_of,
        )

    def main(self) -> None:
        """Runs the study (once per seed) and prints its table (and the seeds' comparison)."""
        seeds = tuple(dict.fromkeys(self.seed))
        if not seeds:
            raise AblationError("--seed needs at least one seed.")
        if self.jobs < 1:
            raise AblationError(f"--jobs must be at least 1, got {self.jobs}.")
        if len(seeds) == 1:
            self.study(seeds[0], self.folder).run(self.rows)
            return
        studies = {seed: self.study(seed, self.seed_folder(seed)) for seed in seeds}
        if self.jobs > 1:
            self.train_side_by_side(seeds)  # then the studies below reuse every row
        results = {seed: study.run(self.rows) for seed, study in studies.items()}
        comparisons = compare_seeds(results)
        write_seed_comparison(self.folder, comparisons, seeds)
        table = Table(title=f"Ablation of {self.method} across seeds {', '.join(map(str, seeds))}")
        for name in seed_comparison_header(comparisons, seeds):
            table.add_column(name, justify="left" if name in ("row", "against the baseline") else "right")
        for comparison in comparisons:
            table.add_row(*(escape(cell) for cell in comparison.cells()))
        CONSOLE.print(table)
        CONSOLE.print(f"[bold green]Wrote[/bold green] {self.folder / SEEDS_MARKDOWN} and {self.folder / SEEDS_JSON}")
