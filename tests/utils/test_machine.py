"""The processor name benchmarks and ablation rows record."""

from __future__ import annotations

import platform
from pathlib import Path

from hypernerfgan_ns.utils.machine import processor_name


def test_the_processor_is_named_by_its_model_where_linux_says_it(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu sse\n\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n",
        encoding="utf8",
    )
    assert processor_name(cpuinfo) == "Intel(R) Xeon(R) Processor"


def test_without_a_model_name_the_architecture_names_it(tmp_path: Path) -> None:
    expected = platform.processor() or platform.machine()
    assert processor_name(tmp_path / "missing") == expected
    arm = tmp_path / "cpuinfo"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n", encoding="utf8")
    assert processor_name(arm) == expected
