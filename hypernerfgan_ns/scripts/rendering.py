"""What `hypernerfgan samples`, `video` and `export-mesh` share: loading a run, seeds, rendering views, tiling, writing.

Every command renders with the model's rendering generator (the EMA one unless the run says otherwise) in evaluation
mode: no density noise, no stratified jitter, so the same seed gives the same pictures, videos and meshes as the
viewer and `ns-render`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from jaxtyping import Float, UInt8
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor

from hypernerfgan_ns.errors import ExportError
from hypernerfgan_ns.model_components.ray_samplers import MIN_SAMPLES_PER_RAY
from hypernerfgan_ns.utils.colors import to_uint8
from nerfstudio.utils import colormaps
from nerfstudio.utils.rich_utils import CONSOLE

if TYPE_CHECKING:
    from hypernerfgan_ns.models.hypernerfgan import HyperNeRFGANModel

DEFAULT_RESOLUTION = 128
"""Side of rendered views in pixels: HyperNeRFGAN's training resolution on every benchmark."""

GUTTER_PIXELS = 2
"""Width of the white lines between the cells of a grid: enough to separate objects rendered on white."""

WHITE = 255
"""Value of the gutters and of padding (renders are composited on white)."""

class RenderedView(NamedTuple):
    """One rendered view as 8-bit pictures."""

    rgb: UInt8[np.ndarray, "height width 3"]
    """The object on white."""
    depth: Optional[UInt8[np.ndarray, "height width 3"]]
    """Its expected depth, colour-mapped between the prior's near and far planes, on white where empty; or None."""


def load_model(load_config: Path, num_render_samples: Optional[int] = None) -> HyperNeRFGANModel:
    """The run's model with its latest checkpoint, in evaluation mode (EMA generator, no noise, no jitter), rendering
    `num_render_samples` samples per ray (None: as the run does)."""
    # Imported here: loading a run imports every nerfstudio method, seconds that `hypernerfgan --help` need not pay.
    from hypernerfgan_ns.utils.trained_runs import load_trained_pipeline

    _, pipeline, step = load_trained_pipeline(load_config, num_render_samples)
    model = pipeline.model
    model.eval()
    generator = "EMA" if model.config.render_with_ema else "trained (render_with_ema is off in this run)"
    CONSOLE.print(
        f"Loaded step {step} of {escape(str(load_config))}; rendering with the {generator} generator, "
        f"{model.render_samples} samples per ray."
    )
    return model


def check_output(output: Path, allowed: Sequence[str], what: str) -> str:
    """The output's lower-case file ending, if it is a file we can write; checked before any slow work starts."""
    suffix = output.suffix.lower()
    if suffix not in allowed:
        raise ExportError(
            f"Cannot write {what} as '{output.name}': the file must end in {' or '.join(allowed)}. "
            f"For example --output {output.with_suffix(allowed[0]).name}."
        )
    if output.is_dir():
        raise ExportError(f"--output {output} is a folder; name a file inside it, e.g. {output / ('out' + suffix)}.")
    return suffix


def require_at_least(option: str, value: float, minimum: float) -> None:
    """Rejects a too small option value before any slow work starts."""
    if value < minimum:
        raise ExportError(f"{option} must be at least {minimum}, got {value}.")


def require_render_samples(num_render_samples: Optional[int]) -> None:
    """Rejects a `--num-render-samples` too small to render before any slow work starts."""
    if num_render_samples is not None:
        require_at_least("--num-render-samples", num_render_samples, MIN_SAMPLES_PER_RAY)


def progress_bar(description: str) -> Progress:
    """A rich progress bar with a count and time left, on nerfstudio's console."""
    return Progress(
        TextColumn(f"[bold blue]{escape(description)}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=CONSOLE,
    )


def rendered_views(
    model: HyperNeRFGANModel,
    latents: Float[Tensor, "views latent_dim"],
    camera_to_worlds: Float[Tensor, "views 3 4"],
    resolution: int,
    truncation_psi: float,
    with_depth: bool = False,
    description: str = "Rendering",
) -> Iterator[RenderedView]:
    """Renders view i of object `latents[i]` from `camera_to_worlds[i]`, in order, with a progress bar.

    Views are rendered as many at once as the model's chunk of rays holds, and yielded one by one so that callers
    can stream them into a file instead of holding them all.
    """
    if latents.shape[0] != camera_to_worlds.shape[0]:
        raise ValueError(f"One latent per camera is needed, got {latents.shape[0]} and {camera_to_worlds.shape[0]}.")
    prior = model.dataset_preset.camera_prior
    views_at_once = model.views_per_chunk(resolution * resolution)
    with progress_bar(description) as progress:
        task = progress.add_task("render", total=latents.shape[0])
        for first in range(0, latents.shape[0], views_at_once):
            last = first + views_at_once
            cameras = prior.cameras(camera_to_worlds[first:last], resolution)
            outputs = model.render_latents(latents[first:last], cameras, truncation_psi)
            for view in range(outputs["rgb"].shape[0]):
                depth = None
                if with_depth:
                    depth = to_uint8(
                        colormaps.apply_depth_colormap(
                            outputs["depth"][view],
                            outputs["accumulation"][view],
                            near_plane=prior.near,
                            far_plane=prior.far,
                        )
                    )
                yield RenderedView(to_uint8(outputs["rgb"][view]), depth)
                progress.advance(task)


def grid_shape(num_cells: int) -> Tuple[int, int]:
    """(rows, columns) of the squarest grid with room for `num_cells` cells, filled row by row."""
    columns = math.ceil(math.sqrt(num_cells))
    return math.ceil(num_cells / columns), columns


def tile(
    images: Sequence[UInt8[np.ndarray, "height width 3"]], rows: int, columns: int, gutter: int = GUTTER_PIXELS
) -> UInt8[np.ndarray, "grid_height grid_width 3"]:
    """Equal-sized images in a grid, row by row, separated by white gutters; missing cells stay white."""
    if not 0 < len(images) <= rows * columns:
        raise ValueError(f"{len(images)} images do not fit a {rows}x{columns} grid.")
    height, width = images[0].shape[:2]
    grid = np.full(
        (rows * height + (rows - 1) * gutter, columns * width + (columns - 1) * gutter, 3), WHITE, dtype=np.uint8
    )
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = row * (height + gutter), column * (width + gutter)
        grid[top : top + height, left : left + width] = image
    return grid


def report_written(output: Path, what: str) -> None:
    """Tells the user where the file is."""
    CONSOLE.print(f"[bold green]Wrote {what}[/bold green] to {escape(str(output.resolve()))}")
