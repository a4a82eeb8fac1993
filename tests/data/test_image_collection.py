"""Tests of listing, decoding and caching image collections (hypernerfgan_ns.data.image_collection)."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
import pickle
import threading
import zipfile
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import pytest
from PIL import Image

from hypernerfgan_ns.data import image_collection
from hypernerfgan_ns.data.image_collection import (
    IMAGE_EXTENSIONS,
    ImageStore,
    build_image_store,
    find_images,
)
from hypernerfgan_ns.errors import DatasetError

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


# ----------------------------------------------------------------------------------------------------------------------
# Helpers


def solid(color: Tuple[int, ...], size: Tuple[int, int] = (8, 8), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, color)


def save(path: Path, image: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def noise_png(path: Path, size: int = 64, seed: int = 0) -> Path:
    """A PNG that compresses badly, so that cutting it in half cuts its pixel data."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    return save(path, Image.fromarray(pixels))


def build(source: Path, tmp_path: Path, resolution: int = 8, **kwargs) -> ImageStore:
    kwargs.setdefault("num_workers", 2)
    return build_image_store(source, resolution, cache_root=tmp_path / "cache", **kwargs)


def store_files(tmp_path: Path) -> list:
    folder = tmp_path / "cache" / "image_stores"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def console_text(capsys: pytest.CaptureFixture) -> str:
    """Captured console output with line wrapping undone."""
    return " ".join(capsys.readouterr().out.split())


@pytest.fixture
def three_colors(tmp_path: Path) -> Path:
    """A folder with three solid 8x8 images, created in non-sorted order."""
    folder = tmp_path / "colors"
    save(folder / "c.png", solid(BLUE))
    save(folder / "a.png", solid(RED))
    save(folder / "b.png", solid(GREEN))
    return folder


# ----------------------------------------------------------------------------------------------------------------------
# Layouts


def test_folder_layout_is_recursive_and_ignores_hidden_files(tmp_path: Path) -> None:
    folder = tmp_path / "collection"
    save(folder / "a.png", solid(RED))
    save(folder / "sub" / "b.JPG", solid(GREEN))
    save(folder / "sub" / "deeper" / "c.jpeg", solid(BLUE))
    save(folder / "d.webp", solid(RED))
    save(folder / "e.BMP", solid(GREEN))
    save(folder / "f.tif", solid(BLUE))
    save(folder / ".hidden.png", solid(WHITE))
    save(folder / ".git" / "x.png", solid(WHITE))
    (folder / "notes.txt").write_text("not an image")

    layout, names = find_images(folder)
    assert layout == "folder"
    assert names == ["a.png", "d.webp", "e.BMP", "f.tif", "sub/b.JPG", "sub/deeper/c.jpeg"]

    store = build(folder, tmp_path)
    assert store.num_images == 6
    pixels = store.array()[:, 4, 4].astype(int)
    np.testing.assert_allclose(pixels, [RED, RED, GREEN, BLUE, GREEN, BLUE], atol=6)  # JPEG and WebP are lossy


def test_zip_layout_reads_nested_members_and_ignores_macos_metadata(tmp_path: Path) -> None:
    archive = tmp_path / "collection.zip"
    with zipfile.ZipFile(archive, "w") as zip_file:
        zip_file.writestr("nested/dir/b.png", png_bytes(solid(GREEN)))
        zip_file.writestr("a.png", png_bytes(solid(RED)))
        zip_file.writestr("__MACOSX/._a.png", b"resource fork")
        zip_file.writestr("__MACOSX/nested/c.png", png_bytes(solid(WHITE)))
        zip_file.writestr("nested/.hidden.png", png_bytes(solid(WHITE)))
        zip_file.writestr("dataset.json", '{"labels": null}')

    layout, names = find_images(archive)
    assert layout == "zip"
    assert names == ["a.png", "nested/dir/b.png"]

    store = build(archive, tmp_path)
    assert store.num_images == 2
    np.testing.assert_array_equal(store.read([0, 1])[:, 0, 0], [RED, GREEN])


def test_srn_layout_uses_only_rgb_views(tmp_path: Path) -> None:
    folder = tmp_path / "cars_train"
    for instance, color in (("inst1", RED), ("inst2", BLUE)):
        save(folder / instance / "rgb" / "000000.png", solid(color))
        save(folder / instance / "rgb" / "000001.png", solid(GREEN))
        (folder / instance / "pose").mkdir()
        (folder / instance / "pose" / "000000.txt").write_text(" ".join(["0"] * 16))
        (folder / instance / "intrinsics.txt").write_text("131.25 64 64 0\n")
    save(folder / "preview.png", solid(WHITE))  # not a view of an instance

    layout, names = find_images(folder)
    assert layout == "srn"
    assert names == ["inst1/rgb/000000.png", "inst1/rgb/000001.png", "inst2/rgb/000000.png", "inst2/rgb/000001.png"]

    store = build(folder, tmp_path)
    np.testing.assert_array_equal(store.array()[:, 0, 0], [RED, GREEN, BLUE, GREEN])


def test_rgb_folder_without_srn_markers_is_a_plain_folder(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    save(folder / "x" / "rgb" / "a.png", solid(RED))
    save(folder / "b.png", solid(RED))
    assert find_images(folder) == ("folder", ["b.png", "x/rgb/a.png"])


# ----------------------------------------------------------------------------------------------------------------------
# Conversions


def _rgba(path: Path) -> None:
    image = solid(RED + (255,), mode="RGBA")
    image.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black
    image.putpixel((1, 0), (0, 0, 0, 128))  # half transparent black
    save(path, image)


def _la(path: Path) -> None:
    image = solid((40, 255), mode="LA")
    image.putpixel((0, 0), (40, 0))
    save(path, image)


def _grayscale(path: Path) -> None:
    save(path, solid(77, mode="L"))


def _bilevel(path: Path) -> None:
    image = solid(1, mode="1")
    image.putpixel((0, 0), 0)
    save(path, image)


def _palette(path: Path, transparent: bool = False) -> None:
    image = Image.new("P", (8, 8), 0)
    image.putpalette(list(BLUE) + list(RED) + [0] * (256 * 3 - 6))
    image.putpixel((0, 0), 1)
    save(path, image, **({"transparency": 1} if transparent else {}))


def _cmyk_jpeg(path: Path) -> None:
    save(path, solid((0, 255, 255, 0), mode="CMYK"), quality=95)  # red in CMYK


def _sixteen_bit(path: Path) -> None:
    values = np.full((8, 8), 32768, dtype=np.uint16)
    values[0, 0], values[0, 1] = 0, 65535
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    save(path, image)


CONVERSIONS: Dict[str, Tuple[Callable[[Path], None], str, Dict[Tuple[int, int], Tuple[int, int, int]], int]] = {
    # name: (writer, file name, {(row, col): expected RGB}, tolerance)
    "rgba": (_rgba, "x.png", {(0, 0): WHITE, (0, 1): (127, 127, 127), (4, 4): RED}, 1),
    "la": (_la, "x.png", {(0, 0): WHITE, (4, 4): (40, 40, 40)}, 0),
    "grayscale": (_grayscale, "x.png", {(4, 4): (77, 77, 77)}, 0),
    "bilevel": (_bilevel, "x.png", {(0, 0): (0, 0, 0), (4, 4): WHITE}, 0),
    "palette": (_palette, "x.png", {(0, 0): RED, (4, 4): BLUE}, 0),
    "palette-transparency": (lambda p: _palette(p, transparent=True), "x.png", {(0, 0): WHITE, (4, 4): BLUE}, 0),
    "cmyk-jpeg": (_cmyk_jpeg, "x.jpg", {(4, 4): RED}, 8),
    "16-bit": (_sixteen_bit, "x.png", {(0, 0): (0, 0, 0), (0, 1): WHITE, (4, 4): (128, 128, 128)}, 0),
}


@pytest.mark.parametrize("case", sorted(CONVERSIONS))
def test_every_mode_becomes_rgb(tmp_path: Path, case: str) -> None:
    writer, file_name, expected, tolerance = CONVERSIONS[case]
    writer(tmp_path / "collection" / file_name)
    store = build(tmp_path / "collection", tmp_path)  # 8x8 images at 8 px: no resampling
    image = store.read([0])[0].astype(int)
    for (row, col), color in expected.items():
        np.testing.assert_allclose(image[row, col], color, atol=tolerance, err_msg=f"{case} pixel {(row, col)}")


def test_float_images_are_scaled_from_unit_range() -> None:
    values = np.full((4, 4), 0.5, dtype=np.float32)
    values[0, 0] = np.nan
    rgb = np.asarray(image_collection._to_rgb(Image.fromarray(values)))
    assert rgb.shape == (4, 4, 3)
    assert tuple(rgb[1, 1]) == (128, 128, 128)
    assert tuple(rgb[0, 0]) == (0, 0, 0)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = solid(BLUE, size=(32, 32))
    image.paste(RED, (0, 0, 16, 16))  # red top-left quadrant as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    save(tmp_path / "collection" / "rotated.jpg", image, exif=exif.tobytes(), quality=95)

    pixels = build(tmp_path / "collection", tmp_path, resolution=32).read([0])[0].astype(int)
    np.testing.assert_allclose(pixels[8, 24], RED, atol=10)  # the quadrant moved to the top right
    np.testing.assert_allclose(pixels[8, 8], BLUE, atol=10)
    np.testing.assert_allclose(pixels[24, 24], BLUE, atol=10)


@pytest.fixture
def wide_image(tmp_path: Path) -> Path:
    """A 16x8 image: red left half, blue right half."""
    image = solid(BLUE, size=(16, 8))
    image.paste(RED, (0, 0, 8, 8))
    save(tmp_path / "wide" / "wide.png", image)
    return tmp_path / "wide"


def test_non_square_pad_adds_centred_white_bars(tmp_path: Path, wide_image: Path) -> None:
    pixels = build(wide_image, tmp_path, resolution=16, non_square="pad").read([0])[0]
    assert (pixels[:4] == 255).all() and (pixels[12:] == 255).all()
    assert (pixels[4:12, :8] == RED).all() and (pixels[4:12, 8:] == BLUE).all()


def test_non_square_center_crop_keeps_the_centre(tmp_path: Path, wide_image: Path) -> None:
    pixels = build(wide_image, tmp_path, resolution=8, non_square="center-crop").read([0])[0]
    assert (pixels[:, :4] == RED).all() and (pixels[:, 4:] == BLUE).all()


# ----------------------------------------------------------------------------------------------------------------------
# Output


def test_store_shape_values_order_and_read(tmp_path: Path, three_colors: Path) -> None:
    save(three_colors / "d.png", solid((10, 20, 30), size=(40, 40)))  # downscaled: a constant image stays constant
    store = build(three_colors, tmp_path, resolution=8)
    assert store.num_images == 4 and store.resolution == 8
    assert store.source == three_colors.resolve()
    array = store.array()
    assert array.shape == (4, 8, 8, 3) and array.dtype == np.uint8
    assert not array.flags.writeable
    np.testing.assert_array_equal(array[:, 3, 5], [RED, GREEN, BLUE, (10, 20, 30)])  # sorted names a, b, c, d

    picked = store.read([2, 0])
    assert picked.shape == (2, 8, 8, 3) and picked.dtype == np.uint8
    assert not isinstance(picked, np.memmap) and picked.flags.writeable
    assert (picked[0] == BLUE).all() and (picked[1] == RED).all()


# ----------------------------------------------------------------------------------------------------------------------
# Bad input


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="does not exist") as error:
        find_images(missing)
    assert str(missing) in str(error.value)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="is empty") as error:
        build(tmp_path / "empty", tmp_path)
    assert str(tmp_path / "empty") in str(error.value)


def test_folder_without_images_says_what_it_found(tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "c.TXT"):
        (folder / name).write_text("hello")
    with pytest.raises(DatasetError) as error:
        find_images(folder)
    message = str(error.value)
    assert str(folder) in message and "3 .txt files" in message
    assert all(extension in message for extension in IMAGE_EXTENSIONS)


def test_file_that_is_not_a_zip(tmp_path: Path) -> None:
    fake = tmp_path / "data.zip"
    fake.write_bytes(b"this is not a zip archive")
    with pytest.raises(DatasetError, match="not a zip archive") as error:
        find_images(fake)
    assert str(fake) in str(error.value)


def test_one_image_is_not_a_collection_and_its_folder_is_named(tmp_path: Path) -> None:
    image = tmp_path / "photos" / "car.JPG"
    image.parent.mkdir()
    Image.new("RGB", (8, 8)).save(image, format="JPEG")
    with pytest.raises(DatasetError, match="is one image") as error:
        find_images(image)
    assert f"({image.parent})" in str(error.value)


def test_zip_without_images(tmp_path: Path) -> None:
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zip_file:
        zip_file.writestr("readme.txt", "no images here")
        zip_file.writestr("__MACOSX/._x.png", b"resource fork")
    with pytest.raises(DatasetError, match="contains no images") as error:
        find_images(archive)
    assert str(archive) in str(error.value) and "1 .txt file" in str(error.value)


def test_corrupt_and_truncated_files_are_skipped_and_reported(
    tmp_path: Path, three_colors: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_collection, "COMPACTION_CHUNK_BYTES", 2 * 8 * 8 * 3)  # compact in several chunks
    (three_colors / "corrupt.png").write_bytes(np.random.default_rng(1).bytes(500))
    whole = noise_png(tmp_path / "whole.png").read_bytes()
    (three_colors / "truncated.png").write_bytes(whole[: len(whole) // 2])

    store = build(three_colors, tmp_path)
    assert store.num_images == 3
    np.testing.assert_array_equal(store.array()[:, 0, 0], [RED, GREEN, BLUE])
    output = console_text(capsys)
    assert "Skipped 2 unreadable" in output
    assert "corrupt.png" in output and "truncated.png" in output


def test_too_small_images_are_skipped_and_small_ones_upscaled(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "sizes"
    save(folder / "big.png", solid(RED, size=(16, 16)))
    save(folder / "medium.png", solid(GREEN, size=(8, 8)))
    save(folder / "tiny.png", solid(BLUE, size=(4, 4)))
    save(folder / "thin.png", solid(BLUE, size=(16, 4)))  # square side 16 when padded, 4 when cropped

    padded = build(folder, tmp_path, resolution=16, min_image_size=8)
    assert padded.num_images == 3
    output = console_text(capsys)
    assert "Skipped 1 image(s) smaller than the minimum of 8 px: tiny.png" in output
    assert "Upscaled 1 image(s)" in output and "medium.png" in output
    assert (padded.read([1])[0] == GREEN).all()  # medium.png, upscaled 8 -> 16 px, sorted after big.png

    cropped = build(folder, tmp_path, resolution=16, min_image_size=8, non_square="center-crop")
    assert cropped.num_images == 2
    assert "Skipped 2 image(s) smaller" in console_text(capsys)


def test_a_reused_cache_repeats_what_its_decoding_skipped(
    tmp_path: Path, three_colors: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    (three_colors / "corrupt.png").write_bytes(np.random.default_rng(1).bytes(500))
    save(three_colors / "tiny.png", solid(BLUE, size=(2, 2)))
    save(three_colors / "small.png", solid(BLUE, size=(4, 4)))
    first = build(three_colors, tmp_path, min_image_size=3)
    decoded = console_text(capsys)

    calls = _counting_decoder(monkeypatch)
    second = build(three_colors, tmp_path, min_image_size=3)
    reused = console_text(capsys)
    assert calls["count"] == 0 and second == first and second.num_images == 4
    assert "Reusing 4 decoded images" in reused
    lines = ["Skipped 1 unreadable", "corrupt.png", "Skipped 1 image(s) smaller than the minimum of 3 px: tiny.png"]
    lines += ["Upscaled 1 image(s)", "small.png"]
    for line in lines:
        assert line in decoded and line in reused

    # A sidecar without its report (or an unreadable one) still reuses the images, without the lines.
    (json_name,) = (name for name in store_files(tmp_path) if name.endswith(".json"))
    json_path = tmp_path / "cache" / "image_stores" / json_name
    sidecar = json.loads(json_path.read_text())
    del sidecar["report"]
    json_path.write_text(json.dumps(sidecar))
    assert build(three_colors, tmp_path, min_image_size=3) == first
    assert calls["count"] == 0 and "Skipped" not in console_text(capsys)


def test_too_few_usable_images_raise_and_cache_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "mostly_bad"
    save(folder / "good.png", solid(RED))
    save(folder / "small.png", solid(RED, size=(2, 2)))
    (folder / "broken.png").write_bytes(b"\x89PNG garbage")

    with pytest.raises(DatasetError) as error:
        build(folder, tmp_path, min_image_size=4, min_num_images=2)
    message = str(error.value)
    assert str(folder) in message
    assert "Only 1 of the 3 images" in message and "at least 2" in message
    assert "broken.png" in message and "small.png" in message
    assert store_files(tmp_path) == []


def test_invalid_settings_are_reported(tmp_path: Path, three_colors: Path) -> None:
    with pytest.raises(DatasetError, match="resolution must be at least 1"):
        build(three_colors, tmp_path, resolution=0)
    with pytest.raises(DatasetError, match="non_square"):
        build(three_colors, tmp_path, non_square="stretch")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------------------
# Cache


def _counting_decoder(monkeypatch: pytest.MonkeyPatch, fail_on_call: int = 0) -> Dict[str, int]:
    """Counts calls of the per-image decoder; raises KeyboardInterrupt on call `fail_on_call` if given."""
    calls = {"count": 0}
    lock = threading.Lock()
    original = image_collection._decode_entry

    def decode(*args, **kwargs):
        with lock:
            calls["count"] += 1
            number = calls["count"]
        if number == fail_on_call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(image_collection, "_decode_entry", decode)
    return calls


def test_second_build_reuses_the_cache(
    tmp_path: Path, three_colors: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    first = build(three_colors, tmp_path)
    assert len(store_files(tmp_path)) == 2  # <key>.npy and <key>.json
    capsys.readouterr()

    calls = _counting_decoder(monkeypatch)
    second = build(three_colors, tmp_path)
    assert calls["count"] == 0
    assert second == first
    np.testing.assert_array_equal(second.array(), first.array())
    assert "Reusing" in console_text(capsys)

    other_resolution = build(three_colors, tmp_path, resolution=4)
    assert calls["count"] == 3 and other_resolution.path != first.path


def test_changed_source_invalidates_the_cache(
    tmp_path: Path, three_colors: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build(three_colors, tmp_path)
    calls = _counting_decoder(monkeypatch)

    stat = (three_colors / "a.png").stat()
    os.utime(three_colors / "a.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched
    touched = build(three_colors, tmp_path)
    assert calls["count"] == 3 and touched.path != first.path

    save(three_colors / "a.png", solid((1, 2, 3)))  # changed content
    changed = build(three_colors, tmp_path)
    assert calls["count"] == 6
    assert tuple(changed.read([0])[0, 0, 0]) == (1, 2, 3)


def test_interrupted_decoding_leaves_no_files(
    tmp_path: Path, three_colors: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(three_colors / "d.png", solid(WHITE))
    save(three_colors / "e.png", solid(WHITE))
    _counting_decoder(monkeypatch, fail_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        build(three_colors, tmp_path)
    assert store_files(tmp_path) == []

    monkeypatch.undo()
    assert build(three_colors, tmp_path).num_images == 5


def test_inconsistent_cache_is_rebuilt(tmp_path: Path, three_colors: Path) -> None:
    first = build(three_colors, tmp_path)
    first.path.with_suffix(".json").write_text("{not json")
    again = build(three_colors, tmp_path)
    assert again == first and again.read([0, 1, 2]).shape == (3, 8, 8, 3)


# ----------------------------------------------------------------------------------------------------------------------
# Copying and pickling


def test_deepcopy_shares_and_pickle_carries_only_the_fields(tmp_path: Path, three_colors: Path) -> None:
    store = build(three_colors, tmp_path)
    expected = store.read([0, 1, 2])  # opens the memory map
    assert copy.deepcopy(store) is store
    assert copy.deepcopy({"images": store})["images"] is store

    state = store.__getstate__()
    assert set(state) == {field.name for field in dataclasses.fields(ImageStore)}
    payload = pickle.dumps(store)
    assert len(payload) < 1000  # the pixels do not travel
    restored = pickle.loads(payload)
    assert restored == store and restored is not store
    np.testing.assert_array_equal(restored.read([0, 1, 2]), expected)
    assert set(dataclasses.asdict(store)) == {"path", "num_images", "resolution", "source"}
