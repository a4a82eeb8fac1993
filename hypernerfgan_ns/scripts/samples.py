"""`hypernerfgan samples`: the picture to look at first, a grid of generated objects seen from around the orbit.

    hypernerfgan samples --load-config outputs/cars/hypernerfgan/<timestamp>/config.yml --output samples.png

One row per seed, one column per view (evenly spaced azimuths at the camera prior's orbit elevation), so that both
the variety of the objects and their 3D consistency show at a glance; `--depth` adds each seed's depth under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from PIL import Image

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.scripts.rendering import (
    DEFAULT_RESOLUTION,
    check_output,
    load_model,
    rendered_views,
    report_written,
    require_at_least,
    require_render_samples,
    tile,
)

DEFAULT_NUM_SEEDS = 8
"""Rows of the grid when no --seeds are given: enough to judge variety, small enough to see each object."""

DEFAULT_NUM_VIEWS = 6
"""Columns of the grid: views 60 degrees apart show every side of an object."""

PNG_SUFFIXES = (".png",)
"""The grid is written losslessly, as PNG."""


@dataclass
class SamplesCommand:
    """Render a PNG grid of generated objects: one row per seed, one column per view around the orbit."""

    load_config: Path
    """config.yml of the training run, e.g. outputs/cars/hypernerfgan/<timestamp>/config.yml."""
    output: Path
    """PNG file to write (folders are created)."""
    seeds: Optional[List[int]] = None
    """Seeds of the objects, one row each; default: 0 .. num-seeds - 1."""
    num_seeds: int = DEFAULT_NUM_SEEDS
    """Number of objects (seeds 0, 1, ...) when --seeds is not given."""
    views: int = DEFAULT_NUM_VIEWS
    """Views per object, evenly spaced in azimuth on the orbit at the camera prior's orbit elevation."""
    resolution: int = DEFAULT_RESOLUTION
    """Side of each view in pixels."""
    truncation: float = 1.0
    """Truncation psi: 1 shows the generator's full variety; 0.5-0.7 pulls every object towards the average one."""
    depth: bool = False
    """Add a row of colour-mapped depth under each seed (near plane blue to far plane red, white where empty)."""
    num_render_samples: Optional[int] = None
    """Samples per ray; default: the run's (--pipeline.model.num-render-samples, else its training count). More
    draw sloped surfaces without the stacked lines of training's fixed depths, for proportionally more time."""

    def main(self) -> None:
        """Renders every (seed, view) pair and writes the grid."""
        output = self.output.expanduser()
        check_output(output, PNG_SUFFIXES, "the samples grid")
        seeds = list(self.seeds) if self.seeds else list(range(self.num_seeds))
        require_at_least("--num-seeds", len(seeds), 1)
        require_at_least("--views", self.views, 1)
        require_at_least("--resolution", self.resolution, 1)
        require_render_samples(self.num_render_samples)

        model = load_model(self.load_config, self.num_render_samples)
        poses = model.dataset_preset.camera_prior.orbit_poses(self.views)
        rendered = list(
            rendered_views(
                model,
                model.latents_from_seeds(seeds).repeat_interleave(self.views, dim=0),
                poses.repeat(len(seeds), 1, 1),
                self.resolution,
                self.truncation,
                with_depth=self.depth,
                description=f"Rendering {len(seeds)} seeds x {self.views} views",
            )
        )
        rows = []
        for index in range(len(seeds)):
            views = rendered[index * self.views : (index + 1) * self.views]
            rows.append([view.rgb for view in views])
            if self.depth:
                rows.append([view.depth for view in views])
        grid = tile([cell for row in rows for cell in row], rows=len(rows), columns=self.views)
        with atomic_output(output) as temporary:
            Image.fromarray(grid).save(temporary, format="PNG")
        report_written(output, f"{len(seeds)} seeds x {self.views} views ({grid.shape[1]}x{grid.shape[0]} px)")
