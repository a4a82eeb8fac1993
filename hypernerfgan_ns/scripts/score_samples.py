"""`hypernerfgan render-samples`, `score` and `score-curve`: ns-eval in two halves, on two machines if need be.

    hypernerfgan render-samples --load-config RUN/config.yml --output samples.zip     # where the GPU is
    hypernerfgan score samples.zip --data cars                                         # where Inception is
    hypernerfgan score-curve RUN                  # FID and KID for the quality curve's points, from their samples

A GPU machine may have neither the Inception weights (80 MB) nor a package index to fetch them. `render-samples`
writes exactly the EMA samples `ns-eval` scores (same latents, cameras, truncation, resolution) as PNGs into a
folder or a zip; `score` computes FID, KID and SWD of any folder or zip of images against a dataset's images with
the same code as `ns-eval` (`metrics.evaluation`), so the figures are the same as if ns-eval had run there.
A quality curve scored without the weights keeps each point's samples (`metrics.quality_curve`); `score-curve` adds
their FID and KID to the run's metrics.jsonl, with the run's own protocol, so `hypernerfgan plot` draws them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import tyro
import yaml
from rich.markup import escape
from rich.table import Table

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.data.dataparsers.unposed_images_dataparser import UnposedImagesDataParserConfig
from hypernerfgan_ns.data.image_collection import ImageStore, build_image_store, image_sizes
from hypernerfgan_ns.errors import DatasetError, ExportError
from hypernerfgan_ns.metrics.evaluation import (
    INCEPTION_METRICS,
    METRICS,
    GANEvaluationConfig,
    ImageSetSummary,
    check_metric_names,
    generated_image_batches,
    load_feature_extractor,
    num_real_images,
    score,
    store_image_batches,
    summarize_images,
    summarize_real_images,
)
from hypernerfgan_ns.metrics.quality_curve import CURVE_METRICS, CURVE_SAMPLES_DIRNAME, curve_file, read_curve
from hypernerfgan_ns.metrics.sample_archive import (
    SampleArchive,
    archived_sample_batches,
    read_protocol,
    rendering_protocol,
)
from hypernerfgan_ns.metrics.swd import SWDConfig
from hypernerfgan_ns.scripts.plot_curves import METRIC_LABELS
from hypernerfgan_ns.scripts.rendering import (
    progress_bar,
    report_written,
    require_at_least,
    require_render_samples,
)
from nerfstudio.utils.rich_utils import CONSOLE


@dataclass
class RenderSamplesCommand:
    """Render the EMA samples ns-eval scores into a folder or zip of PNGs, for `hypernerfgan score` elsewhere."""

    load_config: Path
    """config.yml of the training run."""
    output: Path
    """A folder (created) or a file ending in .zip."""
    num_images: Optional[int] = None
    """Samples to render; default: the run's ns-eval count (--pipeline.evaluation.num-generated)."""
    num_render_samples: Optional[int] = None
    """Samples per ray; default: the run's, as ns-eval renders (--pipeline.model.num-render-samples, else its
    training count). The count goes into the archive's samples.json."""

    def main(self) -> None:
        from hypernerfgan_ns.utils.trained_runs import load_trained_pipeline  # imports every nerfstudio method

        require_render_samples(self.num_render_samples)
        archive = SampleArchive(self.output)  # refuses an existing output before the run is loaded
        _, pipeline, step = load_trained_pipeline(self.load_config, self.num_render_samples)
        evaluation = pipeline.config.evaluation
        if self.num_images is not None:
            require_at_least("--num-images", self.num_images, 1)
            evaluation = dataclasses.replace(evaluation, num_generated=self.num_images)
        pipeline.eval()
        with archive, progress_bar(f"Rendering {evaluation.num_generated} EMA samples") as progress:
            task = progress.add_task("render", total=evaluation.num_generated)
            for batch in generated_image_batches(pipeline, evaluation):
                archive.add(batch)
                progress.advance(task, len(batch))
            archive.finish({"run": str(self.load_config), "step": step, **rendering_protocol(pipeline, evaluation)})
        report_written(archive.output, f"{archive.count} EMA samples of step {step}")


def run_config(load_config: Path) -> Any:
    """A HyperNeRFGAN run's configuration, read from its config.yml (nothing is built or loaded)."""
    path = Path(load_config).expanduser()
    if not path.is_file():
        raise ExportError(f"{path} does not exist; pass the config.yml of a training run.")
    config = yaml.load(path.read_text(encoding="utf8"), Loader=yaml.Loader)
    datamanager = getattr(getattr(config, "pipeline", None), "datamanager", None)
    if not isinstance(getattr(datamanager, "dataparser", None), UnposedImagesDataParserConfig):
        raise ExportError(f"{path} is not the config.yml of a HyperNeRFGAN run.")
    return config


def dataparser_of_run(load_config: Path) -> UnposedImagesDataParserConfig:
    """The dataparser settings a run trained with, read from its config.yml (nothing is built or loaded)."""
    datamanager = run_config(load_config).pipeline.datamanager
    parser = datamanager.dataparser
    if datamanager.data is not None:
        parser = dataclasses.replace(parser, data=datamanager.data)  # nerfstudio's --data alias
    return parser


def training_images(load_config: Path, resolution: int) -> ImageStore:
    """The images a run trained on, as it saw them; refuses samples of another resolution."""
    parser = dataparser_of_run(load_config)
    if parser.resolution != resolution:
        raise ExportError(
            f"The samples are {resolution}x{resolution} but the run {load_config} trained at "
            f"{parser.resolution}x{parser.resolution}; render them at the run's resolution."
        )
    if not parser.setup().resolve_source().exists():
        raise DatasetError(
            f"The run {load_config} trained on {parser.data}, which is not there any more. Put the images back, or "
            "score against a copy of them with --data COPY instead of --load-config."
        )
    return load_image_store(parser)


def load_image_store(parser: UnposedImagesDataParserConfig) -> ImageStore:
    """The dataparser's images (decoded and cached as training decodes them)."""
    store = parser.setup().load_images(images_required=True)
    assert store is not None
    return store


@dataclass
class ScoreCommand:
    """FID, KID and SWD of a folder or zip of generated images against a dataset, computed as ns-eval does."""

    samples: tyro.conf.Positional[Path]
    """Generated images: a folder or zip of square images (e.g. written by `hypernerfgan render-samples`)."""
    data: Optional[Path] = None
    """Real images to compare with: a built-in set (cars, chairs, planes), a folder, a zip or an SRN folder,
    decoded at the samples' resolution."""
    load_config: Optional[Path] = None
    """Instead of --data: a run's config.yml, to compare with the images that run trained on, as it saw them, with
    its ns-eval protocol (real-image count, KID subsets, seed, SWD settings)."""
    metrics: Tuple[str, ...] = ("fid", "kid", "swd")
    """Metrics: fid and kid (need the Inception weights: hypernerfgan fetch-inception) and swd."""
    max_real_images: Optional[int] = None
    """Compare with N real images spread evenly over the set; default: all (the "_full" protocols), or the run's
    setting with --load-config."""
    inception_weights: Optional[Path] = None
    """The Inception weights file; default: looked up as ns-eval does."""
    json: Optional[Path] = None
    """Also write the results as JSON here."""

    def main(self) -> Dict[str, float]:
        if (self.data is None) == (self.load_config is None):
            raise ExportError("Name the real images with exactly one of --data and --load-config.")
        evaluation, swd = self.protocol()
        check_metric_names(evaluation)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        extractor = load_feature_extractor(evaluation, device)  # missing weights are reported before any decoding
        width, height = self.sample_size()
        samples = build_image_store(self.samples, resolution=width, min_image_size=1, min_num_images=1)
        real = self.real_store(resolution=width)
        count = num_real_images(real, evaluation)
        real_summary = summarize_real_images(
            real, count, "Real images", evaluation, extractor, device, keep_images=samples.num_images
        )
        fake_summary = summarize_images(
            store_image_batches(samples, range(samples.num_images), evaluation.batch_size),
            samples.num_images,
            "Samples",
            evaluation,
            extractor,
            device,
        )
        results = score(real_summary, fake_summary, evaluation, swd)
        self.report(results, real, samples)
        return results

    def sample_size(self) -> Tuple[int, int]:
        """The samples' one size: samples of several sizes are several runs' (or several resolutions'), which one
        score must not mix by resizing them to the first one's."""
        sizes = image_sizes(self.samples)
        if len(sizes) > 1:
            counts = sorted(sizes.items(), key=lambda item: -len(item[1]))
            shown = ", ".join(f"{len(names)} at {w}x{h} (e.g. {names[0]})" for (w, h), names in counts[:3])
            raise ExportError(
                f"The samples in {self.samples} are not all one size: {shown}. Score the samples of one run at a time "
                "(each run renders at its own resolution)."
            )
        if not sizes:
            raise ExportError(f"No readable image in {self.samples}; render them with hypernerfgan render-samples.")
        ((width, height),) = sizes
        if width != height:
            raise ExportError(f"The samples in {self.samples} are {width}x{height}; the protocol scores square images.")
        return width, height

    def protocol(self) -> Tuple[GANEvaluationConfig, SWDConfig]:
        """ns-eval's protocol: the run's own with --load-config, else the defaults; the options given override it."""
        if self.load_config is not None:
            pipeline = run_config(self.load_config).pipeline
            evaluation, swd = pipeline.evaluation, pipeline.swd
        else:
            evaluation, swd = GANEvaluationConfig(), SWDConfig()
        evaluation = dataclasses.replace(
            evaluation,
            metrics=self.metrics,
            max_real_images=evaluation.max_real_images if self.max_real_images is None else self.max_real_images,
            inception_weights=self.inception_weights or evaluation.inception_weights,
        )
        return evaluation, swd

    def real_store(self, resolution: int) -> ImageStore:
        """The real images, decoded at the samples' resolution."""
        if self.load_config is not None:
            return training_images(self.load_config, resolution)
        assert self.data is not None
        return load_image_store(UnposedImagesDataParserConfig(data=self.data, resolution=resolution, min_image_size=1))

    def report(self, results: Dict[str, float], real: ImageStore, samples: ImageStore) -> None:
        """Prints the table and writes the JSON."""
        # The sources on a line of their own: as the title of a two-column table rich wrapped them a few letters a line.
        CONSOLE.print(
            f"{samples.num_images} samples of {escape(str(samples.source))} against {real.num_images} images of "
            f"{escape(str(real.source))}:"
        )
        table = Table()
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name in METRICS:
            if name in results:
                table.add_row(name, f"{results[name]:.4f}")
        CONSOLE.print(table)
        if self.json is not None:
            report = {"samples": str(samples.source), "real": str(real.source), "metrics": results}
            self.json.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(self.json) as temporary:
                temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")
            report_written(self.json, "the scores")


RealSummaries = Dict[Tuple[str, ...], ImageSetSummary]
"""Inception features of training images, by image set and weights, computed once per command."""


def score_kept_samples(
    load_config: Path,
    archives: Sequence[Path],
    evaluation: GANEvaluationConfig,
    real_summaries: Optional[RealSummaries] = None,
) -> List[Dict[str, float]]:
    """FID, KID and KID's std of archives of samples a run kept, against the images it trained on, with the protocol
    `evaluation` (its weights, KID subsets, real-image count and seed); `real_summaries` shares the training images'
    features between calls."""
    evaluation = dataclasses.replace(evaluation, metrics=INCEPTION_METRICS)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    extractor = load_feature_extractor(evaluation, device)
    parser = dataparser_of_run(load_config)
    real = load_image_store(parser)
    count = num_real_images(real, evaluation)
    key = (str(real.source), str(parser.resolution), str(count), str(evaluation.inception_weights))
    real_summaries = {} if real_summaries is None else real_summaries
    if key not in real_summaries:
        real_summaries[key] = summarize_real_images(real, count, "Training images", evaluation, extractor, device)
    results = []
    for path in archives:
        kept = read_protocol(path)
        if kept["resolution"] != parser.resolution:
            raise ExportError(
                f"{path} holds {kept['resolution']} px samples; the run {load_config} trained at "
                f"{parser.resolution} px."
            )
        fake = summarize_images(
            archived_sample_batches(path, evaluation.batch_size), kept["num_images"], f"Samples of {path.name}",
            evaluation, extractor, device,
        )
        scores = score(real_summaries[key], fake, evaluation)
        results.append({name: scores[name] for name in ("fid", "kid", "kid_std")})
    return results


@dataclass
class ScoreCurveCommand:
    """Add FID and KID to quality curves from the samples their points kept where the Inception weights were missing."""

    runs: tyro.conf.Positional[Tuple[Path, ...]]
    """Run folders (with their curve_samples/), their config.yml or their metrics.jsonl."""
    inception_weights: Optional[Path] = None
    """The Inception weights file; default: looked up as ns-eval does."""
    rescore: bool = False
    """Also score the points that have FID already (their kept samples are scored again)."""
    skip_missing: bool = False
    """Score the points whose kept samples are there and leave the others without FID, instead of stopping (for
    runs copied without some of their samples, as the GPU check does when what it brings back is too large)."""

    def main(self) -> List[Path]:
        if not self.runs:
            raise ExportError("Name the runs whose curves to score: hypernerfgan score-curve RUN [RUN ...].")
        files = [curve_file(run) for run in self.runs]  # every run named is checked before any work
        real_summaries: RealSummaries = {}  # runs on the same images share their features
        for file in files:
            self.complete(file, real_summaries)
        return files

    def complete(self, file: Path, real_summaries: RealSummaries) -> None:
        """Scores the kept samples of one curve's points and writes the curve back with their FID and KID."""
        points = read_curve(file)
        due = [point for point in points if "samples" in point and (self.rescore or "fid" not in point)]
        if not due:
            CONSOLE.print(f"{escape(str(file))}: no point has kept samples without FID; nothing to score.")
            return
        missing = [point["samples"] for point in due if not (file.parent / point["samples"]).is_file()]
        if missing and not self.skip_missing:
            raise ExportError(
                f"{file} names kept samples that are not there: {', '.join(missing)}. Copy the run folder with its "
                f"{CURVE_SAMPLES_DIRNAME}/ folder (and, for a resumed run, the folder of the run it continued), or "
                "score the others with --skip-missing."
            )
        if missing:
            CONSOLE.print(f"[yellow]{escape(str(file))}: left without FID, their samples are not there: "
                          f"{escape(', '.join(missing))}")
            due = [point for point in due if point["samples"] not in missing]
            if not due:
                return
        load_config = file.parent / "config.yml"
        protocol = run_config(load_config).pipeline.evaluation  # the run's own: the in-run figures' subsets and counts
        weights = self.inception_weights or protocol.inception_weights
        evaluation = dataclasses.replace(protocol, inception_weights=weights)
        archives = [file.parent / point["samples"] for point in due]
        for point, scores in zip(due, score_kept_samples(load_config, archives, evaluation, real_summaries)):
            point.update(scores)
        with atomic_output(file) as temporary:
            temporary.write_text("".join(json.dumps(point) + "\n" for point in points), encoding="utf8")
        self.report(file, points, len(due))

    @staticmethod
    def report(file: Path, points: List[Dict[str, Any]], scored: int) -> None:
        """Prints the completed curve."""
        table = Table(title=f"{escape('/'.join(file.parent.parts[-3:]))}: {scored} points scored")
        for column in ("images seen", "minutes", *(METRIC_LABELS[name] for name in CURVE_METRICS)):
            table.add_column(column, justify="right")
        for point in points:
            cells = [f"{point[name]:.4g}" if name in point else "-" for name in CURVE_METRICS]
            table.add_row(f"{point['images_seen']:,}", f"{point['train_seconds'] / 60:.1f}", *cells)
        CONSOLE.print(table)
        report_written(file, "the curve with FID and KID")
