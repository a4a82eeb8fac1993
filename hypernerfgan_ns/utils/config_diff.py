"""What one nested dataclass config sets otherwise than another, field by field.

`hypernerfgan ablate` records what each row really changed in the method's config; a resumed run whose checkpoint
does not fit names the network options its saved config.yml sets otherwise than today's (a preset's default that
changed since the run began)."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List


def config_values(value: Any, prefix: str = "") -> Dict[str, Any]:
    """Every leaf field of a nested config by dotted name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        values: Dict[str, Any] = {}
        for config_field in dataclasses.fields(value):
            values.update(config_values(getattr(value, config_field.name), f"{prefix}{config_field.name}."))
        return values
    return {prefix.rstrip("."): value}


def config_changes(before: Any, after: Any) -> Dict[str, List[Any]]:
    """The leaf fields `after` sets otherwise than `before`, as {dotted name: [before's value, after's value]}."""
    old, new = config_values(before), config_values(after)
    return {name: [old.get(name), value] for name, value in new.items() if old.get(name) != value}
