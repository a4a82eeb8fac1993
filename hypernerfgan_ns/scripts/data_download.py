"""`hypernerfgan data download`: fetch one of HyperNeRFGAN's benchmark collections and prepare it for training.

    hypernerfgan data download carla                      # into data/carla
    hypernerfgan data download cars --output ~/data/cars  # SRN cars (Google Drive)
    hypernerfgan data download planes --archive ~/Downloads/planes.zip

The archive is kept in `<cache>/downloads/` (an interrupted download resumes there on the next run), extracted into
the output folder, checked to be a usable image collection, and the `ns-train` command that trains on it is printed.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import tyro
from rich.markup import escape
from typing_extensions import Annotated

from hypernerfgan_ns.data.cache import cache_lock, resolve_cache_root
from hypernerfgan_ns.data.downloads import (
    DATASET_SOURCES,
    DatasetSource,
    download_file,
    extract_archive,
    file_sha256,
    normalise_sha256,
)
from hypernerfgan_ns.data.image_collection import find_images
from hypernerfgan_ns.errors import DatasetError, DownloadError
from nerfstudio.utils.rich_utils import CONSOLE

DOWNLOADS_SUBFOLDER = "downloads"
"""Folder under the cache root that keeps downloaded archives (and partial downloads being resumed)."""

DEFAULT_DATA_ROOT = Path("data")
"""Collections are extracted into `data/<name>` unless --output says otherwise."""

URL_TAG_LENGTH = 8
"""Hex characters of the URL's hash added to the cached archive's name when --url replaces the registry's URL."""


@dataclass
class DownloadCommand:
    """Download a benchmark image collection (carla, cars, chairs, planes), extract it and check it."""

    name: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="NAME")]
    """Which collection: carla (GRAF's CARLA cars), cars or chairs (SRN ShapeNet), planes (HyperNeRFGAN's)."""
    output: Optional[Path] = None
    """Folder to extract into; must not exist yet, or be empty. Default: data/<name>."""
    url: Optional[str] = None
    """Download from this URL instead of the registry's (a mirror, or a direct link to the same archive)."""
    sha256: Optional[str] = None
    """Expected sha256 of the archive; replaces the registry's (none is published for these archives)."""
    archive: Optional[Path] = None
    """Use this already downloaded archive instead of the network (for manual downloads)."""
    cache_root: Optional[Path] = None
    """Cache folder that keeps the downloads; default $HYPERNERFGAN_CACHE or ~/.cache/hypernerfgan_ns."""

    def main(self) -> None:
        """Gets the archive (network or --archive), extracts it, and prints how to train on it."""
        source = self._source()
        output = (self.output if self.output is not None else DEFAULT_DATA_ROOT / source.name).expanduser()
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise DatasetError(
                f"The output {output} already exists and is not an empty folder. Choose another --output folder, "
                "or delete this one first."
            )
        CONSOLE.print(f"[bold]{escape(source.description)}[/bold]\nTerms: {escape(source.license)}")
        archive = self._archive(source)
        extract_archive(archive, output)
        data = self._training_folder(source, output)
        layout, names = find_images(data)
        CONSOLE.print(
            f"[bold green]Ready:[/bold green] {len(names)} images ({layout} layout) in {escape(str(data))}. "
            f"The archive stays in {escape(str(archive))}; delete it to free the space."
        )
        CONSOLE.print("Train on it with:")
        command = f"ns-train hypernerfgan --data {shlex.quote(str(data))} unposed-images --preset {source.preset}"
        CONSOLE.print(command, markup=False, highlight=False, soft_wrap=True)

    def _source(self) -> DatasetSource:
        if self.name not in DATASET_SOURCES:
            raise DatasetError(
                f"Unknown dataset '{self.name}'. The downloadable datasets are: {', '.join(DATASET_SOURCES)}. "
                "For your own images, use `hypernerfgan data convert` or pass the folder to --data directly."
            )
        return DATASET_SOURCES[self.name]

    def _expected(self, source: DatasetSource) -> Tuple[Optional[str], Optional[int]]:
        """(sha256, size) to check: a --sha256 pins another file, so the registry's size no longer applies."""
        if self.sha256 is not None:
            return normalise_sha256(self.sha256), None
        return source.sha256, source.size_bytes

    def _by_hand(self, source: DatasetSource) -> str:
        alternatives = (
            " The HyperNeRFGAN authors also share their own prepared copy (another archive, browser only): "
            + ", ".join(source.alternatives)
            + "."
            if source.alternatives
            else ""
        )
        return (
            f"To download it by hand: {source.manual_steps} Then run `hypernerfgan data download {source.name} "
            f"--archive PATH/TO/{source.archive_filename}`.{alternatives}"
        )

    def _archive(self, source: DatasetSource) -> Path:
        """The archive on disk: the --archive file (checked), or a verified download in the cache."""
        expected_sha256, expected_size = self._expected(source)
        if self.archive is not None:
            return self._given_archive(self.archive.expanduser(), expected_sha256, expected_size)
        if not source.automatic and self.url is None:
            raise DownloadError(
                f"The {source.name} dataset cannot be downloaded automatically: its link is a sharing page that "
                f"needs a browser. {self._by_hand(source)}"
            )
        url = self.url or source.url
        filename = source.archive_filename
        if self.url is not None and self.url != source.url:
            tag = hashlib.sha256(self.url.encode()).hexdigest()[:URL_TAG_LENGTH]
            stem, _, suffix = filename.partition(".")
            filename = f"{stem}-{tag}.{suffix}"
        destination = resolve_cache_root(self.cache_root) / DOWNLOADS_SUBFOLDER / filename
        with cache_lock(destination):  # two processes fetching the same archive would corrupt the partial file
            try:
                return download_file(url, destination, expected_sha256=expected_sha256, expected_size=expected_size)
            except DownloadError as error:
                raise DownloadError(f"{error} {self._by_hand(source)}") from error

    def _given_archive(self, archive: Path, expected_sha256: Optional[str], expected_size: Optional[int]) -> Path:
        if not archive.is_file():
            raise DatasetError(f"The archive {archive} given with --archive does not exist. Check the path.")
        size = archive.stat().st_size
        if expected_size is not None and size != expected_size:
            raise DownloadError(
                f"The archive {archive} has {size} bytes, but the published archive has {expected_size}: it is "
                "incomplete or another file. Download it again, or pass --sha256 to use it anyway."
            )
        actual = file_sha256(archive)
        if expected_sha256 is not None and actual != expected_sha256:
            raise DownloadError(
                f"The archive {archive} has sha256 {actual}, expected {expected_sha256}: it is incomplete or another "
                "file. Download it again, or pass the matching --sha256 if you trust it."
            )
        verified = "sha256 verified" if expected_sha256 is not None else f"not verified, sha256 {actual}"
        CONSOLE.print(f"Using the archive {escape(str(archive))} ({size} bytes, {verified}).")
        return archive

    @staticmethod
    def _training_folder(source: DatasetSource, output: Path) -> Path:
        """The extracted folder that holds the training split (e.g. cars_train/), else the whole output."""
        if not source.data_subfolder:
            return output
        candidates = [output / source.data_subfolder] + sorted(output.glob(f"*/{source.data_subfolder}"))
        for candidate in candidates:
            if candidate.is_dir():
                return candidate
        CONSOLE.print(
            f"[yellow]No {escape(source.data_subfolder)}/ folder in {escape(str(output))}; using all of its images."
        )
        return output
