"""Per-dataset presets: the camera prior and the hyper-parameters that depend on the image collection.

Presets are YAML files in the repository's top-level `configs/` folder (shipped in the package as
`hypernerfgan_ns.dataset_configs`). The `unposed-images` dataparser picks one by name (`--preset cars`), by path
(`--preset my_dataset.yml`), or guesses it from the data's name (`--data cars_train` -> `cars`). Model and loss
fields that are left unset (`None`) take their value from the chosen preset; a value given on the command line wins.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Dict, Optional

import yaml

from hypernerfgan_ns.cameras.camera_prior import CameraPriorConfig
from hypernerfgan_ns.errors import DatasetError

DEFAULT_PRESET = "cars"
"""Preset used when the data's name does not tell which one applies."""


@dataclass(frozen=True)
class DatasetPreset:
    """What HyperNeRFGAN needs to know about an image collection besides its images."""

    name: str
    """Preset name (the YAML file's stem)."""
    description: str
    """One line shown when training starts."""
    camera_prior: CameraPriorConfig
    """Where the collection's unseen cameras are assumed to be."""
    num_hidden_layers: int
    """Hidden layers of the target NeRF MLP: 4 (CARLA, planes) or 8 (cars, chairs)."""
    skip_layer: Optional[int]
    """0-based hidden layer after which the encoded input is concatenated again; None for no skip."""
    r1_gamma: float
    """Weight of the R1 gradient penalty on real images."""
    source: Path
    """File the preset was read from."""


def preset_files() -> Dict[str, Path]:
    """The presets shipped with the package, by name."""
    folder = resources.files("hypernerfgan_ns.dataset_configs")
    return {Path(entry.name).stem: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".yml")}


def guess_preset_name(data: Path) -> Optional[str]:
    """The shipped preset whose name starts the data's name (`cars_train.zip` -> `cars`), if exactly one does."""
    stem = data.name.split(".")[0].lower()
    matches = [name for name in preset_files() if stem.startswith(name)]
    # "cars" must not claim "carla": prefer the longest matching name.
    return max(matches, key=len) if matches else None


def load_preset(name_or_path: str) -> DatasetPreset:
    """Reads a preset by shipped name or from a YAML file."""
    shipped = preset_files()
    path = shipped.get(name_or_path, Path(name_or_path).expanduser())
    if not path.is_file():
        raise DatasetError(
            f"Unknown dataset preset '{name_or_path}'. Use one of {sorted(shipped)}, or the path to a YAML file "
            f"written like {shipped[DEFAULT_PRESET]}."
        )
    try:
        values = yaml.safe_load(path.read_text(encoding="utf8")) or {}
    except yaml.YAMLError as error:
        raise DatasetError(f"The dataset preset {path} is not valid YAML: {error}") from error
    if not isinstance(values, dict):
        raise DatasetError(f"The dataset preset {path} must be a mapping of settings, like {shipped[DEFAULT_PRESET]}.")
    expected = {field.name for field in dataclasses.fields(DatasetPreset)} - {"name", "source"}
    unexpected, missing = set(values) - expected, expected - set(values)
    if unexpected or missing:
        raise DatasetError(
            f"The dataset preset {path} has unexpected keys {sorted(unexpected)} and lacks keys {sorted(missing)}. "
            f"Expected exactly: {sorted(expected)}."
        )
    prior_fields = {field.name for field in dataclasses.fields(CameraPriorConfig)}
    if not isinstance(values["camera_prior"], dict):
        raise DatasetError(
            f"The camera_prior of {path} must be a mapping of its settings ({', '.join(sorted(prior_fields))}), "
            f"got {values['camera_prior']!r}."
        )
    prior_values = dict(values.pop("camera_prior"))
    if set(prior_values) - prior_fields:
        raise DatasetError(
            f"The camera_prior of {path} has unknown keys {sorted(set(prior_values) - prior_fields)}; "
            f"known keys: {sorted(prior_fields)}."
        )
    for key in ("azimuth_range", "elevation_range"):
        if key in prior_values:
            prior_values[key] = tuple(float(v) for v in prior_values[key])
    try:
        camera_prior = CameraPriorConfig(**prior_values)
    except (TypeError, ValueError) as error:
        raise DatasetError(f"The camera_prior of {path} is invalid: {error}") from error
    return DatasetPreset(
        name=path.stem,
        description=str(values["description"]),
        camera_prior=camera_prior,
        num_hidden_layers=int(values["num_hidden_layers"]),
        skip_layer=None if values["skip_layer"] is None else int(values["skip_layer"]),
        r1_gamma=float(values["r1_gamma"]),
        source=path,
    )
