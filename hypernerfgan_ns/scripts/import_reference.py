"""`hypernerfgan import-reference`: a published HyperNeRFGAN network pickle becomes a nerfstudio run folder.

    hypernerfgan import-reference carla.pkl --output imported
    ns-viewer --load-config imported/carla/hypernerfgan/imported/config.yml

The pickle is read without running any code from it (see `reference.network_pickle`); its G_ema weights are mapped
onto our generator (`reference.weight_mapping`), which then serves as both the trained and the EMA generator. The
run uses the reference's rendering conventions: evenly spaced samples including near and far with an opaque far
plane, no density prior. The discriminator is not imported (its architecture differs in details); a run resumed from
an import starts it from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro
from torch.amp import GradScaler

from hypernerfgan_ns.data.dataset_presets import DEFAULT_PRESET, guess_preset_name, load_preset
from hypernerfgan_ns.engine.trainer import (
    HyperNeRFGANTrainerConfig,
    checkpoint_contents,
    gathered_random_states,
    write_checkpoint,
)
from hypernerfgan_ns.errors import CheckpointError
from hypernerfgan_ns.method_configs import method_config
from hypernerfgan_ns.metrics.quality_curve import TrainingClock
from hypernerfgan_ns.reference.network_pickle import describe, load_network_pickle, state_dict_of
from hypernerfgan_ns.reference.weight_mapping import ReferenceArchitecture, detect_architecture, load_reference_weights
from nerfstudio.engine.optimizers import Optimizers
from nerfstudio.utils.rich_utils import CONSOLE

IMPORTED_TIMESTAMP = "imported"
"""Name of the run folder written by an import (in place of a training timestamp)."""
REFERENCE_NUM_SAMPLES = 64
"""Samples per ray of the published configurations (configs/nerf-gan-*.yml: n_samples 64, no importance)."""
BUILTIN_PRESET_DATA = ("cars", "chairs", "planes")
"""Presets whose built-in procedural set gives an imported run data for the viewer's thumbnails."""


def imported_run_config(
    architecture: ReferenceArchitecture, preset_name: str, num_samples: int, output: Path, experiment_name: str
) -> HyperNeRFGANTrainerConfig:
    """The `hypernerfgan` configuration with the reference's architecture and rendering conventions."""
    config = method_config("hypernerfgan")
    model = config.pipeline.model
    model.latent_dim, model.w_dim = architecture.latent_dim, architecture.w_dim
    model.mapping_layers = architecture.mapping_layers
    model.hidden_width, model.num_hidden_layers = architecture.hidden_width, architecture.num_hidden_layers
    model.skip_layer = architecture.skip_layer if architecture.skip_layer is not None else -1
    model.num_octaves, model.fmm_rank = architecture.num_octaves, architecture.fmm_rank
    model.num_coarse_samples, model.num_importance_samples = num_samples, 0
    model.density_prior_slope = 0.0
    model.density_softplus_shift = None  # the reference's ReLU
    model.bound_density_to_object = False
    model.opaque_far_plane = True
    model.eval_mixed_precision = False  # fp32 renders, in which the equivalence with the reference is tested
    dataparser = config.pipeline.datamanager.dataparser
    dataparser.data = Path(preset_name if preset_name in BUILTIN_PRESET_DATA else DEFAULT_PRESET)
    dataparser.preset = preset_name
    config.output_dir = output
    config.experiment_name = experiment_name
    config.timestamp = IMPORTED_TIMESTAMP
    return config


@dataclass
class ImportReferenceCommand:
    """Turn a HyperNeRFGAN network pickle (StyleGAN2-ADA layout) into a run folder for ns-viewer/ns-render/ns-eval."""

    pickle: tyro.conf.Positional[Path]
    """The network snapshot (.pkl) published by the HyperNeRFGAN authors or written by their training code."""
    output: Path = Path("imported")
    """Folder under which the run is written (<output>/<pickle name>/hypernerfgan/imported/)."""
    preset: Optional[str] = None
    """Dataset preset (carla, cars, chairs, planes, or a YAML): None guesses it from the pickle's name."""
    network: str = "G_ema"
    """Which network of the pickle to import (G_ema is the one the papers evaluate)."""
    num_samples: int = REFERENCE_NUM_SAMPLES
    """Samples per ray when rendering the imported generator."""
    seed: int = 0
    """Seed of the latents used to estimate the running mean of w (for truncation)."""

    def main(self) -> None:
        content = load_network_pickle(self.pickle)
        if self.network not in content:
            raise CheckpointError(f"{self.pickle} has no '{self.network}'; it holds {sorted(map(str, content))}.")
        state = state_dict_of(content[self.network])
        architecture = detect_architecture(state)
        preset_name = self.preset or guess_preset_name(Path(self.pickle)) or self.preset_from_depth(architecture)
        preset = load_preset(preset_name)
        CONSOLE.print(f"Importing {describe(content[self.network])}: {architecture}; dataset preset {preset.name}.")
        config = imported_run_config(architecture, preset_name, self.num_samples, self.output, Path(self.pickle).stem)

        pipeline = config.pipeline.setup(device="cpu", test_mode="inference")
        load_reference_weights(pipeline.model.generator, state, seed=self.seed)
        pipeline.model.generator_ema.load_state_dict(pipeline.model.generator.state_dict())
        optimizers = Optimizers(config.optimizers.copy(), pipeline.get_param_groups())
        config.save_config()
        contents = checkpoint_contents(
            0, pipeline, optimizers, GradScaler("cuda", enabled=False), skipped_steps=0, clock=TrainingClock(),
            rank_random_states=gathered_random_states(world_size=1),
        )
        write_checkpoint(config.get_checkpoint_dir(), 0, contents)
        config_path = config.get_base_dir() / "config.yml"
        CONSOLE.print(f"Imported run: {config_path}\nOpen it with: ns-viewer --load-config {config_path}")

    @staticmethod
    def preset_from_depth(architecture: ReferenceArchitecture) -> str:
        """Without a telling name: 8-layer generators are the ShapeNet cars/chairs kind, 4-layer ones CARLA/planes."""
        return "cars" if architecture.num_hidden_layers == 8 else "carla"
