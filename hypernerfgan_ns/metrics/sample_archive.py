"""Generated samples as a folder or zip of PNGs, written where they are rendered and scored where Inception is.

A GPU machine may have neither the Inception weights (80 MB) nor a package index to fetch them. What it renders for
the protocol (`hypernerfgan render-samples`, and the quality curve's points when FID cannot be computed there) is
written as 8-bit PNGs in generation order with a `samples.json` saying what they are; `hypernerfgan score` and
`hypernerfgan score-curve` score them elsewhere with the same code. Inception sees 8-bit images either way (its
input is quantised), so FID and KID of the PNGs are those of the renders.
"""

from __future__ import annotations

import io
import json
import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.errors import ExportError
from hypernerfgan_ns.metrics.evaluation import GANEvaluationConfig, evaluate_generator
from hypernerfgan_ns.utils.colors import MAX_PIXEL_VALUE, to_uint8

SAMPLE_NAME = "{index:06d}.png"
"""File name of the i-th sample, so that sorted order is generation order."""

PROTOCOL_NAME = "samples.json"
"""What the samples are (run, step, count, seed, truncation, resolution), written beside them."""


class SampleArchive:
    """Writes samples batch by batch into a new folder or a zip; a zip appears whole or not at all.

    Use as a context manager; `finish` writes samples.json, so an archive without it was interrupted.

    Args:
        output: a folder (created; must be empty if it exists) or a file ending in .zip (must not exist).
    """

    def __init__(self, output: Path) -> None:
        self.output = output.expanduser()
        self.as_zip = self.output.suffix.lower() == ".zip"
        if self.output.exists() and (self.as_zip or not self.output.is_dir() or any(self.output.iterdir())):
            raise ExportError(f"{self.output} already exists; choose a new --output, or delete it first.")
        self.count = 0
        self._stack = ExitStack()
        self._archive: Optional[zipfile.ZipFile] = None

    def __enter__(self) -> "SampleArchive":
        with ExitStack() as stack:
            if self.as_zip:
                temporary = stack.enter_context(atomic_output(self.output))
                self._archive = stack.enter_context(zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED))
            else:
                self.output.mkdir(parents=True, exist_ok=True)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stack.__exit__(*exc_info)

    def _write(self, name: str, data: bytes) -> None:
        if self._archive is not None:
            self._archive.writestr(name, data)
        else:
            (self.output / name).write_bytes(data)

    def add(self, batch: Float[Tensor, "batch 3 height width"]) -> None:
        """Appends a batch of samples in [0, 1] as PNGs."""
        for image in to_uint8(batch.permute(0, 2, 3, 1)):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            self._write(SAMPLE_NAME.format(index=self.count), buffer.getvalue())
            self.count += 1

    def finish(self, protocol: Dict[str, Any]) -> None:
        """Writes samples.json: the protocol the samples were rendered with and their count."""
        self._write(PROTOCOL_NAME, (json.dumps({**protocol, "num_images": self.count}, indent=2) + "\n").encode("utf8"))


def rendering_protocol(pipeline, evaluation: GANEvaluationConfig) -> Dict[str, Any]:
    """What fixes the EMA samples `generated_image_batches` renders besides the weights: seed, truncation, size,
    samples per ray."""
    return {
        "seed": evaluation.seed,
        "truncation": evaluation.truncation,
        "resolution": pipeline.config.datamanager.dataparser.resolution,
        "samples_per_ray": pipeline.model.render_samples,
    }


def evaluate_keeping_samples(
    pipeline, evaluation: GANEvaluationConfig, output: Path, protocol: Dict[str, Any], **scoring: Any
) -> Dict[str, float]:
    """`evaluate_generator`, keeping the very samples it scores in `output` for FID and KID where Inception is.

    An `output` already there is replaced: it is an earlier attempt's at the same point (a stopped study resumed, a
    run restarted in its own folder). `protocol` says what the samples are beside the rendering protocol; `scoring`
    is passed on (a loaded extractor, the real images' summary).
    """
    output.unlink(missing_ok=True)
    with SampleArchive(output) as archive:
        metrics = evaluate_generator(pipeline, evaluation, pipeline.config.swd, on_samples=archive.add, **scoring)
        archive.finish({**protocol, **rendering_protocol(pipeline, evaluation)})
    return metrics


def read_protocol(path: Path) -> Dict[str, Any]:
    """The samples.json of a folder or zip `SampleArchive` wrote; raises if it is missing (an interrupted archive)."""
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as archive:
                text = archive.read(PROTOCOL_NAME).decode("utf8")
        else:
            text = (path / PROTOCOL_NAME).read_text(encoding="utf8")
        return json.loads(text)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ExportError(
            f"{path} is not a finished archive of samples (its {PROTOCOL_NAME} cannot be read: {error}). Render them "
            "again, or copy the file again if the copy was cut short."
        ) from error


def archived_sample_batches(path: Path, batch_size: int) -> Iterator[Float[Tensor, "batch 3 height width"]]:
    """The samples of a folder or zip `SampleArchive` wrote, in generation order, in [0, 1], in batches."""
    count = int(read_protocol(path)["num_images"])
    with ExitStack() as stack:
        if path.suffix.lower() == ".zip":
            read = stack.enter_context(zipfile.ZipFile(path)).read
        else:

            def read(name: str) -> bytes:
                return (path / name).read_bytes()

        for start in range(0, count, batch_size):
            images = []
            for index in range(start, min(start + batch_size, count)):
                name = SAMPLE_NAME.format(index=index)
                try:
                    with Image.open(io.BytesIO(read(name))) as image:
                        images.append(np.asarray(image.convert("RGB")))
                except (OSError, KeyError) as error:
                    raise ExportError(f"{path}: sample {name} of {count} cannot be read ({error}).") from error
            yield torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / MAX_PIXEL_VALUE
