"""`hypernerfgan plot`: quality curves of one or several runs, against images seen and against training time.

    hypernerfgan plot outputs/cars/hypernerfgan/A outputs/cars/hypernerfgan/B --output curves.png

Each RUN is a run folder, its config.yml or its metrics.jsonl (`metrics.quality_curve`). The figure has one row per
metric found (FID, KID, SWD; lower is better) and two columns: the score against thousands of images seen (sample
efficiency) and against minutes of training, scoring excluded (quality per GPU-minute).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import tyro
from rich.markup import escape

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.errors import ExportError
from hypernerfgan_ns.metrics.quality_curve import CURVE_METRICS, METRICS_FILENAME, curve_file, read_curve
from hypernerfgan_ns.scripts.rendering import check_output, report_written
from nerfstudio.utils.rich_utils import CONSOLE

METRIC_LABELS = {"fid": "FID", "kid": "KID", "swd": "SWD x1000"}
"""Axis labels of the metrics."""

X_AXES = (("images_seen", 1e-3, "thousands of images seen"), ("train_seconds", 1 / 60, "minutes of training"))
"""The two x-axes: point key, scale, label."""

PANEL_INCHES = (4.8, 3.0)
"""Size of one panel (width, height)."""

DPI = 120
"""Resolution of the PNG."""


def run_labels(files: Sequence[Path]) -> List[str]:
    """Short names for the runs: the parts of their folders' paths that differ."""
    parts = [file.parent.parts for file in files]
    if len(files) == 1:
        return ["/".join(parts[0][-3:])]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    return ["/".join(p[common:]) or str(file.parent) for p, file in zip(parts, files)]


@dataclass
class PlotCommand:
    """Draw the quality curves (FID, KID, SWD) of runs against images seen and training time into a PNG."""

    runs: tyro.conf.Positional[Tuple[Path, ...]]
    """Run folders, their config.yml, or metrics.jsonl files."""
    output: Path = Path("quality_curves.png")
    """PNG to write."""
    metrics: Tuple[str, ...] = CURVE_METRICS
    """Metrics to draw, those present in at least one run: fid, kid, swd."""
    labels: Optional[Tuple[str, ...]] = None
    """Legend names of the runs, in order; default: the parts of their paths that differ."""
    title: Optional[str] = None
    """Title above the figure."""

    def main(self) -> Path:
        output = self.output.expanduser()
        check_output(output, (".png",), "the quality curves")
        files = self.curve_files()
        curves = [read_curve(file) for file in files]
        labels = list(self.labels) if self.labels else run_labels(files)
        if len(labels) != len(files):
            raise ExportError(f"--labels names {len(labels)} runs but {len(files)} are plotted.")
        metrics = [name for name in self.metrics if any(name in point for curve in curves for point in curve)]
        if not metrics:
            raise ExportError(f"None of {', '.join(self.metrics)} is in {', '.join(str(f) for f in files)}.")
        figure = draw(curves, labels, metrics, self.title)
        with atomic_output(output) as temporary:
            figure.savefig(temporary, format="png", dpi=DPI)
        runs = f"{len(files)} runs" if len(files) > 1 else "1 run"
        report_written(output, f"the curves of {', '.join(metrics)} for {runs}")
        return output

    def curve_files(self) -> List[Path]:
        """The runs' metrics.jsonl. A run folder without one (its curve off, or stopped before its first point) is
        left out with a notice when others have theirs, so `plot outputs/cars/hypernerfgan/*` draws the runs that
        have curves; a path that does not exist, or no curve at all, is an error."""
        files, without = [], []
        for run in self.runs:
            try:
                files.append(curve_file(run))
            except ExportError:
                if not run.expanduser().exists():
                    raise
                without.append(run)
        if not files:
            raise ExportError(
                f"None of {', '.join(str(run) for run in without)} has a {METRICS_FILENAME}: the curve is written "
                "during ns-train every --quality-curve.interval-images, from the first point on."
            )
        if without:
            CONSOLE.print(
                f"[yellow]Left out, without a {METRICS_FILENAME} (curve off, or stopped before its first point): "
                f"{escape(', '.join(str(run) for run in without))}"
            )
        return files


def draw(curves: Sequence[List[Dict[str, Any]]], labels: Sequence[str], metrics: Sequence[str], title: Optional[str]):
    """The figure: a row per metric, a column per x-axis, a line per run.

    A bare `Figure` rather than pyplot's: it is freed with its last reference and leaves the process's matplotlib
    backend alone, where pyplot's would have to switch the backend to Agg and keep the figure until it is closed
    (a notebook or a long process that calls `PlotCommand` keeps its own backend and frees what it drew).
    """
    from matplotlib.figure import Figure

    rows, columns = len(metrics), len(X_AXES)
    figure = Figure(figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for row, metric in enumerate(metrics):
        for column, (key, scale, x_label) in enumerate(X_AXES):
            axis = axes[row][column]
            for curve, label in zip(curves, labels):
                points = [point for point in curve if metric in point and key in point]
                if points:
                    xs = [point[key] * scale for point in points]
                    axis.plot(xs, [point[metric] for point in points], marker="o", markersize=3, label=label)
            axis.set_xlabel(x_label)
            axis.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} (lower is better)")
            axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
