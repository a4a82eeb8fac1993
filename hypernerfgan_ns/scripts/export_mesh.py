"""`hypernerfgan export-mesh`: one generated object as a coloured triangle mesh, for MeshLab, Blender or a printer.

    hypernerfgan export-mesh --load-config RUN/config.yml --seed 3 --output meshes/car3.ply

The object's density is sampled on a regular grid over the scene box, marching cubes extracts the surface where the
density crosses a threshold, and every vertex takes the field's colour at its position (the field has no view
direction, so that colour is the object's own). The grid is padded with empty space, so that parts touching the box
still give a closed mesh. Coordinates are the world's: the object centred at the origin, +z up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Tuple

import numpy as np
import torch
import trimesh
from jaxtyping import Float, Int
from skimage.measure import marching_cubes
from torch import Tensor

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.errors import ExportError
from hypernerfgan_ns.fields.target_field import ObjectWeights
from hypernerfgan_ns.networks.generator import Generator
from hypernerfgan_ns.scripts.rendering import (
    check_output,
    load_model,
    progress_bar,
    report_written,
    require_at_least,
)
from hypernerfgan_ns.utils.colors import to_uint8
from nerfstudio.field_components.field_heads import FieldHeadNames

MESH_SUFFIXES = (".ply", ".obj")
"""Mesh formats with per-vertex colours that MeshLab and Blender both import."""

DEFAULT_GRID_RESOLUTION = 256
"""Grid points per side: cells of 1/128 of the scene box, finer than a 128-pixel render resolves; 16.7 M density
queries (seconds on a GPU, a few minutes on a CPU)."""

DEFAULT_DENSITY_THRESHOLD = 10.0
"""Surface density, per unit of world length. The scene box is 2 units wide and an object about 1: a ray crossing
0.1 units (5 % of the object) of density 10 is 1 - exp(-1) = 63 % opaque, so this level is where renders turn solid.
Lower it for thin or fuzzy parts (and for barely trained runs, whose densities are small)."""

POINTS_PER_CHUNK = 1 << 18
"""Points per query of the field: 262,144 points keep the activations of the paper's 128-wide MLP near 0.5 GB."""

GRID_PADDING = 1
"""Empty cells added around the grid so that marching cubes closes surfaces that touch the scene box."""

EMPTY_DENSITY = 0.0
"""Density of the padding: nothing."""

DENSITY_GRADIENT_DIRECTION = "ascent"
"""skimage's orientation option for a field that grows towards the inside: triangles wind counter-clockwise seen
from outside and the normals point out (a closed mesh then has a positive volume), as MeshLab and Blender expect."""


def query_field(
    generator: Generator,
    weights: ObjectWeights,
    num_points: int,
    points: Callable[[int, int], Float[Tensor, "chunk 3"]],
    head: FieldHeadNames,
    description: str,
) -> Float[Tensor, "num_points channels"]:
    """One output head of the object's field at `points(start, stop)`, chunk by chunk, gathered on the CPU."""
    device = weights.groups[0].device
    result = None
    with progress_bar(description) as progress:
        task = progress.add_task("query", total=math.ceil(num_points / POINTS_PER_CHUNK))
        for start in range(0, num_points, POINTS_PER_CHUNK):
            stop = min(start + POINTS_PER_CHUNK, num_points)
            with torch.no_grad():
                outputs = generator.field(points(start, stop).to(device)[None], weights, density_noise_std=0.0)
            chunk = outputs[head][0].float().cpu()
            if result is None:
                result = torch.empty(num_points, chunk.shape[-1])
            result[start:stop] = chunk
            progress.advance(task)
    assert result is not None
    return result


def density_grid(
    generator: Generator,
    weights: ObjectWeights,
    low: Float[Tensor, "3"],
    high: Float[Tensor, "3"],
    resolution: int,
) -> Float[np.ndarray, "resolution resolution resolution"]:
    """The object's density at resolution^3 evenly spaced points from `low` to `high` (corners included)."""
    axes = torch.stack([torch.linspace(float(a), float(b), resolution) for a, b in zip(low, high)])

    def points(start: int, stop: int) -> Float[Tensor, "chunk 3"]:
        index = torch.arange(start, stop)  # flat x-major index into the grid
        x, y, z = index // (resolution * resolution), (index // resolution) % resolution, index % resolution
        return torch.stack([axes[0, x], axes[1, y], axes[2, z]], dim=-1)

    density = query_field(
        generator, weights, resolution**3, points, FieldHeadNames.DENSITY, f"Sampling density on {resolution}^3 points"
    )
    return density.view(resolution, resolution, resolution).numpy()


def extract_surface(
    density: Float[np.ndarray, "resolution resolution resolution"],
    low: Float[Tensor, "3"],
    high: Float[Tensor, "3"],
    threshold: float,
) -> Tuple[Float[np.ndarray, "vertices 3"], Int[np.ndarray, "faces 3"], Float[np.ndarray, "vertices 3"]]:
    """Vertices (world coordinates, inside the box), faces and outward normals of the surface density = threshold."""
    spacing = ((high - low) / (density.shape[0] - 1)).numpy()
    padded = np.pad(density, GRID_PADDING, constant_values=EMPTY_DENSITY)
    vertices, faces, normals, _ = marching_cubes(
        padded, level=threshold, spacing=tuple(spacing), gradient_direction=DENSITY_GRADIENT_DIRECTION
    )
    # Index 0 of the padded grid lies one cell outside the box; surfaces against the padding are clipped onto the box.
    vertices = np.clip(vertices + (low.numpy() - GRID_PADDING * spacing), low.numpy(), high.numpy())
    return vertices.astype(np.float32), faces, normals


@dataclass
class ExportMeshCommand:
    """Extract one generated object's surface as a vertex-coloured triangle mesh (PLY or OBJ), by marching cubes."""

    load_config: Path
    """config.yml of the training run, e.g. outputs/cars/hypernerfgan/<timestamp>/config.yml."""
    seed: int
    """Seed of the object (the same object as in `hypernerfgan samples` and the viewer)."""
    output: Path
    """Mesh to write: .ply (binary, compact) or .obj (text); folders are created."""
    truncation: float = 1.0
    """Truncation psi: 1 is the object as sampled; 0.5-0.7 pulls it towards the average object."""
    resolution: int = DEFAULT_GRID_RESOLUTION
    """Grid points per side of the scene box; memory and time grow with its cube."""
    density_threshold: float = DEFAULT_DENSITY_THRESHOLD
    """Surface density: a 0.1-unit layer of density 10 stops 63 % of a ray (looks solid); lower keeps thin parts."""

    def main(self) -> None:
        """Samples the density, extracts and colours the surface, writes the mesh."""
        output = self.output.expanduser()
        suffix = check_output(output, MESH_SUFFIXES, "the mesh")
        require_at_least("--resolution", self.resolution, 2)
        if self.density_threshold <= EMPTY_DENSITY:
            raise ExportError(f"--density-threshold must be positive, got {self.density_threshold}.")

        model = load_model(self.load_config)
        generator = model.rendering_generator()
        with torch.no_grad():
            weights = generator.object_weights(model.latent_from_seed(self.seed).to(model.device), self.truncation)
        low, high = model.scene_box.aabb.float().cpu()
        density = density_grid(generator, weights, low, high, self.resolution)
        max_density = float(density.max())
        if max_density <= self.density_threshold:
            advice = (
                f"Pass a lower threshold, e.g. --density-threshold {max_density / 2:.3g} (a barely trained run has "
                "low densities everywhere)."
                if max_density > EMPTY_DENSITY
                else "The object is empty: try another --seed, or a run trained for longer."
            )
            raise ExportError(
                f"Seed {self.seed} has no surface at --density-threshold {self.density_threshold:g}: the highest "
                f"density in the scene box is {max_density:.4g}. {advice}"
            )
        vertices, faces, normals = extract_surface(density, low, high, self.density_threshold)
        positions = torch.from_numpy(vertices)
        colors = query_field(
            generator,
            weights,
            len(vertices),
            lambda start, stop: positions[start:stop],
            FieldHeadNames.RGB,
            f"Colouring {len(vertices)} vertices",
        )
        mesh = trimesh.Trimesh(
            vertices=vertices, faces=faces, vertex_normals=normals, vertex_colors=to_uint8(colors), process=False
        )
        with atomic_output(output) as temporary:
            mesh.export(temporary, file_type=suffix.lstrip("."))
        report_written(
            output,
            f"a mesh of {len(vertices)} vertices and {len(faces)} faces (seed {self.seed}, density threshold "
            f"{self.density_threshold:g}, highest density {max_density:.4g})",
        )
