"""`hypernerfgan render-samples` and `hypernerfgan score`: ns-eval in two halves, on two machines if need be.

    hypernerfgan render-samples --load-config RUN/config.yml --output samples.zip     # where the GPU is
    hypernerfgan score samples.zip --data cars                                         # where Inception is

A GPU machine may have neither the Inception weights (80 MB) nor a package index to fetch them. `render-samples`
writes exactly the EMA samples `ns-eval` scores (same latents, cameras, truncation, resolution) as PNGs into a
folder or a zip; `score` computes FID, KID and SWD of any folder or zip of images against a dataset's images with
the same code as `ns-eval` (`metrics.evaluation`), so the figures are the same as if ns-eval had run there.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
import tyro
import yaml
from PIL import Image
from rich.table import Table

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.data.dataparsers.unposed_images_dataparser import UnposedImagesDataParserConfig
from hypernerfgan_ns.data.image_collection import ImageStore, build_image_store, first_image_size
from hypernerfgan_ns.errors import ExportError
from hypernerfgan_ns.metrics.evaluation import (
    METRICS,
    GANEvaluationConfig,
    check_metric_names,
    generated_image_batches,
    load_feature_extractor,
    num_real_images,
    score,
    store_image_batches,
    summarize_images,
)
from hypernerfgan_ns.metrics.swd import SWDConfig
from hypernerfgan_ns.scripts.rendering import progress_bar, report_written, require_at_least, to_uint8
from nerfstudio.utils.rich_utils import CONSOLE

SAMPLE_NAME = "{index:06d}.png"
"""File name of the i-th sample, so that sorted order is generation order."""

PROTOCOL_NAME = "samples.json"
"""What the samples are (run, step, count, seed, truncation, resolution), written beside them."""


@dataclass
class RenderSamplesCommand:
    """Render the EMA samples ns-eval scores into a folder or zip of PNGs, for `hypernerfgan score` elsewhere."""

    load_config: Path
    """config.yml of the training run."""
    output: Path
    """A folder (created) or a file ending in .zip."""
    num_images: Optional[int] = None
    """Samples to render; default: the run's ns-eval count (--pipeline.evaluation.num-generated)."""

    def main(self) -> None:
        from hypernerfgan_ns.utils.trained_runs import load_trained_pipeline  # imports every nerfstudio method

        output = self.output.expanduser()
        as_zip = output.suffix.lower() == ".zip"
        if output.exists() and (as_zip or any(output.iterdir())):
            raise ExportError(f"{output} already exists; choose a new --output, or delete it first.")
        _, pipeline, step = load_trained_pipeline(self.load_config)
        evaluation = pipeline.config.evaluation
        if self.num_images is not None:
            require_at_least("--num-images", self.num_images, 1)
            evaluation = dataclasses.replace(evaluation, num_generated=self.num_images)
        pipeline.eval()
        protocol = {
            "run": str(self.load_config),
            "step": step,
            "num_images": evaluation.num_generated,
            "seed": evaluation.seed,
            "truncation": evaluation.truncation,
            "resolution": pipeline.config.datamanager.dataparser.resolution,
        }
        with ExitStack() as stack:
            if as_zip:
                archive = zipfile.ZipFile(stack.enter_context(atomic_output(output)), "w", zipfile.ZIP_STORED)
                stack.enter_context(archive)
                write = archive.writestr
            else:
                output.mkdir(parents=True, exist_ok=True)

                def write(name: str, data: bytes) -> None:
                    (output / name).write_bytes(data)

            progress = stack.enter_context(progress_bar(f"Rendering {evaluation.num_generated} EMA samples"))
            task = progress.add_task("render", total=evaluation.num_generated)
            index = 0
            for batch in generated_image_batches(pipeline, evaluation):
                for image in to_uint8(batch.permute(0, 2, 3, 1)):
                    buffer = io.BytesIO()
                    Image.fromarray(image).save(buffer, format="PNG")
                    write(SAMPLE_NAME.format(index=index), buffer.getvalue())
                    index += 1
                progress.advance(task, len(batch))
            write(PROTOCOL_NAME, (json.dumps(protocol, indent=2) + "\n").encode("utf8"))
        report_written(output, f"{index} EMA samples of step {step}")


def dataparser_of_run(load_config: Path) -> UnposedImagesDataParserConfig:
    """The dataparser settings a run trained with, read from its config.yml (nothing is built or loaded)."""
    path = Path(load_config).expanduser()
    if not path.is_file():
        raise ExportError(f"{path} does not exist; pass the config.yml of a training run.")
    config = yaml.load(path.read_text(encoding="utf8"), Loader=yaml.Loader)
    datamanager = getattr(getattr(config, "pipeline", None), "datamanager", None)
    parser = getattr(datamanager, "dataparser", None)
    if not isinstance(parser, UnposedImagesDataParserConfig):
        raise ExportError(f"{path} is not the config.yml of a HyperNeRFGAN run.")
    if datamanager.data is not None:
        parser = dataclasses.replace(parser, data=datamanager.data)  # nerfstudio's --data alias
    return parser


@dataclass
class ScoreCommand:
    """FID, KID and SWD of a folder or zip of generated images against a dataset, computed as ns-eval does."""

    samples: tyro.conf.Positional[Path]
    """Generated images: a folder or zip of square PNG/JPG images (e.g. written by `hypernerfgan render-samples`)."""
    data: Optional[Path] = None
    """Real images to compare with: a built-in set (cars, chairs, planes), a folder, a zip or an SRN folder,
    decoded at the samples' resolution."""
    load_config: Optional[Path] = None
    """Instead of --data: a run's config.yml, to compare with the images that run trained on, as it saw them."""
    metrics: Tuple[str, ...] = ("fid", "kid", "swd")
    """Metrics: fid and kid (need the Inception weights: hypernerfgan fetch-inception) and swd."""
    max_real_images: Optional[int] = None
    """Compare with the first N real images only; default: all (the "_full" protocols)."""
    inception_weights: Optional[Path] = None
    """The Inception weights file; default: looked up as ns-eval does."""
    json: Optional[Path] = None
    """Also write the results as JSON here."""

    def main(self) -> Dict[str, float]:
        if (self.data is None) == (self.load_config is None):
            raise ExportError("Name the real images with exactly one of --data and --load-config.")
        evaluation = GANEvaluationConfig(
            metrics=self.metrics, max_real_images=self.max_real_images, inception_weights=self.inception_weights
        )
        check_metric_names(evaluation)
        width, height = first_image_size(self.samples)
        if width != height:
            raise ExportError(f"The samples in {self.samples} are {width}x{height}; the protocol scores square images.")
        samples = build_image_store(self.samples, resolution=width, min_image_size=1, min_num_images=1)
        real = self.real_store(resolution=width)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        extractor = load_feature_extractor(evaluation, device)
        count = num_real_images(real, evaluation)
        real_summary = summarize_images(
            store_image_batches(real, count, evaluation.batch_size), count, "Real images", evaluation, extractor, device,
            keep_images=samples.num_images,
        )
        fake_summary = summarize_images(
            store_image_batches(samples, samples.num_images, evaluation.batch_size), samples.num_images, "Samples",
            evaluation, extractor, device,
        )
        results = score(real_summary, fake_summary, evaluation, SWDConfig())
        self.report(results, real, samples)
        return results

    def real_store(self, resolution: int) -> ImageStore:
        """The real images, decoded at the samples' resolution."""
        if self.load_config is not None:
            parser = dataparser_of_run(self.load_config)
            if parser.resolution != resolution:
                raise ExportError(
                    f"The samples are {resolution}x{resolution} but the run {self.load_config} trained at "
                    f"{parser.resolution}x{parser.resolution}; render them at the run's resolution."
                )
        else:
            assert self.data is not None
            parser = UnposedImagesDataParserConfig(data=self.data, resolution=resolution, min_image_size=1)
        store = parser.setup().load_images(images_required=True)
        assert store is not None
        return store

    def report(self, results: Dict[str, float], real: ImageStore, samples: ImageStore) -> None:
        """Prints the table and writes the JSON."""
        table = Table(title=f"{samples.num_images} samples of {samples.source} vs {real.num_images} images of {real.source}")
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

