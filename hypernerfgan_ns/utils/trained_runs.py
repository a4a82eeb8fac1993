"""Loading a trained run (its config.yml and latest checkpoint) for our own commands: samples, videos, meshes.

nerfstudio's `eval_setup` does the loading; this adds clear errors for the common mistakes (a wrong path, a run of
another method, a run without checkpoints) and picks "inference" mode, in which the training images are optional.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import yaml

from hypernerfgan_ns.engine.trainer import HyperNeRFGANTrainerConfig, saved_checkpoints
from hypernerfgan_ns.errors import CheckpointError
from hypernerfgan_ns.pipelines.adversarial_pipeline import AdversarialPipeline
from nerfstudio.utils.eval_utils import eval_setup


def located(config: HyperNeRFGANTrainerConfig, config_path: Path) -> HyperNeRFGANTrainerConfig:
    """The run's config with its output folder where its config.yml lies. ns-train keeps `--output-dir` as given
    (`outputs`, relative to where it ran), so from another folder the checkpoints would be looked for elsewhere."""
    run_folder = config_path.resolve().parent
    if (run_folder.parents[1].name, run_folder.parent.name, run_folder.name) == (
        config.experiment_name, config.method_name, config.timestamp
    ):
        config.output_dir = run_folder.parents[2]
    return config


def load_trained_pipeline(
    config_path: Path, num_render_samples: Optional[int] = None
) -> Tuple[HyperNeRFGANTrainerConfig, AdversarialPipeline, int]:
    """The run's config, its pipeline in evaluation mode with the latest checkpoint loaded, and that step;
    `num_render_samples` overrides the run's samples per ray of renders (None: the run's own)."""
    config_path = Path(config_path).expanduser()
    if config_path.is_dir() and (config_path / "config.yml").is_file():
        config_path = config_path / "config.yml"  # the run's folder
    if not config_path.is_file():
        raise CheckpointError(
            f"{config_path} does not exist. Pass the config.yml of a training run, "
            "e.g. outputs/cars/hypernerfgan/<timestamp>/config.yml."
        )
    config = yaml.load(config_path.read_text(encoding="utf8"), Loader=yaml.Loader)
    if not isinstance(config, HyperNeRFGANTrainerConfig):
        raise CheckpointError(
            f"{config_path} is a run of '{getattr(config, 'method_name', 'another method')}', not of HyperNeRFGAN."
        )
    config = located(config, config_path)
    if not saved_checkpoints(config.get_checkpoint_dir()):
        raise CheckpointError(
            f"The run {config_path.parent} has no checkpoint in {config.get_checkpoint_dir()}; checkpoints are "
            "written every --steps-per-save steps and when training ends or is interrupted."
        )

    def update(loaded: HyperNeRFGANTrainerConfig) -> HyperNeRFGANTrainerConfig:
        if num_render_samples is not None:
            loaded.pipeline.model.num_render_samples = num_render_samples
        return located(loaded, config_path)

    config, pipeline, _, step = eval_setup(config_path, test_mode="inference", update_config_callback=update)
    assert isinstance(pipeline, AdversarialPipeline)
    return config, pipeline, step
