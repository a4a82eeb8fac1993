"""`hypernerfgan data convert`: turn any image collection into the training layout, once.

    hypernerfgan data convert ~/photos/shoes --output data/shoes --resolution 128
    hypernerfgan data convert data/cars/cars_train --output data/cars128.zip --format zip

The result is square RGB PNGs on white, named `000000.png`, `000001.png`, ..., at the training resolution: either a
folder, or a StyleGAN2-ADA style zip (the PNGs at its top level and a `dataset.json` without labels), which is the
format HyperNeRFGAN's original code reads. A `conversion.json` beside the images says where each image came from and
which files were skipped. Training reads the original collection just as well; converting is for sharing a prepared
dataset, or for reading a small zip instead of a large tree of photos.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Literal, Optional, Tuple

import numpy as np
import tyro
from PIL import Image
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from typing_extensions import Annotated

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.data.image_collection import (
    DEFAULT_NUM_WORKERS,
    ImageStore,
    NonSquarePolicy,
    build_image_store,
    find_images,
)
from hypernerfgan_ns.errors import DatasetError
from nerfstudio.utils.rich_utils import CONSOLE

OutputFormat = Literal["folder", "zip"]
"""A folder of PNGs, or a StyleGAN2-ADA style zip of them."""

DEFAULT_RESOLUTION = 128
"""HyperNeRFGAN's training resolution for every benchmark."""

DEFAULT_MIN_IMAGE_SIZE = 64
"""Same as the unposed-images dataparser: smaller images would only be blurry upscales."""

IMAGE_NAME_FORMAT = "{index:06d}.png"
"""File name of the image at an index: sorted names keep the images in the collection's order."""

REPORT_FILENAME = "conversion.json"
"""What was converted, from where, and what was skipped."""

DATASET_JSON_FILENAME = "dataset.json"
"""StyleGAN2-ADA's metadata file in a dataset zip; `{"labels": null}` says the images have no class labels."""

PNG_COMPRESS_LEVEL = 6
"""zlib level of the written PNGs: zlib's default balance between file size and writing time."""

WRITE_CHUNK_IMAGES = 64
"""Images read from the decoded store at a time while writing (bounded memory)."""

ZIP_SUFFIX = ".zip"
"""File ending of a zip output; added to --output when it is missing."""


@dataclass
class ConvertCommand:
    """Convert a folder, zip or SRN tree of images into square RGB PNGs at one resolution (folder or zip)."""

    source: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="SOURCE")]
    """Image folder (searched recursively), zip archive, or SRN ShapeNet folder to convert."""
    output: Path
    """Folder (or .zip with --format zip) to create; must not exist yet, or be an empty folder."""
    resolution: int = DEFAULT_RESOLUTION
    """Side of the square output images in pixels."""
    non_square: NonSquarePolicy = "pad"
    """How non-square images become square: padded with white, or centre-cropped."""
    min_image_size: int = DEFAULT_MIN_IMAGE_SIZE
    """Images whose square side is smaller than this many pixels are skipped (and listed in the report)."""
    format: OutputFormat = "folder"
    """Write a folder of PNGs, or a StyleGAN2-ADA style zip (PNGs plus dataset.json)."""
    cache_root: Optional[Path] = None
    """Where the decoded images are cached; default $HYPERNERFGAN_CACHE or ~/.cache/hypernerfgan_ns."""
    num_workers: int = DEFAULT_NUM_WORKERS
    """Threads that decode the source images."""

    def main(self) -> None:
        """Decodes the collection once (through the image cache), then writes it in the chosen layout."""
        output = self._output_path()
        if output.exists() and (not output.is_dir() or self.format == "zip" or any(output.iterdir())):
            raise DatasetError(
                f"The output {output} already exists and is not an empty folder. Choose another --output, or "
                "delete it first."
            )
        store = build_image_store(
            self.source,
            resolution=self.resolution,
            non_square=self.non_square,
            min_image_size=self.min_image_size,
            cache_root=self.cache_root,
            num_workers=self.num_workers,
        )
        report = self._report(store)
        if self.format == "zip":
            self._write_zip(store, output, report)
        else:
            self._write_folder(store, output, report)
        skipped = report["skipped"]["count"]
        CONSOLE.print(
            f"[bold green]Wrote {store.num_images} images[/bold green] of {self.resolution}x{self.resolution} px "
            f"to {escape(str(output))}" + (f" ({skipped} skipped, listed in {REPORT_FILENAME})." if skipped else ".")
        )

    def _output_path(self) -> Path:
        output = self.output.expanduser()
        if self.format == "zip" and output.suffix.lower() != ZIP_SUFFIX:
            output = output.with_name(output.name + ZIP_SUFFIX)
            CONSOLE.print(f"Writing the zip as {escape(str(output))}")
        return output

    def _report(self, store: ImageStore) -> Dict[str, Any]:
        """conversion.json: the settings, every output image's source name, and the skipped files."""
        sidecar_path = store.path.with_suffix(".json")
        try:
            sidecar = json.loads(sidecar_path.read_text())
            kept: List[str] = list(sidecar["names"])
            decoding = sidecar["report"]
            layout = sidecar["layout"]
        except (OSError, ValueError, KeyError) as error:
            raise DatasetError(
                f"The decoded image cache's description {sidecar_path} cannot be read ({error}). Delete "
                f"{store.path} and run again to decode the images anew."
            ) from error
        _, listed = find_images(store.source)
        kept_set = set(kept)
        skipped = [name for name in listed if name not in kept_set]
        return {
            "source": str(store.source),
            "layout": layout,
            "format": self.format,
            "resolution": self.resolution,
            "non_square": self.non_square,
            "min_image_size": self.min_image_size,
            "num_source_images": len(listed),
            "num_images": store.num_images,
            "skipped": {
                "count": len(skipped),
                "unreadable": decoding["unreadable"],
                "too_small": decoding["too_small"],
                "examples": decoding["unreadable_examples"] + decoding["too_small_examples"],
                "files": skipped,
            },
            "upscaled": {"count": decoding["upscaled"], "examples": decoding["upscaled_examples"]},
            "images": [
                {"file": IMAGE_NAME_FORMAT.format(index=index), "source": name} for index, name in enumerate(kept)
            ],
        }

    def _pngs(self, store: ImageStore) -> Iterator[Tuple[str, bytes]]:
        """(file name, PNG bytes) of every image, in order, with a progress bar."""
        progress = Progress(
            TextColumn("[bold blue]Writing PNGs"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=CONSOLE,
        )
        with progress:
            task = progress.add_task("write", total=store.num_images)
            for start in range(0, store.num_images, WRITE_CHUNK_IMAGES):
                stop = min(start + WRITE_CHUNK_IMAGES, store.num_images)
                pixels: np.ndarray = store.read(range(start, stop))
                for offset, image in enumerate(pixels):
                    buffer = io.BytesIO()
                    Image.fromarray(image, "RGB").save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
                    yield IMAGE_NAME_FORMAT.format(index=start + offset), buffer.getvalue()
                    progress.advance(task)

    def _write_folder(self, store: ImageStore, output: Path, report: Dict[str, Any]) -> None:
        with atomic_output(output) as temporary:
            temporary.mkdir(parents=True)
            for name, data in self._pngs(store):
                (temporary / name).write_bytes(data)
            (temporary / REPORT_FILENAME).write_text(json.dumps(report, indent=1))

    def _write_zip(self, store: ImageStore, output: Path, report: Dict[str, Any]) -> None:
        # PNGs are already compressed: storing them is as small and much faster than deflating them again.
        with atomic_output(output) as temporary:
            with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as zip_file:
                for name, data in self._pngs(store):
                    zip_file.writestr(name, data)
                zip_file.writestr(DATASET_JSON_FILENAME, json.dumps({"labels": None}))
                zip_file.writestr(REPORT_FILENAME, json.dumps(report, indent=1), compress_type=zipfile.ZIP_DEFLATED)
