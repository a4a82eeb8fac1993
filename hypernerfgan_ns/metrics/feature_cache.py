"""Inception features of training images, kept on disk between runs, as stylegan2-ada-pytorch keeps its datasets'
statistics: every ns-train with a quality curve, `ns-eval`, ablation row and `hypernerfgan score` of the same images
would otherwise run Inception over all of them again (2,000 images: seconds on a GPU, minutes on a CPU).

An entry is named by a hash of what the features depend on: the decoded images (their image store's content key,
which changes with any edit of the collection), how many of them, the weights file (path, size, modification time)
and the device type (a GPU's features differ from the CPU's in the last bits). Entries are written atomically under a
per-entry lock, so that trainings started together compute them once; an unreadable entry is computed again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

import torch
from jaxtyping import Float
from torch import Tensor

from hypernerfgan_ns.data.cache import atomic_output, cache_lock, resolve_cache_root
from hypernerfgan_ns.data.image_collection import ImageStore
from nerfstudio.utils.rich_utils import CONSOLE

FEATURES_SUBFOLDER = "inception_features"
"""Folder under the cache root that holds the entries."""

FORMAT_VERSION = 2
"""Bumped when the features of the same inputs change (preprocessing, feature layer, which images; 2: a subset is
spread evenly over the set, not its first images)."""


def features_entry(
    store: ImageStore, count: int, weights: Path, device: torch.device, cache_root: Optional[Path] = None
) -> Path:
    """The cache file of the Inception features (`weights`, on `device`'s type) of `count` images of `store`, spread
    evenly over it (`metrics.evaluation.spread_indices`)."""
    weights = Path(weights).resolve()
    status = weights.stat()
    key = {
        "format_version": FORMAT_VERSION,
        "images": store.path.stem,
        "count": count,
        "weights": [str(weights), status.st_size, status.st_mtime_ns],
        "device": torch.device(device).type,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf8")).hexdigest()[:40]
    return resolve_cache_root(cache_root) / FEATURES_SUBFOLDER / f"{digest}.pt"


def cached_features(
    entry: Path, count: int, compute: Callable[[], Float[Tensor, "count features"]]
) -> Float[Tensor, "count features"]:
    """The features kept in `entry`, or `compute()`'s, kept there for the next time."""
    with cache_lock(entry):
        if entry.is_file():
            try:
                features = torch.load(entry, map_location="cpu", weights_only=True)
                if isinstance(features, Tensor) and features.dim() == 2 and features.shape[0] == count:
                    return features
                CONSOLE.print(f"[yellow]The cached Inception features {entry} do not fit; computing them again.")
            except Exception as error:  # any unreadable file: a half-copied cache, another torch's pickle
                CONSOLE.print(
                    f"[yellow]The cached Inception features {entry} cannot be read ({error}); computing them again."
                )
        features = compute()
        with atomic_output(entry) as temporary:
            torch.save(features.cpu(), temporary)
    return features
