"""Tests of `hypernerfgan data convert`: folders, zips and SRN trees into square RGB PNGs (folder or zip)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
from PIL import Image

from hypernerfgan_ns.data.image_collection import build_image_store, find_images
from hypernerfgan_ns.errors import DatasetError
from hypernerfgan_ns.scripts.data_convert import ConvertCommand

RESOLUTION = 32
MIN_SIZE = 16
WHITE = (255, 255, 255)
BLUE = (0, 0, 255)
RED = (255, 0, 0)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def half_transparent() -> Image.Image:
    """32x32 RGBA: the left half fully transparent (red underneath), the right half opaque blue."""
    pixels = np.zeros((RESOLUTION, RESOLUTION, 4), dtype=np.uint8)
    pixels[:, : RESOLUTION // 2] = (255, 0, 0, 0)
    pixels[:, RESOLUTION // 2 :] = (0, 0, 255, 255)
    return Image.fromarray(pixels, "RGBA")


def mixed_folder(root: Path) -> Path:
    """Transparent, non-square, grayscale JPEG, nested, corrupt, too small, and a non-image file."""
    root.mkdir(parents=True)
    half_transparent().save(root / "a_rgba.png")
    Image.new("RGB", (48, 24), RED).save(root / "b_wide.png")
    Image.new("L", (40, 40), 128).save(root / "c_gray.jpg")
    (root / "nested").mkdir()
    Image.new("RGB", (64, 64), BLUE).save(root / "nested" / "d_big.png")
    (root / "e_corrupt.png").write_bytes(png(Image.new("RGB", (32, 32), RED))[:40])
    Image.new("RGB", (8, 8), RED).save(root / "f_tiny.png")
    (root / "notes.txt").write_text("not an image")
    return root


KEPT = ["a_rgba.png", "b_wide.png", "c_gray.jpg", "nested/d_big.png"]
SKIPPED = ["e_corrupt.png", "f_tiny.png"]


def srn_tree(root: Path) -> Path:
    for instance in ("1a2b", "3c4d"):
        folder = root / "cars_train" / instance
        (folder / "rgb").mkdir(parents=True)
        (folder / "pose").mkdir()
        (folder / "intrinsics.txt").write_text("1 0 0 0\n")
        for view in range(3):
            half_transparent().save(folder / "rgb" / f"{view:06d}.png")
            (folder / "pose" / f"{view:06d}.txt").write_text("1 0 0 0")
    return root


def convert(source: Path, output: Path, tmp_path: Path, **kwargs) -> None:
    options = dict(resolution=RESOLUTION, min_image_size=MIN_SIZE, cache_root=tmp_path / "cache", num_workers=2)
    options.update(kwargs)
    ConvertCommand(source=source, output=output, **options).main()


def read_folder(output: Path) -> Tuple[Dict[str, Image.Image], dict]:
    images = {path.name: Image.open(path) for path in sorted(output.glob("*.png"))}
    return images, json.loads((output / "conversion.json").read_text())


def read_zip(output: Path) -> Tuple[Dict[str, Image.Image], dict, dict]:
    with zipfile.ZipFile(output) as zip_file:
        names = zip_file.namelist()
        assert all("/" not in name for name in names), "a StyleGAN2-ADA zip is flat"
        images = {name: Image.open(io.BytesIO(zip_file.read(name))) for name in sorted(names) if name.endswith(".png")}
        dataset = json.loads(zip_file.read("dataset.json"))
        report = json.loads(zip_file.read("conversion.json"))
    return images, dataset, report


def check_images(images: Dict[str, Image.Image], count: int) -> None:
    assert list(images) == [f"{index:06d}.png" for index in range(count)]
    for image in images.values():
        assert image.size == (RESOLUTION, RESOLUTION) and image.mode == "RGB"


def test_folder_to_folder(tmp_path: Path) -> None:
    source = mixed_folder(tmp_path / "photos")
    output = tmp_path / "converted"
    convert(source, output, tmp_path)
    images, report = read_folder(output)
    check_images(images, len(KEPT))

    transparent = np.asarray(images["000000.png"])
    assert tuple(transparent[RESOLUTION // 2, 2]) == WHITE  # transparent pixels become white, not red
    assert tuple(transparent[RESOLUTION // 2, RESOLUTION - 3]) == BLUE
    wide = np.asarray(images["000001.png"])
    assert tuple(wide[1, RESOLUTION // 2]) == WHITE  # padding above the wide image
    assert tuple(wide[RESOLUTION // 2, RESOLUTION // 2]) == RED

    assert report["source"] == str(source.resolve()) and report["layout"] == "folder"
    assert report["format"] == "folder" and report["resolution"] == RESOLUTION
    assert report["num_source_images"] == len(KEPT) + len(SKIPPED) and report["num_images"] == len(KEPT)
    assert report["skipped"]["files"] == SKIPPED
    assert report["skipped"]["unreadable"] == 1 and report["skipped"]["too_small"] == 1
    assert [entry["source"] for entry in report["images"]] == KEPT
    assert find_images(output) == ("folder", [f"{index:06d}.png" for index in range(len(KEPT))])


def test_folder_to_zip_is_a_stylegan_dataset(tmp_path: Path) -> None:
    source = mixed_folder(tmp_path / "photos")
    output = tmp_path / "converted"  # ".zip" is added
    convert(source, output, tmp_path, format="zip", non_square="center-crop")
    images, dataset, report = read_zip(tmp_path / "converted.zip")
    check_images(images, len(KEPT))
    assert dataset == {"labels": None}
    assert report["format"] == "zip" and report["non_square"] == "center-crop"
    assert tuple(np.asarray(images["000001.png"])[1, RESOLUTION // 2]) == RED  # cropped, not padded
    store = build_image_store(tmp_path / "converted.zip", RESOLUTION, cache_root=tmp_path / "cache")
    assert store.num_images == len(KEPT)


def test_zip_source(tmp_path: Path) -> None:
    source = tmp_path / "images.zip"
    with zipfile.ZipFile(source, "w") as zip_file:
        for index in range(3):
            zip_file.writestr(f"train/{index}.png", png(Image.new("RGB", (40, 40), (index * 50, 0, 0))))
        zip_file.writestr("__MACOSX/train/._0.png", b"resource fork")
    convert(source, tmp_path / "out", tmp_path)
    images, report = read_folder(tmp_path / "out")
    check_images(images, 3)
    assert report["layout"] == "zip" and report["skipped"]["count"] == 0
    assert [entry["source"] for entry in report["images"]] == ["train/0.png", "train/1.png", "train/2.png"]
    assert tuple(np.asarray(images["000002.png"])[0, 0]) == (100, 0, 0)


def test_srn_tree_to_both_formats(tmp_path: Path) -> None:
    source = srn_tree(tmp_path / "srn_cars")
    convert(source, tmp_path / "folder", tmp_path)
    images, report = read_folder(tmp_path / "folder")
    check_images(images, 6)
    assert report["layout"] == "srn"
    assert report["images"][0]["source"] == "cars_train/1a2b/rgb/000000.png"
    assert tuple(np.asarray(images["000000.png"])[RESOLUTION // 2, 2]) == WHITE

    convert(source, tmp_path / "srn.zip", tmp_path, format="zip")
    zipped, dataset, zip_report = read_zip(tmp_path / "srn.zip")
    check_images(zipped, 6)
    assert zip_report["layout"] == "srn" and dataset == {"labels": None}
    for name in images:  # the same decoded pixels, written twice
        assert np.array_equal(np.asarray(images[name]), np.asarray(zipped[name]))


def test_non_empty_output_is_refused(tmp_path: Path) -> None:
    source = mixed_folder(tmp_path / "photos")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not an empty folder"):
        convert(source, occupied, tmp_path)
    assert (occupied / "mine.txt").read_text() == "keep me"

    existing_zip = tmp_path / "existing.zip"
    existing_zip.write_bytes(b"mine")
    with pytest.raises(DatasetError, match="already exists"):
        convert(source, existing_zip, tmp_path, format="zip")
    assert existing_zip.read_bytes() == b"mine"

    empty = tmp_path / "empty"
    empty.mkdir()
    convert(source, empty, tmp_path)  # an empty folder is fine
    assert len(list(empty.glob("*.png"))) == len(KEPT)


def test_too_few_usable_images_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "tiny"
    source.mkdir()
    Image.new("RGB", (8, 8), RED).save(source / "a.png")
    with pytest.raises(DatasetError):
        convert(source, tmp_path / "out", tmp_path)
    assert not (tmp_path / "out").exists()
