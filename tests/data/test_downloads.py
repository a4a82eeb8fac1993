"""Tests of the resumable, verified downloader, safe extraction, and `hypernerfgan data download`.

Every request goes to an HTTP server on 127.0.0.1 that serves bytes from memory and is stopped by the fixture (or,
at the latest, by its own watchdog timer); nothing here reaches the internet.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest
from PIL import Image

from hypernerfgan_ns.data.downloads import (
    DATASET_SOURCES,
    confirmation_request,
    download_file,
    extract_archive,
    partial_path,
)
from hypernerfgan_ns.data.image_collection import find_images
from hypernerfgan_ns.errors import DatasetError, DownloadError
from hypernerfgan_ns.scripts.data_download import DownloadCommand

SERVER_LIFETIME_S = 60.0
"""The test server shuts itself down after this long even if a fixture finaliser never runs."""

PAYLOAD_SIZE = 200_000
"""Bytes of the served test file: several chunks, still instant."""

CHUNK_SIZE = 16_384
"""Small chunks, so that a download takes many reads."""

TIMEOUT_S = 5.0
"""Socket timeout of the test downloads: a hanging test fails fast instead of blocking the suite."""

PRESETS = ("carla", "cars", "chairs", "planes")


# ----------------------------------------------------------------------------------------------------------------------
# A local HTTP server


@dataclass
class ServedFile:
    body: bytes
    content_type: str = "application/octet-stream"


@dataclass
class ServerState:
    """What the server serves, how it misbehaves, and what it was asked."""

    files: Dict[str, ServedFile] = field(default_factory=dict)
    ignore_range: bool = False
    """Answer every request with the whole file (200), as servers without resume support do."""
    drop_after: Optional[int] = None
    """Close the connection after this many body bytes, once (then serve normally)."""
    requests: List[Tuple[str, Optional[str]]] = field(default_factory=list)
    """(path, Range header) of every request received."""


class Handler(BaseHTTPRequestHandler):
    server: "LocalServer"

    def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        state = self.server.state
        state.requests.append((self.path, self.headers.get("Range")))
        served = state.files.get(self.path)
        if served is None:
            self.send_error(404, "not found")
            return
        body, start = served.body, 0
        requested = self.headers.get("Range")
        if requested and not state.ignore_range:
            start = int(requested.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        remaining = body[start:]
        self.send_header("Content-Type", served.content_type)
        self.send_header("Content-Length", str(len(remaining)))
        self.end_headers()
        if state.drop_after is not None:
            self.wfile.write(remaining[: state.drop_after])
            self.wfile.flush()
            state.drop_after = None
            self.close_connection = True
            return
        self.wfile.write(remaining)

    def log_message(self, format: str, *args) -> None:  # keep pytest's output clean
        pass


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


@dataclass
class Server:
    state: ServerState
    base_url: str

    def url(self, path: str) -> str:
        return self.base_url + path

    def serve(self, path: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        self.state.files[path] = ServedFile(body, content_type)
        return self.url(path)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    httpd = LocalServer(("127.0.0.1", 0), Handler)
    httpd.state = ServerState()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(SERVER_LIFETIME_S, httpd.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield Server(httpd.state, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        watchdog.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=TIMEOUT_S)


@pytest.fixture
def payload() -> bytes:
    return np.random.default_rng(0).integers(0, 256, size=PAYLOAD_SIZE, dtype=np.uint8).tobytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(url: str, destination: Path, **kwargs) -> Path:
    return download_file(url, destination, chunk_size=CHUNK_SIZE, timeout=TIMEOUT_S, **kwargs)


def png_bytes(index: int) -> bytes:
    pixels = np.full((16, 16, 3), index * 30, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_bytes(members: Dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zip_file:
        for name, data in members.items():
            zip_file.writestr(name, data)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------------------------
# download_file


def test_full_download_with_correct_checksum(server: Server, payload: bytes, tmp_path: Path) -> None:
    url = server.serve("/data.bin", payload)
    destination = fetch(url, tmp_path / "data.bin", expected_sha256=sha256(payload), expected_size=len(payload))
    assert destination.read_bytes() == payload
    assert not partial_path(destination).exists()
    assert server.state.requests == [("/data.bin", None)]


def test_resume_requests_the_missing_bytes(server: Server, payload: bytes, tmp_path: Path) -> None:
    url = server.serve("/data.bin", payload)
    destination = tmp_path / "data.bin"
    half = len(payload) // 2
    partial_path(destination).write_bytes(payload[:half])
    fetch(url, destination, expected_sha256=sha256(payload))
    assert server.state.requests == [("/data.bin", f"bytes={half}-")]
    assert destination.read_bytes() == payload
    assert not partial_path(destination).exists()


def test_server_ignoring_range_restarts_from_zero(server: Server, payload: bytes, tmp_path: Path) -> None:
    url = server.serve("/data.bin", payload)
    server.state.ignore_range = True
    destination = tmp_path / "data.bin"
    partial_path(destination).write_bytes(payload[:1000])
    fetch(url, destination, expected_sha256=sha256(payload))
    assert destination.read_bytes() == payload
    assert server.state.requests == [("/data.bin", "bytes=1000-")]


def test_dropped_connection_keeps_partial_and_rerun_completes(server: Server, payload: bytes, tmp_path: Path) -> None:
    url = server.serve("/data.bin", payload)
    server.state.drop_after = 3 * CHUNK_SIZE
    destination = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="resume") as raised:
        fetch(url, destination, expected_sha256=sha256(payload))
    assert url in str(raised.value)
    assert not destination.exists()
    assert partial_path(destination).read_bytes() == payload[: 3 * CHUNK_SIZE]

    fetch(url, destination, expected_sha256=sha256(payload))
    assert destination.read_bytes() == payload
    assert server.state.requests[-1] == ("/data.bin", f"bytes={3 * CHUNK_SIZE}-")


def test_checksum_mismatch_names_both_digests_and_deletes(server: Server, payload: bytes, tmp_path: Path) -> None:
    url = server.serve("/data.bin", payload)
    destination = tmp_path / "data.bin"
    wrong = sha256(b"another file")
    with pytest.raises(DownloadError) as raised:
        fetch(url, destination, expected_sha256=wrong)
    assert wrong in str(raised.value) and sha256(payload) in str(raised.value)
    assert not destination.exists()
    assert not partial_path(destination).exists()


def test_missing_checksum_reports_the_computed_one(
    server: Server, payload: bytes, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    url = server.serve("/data.bin", payload)
    fetch(url, tmp_path / "data.bin")
    output = capsys.readouterr().out
    assert "not verified" in output and sha256(payload) in output


def test_complete_destination_is_reused_without_requests(server: Server, payload: bytes, tmp_path: Path) -> None:
    url = server.serve("/data.bin", payload)
    destination = tmp_path / "data.bin"
    destination.write_bytes(payload)
    assert fetch(url, destination, expected_sha256=sha256(payload)) == destination
    assert server.state.requests == []


def test_complete_partial_file_is_finished_after_a_416(server: Server, payload: bytes, tmp_path: Path) -> None:
    url = server.serve("/data.bin", payload)
    destination = tmp_path / "data.bin"
    partial_path(destination).write_bytes(payload)
    fetch(url, destination, expected_sha256=sha256(payload))
    assert destination.read_bytes() == payload
    assert server.state.requests == [("/data.bin", f"bytes={len(payload)}-")]


def test_http_errors_and_web_pages_are_download_errors(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(server.url("/missing.zip"), tmp_path / "missing.zip")
    page = server.serve("/share", b"<!DOCTYPE html><html><body>Sign in</body></html>", "text/html; charset=utf-8")
    with pytest.raises(DownloadError, match="web page instead of the archive"):
        fetch(page, tmp_path / "shared.zip")
    assert not (tmp_path / "shared.zip").exists()


def test_confirmation_form_is_followed(server: Server, payload: bytes, tmp_path: Path) -> None:
    """Google Drive answers large files with a 'cannot scan for viruses' page whose form leads to the file."""
    html = (
        '<!DOCTYPE html><html><body><form id="download-form" action="/confirmed" method="get">'
        '<input type="hidden" name="id" value="abc"><input type="hidden" name="confirm" value="t">'
        '<input type="submit" value="Download anyway"></form></body></html>'
    )
    page = server.serve("/uc?id=abc", html.encode(), "text/html")
    server.serve("/confirmed?id=abc&confirm=t", payload)
    fetch(page, tmp_path / "drive.zip", expected_sha256=sha256(payload))
    assert (tmp_path / "drive.zip").read_bytes() == payload
    assert [path for path, _ in server.state.requests] == ["/uc?id=abc", "/confirmed?id=abc&confirm=t"]


def test_confirmation_request_parses_legacy_links() -> None:
    page = '<html><a href="/uc?export=download&amp;confirm=XyZ&amp;id=abc">Download anyway</a></html>'
    request = confirmation_request(page, "https://drive.google.com/uc?export=download&id=abc")
    assert request is not None
    assert request.full_url == "https://drive.google.com/uc?export=download&confirm=XyZ&id=abc"
    assert confirmation_request("<html><p>Quota exceeded</p></html>", "https://drive.google.com/uc") is None


def test_malformed_checksum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="not a sha256"):
        download_file("http://127.0.0.1:9/never", tmp_path / "x.zip", expected_sha256="1234")


# ----------------------------------------------------------------------------------------------------------------------
# extract_archive


def test_extraction_rejects_parent_paths(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"ok.png": png_bytes(0), "../evil": b"owned"}))
    with pytest.raises(DownloadError, match=r"\.\./evil"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil").exists()
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".out")]


def test_extraction_rejects_absolute_paths(tmp_path: Path) -> None:
    archive = tmp_path / "absolute.zip"
    archive.write_bytes(zip_bytes({"/etc/evil": b"owned"}))
    with pytest.raises(DownloadError, match="absolute path"):
        extract_archive(archive, tmp_path / "out")


def test_non_archive_is_a_download_error(tmp_path: Path) -> None:
    archive = tmp_path / "page.zip"
    archive.write_bytes(b"<html>not a zip</html>")
    with pytest.raises(DownloadError, match="Delete it and download it again"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extraction_of_zip_and_tar_gz(tmp_path: Path) -> None:
    archive = tmp_path / "images.zip"
    archive.write_bytes(zip_bytes({"images/a.png": png_bytes(1), "images/b.png": png_bytes(2)}))
    extract_archive(archive, tmp_path / "from_zip")
    assert (tmp_path / "from_zip" / "images" / "b.png").read_bytes() == png_bytes(2)

    tar_path = tmp_path / "images.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar_file:
        info = tarfile.TarInfo("images/a.png")
        data = png_bytes(3)
        info.size = len(data)
        tar_file.addfile(info, io.BytesIO(data))
    extract_archive(tar_path, tmp_path / "from_tar")
    assert (tmp_path / "from_tar" / "images" / "a.png").read_bytes() == png_bytes(3)


def test_extraction_refuses_a_non_empty_output(tmp_path: Path) -> None:
    archive = tmp_path / "images.zip"
    archive.write_bytes(zip_bytes({"a.png": png_bytes(1)}))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not an empty folder"):
        extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


# ----------------------------------------------------------------------------------------------------------------------
# The registry and the command


def test_registry_entries_are_complete() -> None:
    assert set(DATASET_SOURCES) == set(PRESETS)
    for name, source in DATASET_SOURCES.items():
        assert source.name == name and source.preset in PRESETS
        assert source.url.startswith("https://") and source.archive_filename.endswith(".zip")
        assert source.license and source.layout and source.provenance and source.manual_steps
        assert source.sha256 is None or len(source.sha256) == 64


def test_download_command_end_to_end(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    url = server.serve("/tiny.zip", zip_bytes({f"carla/{index:03d}.png": png_bytes(index) for index in range(6)}))
    output = tmp_path / "data" / "carla"
    DownloadCommand(name="carla", output=output, url=url, cache_root=tmp_path / "cache").main()

    layout, names = find_images(output)
    assert layout == "folder" and len(names) == 6
    printed = capsys.readouterr().out
    assert f"ns-train hypernerfgan --data {output} unposed-images --preset carla" in printed
    assert "6 images" in printed
    cached = list((tmp_path / "cache" / "downloads").glob("carla-*.zip"))
    assert len(cached) == 1

    # A second run into another folder reuses the cached archive without any request.
    requests = len(server.state.requests)
    DownloadCommand(name="carla", output=tmp_path / "again", url=url, cache_root=tmp_path / "cache").main()
    assert len(server.state.requests) == requests


def test_download_command_uses_the_srn_training_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    members = {}
    for split in ("cars_train", "cars_test"):
        for instance in ("a", "b"):
            members[f"{split}/{instance}/intrinsics.txt"] = b"1 0 0 0\n"
            for view in range(2):
                members[f"{split}/{instance}/rgb/{view:06d}.png"] = png_bytes(view)
    archive = tmp_path / "srn_cars.zip"
    archive.write_bytes(zip_bytes(members))
    output = tmp_path / "cars"
    DownloadCommand(name="cars", output=output, archive=archive, cache_root=tmp_path / "cache").main()
    printed = capsys.readouterr().out
    assert f"--data {output / 'cars_train'} unposed-images --preset cars" in printed
    assert "4 images (srn layout)" in printed


def test_download_command_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="carla, cars, chairs, planes"):
        DownloadCommand(name="lego").main()
    with pytest.raises(DownloadError, match="--archive"):
        DownloadCommand(name="planes", output=tmp_path / "planes", cache_root=tmp_path / "cache").main()
    archive = tmp_path / "carla.zip"
    archive.write_bytes(zip_bytes({"a.png": png_bytes(0)}))
    with pytest.raises(DownloadError, match="expected " + "0" * 64):
        DownloadCommand(name="carla", output=tmp_path / "c", archive=archive, sha256="0" * 64).main()
    assert not (tmp_path / "c").exists()
