"""The public image collections of HyperNeRFGAN's benchmarks, and a resumable, verified downloader for them.

Archives are large (gigabytes) and their hosts are slow or flaky, so a download streams into a `.partial` file that
a rerun resumes with an HTTP Range request, and the archive only gets its final name once its size and checksum were
checked: an interrupted or corrupt download is never mistaken for a complete one. Extraction builds into a temporary
folder that is renamed into place when complete, and refuses archive members that would land outside it.

None of the hosts publishes a checksum or a size for these archives; the registry leaves them unset instead of
inventing them, and every download prints the sha256 it computed so that users can pin it with `--sha256`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tarfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Tuple
from urllib.error import HTTPError, URLError

from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.errors import DatasetError, DownloadError
from nerfstudio.utils.rich_utils import CONSOLE

# ----------------------------------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class DatasetSource:
    """A public archive of training images, where it comes from and what it holds."""

    name: str
    """Registry key, the NAME of `hypernerfgan data download NAME`."""
    description: str
    """One line saying what the images are."""
    url: str
    """Where the archive is published (override with `--url` for a mirror)."""
    archive_filename: str
    """File name of the archive as its publisher names it (also its name in the download cache)."""
    preset: str
    """The dataset preset in configs/ that trains on it (camera prior, target depth, R1 weight)."""
    license: str
    """Terms under which the images may be used, as far as the publishers state them."""
    layout: str
    """What the archive holds once extracted."""
    provenance: str
    """Which public project publishes the URL, and what of this entry is verified."""
    manual_steps: str
    """How to get the archive by hand when the automatic download fails (then pass it with `--archive`)."""
    data_subfolder: str = ""
    """Folder of the extracted archive that holds the training images ("" for the whole archive)."""
    automatic: bool = True
    """False when plain HTTP cannot fetch `url` (a sharing page that needs a browser): `--archive` is required."""
    size_bytes: Optional[int] = None
    """Exact size of the archive in bytes, when published; None: not published, not checked."""
    sha256: Optional[str] = None
    """sha256 of the archive, when published; None: not published, the download is reported as not verified."""
    alternatives: Tuple[str, ...] = ()
    """Other public copies (manual downloads), e.g. the rescaled zips the HyperNeRFGAN authors share."""


_HYPERNERFGAN_SHARE = "https://ujchmura-my.sharepoint.com/:u:/g/personal/przemyslaw_spurek_uj_edu_pl/"
"""Where the HyperNeRFGAN authors share their prepared datasets (OneDrive for Business; needs a browser)."""

_PIXELNERF_DRIVE_FOLDER = "https://drive.google.com/drive/folders/1PsT3uKwqHHD2bEEHkIXB99AlIjtmrEiR"
"""The Google Drive folder of pixelNeRF's data, which holds srn_cars.zip and srn_chairs.zip."""

_SHAPENET_TERMS = (
    "Renders of ShapeNet models: ShapeNet's terms of use apply (non-commercial research and education; "
    "https://shapenet.org/terms)."
)

DATASET_SOURCES: Dict[str, DatasetSource] = {
    "carla": DatasetSource(
        name="carla",
        description="GRAF's CARLA cars: 10,000 PNG renders of cars from the CARLA simulator, on white.",
        url="https://s3.eu-central-1.amazonaws.com/avg-projects/graf/data/carla.zip",
        archive_filename="carla.zip",
        preset="carla",
        license=(
            "Published with GRAF (Schwarz et al., NeurIPS 2020), whose repository is MIT-licensed; no separate "
            "license for the images is stated. The cars are CARLA simulator assets (CC-BY, per CARLA's README). "
            "Cite GRAF."
        ),
        layout="PNG images of single cars on a white background (the folder structure inside is not pinned here).",
        provenance=(
            "URL from GRAF's data/download_carla.sh (autonomousvision/graf), also given by HyperNeRFGAN's README; "
            "not fetched from here, no published size or checksum."
        ),
        manual_steps=(
            "Download carla.zip with a browser or wget from "
            "https://s3.eu-central-1.amazonaws.com/avg-projects/graf/data/carla.zip."
        ),
        alternatives=(_HYPERNERFGAN_SHARE + "ETLL6rymGWlErix5HEkiNsUB4YHzLbX4aM5Die52vvlefA?e=29aOCM",),
    ),
    "cars": DatasetSource(
        name="cars",
        description="SRN ShapeNet cars: renders of a few thousand car instances, 128x128 PNGs on white.",
        url="https://drive.google.com/uc?export=download&id=19yDsEJjx9zNpOKz9o6AaK-E8ED6taJWU",
        archive_filename="srn_cars.zip",
        preset="cars",
        license=_SHAPENET_TERMS + " Rendered by SRN (Sitzmann et al., NeurIPS 2019); cite SRN.",
        layout=(
            "SRN folders cars_train/, cars_val/, cars_test/, each with <instance>/rgb/*.png, <instance>/pose/*.txt "
            "and <instance>/intrinsics.txt; only cars_train/ is used for training."
        ),
        provenance=(
            "srn_cars.zip is in pixelNeRF's Google Drive folder; the file id is the one several public projects "
            "download srn_cars.zip by (e.g. a DeepMind tfds builder, which finds cars_train/ at the archive's top). "
            "Not fetched from here, no published size or checksum."
        ),
        manual_steps=(
            f"Open {_PIXELNERF_DRIVE_FOLDER} in a browser and download srn_cars.zip "
            "(Google Drive refuses scripted downloads when the file's daily quota is used up)."
        ),
        data_subfolder="cars_train",
        alternatives=(_HYPERNERFGAN_SHARE + "EQsJBo43ihBBmMiRnjQGJ1UB3D-BVvioCFXBzl7E5BtPdQ?e=L8lQIp",),
    ),
    "chairs": DatasetSource(
        name="chairs",
        description="SRN ShapeNet chairs: renders of several thousand chair instances, 128x128 PNGs on white.",
        url="https://drive.google.com/uc?export=download&id=1VWtRZkC4_ON6EBhNNBTag-BwsjPB2Yc8",
        archive_filename="srn_chairs.zip",
        preset="chairs",
        license=_SHAPENET_TERMS + " Rendered by SRN (Sitzmann et al., NeurIPS 2019); cite SRN.",
        layout=(
            "SRN folders chairs_train/ (instances possibly one level deeper, in chairs_train/chairs_2.0_train/), "
            "chairs_val/, chairs_test/, with <instance>/rgb/*.png beside pose/ and intrinsics.txt; "
            "only chairs_train/ is used for training."
        ),
        provenance=(
            "srn_chairs.zip is in pixelNeRF's Google Drive folder; the file id comes from one public setup script "
            "that downloads srn_cars.zip and srn_chairs.zip by id, so it is the least certain entry. "
            "Not fetched from here, no published size or checksum."
        ),
        manual_steps=(
            f"Open {_PIXELNERF_DRIVE_FOLDER} in a browser and download srn_chairs.zip "
            "(Google Drive refuses scripted downloads when the file's daily quota is used up)."
        ),
        data_subfolder="chairs_train",
        alternatives=(_HYPERNERFGAN_SHARE + "EVEQs74umWtBjRlvuKzJAuwBIDwKxtMLSggFJEF4wL-1zA?e=WYwc6k",),
    ),
    "planes": DatasetSource(
        name="planes",
        description="ShapeNet planes as the HyperNeRFGAN authors prepared them (renders on white).",
        url=_HYPERNERFGAN_SHARE + "ESvo9ADxX3JFvICAyDB-m_IBhN3R6tA4rJSCtUbyISXl7A?e=fKjwHR",
        archive_filename="planes.zip",
        preset="planes",
        license=(
            _SHAPENET_TERMS + " Shared by the HyperNeRFGAN authors (Kania et al., 2023) without a separate "
            "license; cite HyperNeRFGAN."
        ),
        layout="A StyleGAN2-ADA style zip: PNG images (and possibly a dataset.json), no poses.",
        provenance=(
            "Link from HyperNeRFGAN's README (gmum/HyperNeRFGAN, 'ShapeNet Planes'); the archive's real file name, "
            "size and checksum are not published, and the link is a sharing page, not a file."
        ),
        manual_steps=(
            "Open the HyperNeRFGAN authors' sharing link in a browser and download the archive: "
            + _HYPERNERFGAN_SHARE
            + "ESvo9ADxX3JFvICAyDB-m_IBhN3R6tA4rJSCtUbyISXl7A?e=fKjwHR"
        ),
        automatic=False,
    ),
}
"""The archives HyperNeRFGAN's benchmarks come from, by the name `hypernerfgan data download` takes."""


# ----------------------------------------------------------------------------------------------------------------------
# Downloading

DEFAULT_CHUNK_SIZE = 2**20
"""Bytes read from the network per step: large enough to be fast, small enough for a smooth progress bar."""

DEFAULT_TIMEOUT_S = 60.0
"""Seconds without any data from the server before a download is given up (it can then be resumed)."""

PARTIAL_SUFFIX = ".partial"
"""Suffix of a download in progress; a rerun resumes it."""

USER_AGENT = "hypernerfgan_ns-downloader/0.1 (+urllib)"
"""Sent with every request: some hosts refuse Python's default agent string."""

MAX_CONFIRM_PAGES = 2
"""Confirmation pages (Google Drive's 'cannot scan this file for viruses') followed before giving up."""

SNIFF_BYTES = 512
"""Bytes read first from a response to tell a web page (a confirmation or error page) from the file."""

MAX_PAGE_BYTES = 2 * 2**20
"""A web page answered instead of the file is read up to this size to look for a confirmation form."""

HASH_CHUNK_SIZE = 8 * 2**20
"""Bytes hashed per step when checking a file on disk."""

HTTP_PARTIAL_CONTENT = 206
"""Status of an answer to a Range request that the server honoured."""

HTTP_RANGE_NOT_SATISFIABLE = 416
"""Status of a Range request starting at or past the end of the file (the partial file may already be complete)."""

SHA256_HEX_LENGTH = 64
"""Characters of a sha256 digest written in hexadecimal."""

REPORTED_MEMBERS = 5
"""How many unsafe archive members an error message names."""

_HTML_STARTS = (b"<!doctype html", b"<html")
"""How a web page begins (lower-cased, after leading whitespace); archives never begin like this."""

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


def partial_path(destination: Path) -> Path:
    """Where the download of `destination` is kept while in progress."""
    return destination.with_suffix(destination.suffix + PARTIAL_SUFFIX)


def normalise_sha256(value: Optional[str]) -> Optional[str]:
    """The digest in lower case without spaces; anything that is not a sha256 raises a DownloadError."""
    if value is None:
        return None
    digest = value.strip().lower()
    if len(digest) != SHA256_HEX_LENGTH or any(character not in "0123456789abcdef" for character in digest):
        raise DownloadError(
            f"'{value}' is not a sha256 checksum: expected {SHA256_HEX_LENGTH} hexadecimal characters "
            "(as printed by `sha256sum FILE`)."
        )
    return digest


def _byte_progress(description: str) -> Progress:
    return Progress(
        TextColumn(f"[bold blue]{escape(description)}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=CONSOLE,
    )


def file_sha256(path: Path) -> str:
    """sha256 of a file on disk, with a progress bar (archives are gigabytes)."""
    digest = hashlib.sha256()
    with _byte_progress(f"Checking {path.name}") as progress, open(path, "rb") as handle:
        task = progress.add_task("hash", total=path.stat().st_size)
        while True:
            block = handle.read(HASH_CHUNK_SIZE)
            if not block:
                break
            digest.update(block)
            progress.advance(task, len(block))
    return digest.hexdigest()


def _reuse_complete(destination: Path, expected_sha256: Optional[str], expected_size: Optional[int]) -> bool:
    """Whether an existing destination file is the wanted archive; a wrong one is deleted so it is downloaded anew."""
    size = destination.stat().st_size
    if expected_size is not None and size != expected_size:
        CONSOLE.print(
            f"[yellow]{escape(str(destination))} has {size} bytes, expected {expected_size}: downloading it again."
        )
        destination.unlink()
        return False
    actual = file_sha256(destination)
    if expected_sha256 is not None and actual != expected_sha256:
        CONSOLE.print(
            f"[yellow]{escape(str(destination))} has sha256 {actual}, expected {expected_sha256}: downloading it again."
        )
        destination.unlink()
        return False
    if expected_sha256 is None:
        CONSOLE.print(
            f"Reusing the earlier download {escape(str(destination))} (not verified: no published checksum; "
            f"its sha256 is {actual})."
        )
    else:
        CONSOLE.print(f"Reusing the earlier download {escape(str(destination))} (sha256 verified).")
    return True


class _ConfirmFormParser(HTMLParser):
    """Collects the forms (action, method, hidden inputs) and the links of a web page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: List[Tuple[Dict[str, str], Dict[str, str]]] = []
        self.links: List[str] = []
        self._current: Optional[Tuple[Dict[str, str], Dict[str, str]]] = None

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        if tag == "form":
            self._current = (attributes, {})
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attributes.get("name"):
            if attributes.get("type", "text").lower() in ("hidden", "submit"):
                self._current[1][attributes["name"]] = attributes.get("value", "")
        elif tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def confirmation_request(page: str, page_url: str) -> Optional[urllib.request.Request]:
    """The request that confirms a download from a 'cannot scan this file for viruses' page, if the page has one.

    Google Drive answers a large file's download link with such a page; its form (hidden `id`, `confirm`, `uuid`
    fields) or, on older pages, a link with a `confirm=` parameter, leads to the file.
    """
    parser = _ConfirmFormParser()
    parser.feed(page)
    forms = [form for form in parser.forms if form[0].get("action")]
    forms.sort(key=lambda form: form[0].get("id") != "download-form")  # Drive's form first, when there are several
    for attributes, fields in forms:
        if "download" not in attributes["action"] and "confirm" not in fields:
            continue
        action = urllib.parse.urljoin(page_url, attributes["action"])
        query = urllib.parse.urlencode(fields)
        if attributes.get("method", "get").lower() == "post":
            return urllib.request.Request(action, data=query.encode(), method="POST")
        separator = "&" if urllib.parse.urlparse(action).query else "?"
        return urllib.request.Request(action + (separator + query if query else ""))
    for link in parser.links:
        if "confirm=" in link:
            return urllib.request.Request(urllib.parse.urljoin(page_url, link))
    return None


def _network_error(url: str, error: BaseException, partial: Path) -> DownloadError:
    kept = (
        f"The partial download {partial} ({partial.stat().st_size} bytes) is kept: run the same command again to "
        "resume it."
        if partial.is_file() and partial.stat().st_size > 0
        else "Run the same command again to retry."
    )
    return DownloadError(
        f"Downloading {url} failed: {type(error).__name__}: {error}. Check the network connection (and a proxy, "
        f"if any). {kept}"
    )


def _http_error(url: str, error: HTTPError) -> DownloadError:
    return DownloadError(
        f"The server of {url} answered HTTP {error.code} ({error.reason}). The file may have moved or be "
        "unavailable for now: try again later, use a mirror with --url, or download the archive by hand and pass "
        "it with --archive."
    )


def _is_web_page(response: http.client.HTTPResponse, head: bytes) -> bool:
    content_type = (response.headers.get("Content-Type") or "").lower()
    return content_type.startswith("text/html") and head.lstrip().lower().startswith(_HTML_STARTS)


@dataclass
class _Opened:
    """A response that delivers the file's bytes from `offset` on."""

    response: http.client.HTTPResponse
    head: bytes
    """Bytes already read from the response (to tell a web page from the file); they come first."""
    offset: int
    """Where in the file the response's body starts: the partial size when the server resumed, else 0."""
    total: Optional[int]
    """Size of the whole file when the server says it."""


def _open_file_response(url: str, offset: int, timeout: float, partial: Path) -> Optional[_Opened]:
    """Requests the file from `offset` on, following confirmation pages; None when the partial file is complete."""
    target_url, body = url, None  # what to request: the URL, or a confirmation page's form
    for _ in range(MAX_CONFIRM_PAGES + 2):  # the confirmation pages, plus one restart from the beginning
        request = urllib.request.Request(target_url, data=body, headers={"User-Agent": USER_AGENT})
        if offset > 0:
            request.add_header("Range", f"bytes={offset}-")
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except HTTPError as error:
            if error.code == HTTP_RANGE_NOT_SATISFIABLE and offset > 0:
                match = _UNSATISFIED_RANGE.search(error.headers.get("Content-Range") or "")
                if match and int(match.group(1)) == offset:
                    return None  # the previous run received every byte but stopped before verifying
                CONSOLE.print(f"[yellow]The server cannot resume at byte {offset}; downloading {escape(url)} anew.")
                partial.unlink()
                offset = 0
                continue
            raise _http_error(url, error) from error
        except (URLError, OSError, http.client.HTTPException) as error:
            raise _network_error(url, error, partial) from error

        try:
            head = response.read(SNIFF_BYTES)
            if _is_web_page(response, head):
                page = (head + response.read(MAX_PAGE_BYTES)).decode("utf-8", errors="replace")
                response.close()
                confirmed = confirmation_request(page, response.geturl())
                if confirmed is None:
                    raise DownloadError(
                        f"{url} answered with a web page instead of the archive: a sharing page that needs a "
                        "browser, a sign-in page, or Google Drive's 'quota exceeded' page. Download the archive by "
                        "hand and pass it with --archive, or give a direct link with --url."
                    )
                target_url, body = confirmed.full_url, confirmed.data
                continue
        except (OSError, http.client.HTTPException) as error:
            response.close()
            raise _network_error(url, error, partial) from error

        length = response.headers.get("Content-Length")
        if offset > 0 and response.status == HTTP_PARTIAL_CONTENT:
            match = _CONTENT_RANGE.search(response.headers.get("Content-Range") or "")
            if match is None or int(match.group(1)) != offset:
                response.close()
                CONSOLE.print(f"[yellow]The server resumed {escape(url)} at the wrong byte; downloading it anew.")
                partial.unlink()
                offset = 0
                continue
            total = int(match.group(3)) if match.group(3) != "*" else None
            if total is None and length is not None:
                total = offset + int(length)
            return _Opened(response, head, offset, total)
        if offset > 0:
            CONSOLE.print(
                f"[yellow]The server of {escape(url)} does not resume downloads (it ignored the Range request): "
                "starting again from the beginning."
            )
        return _Opened(response, head, 0, int(length) if length is not None else None)
    raise DownloadError(
        f"{url} kept answering with confirmation pages or refusing to resume. Download the archive by hand and "
        "pass it with --archive."
    )


def _sha256_prefix(path: Path, size: int) -> "hashlib._Hash":
    """A running sha256 of the first `size` bytes of `path`, to be continued with the bytes still to come."""
    digest = hashlib.sha256()
    if size == 0:
        return digest
    with open(path, "rb") as handle:
        remaining = size
        while remaining > 0:
            block = handle.read(min(HASH_CHUNK_SIZE, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest


def _stream(opened: _Opened, url: str, partial: Path, chunk_size: int, digest: "hashlib._Hash") -> None:
    """Appends the response's body to the partial file, hashing it on the way."""
    received = opened.offset
    mode = "ab" if opened.offset > 0 else "wb"
    with opened.response, open(partial, mode) as handle, _byte_progress(f"Downloading {partial.stem}") as progress:
        task = progress.add_task("download", total=opened.total, completed=opened.offset)
        chunk = opened.head
        while chunk:
            handle.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            progress.update(task, completed=received)
            try:
                chunk = opened.response.read(chunk_size)
            except (OSError, http.client.HTTPException) as error:
                handle.flush()
                raise _network_error(url, error, partial) from error
    if opened.total is not None and received > opened.total:
        partial.unlink()
        raise DownloadError(
            f"The server of {url} sent {received} bytes but announced {opened.total}; the download was deleted. "
            "Run the command again, or use a mirror with --url."
        )
    if opened.total is not None and received < opened.total:
        raise DownloadError(
            f"The connection to {url} closed after {received} of {opened.total} bytes. The partial download "
            f"{partial} is kept: run the same command again to resume it."
        )


def _finish(
    partial: Path,
    destination: Path,
    digest: "hashlib._Hash",
    url: str,
    expected_sha256: Optional[str],
    expected_size: Optional[int],
) -> Path:
    """Checks size and checksum, then gives the download its final name; a wrong file is deleted."""
    size = partial.stat().st_size
    if expected_size is not None and size != expected_size:
        partial.unlink()
        raise DownloadError(
            f"The download of {url} has {size} bytes, but {expected_size} were expected; it was deleted. "
            "The server may serve another version of the file: check the URL, or pass the right --sha256."
        )
    actual = digest.hexdigest()
    if expected_sha256 is not None and actual != expected_sha256:
        partial.unlink()
        raise DownloadError(
            f"The download of {url} is corrupt or a different file: its sha256 is {actual}, expected "
            f"{expected_sha256}. It was deleted; run the command again to download it anew, or, if the publisher "
            "replaced the file and you trust it, pass --sha256 with the new checksum."
        )
    os.replace(partial, destination)
    if expected_sha256 is None:
        CONSOLE.print(
            f"[yellow]Downloaded {escape(str(destination))} ({size} bytes), not verified: no checksum is published "
            f"for it.[/yellow] Its sha256 is {actual}; pass --sha256 {actual} to pin it."
        )
    else:
        CONSOLE.print(f"[green]Downloaded {escape(str(destination))} ({size} bytes), sha256 verified.")
    return destination


def download_file(
    url: str,
    destination: Path,
    expected_sha256: Optional[str] = None,
    expected_size: Optional[int] = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Downloads `url` to `destination`, resuming an earlier partial download, and verifies it when it can.

    An existing `destination` whose size and checksum match is reused without touching the network. Otherwise the
    bytes go to `destination` + ".partial" (resumed with an HTTP Range request; restarted when the server ignores
    it) and only a download of the expected size and checksum is renamed to `destination`. Network failures raise a
    DownloadError and keep the partial file; a wrong size or checksum deletes it.
    """
    destination = Path(destination).expanduser()
    expected_sha256 = normalise_sha256(expected_sha256)
    if chunk_size < 1 or timeout <= 0:
        raise DownloadError(f"chunk_size must be at least 1 and timeout positive, got {chunk_size} and {timeout}.")
    if destination.is_file() and _reuse_complete(destination, expected_sha256, expected_size):
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(destination)

    offset = partial.stat().st_size if partial.is_file() else 0
    if expected_size is not None and offset > expected_size:
        CONSOLE.print(f"[yellow]{escape(str(partial))} is larger than the archive; downloading it anew.")
        partial.unlink()
        offset = 0
    if expected_size is not None and offset == expected_size and offset > 0:
        CONSOLE.print(f"{escape(str(partial))} already holds all {offset} bytes; checking it.")
        return _finish(partial, destination, _sha256_prefix(partial, offset), url, expected_sha256, expected_size)

    if offset > 0:
        CONSOLE.print(f"Resuming the download of {escape(url)} at byte {offset}.")
    else:
        CONSOLE.print(f"Downloading {escape(url)}")
    opened = _open_file_response(url, offset, timeout, partial)
    if opened is None:
        return _finish(partial, destination, _sha256_prefix(partial, offset), url, expected_sha256, expected_size)
    if expected_size is not None and opened.total is not None and opened.total != expected_size:
        opened.response.close()
        raise DownloadError(
            f"The server of {url} offers {opened.total} bytes, but the archive has {expected_size}: the URL serves "
            "another file. Check it, or use a mirror with --url."
        )
    digest = _sha256_prefix(partial, opened.offset)
    _stream(opened, url, partial, chunk_size, digest)
    return _finish(partial, destination, digest, url, expected_sha256, expected_size)


# ----------------------------------------------------------------------------------------------------------------------
# Extracting


def _unsafe_reason(name: str) -> Optional[str]:
    """Why an archive member name could write outside the extraction folder, or None if it cannot."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised):
        return "absolute path"
    if ".." in PurePosixPath(normalised).parts:
        return "'..' in the path"
    return None


def _archive_kind(archive: Path) -> str:
    if zipfile.is_zipfile(archive):
        return "zip"
    try:
        if tarfile.is_tarfile(archive):
            return "tar"
    except OSError:
        pass
    raise DownloadError(
        f"{archive} is not a zip or tar archive (it may be a truncated download or a web page saved by mistake). "
        "Delete it and download it again."
    )


def _check_members(archive: Path, members: List[Tuple[str, str]]) -> None:
    """Refuses the whole archive if any member (name, problem) is unsafe: a partial extraction helps nobody."""
    unsafe = [f"{name} ({problem})" for name, problem in members]
    if unsafe:
        more = f" and {len(unsafe) - REPORTED_MEMBERS} more" if len(unsafe) > REPORTED_MEMBERS else ""
        raise DownloadError(
            f"The archive {archive} has members that would be written outside the output folder: "
            f"{', '.join(unsafe[:REPORTED_MEMBERS])}{more}. Nothing was extracted: the archive is not the expected "
            "one; delete it and download it again from a trusted source."
        )


def _member_progress() -> Progress:
    return Progress(
        TextColumn("[bold blue]Extracting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=CONSOLE,
    )


def _extract_zip(archive: Path, target: Path) -> int:
    try:
        with zipfile.ZipFile(archive) as zip_file:
            infos = zip_file.infolist()
            problems = []
            for info in infos:
                reason = _unsafe_reason(info.filename)
                if reason:
                    problems.append((info.filename, reason))
            _check_members(archive, problems)
            with _member_progress() as progress:
                task = progress.add_task("extract", total=len(infos))
                for info in infos:
                    zip_file.extract(info, target)
                    progress.advance(task)
            return len(infos)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise DownloadError(
            f"The zip archive {archive} is damaged ({error}). Delete it and download it again."
        ) from error


def _extract_tar(archive: Path, target: Path) -> int:
    try:
        with tarfile.open(archive, "r:*") as tar_file:
            members = tar_file.getmembers()
            problems = []
            for member in members:
                reason = _unsafe_reason(member.name)
                if reason is None and not (member.isfile() or member.isdir()):
                    reason = "link or special file"
                if reason:
                    problems.append((member.name, reason))
            _check_members(archive, problems)
            with _member_progress() as progress:
                task = progress.add_task("extract", total=len(members))
                for member in members:
                    if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: a second line of defence
                        tar_file.extract(member, target, filter="data")
                    else:
                        tar_file.extract(member, target)
                    progress.advance(task)
            return len(members)
    except (tarfile.TarError, EOFError) as error:
        raise DownloadError(
            f"The tar archive {archive} is damaged ({error}). Delete it and download it again."
        ) from error


def extract_archive(archive: Path, output_dir: Path) -> Path:
    """Extracts a zip or tar(.gz/.bz2/.xz) archive into `output_dir`, which must not exist yet or be empty.

    Builds in a temporary sibling folder that is renamed into place when complete, so an interrupted extraction
    leaves nothing behind. Refuses archives with members that have absolute paths, '..' or (tar) links.
    """
    archive = Path(archive).expanduser()
    output_dir = Path(output_dir).expanduser()
    if not archive.is_file():
        raise DownloadError(f"The archive {archive} does not exist. Check the path, or download it again.")
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise DatasetError(
            f"The output {output_dir} already exists and is not an empty folder. Choose another --output folder, "
            "or delete this one first."
        )
    kind = _archive_kind(archive)
    CONSOLE.print(f"Extracting {escape(str(archive))} into {escape(str(output_dir))}")
    with atomic_output(output_dir) as temporary:
        temporary.mkdir(parents=True)
        try:
            count = _extract_zip(archive, temporary) if kind == "zip" else _extract_tar(archive, temporary)
        except OSError as error:
            raise DownloadError(
                f"Extracting {archive} into {output_dir} failed ({error}). Check the free disk space and the "
                "permissions of the output folder, then run again."
            ) from error
    CONSOLE.print(f"Extracted {count} entries into {escape(str(output_dir))}")
    return output_dir
