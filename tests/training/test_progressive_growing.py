"""Progressive growing: the schedule of patch resolutions, and a run that grows through it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

import pytest
import torch

from hypernerfgan_ns.engine.trainer import HyperNeRFGANTrainer
from hypernerfgan_ns.training.progressive_growing import GrowthStage, ProgressiveGrowingConfig
from tests.helpers import micro_config


def test_stages_halve_the_downscale_and_fade_each_new_block_in() -> None:
    growing = ProgressiveGrowingConfig(start_downscale=4, images_per_stage=100, fade_images=40)
    assert growing.downscales() == [4, 2, 1]
    assert growing.stage(0) == GrowthStage(4, 1.0)  # the first stage has nothing to fade from
    assert growing.stage(99) == GrowthStage(4, 1.0)
    assert growing.stage(100) == GrowthStage(2, 0.0)
    assert growing.stage(120) == GrowthStage(2, 0.5)
    assert growing.stage(140) == GrowthStage(2, 1.0)
    assert growing.stage(210) == GrowthStage(1, 0.25)
    assert growing.stage(10**7) == GrowthStage(1, 1.0)
    no_fade = ProgressiveGrowingConfig(start_downscale=2, images_per_stage=10, fade_images=0)
    assert no_fade.stage(10) == GrowthStage(1, 1.0)


def test_without_growing_every_stage_is_the_full_resolution() -> None:
    growing = ProgressiveGrowingConfig()
    assert not growing.enabled and growing.downscales() == [1]
    assert growing.stage(0) == growing.stage(10**6) == GrowthStage(1, 1.0)
    assert growing.describe(64) == "off"


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(start_downscale=3), "power of two"),
        (dict(start_downscale=0), "power of two"),
        (dict(start_downscale=2, images_per_stage=0, fade_images=0), "at least 1 image"),
        (dict(start_downscale=2, images_per_stage=10, fade_images=20), "within its stage"),
    ],
)
def test_schedules_that_cannot_run_are_refused(options, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProgressiveGrowingConfig(**options)


def test_a_run_grows_from_4_to_16_pixel_patches_and_trains(tmp_path: Path) -> None:
    """The micro run's 16-pixel patches of 16-pixel images: two iterations (8 images) at 4 pixels, two at 8 (the
    8-pixel block fading in over the first), then 16. Fakes and reals reach the discriminator at the stage's size."""
    config = micro_config(tmp_path, max_num_iterations=6)
    config.pipeline.progressive_growing = ProgressiveGrowingConfig(start_downscale=4, images_per_stage=8, fade_images=4)
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    pipeline = trainer.pipeline
    seen: List[Tuple[int, float]] = []
    forward = pipeline.discriminator.forward
    pipeline.discriminator.forward = lambda images, num_batches=1, fade=1.0, patch_scales=None: (
        seen.append((images.shape[-1], fade)) or forward(images, num_batches, fade, patch_scales)
    )
    real_sides = []
    next_train = pipeline.datamanager.next_train
    pipeline.datamanager.next_train = lambda step, downscale=1: (
        lambda result: real_sides.append(result[1]["image"].shape[1]) or result
    )(next_train(step, downscale))
    before = [p.detach().clone() for p in pipeline.discriminator.from_rgb_smaller.parameters()]
    trainer.train()

    # Per iteration: the D phase's call (fakes and reals, or two on an R1 step: every 2nd), then the G phase's.
    assert list(dict.fromkeys(seen)) == [(4, 1.0), (8, 0.0), (8, 1.0), (16, 0.0), (16, 1.0)]
    assert real_sides == [4, 4, 8, 8, 16, 16]
    assert pipeline.growth_stage == GrowthStage(1, 1.0)
    after = list(pipeline.discriminator.from_rgb_smaller.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after)), "the smaller patches' layers were trained"
    assert all(torch.isfinite(p).all() for p in pipeline.model.generator.parameters())


def test_growing_is_refused_where_the_patches_cannot_shrink(tmp_path: Path, capsys) -> None:
    config = micro_config(tmp_path)
    config.pipeline.progressive_growing = ProgressiveGrowingConfig(start_downscale=8)  # 16 / 8 = 2 < 4 pixels
    with pytest.raises(SystemExit):
        config.setup(local_rank=0, world_size=1).setup()
    assert re.search("cannot start 8x smaller.*start-downscale", " ".join(capsys.readouterr().out.split()))
    config.pipeline.progressive_growing = ProgressiveGrowingConfig(start_downscale=2)
    config.pipeline.datamanager.patch_size = 8
    config.pipeline.datamanager.patch_scale_annealing_images = 100
    with pytest.raises(SystemExit):
        config.setup(local_rank=0, world_size=1).setup()
    assert "choose one" in " ".join(capsys.readouterr().out.split())
    config.pipeline.datamanager.patch_scale_annealing_images = 0
    config.pipeline.datamanager.whole_image_patches = True  # scaled too, as coarse as growing's first patches
    with pytest.raises(SystemExit):
        config.setup(local_rank=0, world_size=1).setup()
    assert "choose one" in " ".join(capsys.readouterr().out.split())
