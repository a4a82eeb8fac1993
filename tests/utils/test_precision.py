"""The grad scaler whose scale the host reads once per change."""

from __future__ import annotations

from typing import List

import pytest
import torch

from hypernerfgan_ns.utils.precision import GradScalerWithHostScale


@pytest.fixture
def device_reads(monkeypatch) -> List[float]:
    """The scales torch's own `get_scale` returned: each call of it is a read of the device (an `.item()`)."""
    reads: List[float] = []
    read = torch.amp.GradScaler.get_scale

    def counted(scaler: torch.amp.GradScaler) -> float:
        reads.append(read(scaler))
        return reads[-1]

    monkeypatch.setattr(torch.amp.GradScaler, "get_scale", counted)
    return reads


def scaled_step(scaler: torch.amp.GradScaler, gradient: float) -> None:
    """One optimizer step through the scaler on a parameter whose gradient is `gradient` (inf: an overflow)."""
    weight = torch.nn.Parameter(torch.zeros(()))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scaler.scale(weight * gradient).backward()
    scaler.step(optimizer)


def test_the_scale_is_read_from_the_device_once_per_update_and_is_torchs(device_reads: List[float]) -> None:
    scaler = GradScalerWithHostScale("cpu", init_scale=2.0**10, growth_interval=1)
    reference = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    for gradient in (1.0, float("inf"), 1.0):
        for each in (scaler, reference):
            scaled_step(each, gradient)
            each.update()
        device_reads.clear()
        scales = [scaler.get_scale() for _ in range(3)]
        assert len(device_reads) == 1, "later reads before the next update are the first's"
        assert scales == [reference.get_scale()] * 3  # grown to 2^11, backed off to 2^10, grown to 2^11
    assert scales == [2.0**11] * 3


def test_loading_a_state_reads_the_loaded_scale() -> None:
    scaler = GradScalerWithHostScale("cpu", init_scale=2.0**10)
    scaled_step(scaler, 1.0)
    scaler.update()
    assert scaler.get_scale() == 2.0**10
    saved = GradScalerWithHostScale("cpu", init_scale=2.0**5)
    scaled_step(saved, 1.0)
    scaler.load_state_dict(saved.state_dict())
    assert scaler.get_scale() == 2.0**5


def test_a_disabled_scaler_scales_by_one() -> None:
    scaler = GradScalerWithHostScale("cpu", enabled=False)
    scaled_step(scaler, float("inf"))
    scaler.update()
    assert scaler.get_scale() == 1.0
