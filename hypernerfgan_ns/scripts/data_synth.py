"""`hypernerfgan data synth`: render a built-in procedural image collection into a folder of your choice.

    hypernerfgan data synth cars --output data/cars --num-images 2000 --resolution 128

Training with `--data cars` renders the same collection into the cache by itself; this command is for looking at
the images, keeping them elsewhere, or rendering other sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro
from typing_extensions import Annotated

from hypernerfgan_ns.data.builtin.datasets import (
    BUILTIN_DATASETS,
    DEFAULT_NUM_IMAGES,
    DEFAULT_RESOLUTION,
    IMAGES_FOLDER,
    TRANSFORMS_FILE,
    render_builtin_dataset,
)
from hypernerfgan_ns.errors import DatasetError
from nerfstudio.utils.rich_utils import CONSOLE


@dataclass
class SynthCommand:
    """Render a built-in procedural dataset (cars, chairs or planes) into a new folder."""

    name: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="{" + ",".join(BUILTIN_DATASETS) + "}")]
    """Which built-in dataset to render: cars, chairs or planes."""
    output: Path
    """Folder to create for the images and transforms.json; must not exist yet, or be empty."""
    num_images: int = DEFAULT_NUM_IMAGES
    """Number of images, each of a different random instance."""
    resolution: int = DEFAULT_RESOLUTION
    """Side of the square images in pixels."""
    seed: int = 0
    """Seed of the instances and cameras: the same seed renders the same images."""

    def main(self) -> None:
        """Renders the collection, refusing to write into a folder that already holds files."""
        if self.name not in BUILTIN_DATASETS:
            raise DatasetError(
                f"Unknown built-in dataset '{self.name}'. The built-in procedural datasets are: "
                f"{', '.join(BUILTIN_DATASETS)}."
            )
        output = self.output.expanduser()
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise DatasetError(
                f"The output {output} already exists and is not an empty folder. Choose another --output folder, "
                f"or delete this one first."
            )
        render_builtin_dataset(self.name, output, self.num_images, self.resolution, seed=self.seed)
        CONSOLE.print(
            f"[bold green]Rendered {self.num_images} {self.name} images[/bold green] of {self.resolution}x"
            f"{self.resolution} pixels into {output / IMAGES_FOLDER}; the cameras (for evaluation only) are in "
            f"{output / TRANSFORMS_FILE}."
        )
