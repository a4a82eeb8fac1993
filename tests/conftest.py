"""Shared fixtures: small presets and models, and a cache folder that never touches the user's home."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import pytest
import torch

from hypernerfgan_ns.cameras.camera_prior import CameraPriorConfig
from hypernerfgan_ns.data.cache import CACHE_ENV_VARIABLE
from hypernerfgan_ns.data.dataset_presets import DatasetPreset, load_preset
from hypernerfgan_ns.models.hypernerfgan import HyperNeRFGANModel, HyperNeRFGANModelConfig
from nerfstudio.data.scene_box import SceneBox


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test process caches decoded images and built-in sets in a temporary folder."""
    cache = tmp_path_factory.mktemp("hypernerfgan_cache")
    patcher = pytest.MonkeyPatch()
    patcher.setenv(CACHE_ENV_VARIABLE, str(cache))
    yield cache
    patcher.undo()


@pytest.fixture
def preset() -> DatasetPreset:
    """The shipped cars preset (8 layers with a skip) with its camera prior."""
    return load_preset("cars")


@pytest.fixture
def camera_prior(preset: DatasetPreset) -> CameraPriorConfig:
    return preset.camera_prior


def make_model(preset: DatasetPreset, **overrides) -> HyperNeRFGANModel:
    """A small HyperNeRFGAN model, as nerfstudio's pipeline would build it."""
    options = dict(hidden_width=32, num_hidden_layers=3, skip_layer=1, num_octaves=4, num_coarse_samples=16)
    options.update(overrides)
    config = HyperNeRFGANModelConfig(**options)
    scene_box = SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    return config.setup(scene_box=scene_box, num_train_data=1, metadata={"dataset_preset": preset})


@pytest.fixture
def small_model(preset: DatasetPreset) -> HyperNeRFGANModel:
    torch.manual_seed(0)
    return make_model(preset)


def with_prior(preset: DatasetPreset, **prior_overrides) -> DatasetPreset:
    """The preset with some camera-prior fields replaced."""
    return dataclasses.replace(preset, camera_prior=dataclasses.replace(preset.camera_prior, **prior_overrides))
