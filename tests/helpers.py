"""Builders for CPU-sized training runs used across the tests."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest
import torch
import yaml
from torch.utils._python_dispatch import TorchDispatchMode

from hypernerfgan_ns.data.datamanagers.random_pose_patch_datamanager import RandomPosePatchDataManagerConfig
from hypernerfgan_ns.data.dataparsers.unposed_images_dataparser import UnposedImagesDataParserConfig
from hypernerfgan_ns.data.dataset_presets import preset_files
from hypernerfgan_ns.engine.trainer import HyperNeRFGANTrainerConfig
from hypernerfgan_ns.fields.target_field import TargetField
from hypernerfgan_ns.method_configs import hypernerfgan_config
from hypernerfgan_ns.metrics.quality_curve import QualityCurveConfig
from hypernerfgan_ns.models.hypernerfgan import HyperNeRFGANModel, HyperNeRFGANModelConfig
from hypernerfgan_ns.networks.discriminator import DiscriminatorConfig
from hypernerfgan_ns.pipelines.adversarial_pipeline import AdversarialPipelineConfig
from hypernerfgan_ns.training.augment import AugmentConfig
from hypernerfgan_ns.training.losses import AdversarialLossConfig
from nerfstudio.scripts.train import train_loop


def micro_config(
    output_dir: Path,
    data: str = "cars",
    max_num_iterations: int = 4,
    timestamp: str = "run",
    **trainer_overrides: Any,
) -> HyperNeRFGANTrainerConfig:
    """A whole training configuration small enough for a few CPU iterations per second.

    16x16 images of the built-in set (64 images), 4 objects per batch, 8 samples per ray, small networks.
    """
    pipeline = AdversarialPipelineConfig(
        datamanager=RandomPosePatchDataManagerConfig(
            dataparser=UnposedImagesDataParserConfig(
                data=Path(data), resolution=16, min_image_size=8, min_num_images=4, builtin_num_images=64
            ),
            batch_size=4,
            patch_size=16,
        ),
        model=HyperNeRFGANModelConfig(
            latent_dim=16,
            w_dim=16,
            hidden_width=16,
            num_hidden_layers=2,
            skip_layer=-1,
            num_octaves=4,
            fmm_rank=2,
            num_coarse_samples=8,
            eval_num_rays_per_chunk=1024,
        ),
        discriminator=DiscriminatorConfig(channel_base=256, channel_max=32),
        augment=AugmentConfig(initial_p=0.2, update_interval=2),
        loss=AdversarialLossConfig(r1_interval=2),
        num_eval_images=8,
        sample_grid_seeds=2,
    )
    config = hypernerfgan_config(
        method_name="hypernerfgan-tiny",
        pipeline=pipeline,
        max_num_iterations=max_num_iterations,
        steps_per_save=1000,
        steps_per_eval=1000,
        mixed_precision=False,
        vis="tensorboard",
        quality_curve=QualityCurveConfig(interval_images=0),  # tests of the curve turn it on
    )
    config.output_dir = output_dir
    config.experiment_name = "micro"
    config.timestamp = timestamp
    config.machine.device_type = "cpu"
    for name, value in trainer_overrides.items():
        setattr(config, name, value)
    return config


def train(config: HyperNeRFGANTrainerConfig) -> Path:
    """Trains as `ns-train` does (seeding included) and returns the run's checkpoint folder."""
    config.save_config()
    train_loop(local_rank=0, world_size=1, config=config)
    return config.get_checkpoint_dir()


def latest_checkpoint(checkpoint_dir: Path) -> Dict[str, Any]:
    """The newest checkpoint, loaded the way ns-render and ns-eval load it on torch >= 2.6."""
    path = sorted(checkpoint_dir.glob("step-*.ckpt"))[-1]
    return torch.load(path, map_location="cpu", weights_only=True)


def replaced(config: HyperNeRFGANTrainerConfig, **changes: Any) -> HyperNeRFGANTrainerConfig:
    """A copy of a trainer config with some top-level fields changed (configs are never edited in place)."""
    return dataclasses.replace(config, **changes)


def points_queried(field: TargetField, render: Callable[[], Any]) -> int:
    """How many points per object `render()` runs the field at."""
    counts = []
    forward = field.forward
    field.forward = lambda positions, *args, **kwargs: counts.append(positions.shape[1]) or forward(
        positions, *args, **kwargs
    )
    try:
        render()
    finally:
        del field.forward
    return sum(counts)


def samples_per_ray_queried(model: HyperNeRFGANModel, monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """A list that records the samples per ray of every field query `model` makes from now on."""
    counts: List[int] = []
    query_field = model.query_field

    def recorded_query(ray_samples, *args, **kwargs):
        counts.append(ray_samples.shape[-1])
        return query_field(ray_samples, *args, **kwargs)

    monkeypatch.setattr(model, "query_field", recorded_query)
    return counts


def own_preset(folder: Path, prior_changes: Optional[Dict[str, Any]] = None, **changes: Any) -> Path:
    """The shipped cars preset with `changes` to its settings and `prior_changes` to its camera prior, written to a
    preset file of one's own in `folder`."""
    values = yaml.safe_load(preset_files()["cars"].read_text(encoding="utf8"))
    values.update(changes)
    if prior_changes:
        values["camera_prior"].update(prior_changes)
    path = folder / "mine.yml"
    path.write_text(yaml.safe_dump(values), encoding="utf8")
    return path


class OperationNames(TorchDispatchMode):
    """Counts the operations dispatched while active (below autograd: backward's too), by name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))
