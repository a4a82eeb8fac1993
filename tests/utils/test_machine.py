"""The processor description benchmarks and ablation rows record."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from hypernerfgan_ns.utils.machine import cpu_description, processor_name

TWO_PROCESSORS = (
    "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 167\nmodel name\t: Intel(R) Xeon(R) "
    "Processor\nflags\t\t: fpu sse avx512f\n\nprocessor\t: 1\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Other\n"
)


def test_the_processor_is_named_by_its_model_and_numbers_where_linux_says_them(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(TWO_PROCESSORS, encoding="utf8")
    assert processor_name(cpuinfo) == "Intel(R) Xeon(R) Processor, family 6 model 167", "the first processor's"
    capability = torch.backends.cpu.get_cpu_capability()
    assert cpu_description(cpuinfo) == f"Intel(R) Xeon(R) Processor, family 6 model 167, {capability}"


def test_without_a_model_name_the_architecture_names_it(tmp_path: Path) -> None:
    expected = platform.processor() or platform.machine()
    assert processor_name(tmp_path / "missing") == expected
    arm = tmp_path / "cpuinfo"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n", encoding="utf8")
    assert processor_name(arm) == expected
