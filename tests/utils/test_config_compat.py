"""A config.yml written before an option existed still loads, with the option's default."""

from __future__ import annotations

from pathlib import Path

import yaml

from hypernerfgan_ns.engine.trainer import HyperNeRFGANTrainerConfig
from tests.helpers import micro_config


def test_config_yml_without_newer_fields_loads_with_their_defaults(tmp_path: Path) -> None:
    config = micro_config(tmp_path)
    text = yaml.dump(config)
    assert "  evaluation: !!python/object" in text and "max_consecutive_skipped_steps" in text
    old = [line for line in text.splitlines() if "max_consecutive_skipped_steps" not in line]
    start = next(i for i, line in enumerate(old) if line.startswith("  evaluation: "))
    end = next(i for i in range(start + 1, len(old)) if not old[i].startswith("    "))
    old = old[:start] + old[end:]
    loaded = yaml.load("\n".join(old), Loader=yaml.Loader)
    assert isinstance(loaded, HyperNeRFGANTrainerConfig)
    assert loaded.max_consecutive_skipped_steps == 20
    assert loaded.pipeline.evaluation.num_generated == 1000
    assert loaded.pipeline.datamanager.patch_size == config.pipeline.datamanager.patch_size
