"""Built-in procedural image collections: try the GAN with no download.

`--data cars` (or chairs, planes) trains on a few thousand images of random toy instances of the category, rendered
on the CPU on first use into the cache and reused afterwards. Each image shows a different instance from a camera
drawn from the camera prior, on a white background: the same kind of data as an unposed ShapeNet rendering set.
The camera poses are written to transforms.json for evaluation only; training never reads them.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from jaxtyping import Float, Int
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

from hypernerfgan_ns.cameras.camera_prior import CameraPriorConfig
from hypernerfgan_ns.data.builtin.primitives import one_torch_thread
from hypernerfgan_ns.data.builtin.renderer import DEFAULT_SUPERSAMPLING, render_scene
from hypernerfgan_ns.data.builtin.shapes import BUILTIN_SHAPES
from hypernerfgan_ns.data.cache import atomic_output, cache_lock, resolve_cache_root
from hypernerfgan_ns.errors import DatasetError
from nerfstudio.utils.rich_utils import CONSOLE

BUILTIN_DATASETS = ("cars", "chairs", "planes")
"""Names of the procedural image collections (`--data cars`)."""
BUILTIN_DATASET_VERSION = 1
"""Part of every cache entry's name: bump it whenever shapes, shading or file layout change the rendered images."""
DEFAULT_NUM_IMAGES = 2000
"""Images in a built-in collection unless asked otherwise: one random instance each."""
DEFAULT_RESOLUTION = 128
"""Side of the square images in pixels unless asked otherwise."""
CACHE_SUBFOLDER = "builtin"
"""Folder under the cache root that holds the rendered collections."""
IMAGES_FOLDER = "images"
"""Folder of the PNG images inside a rendered collection."""
TRANSFORMS_FILE = "transforms.json"
"""nerfstudio-style camera file inside a rendered collection (poses for evaluation only)."""
INSTANCE_SEED_LIMIT = 2**62
"""Per-image instance seeds are drawn uniformly below this bound."""
PRIOR_DIGEST_CHARACTERS = 12
"""Hex characters of the camera prior's digest in a cache folder's name."""
MIN_IMAGES_FOR_WORKERS = 256
"""Smaller collections render in this process: starting worker processes (a few seconds) would cost more."""
MAX_WORKERS = 16
"""Most worker processes started by default, however many cores the machine has."""
CHUNKS_PER_WORKER = 25
"""Images are handed to the workers in about this many chunks each, so the progress bar moves smoothly."""


def builtin_dataset_folder(
    name: str,
    num_images: int,
    resolution: int,
    seed: int,
    cache_root: Optional[Path],
    camera_prior: Optional[CameraPriorConfig] = None,
) -> Path:
    """Where the cache keeps a rendered collection: everything that changes its images is in the name (a camera prior
    other than the shipped presets' as a digest of its settings)."""
    folder = f"{name}-n{num_images}-r{resolution}-s{seed}-v{BUILTIN_DATASET_VERSION}"
    if camera_prior is not None and camera_prior != CameraPriorConfig():
        settings = json.dumps(asdict(camera_prior), sort_keys=True).encode("utf8")
        folder += f"-p{hashlib.sha256(settings).hexdigest()[:PRIOR_DIGEST_CHARACTERS]}"
    return resolve_cache_root(cache_root) / CACHE_SUBFOLDER / folder


def _check_request(name: str, num_images: int, resolution: int) -> None:
    if name not in BUILTIN_DATASETS:
        raise DatasetError(
            f"Unknown built-in dataset '{name}'. The built-in procedural datasets are: {', '.join(BUILTIN_DATASETS)}."
        )
    if num_images < 1:
        raise DatasetError(f"A built-in dataset needs at least one image, got num_images={num_images}.")
    if resolution < 1:
        raise DatasetError(f"The image resolution must be a positive number of pixels, got {resolution}.")


def plan_builtin_dataset(
    num_images: int, seed: int, camera_prior: CameraPriorConfig
) -> Tuple[Float[Tensor, "num_images 3 4"], Int[Tensor, "num_images"]]:
    """Camera poses and per-image instance seeds, all drawn from one generator seeded with `seed`.

    Each image's instance comes from its own seed, so the images do not depend on which process renders them.
    """
    generator = torch.Generator().manual_seed(seed)
    poses = camera_prior.sample_poses(num_images, generator)
    instance_seeds = torch.randint(INSTANCE_SEED_LIMIT, (num_images,), generator=generator)
    return poses, instance_seeds


def render_builtin_image(
    name: str,
    camera_to_world: Float[Tensor, "3 4"],
    instance_seed: int,
    resolution: int,
    camera_prior: CameraPriorConfig,
) -> np.ndarray:
    """One image (uint8, resolution x resolution x 3) of the instance that `instance_seed` draws."""
    scene = BUILTIN_SHAPES[name](torch.Generator().manual_seed(int(instance_seed)))
    view = render_scene(scene, camera_to_world, camera_prior, resolution, DEFAULT_SUPERSAMPLING)
    return (view.rgb * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()


def _render_chunk(
    name: str,
    indices: Sequence[int],
    poses: Float[Tensor, "chunk 3 4"],
    instance_seeds: Sequence[int],
    resolution: int,
    camera_prior: CameraPriorConfig,
    images_folder: Path,
) -> int:
    """Renders and writes a run of images; returns how many (runs in a worker process, or in this one)."""
    for index, pose, instance_seed in zip(indices, poses, instance_seeds):
        image = render_builtin_image(name, pose, instance_seed, resolution, camera_prior)
        Image.fromarray(image).save(images_folder / f"{index:05d}.png")
    return len(indices)


def _worker_setup() -> None:
    """Each worker process renders on one core; the processes, not threads, share the machine."""
    torch.set_num_threads(1)


def _default_num_workers(num_images: int) -> int:
    """One worker per available core (up to MAX_WORKERS) for large collections; none for small ones."""
    if num_images < MIN_IMAGES_FOR_WORKERS:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, MAX_WORKERS) if cores > 1 else 0


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=CONSOLE,
    )


def _transforms(
    name: str,
    seed: int,
    resolution: int,
    camera_prior: CameraPriorConfig,
    poses: Float[Tensor, "num_images 3 4"],
) -> Dict[str, Any]:
    """nerfstudio-style transforms.json content: shared pinhole intrinsics and one OpenGL camera-to-world per image."""
    focal = camera_prior.focal_length(resolution)
    bottom_row = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    frames = [
        {
            "file_path": f"{IMAGES_FOLDER}/{index:05d}.png",
            "transform_matrix": torch.cat([pose, bottom_row]).tolist(),
            "instance": index,
        }
        for index, pose in enumerate(poses)
    ]
    return {
        "camera_model": "PINHOLE",
        "fl_x": focal,
        "fl_y": focal,
        "cx": resolution / 2.0,
        "cy": resolution / 2.0,
        "w": resolution,
        "h": resolution,
        "camera_angle_x": camera_prior.fov,
        "builtin_dataset": {
            "name": name,
            "seed": seed,
            "version": BUILTIN_DATASET_VERSION,
            "supersampling": DEFAULT_SUPERSAMPLING,
            "camera_prior": asdict(camera_prior),
        },
        "frames": frames,
    }


def _render_here(
    name: str,
    poses: Float[Tensor, "num_images 3 4"],
    seeds: Sequence[int],
    resolution: int,
    camera_prior: CameraPriorConfig,
    images_folder: Path,
) -> None:
    """Renders every image in this process (on one thread: see `one_torch_thread`)."""
    with one_torch_thread(), _progress() as progress:
        task = progress.add_task(f"Rendering {name}", total=len(seeds))
        for index in range(len(seeds)):
            _render_chunk(name, [index], poses[index : index + 1], [seeds[index]], resolution, camera_prior,
                          images_folder)
            progress.advance(task)


def _render_in_workers(
    name: str,
    poses: Float[Tensor, "num_images 3 4"],
    seeds: Sequence[int],
    resolution: int,
    camera_prior: CameraPriorConfig,
    images_folder: Path,
    workers: int,
) -> None:
    """Renders the images in chunks on `workers` single-threaded processes."""
    num_images = len(seeds)
    chunk = max(1, math.ceil(num_images / (workers * CHUNKS_PER_WORKER)))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_process_context(), initializer=_worker_setup)
    try:
        pending: Set[Future] = set()
        for start in range(0, num_images, chunk):
            stop = min(start + chunk, num_images)
            arguments = (list(range(start, stop)), poses[start:stop], seeds[start:stop])
            pending.add(pool.submit(_render_chunk, name, *arguments, resolution, camera_prior, images_folder))
        with _progress() as progress:
            task = progress.add_task(f"Rendering {name} on {workers} processes", total=num_images)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    progress.advance(task, future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _process_context() -> multiprocessing.context.BaseContext:
    """Fork where it is safe (Linux): workers start at once and need no `if __name__ == "__main__"` guard.

    Forked workers only run single-threaded CPU code (like PyTorch's DataLoader workers); macOS and Windows spawn.
    """
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def render_builtin_dataset(
    name: str,
    output_dir: Path,
    num_images: int,
    resolution: int,
    seed: int = 0,
    camera_prior: Optional[CameraPriorConfig] = None,
    num_workers: Optional[int] = None,
) -> Path:
    """Renders a built-in collection into `output_dir` (images/NNNNN.png and transforms.json) and returns it.

    The folder appears only once complete: an interrupted render leaves nothing behind. `num_workers` processes
    render in parallel (None: one per core for large collections, none for small ones; 0: in this process).
    """
    _check_request(name, num_images, resolution)
    camera_prior = camera_prior if camera_prior is not None else CameraPriorConfig()
    output_dir = Path(output_dir)
    poses, instance_seeds = plan_builtin_dataset(num_images, seed, camera_prior)
    seeds: List[int] = instance_seeds.tolist()
    workers = _default_num_workers(num_images) if num_workers is None else num_workers
    with atomic_output(output_dir) as folder:
        images_folder = folder / IMAGES_FOLDER
        images_folder.mkdir(parents=True)
        jobs = (name, poses, seeds, resolution, camera_prior, images_folder)
        if workers <= 0:
            _render_here(*jobs)
        else:
            _render_in_workers(*jobs, workers)
        transforms = _transforms(name, seed, resolution, camera_prior, poses)
        (folder / TRANSFORMS_FILE).write_text(json.dumps(transforms, indent=2), encoding="utf8")
    return output_dir


def ensure_builtin_dataset(
    name: str,
    num_images: int = DEFAULT_NUM_IMAGES,
    resolution: int = DEFAULT_RESOLUTION,
    seed: int = 0,
    cache_root: Optional[Path] = None,
    camera_prior: Optional[CameraPriorConfig] = None,
) -> Path:
    """The cached folder of a built-in collection seen from `camera_prior`'s cameras (the training's, so that the
    images are what the prior says; the shipped presets' by default), rendered first if it is not there yet."""
    _check_request(name, num_images, resolution)
    folder = builtin_dataset_folder(name, num_images, resolution, seed, cache_root, camera_prior)
    with cache_lock(folder):  # concurrent trainings (e.g. DDP ranks) render it once and share it
        if (folder / TRANSFORMS_FILE).is_file():
            return folder
        CONSOLE.print(f"Rendering the built-in '{name}' dataset once ({num_images} images) into the cache: {folder}")
        return render_builtin_dataset(name, folder, num_images, resolution, seed=seed, camera_prior=camera_prior)
