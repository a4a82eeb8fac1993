"""The training images of a 3D GAN: a collection of unposed RGB photos of one object category.

A collection is a folder (searched recursively), a StyleGAN2-ADA style `.zip` archive, or an SRN ShapeNet folder
(`<instance>/rgb/*.png`). It is decoded ONCE into a uint8 cache file at one square training resolution and then read
by random access during training, so that decoding (the slow part) is not paid again every epoch or every run.

What the cache costs: `resolution^2 * 3` bytes per image on disk (10k images at 128 px = 0.49 GB; 120k images at
128 px = 5.9 GB). It is a memory-mapped `.npy` file: it is written image by image and read on demand through the OS
page cache, so neither building nor training ever holds the whole collection in RAM; the OS keeps as much of it in
memory as there is room for. While decoding a collection in which some files are skipped, the disk briefly holds
up to twice the final size (the kept images are then copied into a file of the exact size).

Cache files live in `<cache_root>/image_stores/<key>.npy` with a `<key>.json` sidecar. The key hashes everything the
decoded pixels depend on (source path, every file's name, size and modification time or zip CRC, resolution,
non-square policy, minimum size), so editing the collection or changing a setting decodes again, and deleting the
cache folder only costs time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import zipfile
import zlib
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Deque, Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hypernerfgan_ns.data.cache import atomic_output, cache_lock, resolve_cache_root
from hypernerfgan_ns.errors import DatasetError
from nerfstudio.utils.rich_utils import CONSOLE

ImageLayout = Literal["folder", "zip", "srn"]
"""How a collection is stored: a plain folder, a zip archive, or an SRN ShapeNet folder."""

NonSquarePolicy = Literal["pad", "center-crop"]
"""What to do with non-square images: pad them with white to a square (keeps the whole object) or crop the centre."""

IMAGE_EXTENSIONS: Tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
"""File name endings that are treated as images (matched case-insensitively): what Pillow decodes and photo
collections come in."""

CACHE_FORMAT_VERSION = 1
"""Part of the cache key: bump it whenever decoding changes, so that old cache files are not trusted any more."""

CACHE_SUBFOLDER = "image_stores"
"""Folder under the cache root that holds decoded image stores."""

SRN_IMAGE_FOLDER = "rgb"
"""SRN ShapeNet keeps the views of an instance in `<instance>/rgb/`."""

SRN_MARKERS: Tuple[str, ...] = ("pose", "intrinsics.txt")
"""Siblings of `rgb/` that identify an SRN instance folder (their content is not used)."""

ZIP_IGNORED_FOLDERS: Tuple[str, ...] = ("__MACOSX",)
"""Zip folders that hold archiver metadata, not images (macOS resource forks)."""

MAX_DEFAULT_WORKERS = 8
"""Decoding threads used by default; more rarely help because reading the files becomes the bottleneck."""

DEFAULT_NUM_WORKERS = max(1, min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1))
"""Default number of decoding threads (PIL releases the GIL while decoding and resizing)."""

IN_FLIGHT_PER_WORKER = 4
"""Images queued per decoding thread: enough to keep every thread busy while bounding the decoded images in RAM."""

REPORTED_NAMES = 5
"""How many names of skipped images are shown in reports and error messages."""

RESIZE_FILTER = Image.Resampling.LANCZOS
"""High-quality filter: sharp without aliasing, for both down- and upscaling."""

RESIZE_REDUCING_GAP = 3.0
"""For big downscales, first shrink by an integer factor with a box filter (fast, exact), then finish with LANCZOS."""

BACKGROUND_COLOR = (255, 255, 255)
"""Transparent pixels and padding become white: object collections (ShapeNet renders, product photos) use white."""

COMPACTION_CHUNK_BYTES = 256 * 2**20
"""RAM used to copy kept images into the final cache file when some images were skipped."""

SIXTEEN_BIT_MAX = 65535
"""Largest value of a 16-bit image: integer images are scaled from [0, 65535] to [0, 255]."""

_UNREADABLE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
    zipfile.BadZipFile,
    zlib.error,
)
"""What reading or decoding a damaged image file raises (UnidentifiedImageError is an OSError, listed for clarity)."""

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
"""PIL modes of 16-bit (and 32-bit integer) single-channel images, e.g. 16-bit grayscale PNGs."""

_GIGABYTE = 1e9


# ----------------------------------------------------------------------------------------------------------------------
# Listing


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _describe_found(names: Sequence[str]) -> str:
    """'3 .txt files, 1 file without extension': what a collection holds instead of images."""
    counts = Counter(Path(name).suffix.lower() or "(no extension)" for name in names)
    parts = []
    for suffix, count in counts.most_common():
        noun = "file" if count == 1 else "files"
        parts.append(f"{count} {noun} without extension" if suffix == "(no extension)" else f"{count} {suffix} {noun}")
    return ", ".join(parts)


def _walk_folder(folder: Path) -> List[str]:
    """All non-hidden files under `folder`, as sorted POSIX paths relative to it."""
    files: List[str] = []
    for directory, subdirectories, filenames in os.walk(folder):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        relative = Path(directory).relative_to(folder)
        files.extend((relative / name).as_posix() for name in filenames if not name.startswith("."))
    return sorted(files)


def _is_srn_view(folder: Path, name: str) -> bool:
    """Whether `name` is an image in `<instance>/rgb/` next to an SRN `pose/` folder or `intrinsics.txt`."""
    parts = name.split("/")
    if len(parts) < 3 or parts[-2] != SRN_IMAGE_FOLDER:
        return False
    instance = folder.joinpath(*parts[:-2])
    return any((instance / marker).exists() for marker in SRN_MARKERS)


def _list_folder(folder: Path) -> Tuple[ImageLayout, List[str]]:
    files = _walk_folder(folder)
    if not files:
        raise DatasetError(
            f"The image folder {folder} is empty (hidden files are ignored). "
            f"Put the training images ({', '.join(IMAGE_EXTENSIONS)}) in it, or point --data at the right folder."
        )
    images = [name for name in files if _is_image_name(name)]
    if not images:
        raise DatasetError(
            f"The folder {folder} contains no images: found {_describe_found(files)}, but only "
            f"{', '.join(IMAGE_EXTENSIONS)} files (any letter case) are used. Convert the images to PNG or JPEG, "
            "or point --data at the folder that holds them."
        )
    srn_views = [name for name in images if _is_srn_view(folder, name)]
    if srn_views:
        return "srn", srn_views
    return "folder", images


def _is_hidden_member(name: str) -> bool:
    parts = [part for part in name.split("/") if part]
    return any(part.startswith(".") or part in ZIP_IGNORED_FOLDERS for part in parts)


def _list_zip(archive: Path) -> List[str]:
    try:
        with zipfile.ZipFile(archive) as zip_file:
            members = [info.filename for info in zip_file.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as error:
        raise DatasetError(
            f"The zip archive {archive} cannot be read ({error}). Download or create it again, "
            "or extract it and point --data at the folder."
        ) from error
    visible = sorted(set(name for name in members if not _is_hidden_member(name)))
    images = [name for name in visible if _is_image_name(name)]
    if not images:
        found = f"found {_describe_found(visible)}" if visible else "it holds no files"
        raise DatasetError(
            f"The zip archive {archive} contains no images: {found}, but only {', '.join(IMAGE_EXTENSIONS)} "
            "files (any letter case, at any depth, outside __MACOSX/ and hidden folders) are used. "
            "Check that this is the right archive."
        )
    return images


def find_images(source: Path) -> Tuple[ImageLayout, List[str]]:
    """Lists the images of a collection, sorted, as names relative to the source (folder path or zip member).

    A folder is searched recursively, skipping hidden files and folders. If it holds SRN ShapeNet instances
    (`<instance>/rgb/*.png` beside `<instance>/pose/` or `<instance>/intrinsics.txt`), the layout is "srn" and only
    those views are used. A file must be a zip archive (StyleGAN2-ADA dataset layout); its `dataset.json` is ignored.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise DatasetError(
            f"The image collection {source} does not exist. Check the --data path, or download the dataset first."
        )
    if source.is_dir():
        return _list_folder(source)
    if source.suffix.lower() in IMAGE_EXTENSIONS:
        raise DatasetError(
            f"{source} is one image; a GAN learns from a collection. Pass the folder that holds the images "
            f"({source.parent}) or a .zip archive of them."
        )
    if not zipfile.is_zipfile(source):
        raise DatasetError(
            f"{source} is a file but not a zip archive. Pass a folder of images "
            f"({', '.join(IMAGE_EXTENSIONS)}) or a .zip archive of them."
        )
    return "zip", _list_zip(source)


def image_sizes(source: Path) -> Dict[Tuple[int, int], List[str]]:
    """A collection's image names grouped by (width, height), read from the files' headers without decoding them.
    Unreadable files are left out: decoding the collection lists them."""
    source = Path(source).expanduser()
    layout, names = find_images(source)
    reader = _EntryReader(source, layout)
    sizes: Dict[Tuple[int, int], List[str]] = {}
    try:
        for name in names:
            try:
                with Image.open(reader.open(name)) as image:
                    sizes.setdefault(image.size, []).append(name)
            except _UNREADABLE_ERRORS:
                continue
    finally:
        reader.close()
    return sizes


# ----------------------------------------------------------------------------------------------------------------------
# The store


@dataclass(frozen=True)
class ImageStore:
    """Decoded images of a collection at one resolution, in a uint8 memory-mapped cache file.

    Cheap to copy and to pickle: only the fields travel, and each process maps the file itself on first use.
    """

    path: Path
    """The .npy cache file: array of shape [num_images, resolution, resolution, 3], uint8, RGB."""
    num_images: int
    """Number of images (skipped files excluded)."""
    resolution: int
    """Side of the square images in pixels."""
    source: Path
    """The collection the images were decoded from."""

    def array(self) -> np.ndarray:
        """All images as a read-only memory map; pixels are read from disk only when they are indexed.

        The map is kept in the `_memmap` attribute, which is deliberately not a dataclass field: it is never
        compared, copied, pickled or converted by `dataclasses.asdict`.
        """
        mapped: Optional[np.ndarray] = getattr(self, "_memmap", None)
        if mapped is None:
            try:
                mapped = np.load(self.path, mmap_mode="r")
            except (OSError, ValueError) as error:
                raise DatasetError(
                    f"The decoded image cache {self.path} of {self.source} cannot be opened ({error}). "
                    "It was probably deleted or damaged; run again to decode the images anew."
                ) from error
            expected = (self.num_images, self.resolution, self.resolution, 3)
            if mapped.shape != expected or mapped.dtype != np.uint8:
                raise DatasetError(
                    f"The decoded image cache {self.path} holds an array of shape {mapped.shape} ({mapped.dtype}), "
                    f"expected {expected} (uint8). Delete it and run again to decode the images anew."
                )
            object.__setattr__(self, "_memmap", mapped)
        return mapped

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """A [k, R, R, 3] uint8 copy of the images at `indices`, in that order."""
        return np.array(self.array()[np.asarray(indices, dtype=np.int64)], dtype=np.uint8, copy=True)

    def __deepcopy__(self, memo: Dict[int, Any]) -> "ImageStore":
        """Nerfstudio deep-copies dataparser outputs; the store is immutable, so sharing it copies nothing."""
        return self

    def __getstate__(self) -> Dict[str, Any]:
        """Pickle only the fields (DataLoader workers, spawn): a memory map cannot travel between processes."""
        return {"path": self.path, "num_images": self.num_images, "resolution": self.resolution, "source": self.source}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)


# ----------------------------------------------------------------------------------------------------------------------
# Decoding one image


@dataclass
class _Decoded:
    """What became of one collection entry."""

    status: Literal["kept", "unreadable", "too_small"]
    pixels: Optional[np.ndarray] = None
    """[R, R, 3] uint8 when kept."""
    side: int = 0
    """Side of the square before resizing."""
    detail: str = ""
    """Why it was skipped, for the report."""


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is composited on white, high bit depths are scaled (not clipped)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        scaled = np.clip(values, 0, SIXTEEN_BIT_MAX) * (255.0 / SIXTEEN_BIT_MAX)
        return Image.fromarray(np.round(scaled).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        # Float images are conventionally in [0, 1]; larger values mean the image uses the 8-bit range.
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        scaled = np.clip(values * scale, 0, 255)
        return Image.fromarray(np.round(scaled).astype(np.uint8)).convert("RGB")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND_COLOR + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_square(image: Image.Image, non_square: NonSquarePolicy) -> Image.Image:
    """Pads with white to a centred square, or crops the centred square."""
    width, height = image.size
    if width == height:
        return image
    if non_square == "pad":
        side = max(width, height)
        square = Image.new("RGB", (side, side), BACKGROUND_COLOR)
        square.paste(image, ((side - width) // 2, (side - height) // 2))
        return square
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _square_side(size: Tuple[int, int], non_square: NonSquarePolicy) -> int:
    return max(size) if non_square == "pad" else min(size)


def _decode_image(
    image_file: Union[Path, io.BytesIO], resolution: int, non_square: NonSquarePolicy, min_image_size: int
) -> _Decoded:
    """Fully decodes one image (truncated files raise here, not during training) into an [R, R, 3] uint8 array."""
    try:
        with Image.open(image_file) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
            side = _square_side(image.size, non_square)
            if side < min_image_size:
                return _Decoded("too_small", side=side, detail=f"{image.size[0]}x{image.size[1]} px")
            square = _to_square(_to_rgb(image), non_square)
            if square.size != (resolution, resolution):
                square = square.resize((resolution, resolution), RESIZE_FILTER, reducing_gap=RESIZE_REDUCING_GAP)
            pixels = np.asarray(square, dtype=np.uint8)
    except _UNREADABLE_ERRORS as error:
        return _Decoded("unreadable", detail=f"{type(error).__name__}: {error}")
    return _Decoded("kept", pixels=pixels, side=side)


class _EntryReader:
    """Opens collection entries from worker threads; each thread gets its own zip handle (they are not shareable)."""

    def __init__(self, source: Path, layout: ImageLayout) -> None:
        self._source = source
        self._layout = layout
        self._local = threading.local()
        self._handles: List[zipfile.ZipFile] = []
        self._lock = threading.Lock()

    def open(self, name: str) -> Union[Path, io.BytesIO]:
        if self._layout != "zip":
            return self._source / name
        handle = getattr(self._local, "zip_file", None)
        if handle is None:
            handle = zipfile.ZipFile(self._source)
            self._local.zip_file = handle
            with self._lock:
                self._handles.append(handle)
        return io.BytesIO(handle.read(name))

    def close(self) -> None:
        with self._lock:
            for handle in self._handles:
                handle.close()
            self._handles.clear()


def _decode_entry(
    reader: _EntryReader, name: str, resolution: int, non_square: NonSquarePolicy, min_image_size: int
) -> _Decoded:
    """Reads and decodes one collection entry; a damaged entry becomes an "unreadable" result, not an exception."""
    try:
        image_file = reader.open(name)
    except _UNREADABLE_ERRORS as error:
        return _Decoded("unreadable", detail=f"{type(error).__name__}: {error}")
    return _decode_image(image_file, resolution, non_square, min_image_size)


# ----------------------------------------------------------------------------------------------------------------------
# Building the cache


@dataclass
class _SkipReport:
    """Counts of what decoding did, with the first few names of each kind of skipped image."""

    num_entries: int = 0
    kept: int = 0
    unreadable: int = 0
    unreadable_examples: List[str] = field(default_factory=list)
    too_small: int = 0
    too_small_examples: List[str] = field(default_factory=list)
    upscaled: int = 0
    upscaled_examples: List[str] = field(default_factory=list)

    def add(self, name: str, result: _Decoded, resolution: int) -> None:
        if result.status == "kept":
            self.kept += 1
            if result.side < resolution:
                self.upscaled += 1
                _remember(self.upscaled_examples, f"{name} ({result.side} px)")
        elif result.status == "too_small":
            self.too_small += 1
            _remember(self.too_small_examples, f"{name} ({result.detail})")
        else:
            self.unreadable += 1
            _remember(self.unreadable_examples, f"{name} ({result.detail})")

    def lines(self, resolution: int, min_image_size: int) -> List[str]:
        """Human-readable summary lines (plain text, no markup)."""
        lines = []
        if self.unreadable:
            lines.append(
                f"Skipped {self.unreadable} unreadable (corrupt or truncated) file(s): "
                + _join_examples(self.unreadable_examples, self.unreadable)
            )
        if self.too_small:
            lines.append(
                f"Skipped {self.too_small} image(s) smaller than the minimum of {min_image_size} px: "
                + _join_examples(self.too_small_examples, self.too_small)
            )
        if self.upscaled:
            lines.append(
                f"Upscaled {self.upscaled} image(s) smaller than {resolution} px (they will look blurrier): "
                + _join_examples(self.upscaled_examples, self.upscaled)
            )
        return lines

    def print_lines(self, resolution: int, min_image_size: int) -> None:
        """Prints `lines`, indented under the line that says how many images were kept or reused."""
        for line in self.lines(resolution, min_image_size):
            CONSOLE.print("  " + escape(line))


def _remember(examples: List[str], text: str) -> None:
    if len(examples) < REPORTED_NAMES:
        examples.append(text)


def _join_examples(examples: List[str], count: int) -> str:
    more = f", and {count - len(examples)} more" if count > len(examples) else ""
    return ", ".join(examples) + more


def _cache_key(
    source: Path,
    layout: ImageLayout,
    names: Sequence[str],
    resolution: int,
    non_square: NonSquarePolicy,
    min_image_size: int,
) -> str:
    """sha256 of everything the decoded pixels depend on; any edit to the collection gives a new key."""
    digest = hashlib.sha256()
    header = {
        "format_version": CACHE_FORMAT_VERSION,
        "source": str(source),
        "layout": layout,
        "resolution": resolution,
        "non_square": non_square,
        "min_image_size": min_image_size,
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    if layout == "zip":
        with zipfile.ZipFile(source) as zip_file:
            for name in names:
                info = zip_file.getinfo(name)
                digest.update(f"\n{name}\0{info.file_size}\0{info.CRC}".encode())
    else:
        for name in names:
            try:
                stat = (source / name).stat()
            except OSError as error:
                raise DatasetError(
                    f"The image {source / name} disappeared or cannot be read while listing {source} ({error}). "
                    "Make sure nothing else is modifying the collection and run again."
                ) from error
            digest.update(f"\n{name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _load_cached(
    npy_path: Path, json_path: Path, source: Path, resolution: int, min_num_images: int
) -> Optional[Tuple[ImageStore, Optional[_SkipReport]]]:
    """The cached store if both files exist and agree with each other, with what its decoding skipped or upscaled
    (None for a sidecar without a readable report: the images are still good); None means decode again."""
    if not (npy_path.is_file() and json_path.is_file()):
        return None
    try:
        sidecar = json.loads(json_path.read_text())
        mapped = np.load(npy_path, mmap_mode="r")
        num_images = int(sidecar["num_images"])
        consistent = (
            sidecar.get("format_version") == CACHE_FORMAT_VERSION
            and int(sidecar["resolution"]) == resolution
            and len(sidecar["names"]) == num_images
            and mapped.dtype == np.uint8
            and mapped.shape == (num_images, resolution, resolution, 3)
        )
        del mapped
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not consistent:
        return None
    if num_images < min_num_images:
        raise DatasetError(
            f"Only {num_images} usable image(s) in {source} at {resolution} px (decoded earlier, cached in "
            f"{npy_path}), but at least {min_num_images} are needed. Add images, or lower the resolution / "
            "minimum image size."
        )
    try:
        report: Optional[_SkipReport] = _SkipReport(kept=num_images, **sidecar["report"])
    except (KeyError, TypeError):
        report = None
    return ImageStore(path=npy_path, num_images=num_images, resolution=resolution, source=source), report


def _validate_arguments(
    source: Path, resolution: int, non_square: str, min_image_size: int, min_num_images: int, num_workers: int
) -> None:
    problems = []
    if resolution < 1:
        problems.append(f"resolution must be at least 1 px, got {resolution}")
    if non_square not in ("pad", "center-crop"):
        problems.append(f"non_square must be 'pad' or 'center-crop', got {non_square!r}")
    if min_image_size < 1:
        problems.append(f"min_image_size must be at least 1 px, got {min_image_size}")
    if min_num_images < 1:
        problems.append(f"min_num_images must be at least 1, got {min_num_images}")
    if num_workers < 1:
        problems.append(f"num_workers must be at least 1, got {num_workers}")
    if problems:
        raise DatasetError(f"Cannot load the image collection {source}: " + "; ".join(problems) + ".")


def _decode_into(
    output: np.ndarray,
    source: Path,
    layout: ImageLayout,
    names: Sequence[str],
    resolution: int,
    non_square: NonSquarePolicy,
    min_image_size: int,
    num_workers: int,
) -> Tuple[_SkipReport, List[str]]:
    """Decodes every entry in parallel, writing kept images contiguously (in name order) into `output`."""
    report = _SkipReport(num_entries=len(names))
    kept_names: List[str] = []
    reader = _EntryReader(source, layout)
    executor = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="decode-images")
    pending: Deque[Tuple[str, Future]] = deque()
    max_pending = num_workers * IN_FLIGHT_PER_WORKER
    progress = Progress(
        TextColumn("[bold blue]Decoding images"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=CONSOLE,
    )
    try:
        with progress:
            task = progress.add_task("decode", total=len(names))
            next_entry = 0
            while next_entry < len(names) or pending:
                while next_entry < len(names) and len(pending) < max_pending:
                    name = names[next_entry]
                    pending.append(
                        (name, executor.submit(_decode_entry, reader, name, resolution, non_square, min_image_size))
                    )
                    next_entry += 1
                # Results are consumed in submission order so that kept images land in name order.
                name, future = pending.popleft()
                result = future.result()
                report.add(name, result, resolution)
                if result.status == "kept":
                    output[len(kept_names)] = result.pixels
                    kept_names.append(name)
                progress.advance(task)
    finally:
        for _, future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)
        reader.close()
    return report, kept_names


def _compact(scratch_path: Path, final_path: Path, num_kept: int, resolution: int) -> None:
    """Copies the first `num_kept` images into a new file of exactly that size, a bounded chunk at a time."""
    scratch = np.load(scratch_path, mmap_mode="r")
    final = np.lib.format.open_memmap(final_path, mode="w+", dtype=np.uint8, shape=(num_kept,) + scratch.shape[1:])
    chunk = max(1, COMPACTION_CHUNK_BYTES // (resolution * resolution * 3))
    for start in range(0, num_kept, chunk):
        stop = min(start + chunk, num_kept)
        final[start:stop] = scratch[start:stop]
    final.flush()
    del final, scratch


def build_image_store(
    source: Path,
    resolution: int,
    non_square: NonSquarePolicy = "pad",
    min_image_size: int = 1,
    min_num_images: int = 1,
    cache_root: Optional[Path] = None,
    num_workers: int = DEFAULT_NUM_WORKERS,
) -> ImageStore:
    """Decodes a collection into a cached uint8 store at `resolution` x `resolution`, or reuses the cached one.

    Unreadable files and images whose square side is below `min_image_size` are skipped and reported; fewer than
    `min_num_images` remaining raises a DatasetError and leaves nothing in the cache.
    """
    source = Path(source).expanduser().resolve()
    _validate_arguments(source, resolution, non_square, min_image_size, min_num_images, num_workers)
    layout, names = find_images(source)
    key = _cache_key(source, layout, names, resolution, non_square, min_image_size)
    store_folder = resolve_cache_root(cache_root).resolve() / CACHE_SUBFOLDER  # absolute: workers may chdir
    npy_path, json_path = store_folder / f"{key}.npy", store_folder / f"{key}.json"

    with cache_lock(npy_path):  # concurrent builders (e.g. DDP ranks) decode once and share the result
        cached = _load_cached(npy_path, json_path, source, resolution, min_num_images)
        if cached is not None:
            store, cached_report = cached
            CONSOLE.print(
                f"Reusing {store.num_images} decoded images of {escape(str(source))} at {resolution} px "
                f"from the cache {escape(str(npy_path))}"
            )
            if cached_report is not None:  # what the decoding skipped then still holds: the key covers every name
                cached_report.print_lines(resolution, min_image_size)
            return store

        CONSOLE.print(
            f"Decoding {len(names)} images of {escape(str(source))} ({layout} layout) at {resolution}x{resolution} px "
            f"into {escape(str(npy_path))} ({len(names) * resolution * resolution * 3 / _GIGABYTE:.2f} GB at most); "
            "this happens once per collection and resolution."
        )
        with atomic_output(npy_path) as partial_npy:
            scratch_path = partial_npy.with_name(partial_npy.name + ".scratch.npy")
            try:
                output = np.lib.format.open_memmap(
                    scratch_path, mode="w+", dtype=np.uint8, shape=(len(names), resolution, resolution, 3)
                )
                report, kept_names = _decode_into(
                    output, source, layout, names, resolution, non_square, min_image_size, num_workers
                )
                output.flush()
                del output

                CONSOLE.print(f"Kept {report.kept} of {report.num_entries} images of {escape(str(source))}.")
                report.print_lines(resolution, min_image_size)
                if report.kept < min_num_images:
                    raise DatasetError(_too_few_message(source, report, resolution, min_image_size, min_num_images))

                if report.kept == len(names):
                    os.replace(scratch_path, partial_npy)
                else:
                    _compact(scratch_path, partial_npy, report.kept, resolution)
            finally:
                if scratch_path.exists():
                    scratch_path.unlink()

        # The .npy is committed first: a run interrupted before the sidecar is written leaves an .npy without sidecar,
        # which is never trusted (both are required) and is overwritten by the next run.
        sidecar = {
            "format_version": CACHE_FORMAT_VERSION,
            "key": key,
            "source": str(source),
            "layout": layout,
            "resolution": resolution,
            "non_square": non_square,
            "min_image_size": min_image_size,
            "num_images": report.kept,
            "names": kept_names,
            "report": {key: value for key, value in asdict(report).items() if key != "kept"},  # kept: num_images
        }
        with atomic_output(json_path) as partial_json:
            partial_json.write_text(json.dumps(sidecar, indent=1))

        CONSOLE.print(
            f"Cached {report.kept} images ({report.kept * resolution * resolution * 3 / _GIGABYTE:.2f} GB) "
            f"in {escape(str(npy_path))}"
        )
        return ImageStore(path=npy_path, num_images=report.kept, resolution=resolution, source=source)


def _too_few_message(
    source: Path, report: _SkipReport, resolution: int, min_image_size: int, min_num_images: int
) -> str:
    details = []
    if report.unreadable:
        details.append(
            f"{report.unreadable} unreadable: " + _join_examples(report.unreadable_examples, report.unreadable)
        )
    if report.too_small:
        details.append(
            f"{report.too_small} smaller than {min_image_size} px: "
            + _join_examples(report.too_small_examples, report.too_small)
        )
    skipped = "; ".join(details) if details else "none skipped"
    return (
        f"Only {report.kept} of the {report.num_entries} images in {source} can be used ({skipped}), but at least "
        f"{min_num_images} are needed. Remove or repair the unreadable files, add more images, or lower the "
        f"minimum image size (patch size) or the resolution ({resolution} px). Nothing was cached."
    )
