"""The GAN learns: `hypernerfgan-tiny` on the built-in cars brings its samples measurably closer to the photos.

The judge is the run's own quality curve (`metrics.jsonl`, as `hypernerfgan plot` reads it): the sliced Wasserstein
distance on Laplacian-pyramid patches (no pretrained network) between EMA samples and the training images. Run alone
with `pytest -m learning -s` to see the curve.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hypernerfgan_ns.engine.trainer import HyperNeRFGANTrainer
from hypernerfgan_ns.method_configs import method_config
from hypernerfgan_ns.metrics.quality_curve import METRICS_FILENAME, QualityCurveConfig, read_curve
from nerfstudio.scripts.train import _set_random_seed

ITERATIONS = 520
"""2,080 images at the preset's batch of 4: 94 s on two idle CPU cores, its curve's seven points included."""

REQUIRED_IMPROVEMENT = 0.7
"""The SWD at the end must be below this fraction of the SWD at images seen 0."""

FINAL_POINTS = 3
"""The SWD at the end is the mean of the curve's last points: one point of 128 samples, taken at one step of an
oscillating GAN, moves by a third from one point to the next (35 -> 45 between two points 400 images apart in one
run), so a single reading passes or fails by chance."""

CURVE = QualityCurveConfig(interval_images=400, num_generated=128)
"""A point every 100 iterations, and one at the start and the end. Six points instead of the preset's 21 (one per
100 images): the preset's interval cost this test 140 s of its 550."""


@pytest.mark.learning
def test_tiny_model_learns_the_builtin_cars(tmp_path: Path) -> None:
    config = method_config("hypernerfgan-tiny")
    config.output_dir = tmp_path
    config.max_num_iterations = ITERATIONS
    config.steps_per_eval_image = 0
    config.steps_per_save = ITERATIONS
    config.machine.device_type = "cpu"
    config.quality_curve = CURVE
    config.pipeline.evaluation.metrics = ("swd",)  # the same work whether or not Inception weights are here
    config.set_timestamp()
    _set_random_seed(config.machine.seed)
    trainer: HyperNeRFGANTrainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    trainer.train()

    points = read_curve(config.get_base_dir() / METRICS_FILENAME)
    curve = {point["images_seen"]: point["swd"] for point in points}
    print("SWD x 1000 by images seen:", {images: round(value, 1) for images, value in curve.items()})
    assert list(curve) == [0, 400, 800, 1200, 1600, 2000, 4 * ITERATIONS], points
    final = list(curve.values())[-FINAL_POINTS:]
    assert sum(final) / len(final) < REQUIRED_IMPROVEMENT * curve[0], curve
    assert torch.isfinite(torch.tensor(list(curve.values()))).all()
