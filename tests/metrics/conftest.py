"""Fixtures shared by the metric tests: a stand-in for the Inception network, so FID/KID paths run without its
80 MB of weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn


class StandInInception(nn.Module):
    """A TorchScript-able stand-in for Inception: checks the input size, returns input statistics as features."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.shape[-1] == 299 and images.shape[-2] == 299
        flat = images.flatten(1)
        stats = torch.stack([flat.min(dim=1).values, flat.max(dim=1).values, flat.mean(dim=1)], dim=1)
        per_channel = images.mean(dim=(2, 3))
        features = torch.cat([stats, per_channel, images[:, :, ::60, ::60].flatten(1)], dim=1)
        return torch.nn.functional.pad(features, (0, 2048 - features.shape[1]))


@pytest.fixture
def stand_in_weights(tmp_path: Path) -> Path:
    path = tmp_path / "stand_in_inception.pt"
    torch.jit.script(StandInInception()).save(str(path))
    return path
