"""Runs trained with an older version keep loading after options were added.

nerfstudio saves a run's configuration as `config.yml` and rebuilds the dataclasses from it with PyYAML, which
restores the saved attributes without calling `__init__`. A field added in a later version is then missing on the
object, and `ns-render`, `ns-eval` or `--load-dir` fail with an AttributeError. Our configs fill such fields with
their defaults while being loaded.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict


class DefaultsForMissingFields:
    """Mixin for dataclass configs: fields absent from a loaded config.yml take their current defaults."""

    def __setstate__(self, state: Dict[str, Any]) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            if field.name in state:
                continue
            if field.default is not dataclasses.MISSING:
                state[field.name] = field.default
            elif field.default_factory is not dataclasses.MISSING:
                state[field.name] = field.default_factory()
        self.__dict__.update(state)
