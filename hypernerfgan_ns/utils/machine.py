"""The processor a figure was measured on, in words.

Benchmarks and ablation rows name it because their figures depend on it: a GAN's training amplifies the last bits of
floating-point arithmetic, which differ between processors (and between the vector instructions torch's kernels use
on them), so the same code and seed gave FID 58.0 and 67.4 on the tiny preset on two machines (docs/ablations.md, "A
warm-up of the learning rates"). Virtual machines often report a generic model name, hence the family and model
numbers beside it.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Dict

import torch

CPUINFO = Path("/proc/cpuinfo")
"""Where Linux describes the processor; elsewhere `platform` gives what it knows."""


def first_processor_fields(cpuinfo: Path) -> Dict[str, str]:
    """The fields of the first processor in a /proc/cpuinfo file; none if it cannot be read."""
    fields: Dict[str, str] = {}
    try:
        text = cpuinfo.read_text(encoding="utf8", errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def processor_name(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name with its family and model numbers ("Intel(R) Xeon(R) Processor, family 6 model 167"),
    or its architecture where the system does not say."""
    fields = first_processor_fields(cpuinfo)
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown processor"
    if fields.get("cpu family") and fields.get("model"):
        name = f"{name}, family {fields['cpu family']} model {fields['model']}"
    return name


def cpu_description(cpuinfo: Path = CPUINFO) -> str:
    """The processor and the vector instructions torch's CPU kernels use on it ("..., AVX512")."""
    return f"{processor_name(cpuinfo)}, {torch.backends.cpu.get_cpu_capability()}"
