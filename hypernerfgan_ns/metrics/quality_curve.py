"""The quality curve: the EMA generator scored every N training images, so that quality per GPU-minute shows.

A 3D GAN is judged by how good its objects are after the GPU time one can afford. During `ns-train`, every
`interval_images` images shown to the discriminator (over all devices), the EMA generator is scored with ns-eval's
protocol (`metrics.evaluation`) on a small fixed sample: SWD always, FID and KID when the Inception weights are on
the machine. The training images are summarised once per run; the generated sample is the same seeded latents and
cameras at every point, so the points differ only by what the generator learned.

Each point goes to tensorboard (under "Quality/") and is appended to `metrics.jsonl` in the run folder, one JSON
object per line:

    {"step": 1000, "images_seen": 4000, "wall_seconds": 96.0, "train_seconds": 88.4, "swd": 41.3, "fid": 120.5,
     "kid": 0.09, "kid_std": 0.002, "num_generated": 1000, "num_real": 2000}

`step` counts finished iterations, `wall_seconds` is the wall-clock time since training began (summed over resumed
sessions), and `train_seconds` the same without the time spent scoring: the x-axis of quality per GPU-minute.
`hypernerfgan plot RUN...` draws the curves of several runs side by side. The trainer scores in nerfstudio's evaluation
slot after an iteration, outside its timer, so nerfstudio's "Train Iter (time)", "Train Rays / Sec" and ETA leave the
scoring out as `train_seconds` does.

A GPU machine may lack the Inception weights and any package index to fetch them. Its points then hold SWD only, and
keep the samples they scored, as a zip of PNGs in the run folder's `curve_samples/` named in the point
(`"samples": "curve_samples/images_000002500.zip"`); `hypernerfgan score-curve RUN` adds FID and KID to those points
wherever the weights are, with the same code, so the whole curve of a GPU run can be drawn.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Literal, Optional, Tuple

import torch

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.errors import ExportError, InceptionUnavailableError
from hypernerfgan_ns.metrics.evaluation import (
    GANEvaluationConfig,
    ImageSetSummary,
    evaluate_generator,
    load_feature_extractor,
    summarize_training_images,
    without_inception_metrics,
)
from hypernerfgan_ns.metrics.sample_archive import evaluate_keeping_samples
from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from nerfstudio.configs.base_config import PrintableConfig
from nerfstudio.utils import profiler, writer
from nerfstudio.utils.rich_utils import CONSOLE

METRICS_FILENAME = "metrics.jsonl"
"""The curve's file in the run folder."""

TENSORBOARD_GROUP = "Quality"
"""Tensorboard section of the curve's scalars."""

CURVE_METRICS = ("fid", "kid", "swd")
"""The scores a point may hold, in the order they are printed and plotted."""

POINT_PROGRESS_FIELDS = ("step", "images_seen", "wall_seconds", "train_seconds")
"""What a point says of training's progress, beside the evaluation's results (and "samples", when it keeps them)."""

CURVE_SAMPLES_DIRNAME = "curve_samples"
"""Folder of the run folder where points keep their samples."""

CURVE_SAMPLES_NAME = "images_{images:09d}.zip"
"""A point's kept samples, named by the images seen, so that sorted order is the curve's order."""


@dataclass
class QualityCurveConfig(DefaultsForMissingFields, PrintableConfig):
    """When the EMA generator is scored during training, and on how many samples."""

    interval_images: int = 5_000
    """Score every time this many more training images have been shown (over all devices); 0: no curve."""
    interval_growth: float = 1.0
    """How the points spread out: 1 takes them every `interval_images` images; g > 1 at `interval_images` times 1, g,
    g^2, ... images (2: 100, 200, 400, 800, ... for an interval of 100): dense while the generator changes fast, a few
    points over a long run where scoring would otherwise take more time than training (a CPU without a GPU's speed)."""
    num_generated: int = 1_000
    """EMA samples per point, rendered at full resolution with ns-eval's protocol (its seed, truncation, metrics)."""
    at_start: bool = True
    """Also score the untrained generator before the first iteration (images seen 0), where the curve starts."""
    at_end: bool = True
    """Also score the generator when training finishes (not when it is interrupted), if the last point is older."""
    keep_samples: Literal["without-inception", "always", "never"] = "without-inception"
    """Keep each point's samples as a zip of PNGs in the run folder's curve_samples/ (about 8 MB per 1,000 at 128 px:
    3 GB over the GPU presets' 500,000 iterations), for `hypernerfgan score-curve` to add FID and KID elsewhere: when
    this machine lacks the Inception weights, always, or never."""

    def __post_init__(self) -> None:
        if self.interval_images < 0 or self.num_generated < 1 or not self.interval_growth >= 1.0:
            raise ValueError(
                "The quality curve needs interval_images >= 0 (0: off), num_generated >= 1 and interval_growth >= 1 "
                f"(1: evenly spaced), got {self.interval_images}, {self.num_generated} and {self.interval_growth}."
            )

    @property
    def enabled(self) -> bool:
        """Whether any point is scored."""
        return self.interval_images > 0

    def is_due(self, images_seen: int, images_per_step: int) -> bool:
        """Whether the iteration that brought the images seen to `images_seen` crossed a point of the schedule."""
        interval = self.interval_images
        if interval <= 0:
            return False
        before = images_seen - images_per_step
        if self.interval_growth == 1.0:
            return images_seen // interval > before // interval
        point = interval
        while point <= before:  # a few dozen points at most: the schedule grows geometrically
            point = max(point + 1, round(point * self.interval_growth))
        return point <= images_seen

    def describe_interval(self) -> str:
        """The schedule in words, for messages."""
        if self.interval_growth == 1.0:
            return f"every {self.interval_images:,} images"
        growth = self.interval_growth
        return f"at {self.interval_images:,} images times 1, {growth:g}, {growth**2:g}, ..."


class ScoringInterrupted(BaseException):
    """Raised into a point being scored when training is asked to stop (Ctrl-C): a point takes seconds on a GPU and
    minutes on a CPU, and the stop was promised after the iteration. A BaseException, as KeyboardInterrupt is, so
    that no `except Exception` on its way catches it."""


class TrainingClock:
    """Wall-clock seconds of a training, summed over resumed sessions, with the time spent scoring kept apart.

    Args:
        wall_seconds: seconds of earlier sessions (from the checkpoint being resumed).
        eval_seconds: of them, the seconds spent scoring.
    """

    def __init__(self, wall_seconds: float = 0.0, eval_seconds: float = 0.0) -> None:
        self._wall_before = wall_seconds
        self.eval_seconds = eval_seconds
        self._started = time.perf_counter()

    def restart(self) -> None:
        """Counts from now on top of the earlier sessions' seconds (call when the training loop starts)."""
        self._started = time.perf_counter()

    @property
    def wall_seconds(self) -> float:
        """Seconds since training began."""
        return self._wall_before + time.perf_counter() - self._started

    @property
    def train_seconds(self) -> float:
        """Seconds since training began, the time spent scoring left out."""
        return self.wall_seconds - self.eval_seconds

    @contextlib.contextmanager
    def scoring(self) -> Iterator[None]:
        """Counts the block as scoring time."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.eval_seconds += time.perf_counter() - start

    def state_dict(self) -> Dict[str, float]:
        """What a checkpoint keeps, so that a resumed run's clock continues."""
        return {"wall_seconds": self.wall_seconds, "eval_seconds": self.eval_seconds}

    @classmethod
    def from_state_dict(cls, state: Dict[str, float]) -> "TrainingClock":
        return cls(wall_seconds=float(state["wall_seconds"]), eval_seconds=float(state["eval_seconds"]))


def point_scores(point: Dict[str, Any]) -> Dict[str, Any]:
    """What the evaluation returned at a point (its scores and the samples' counts, as `evaluate_generator` gives
    them), without training's progress or the kept samples' path."""
    return {name: value for name, value in point.items() if name not in (*POINT_PROGRESS_FIELDS, "samples")}


def read_curve(path: Path) -> List[Dict[str, Any]]:
    """The points of a metrics.jsonl, in the order they were written; unreadable lines are skipped with a note."""
    points = []
    for number, line in enumerate(path.read_text(encoding="utf8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            point = json.loads(line)
        except ValueError:
            CONSOLE.print(f"[yellow]{path}, line {number}: not JSON (a run stopped while writing?); skipped.")
            continue
        if isinstance(point, dict) and "images_seen" in point:
            points.append(point)
    return points


def tensorboard_step_of(point: Dict[str, Any]) -> int:
    """The tensorboard step of a point: that of the iteration after which it was scored (0 for the first point, scored
    before any, as nerfstudio's steps start at 0)."""
    return max(point["step"] - 1, 0)


def curve_file(run: Path) -> Path:
    """The metrics.jsonl of a run given as its folder, its config.yml or the file itself."""
    run = run.expanduser()
    candidates = [run] if run.suffix == ".jsonl" else [run / METRICS_FILENAME, run.parent / METRICS_FILENAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ExportError(
        f"No {METRICS_FILENAME} for {run}. Pass a run folder (outputs/<data>/<method>/<timestamp>), its config.yml "
        "or the metrics.jsonl itself; the curve is written during ns-train every --quality-curve.interval-images."
    )


class QualityCurve:
    """Scores the EMA generator at the configured points of a training and records each point.

    Args:
        config: when and how much to score.
        pipeline: the training pipeline (its EMA generator, training images and evaluation protocol).
        path: the run's metrics.jsonl.
        clock: the training's clock.
    """

    def __init__(
        self,
        config: QualityCurveConfig,
        pipeline,
        path: Path,
        clock: TrainingClock,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.path = path
        self.clock = clock
        self.last_images_seen: Optional[int] = None
        self.evaluation = dataclasses.replace(pipeline.config.evaluation, num_generated=config.num_generated)
        self._extractor: Any = None
        self._real: Optional[ImageSetSummary] = None
        self._inception_missing = False
        self._size_reported = False
        self.scoring = False
        """Whether a point is being scored now: the trainer's Ctrl-C handler then raises `ScoringInterrupted`."""

    # ------------------------------------------------------------------ when

    def images_seen(self, step: int) -> int:
        """Training images shown after iteration `step` (counted from 0; -1: before the first), as the pipeline
        counts them for its other schedules."""
        return self.pipeline.images_seen(step)

    def start(self, first_step: int) -> None:
        """Called before the first iteration: the point at zero images for a new run."""
        if self.config.enabled and self.config.at_start and first_step == 0:
            self.record(step=-1)

    def after_iteration(self, step: int) -> None:
        """Called after every iteration: a point when the interval is crossed."""
        images = self.images_seen(step)
        if self.config.is_due(images, images - self.images_seen(step - 1)):
            self.record(step)

    def finish(self, step: int) -> None:
        """Called when training ends: a last point, unless one was just taken."""
        if self.config.enabled and self.config.at_end and self.last_images_seen != self.images_seen(step):
            self.record(step)

    # ------------------------------------------------------------------ scoring

    def prepare(self) -> Tuple[GANEvaluationConfig, ImageSetSummary]:
        """The protocol this machine can run and the training images' summary, computed at the first point."""
        if self._real is None:
            device = torch.device(self.pipeline.device)
            try:
                self._extractor = load_feature_extractor(self.evaluation, device)
            except InceptionUnavailableError as error:
                self._inception_missing = True
                kept = (
                    f" Its samples are kept in {self.path.parent / CURVE_SAMPLES_DIRNAME}: `hypernerfgan score-curve "
                    f"{self.path.parent}` adds FID and KID where the weights are."
                    if self.keeps_samples else ""
                )
                CONSOLE.print(f"[yellow]The quality curve reports SWD only.{kept} {error}")
                self.evaluation = without_inception_metrics(self.evaluation)
            self._real = summarize_training_images(self.pipeline, self.evaluation, self._extractor)
        return self.evaluation, self._real

    @property
    def keeps_samples(self) -> bool:
        """Whether points keep their samples (known once the first point has looked for the Inception weights)."""
        keep = self.config.keep_samples
        return keep == "always" or (keep == "without-inception" and self._inception_missing)

    def report_kept_size(self, archive: Path) -> None:
        """Says once per session what keeping samples costs on disk, and how to stop it."""
        megabytes = archive.stat().st_size / 1e6
        CONSOLE.print(
            f"[yellow]Kept the point's {self.evaluation.num_generated:,} samples in {archive} ({megabytes:.1f} MB; one "
            f"such file per point, {self.config.describe_interval()}). --quality-curve.keep-samples never stops this."
        )
        self._size_reported = True

    @profiler.time_function
    def record(self, step: int) -> Optional[Dict[str, Any]]:
        """Scores the EMA generator after iteration `step` (-1: before the first) and writes the point; None if a stop
        request (`ScoringInterrupted`) abandoned it. Profiled: the summary ns-train prints at its end gives the seconds
        of a point ("QualityCurve.record"), which nerfstudio's iteration times and ETA leave out."""
        images = self.images_seen(step)
        kept: Dict[str, Any] = {}
        try:
            with self.clock.scoring():
                self.scoring = True
                evaluation, real = self.prepare()
                scoring = {"extractor": self._extractor, "real": real}
                if self.keeps_samples:
                    archive = Path(CURVE_SAMPLES_DIRNAME) / CURVE_SAMPLES_NAME.format(images=images)
                    kept["samples"] = archive.as_posix()
                    metrics = evaluate_keeping_samples(
                        self.pipeline, evaluation, self.path.parent / kept["samples"],
                        {"step": step + 1, "images_seen": images}, **scoring,
                    )
                else:
                    metrics = evaluate_generator(self.pipeline, evaluation, self.pipeline.config.swd, **scoring)
        except ScoringInterrupted:
            # A kept zip appears whole or not at all, so nothing of the point is left.
            CONSOLE.print(f"[yellow]Stopped scoring the quality point at {images:,} images; the curve goes without it.")
            return None
        finally:
            self.scoring = False
            self.pipeline.train()
        if kept and not self._size_reported:
            self.report_kept_size(self.path.parent / kept["samples"])
        point = {
            "step": step + 1,
            "images_seen": images,
            "wall_seconds": round(self.clock.wall_seconds, 3),
            "train_seconds": round(self.clock.train_seconds, 3),
            **metrics,
            **kept,
        }
        self.write(point)
        self.last_images_seen = images
        return point

    def write(self, point: Dict[str, Any]) -> None:
        """Appends the point to metrics.jsonl, logs it to tensorboard (at the iteration's step; the training loop
        writes the events out) and prints it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf8") as file:
            file.write(json.dumps(point) + "\n")
        scores = self.log(point)
        shown = ", ".join(f"{name.upper()} {value:.4g}" for name, value in scores.items())
        CONSOLE.print(
            f"[bold]Quality[/bold] after {point['images_seen']:,} images "
            f"({point['train_seconds'] / 60:.1f} min): {shown}"
        )

    @staticmethod
    def log(point: Dict[str, Any]) -> Dict[str, float]:
        """Puts the point's scores and images seen in nerfstudio's event storage (at `tensorboard_step_of`); returns
        the scores."""
        scores = {name: point[name] for name in CURVE_METRICS if name in point}
        for name, value in {**scores, "images_seen": point["images_seen"]}.items():
            writer.put_scalar(name=f"{TENSORBOARD_GROUP}/{name}", scalar=value, step=tensorboard_step_of(point))
        return scores

    def continue_from(self, previous: Path, resumed_step: int) -> None:
        """Starts this run's metrics.jsonl with the points of the run being resumed, up to the resumed step."""
        if not previous.is_file() or previous.resolve() == self.path.resolve():
            return
        points = [point for point in read_curve(previous) if point["step"] <= resumed_step + 1]
        for point in points:
            if "samples" in point:  # kept in the earlier run's folder: the path from this one's
                kept = os.path.relpath(previous.parent / point["samples"], self.path.parent)
                point["samples"] = Path(kept).as_posix()
        self.rewrite(points)

    def rewind_to(self, step: int) -> None:
        """Drops the points after iteration `step` (-1: before the first), with their kept samples: training went back
        there (a collapse rewound), and the curve follows the generator it goes on with. A kept point that shares its
        tensorboard step with iterations dropped (the first one, logged at step 0 with iteration 0) is logged again,
        for tensorboard has discarded that step (the trainer's `purge_logs_after`)."""
        if not self.path.is_file():  # no point written yet
            self.last_images_seen = None
            return
        points = read_curve(self.path)
        for point in points:
            if point["step"] > step + 1 and "samples" in point:
                (self.path.parent / point["samples"]).unlink(missing_ok=True)
        kept = [point for point in points if point["step"] <= step + 1]
        self.rewrite(kept)
        for point in kept:
            if tensorboard_step_of(point) > step:
                self.log(point)

    def rewrite(self, points: List[Dict[str, Any]]) -> None:
        """metrics.jsonl as these points, whole or not at all; the next point is due after the last of them."""
        with atomic_output(self.path) as temporary:  # creates the folder
            temporary.write_text("".join(json.dumps(point) + "\n" for point in points), encoding="utf8")
        self.last_images_seen = points[-1]["images_seen"] if points else None
