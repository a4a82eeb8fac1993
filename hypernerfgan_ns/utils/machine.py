"""The processor a figure was measured on, in words.

Benchmarks and ablation rows name it because their figures depend on it: a GAN's training amplifies the last bits of
floating-point arithmetic, which differ between processors, so the same code and seed gave FID 58.0 and 67.4 on the
tiny preset on two machines (docs/ablations.md, "A warm-up of the learning rates").
"""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
"""Where Linux names the processor model; elsewhere `platform` gives what it knows."""


def processor_name(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name ("Intel(R) Xeon(R) Processor"), or its architecture where the system does not say."""
    try:
        for line in cpuinfo.read_text(encoding="utf8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown processor"
