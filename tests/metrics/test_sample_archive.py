"""Samples written where they are rendered and read back where they are scored."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from hypernerfgan_ns.errors import ExportError
from hypernerfgan_ns.metrics.sample_archive import (
    PROTOCOL_NAME,
    SampleArchive,
    archived_sample_batches,
    read_protocol,
)


@pytest.mark.parametrize("name", ["samples.zip", "samples"])
def test_samples_read_back_as_written_in_8_bits_and_in_order(tmp_path: Path, name: str) -> None:
    generator = torch.Generator().manual_seed(0)
    batches = [torch.rand(3, 3, 8, 8, generator=generator), torch.rand(2, 3, 8, 8, generator=generator)]
    with SampleArchive(tmp_path / name) as archive:
        for batch in batches:
            archive.add(batch)
        archive.finish({"seed": 7, "resolution": 8})
    assert read_protocol(tmp_path / name) == {"seed": 7, "resolution": 8, "num_images": 5}

    read = torch.cat(list(archived_sample_batches(tmp_path / name, batch_size=4)))
    assert read.shape == (5, 3, 8, 8)
    assert torch.equal((read * 255).round(), (torch.cat(batches) * 255).round()), "8-bit, rounded, in generation order"

    with pytest.raises(ExportError, match="already exists"):
        SampleArchive(tmp_path / name)


def test_an_interrupted_archive_leaves_no_zip_and_a_cut_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with SampleArchive(tmp_path / "cut.zip") as archive:
            archive.add(torch.rand(2, 3, 4, 4))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == [], "a zip appears whole or not at all"

    with zipfile.ZipFile(tmp_path / "copied.zip", "w") as archive:
        archive.writestr("000000.png", b"")  # a copy cut short: no samples.json
    with pytest.raises(ExportError, match=PROTOCOL_NAME):
        list(archived_sample_batches(tmp_path / "copied.zip", batch_size=4))
