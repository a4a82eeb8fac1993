"""Dataset presets: the shipped ones, a preset file of one's own, and clear errors for a malformed one."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from hypernerfgan_ns.data.dataparsers.unposed_images_dataparser import UnposedImagesDataParserConfig
from hypernerfgan_ns.data.dataset_presets import DEFAULT_PRESET, load_preset, preset_files
from hypernerfgan_ns.errors import DatasetError
from tests.helpers import own_preset


def test_a_preset_of_ones_own_is_read_with_its_camera_prior(tmp_path: Path) -> None:
    preset = load_preset(str(own_preset(tmp_path, prior_changes={"radius": 3.5})))
    assert preset.name == "mine" and preset.camera_prior.radius == 3.5
    assert preset.camera_prior.elevation_range == (0.0, 90.0)
    assert set(preset_files()) == {"carla", "cars", "chairs", "planes"}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"camera_prior": None}, "camera_prior of .* must be a mapping"),
        ({"camera_prior": {"radius": 4.0, "zoom": 2}}, r"unknown keys \['zoom'\]"),
        ({"extra": 1}, r"unexpected keys \['extra'\]"),
    ],
)
def test_a_malformed_preset_says_what_is_wrong(tmp_path: Path, changes, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_preset(str(own_preset(tmp_path, **changes)))


def test_a_preset_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yml"
    path.write_text("- radius: 4\n", encoding="utf8")
    with pytest.raises(DatasetError, match="must be a mapping"):
        load_preset(str(path))


@pytest.mark.parametrize(
    "name, images, notice",
    [
        ("shoes", "required", True),
        ("shoes", "optional", False),
        ("shoes", "none", False),
        ("cars_train", "required", False),
    ],
)
def test_data_named_like_no_preset_is_told_which_it_gets_and_how_to_choose(
    tmp_path: Path, capsys, name: str, images: str, notice: bool
) -> None:
    """The default preset's camera prior frames a folder named like none; training's start says so and how to choose
    another. A trained run is scored ("optional" images: ns-eval) and rendered ("none") with its own: no advice."""
    folder = tmp_path / name
    folder.mkdir()
    for index in range(16):
        Image.new("RGB", (64, 64), (index * 15, 0, 0)).save(folder / f"{index:02d}.png")
    parser = UnposedImagesDataParserConfig(data=folder, resolution=8).setup()
    parser.get_dataparser_outputs(split="train", images=images)
    out = " ".join(capsys.readouterr().out.split())
    assert "Dataset preset" in out
    assert ("No preset is named like" in out) == notice, out
    if notice:
        assert f"the default ({DEFAULT_PRESET})" in out and "unposed-images --preset carla|cars|chairs|planes" in out
