"""The web viewer in a real browser: `ns-viewer` on a trained run draws an object, typing a seed draws another, and
the "Samples per ray" slider draws that object again with more samples.

`ns-viewer` runs as a user starts it. Headless Chromium opens its page and is driven through the Chrome DevTools
Protocol (CDP) as a user drives it: it clicks, scrolls the mouse wheel and types; nothing calls into the server's
Python objects. Screenshots decide what the user would see:

- *An object is drawn* when the render area (the 3D view left of the control panel) shows a coloured blob on white:
  renders are composited on white, so the area's outer border is white render background, and its centre, where the
  camera looks at the origin, is object-coloured. Neither holds before a render arrives (the view is black, or white
  with a connection dialog while connecting) nor for the training-camera frustums (hidden first).
- *The object changed* when, after the new seed's render has settled at full resolution, a clear share of the render
  area's pixels changed while everything outside it (title bar, control panel) is pixel-identical, apart from the
  Seed field that was typed into.
- *Nothing is drawn* with the slider at its least, 2 samples per ray (the near and far planes, both outside the object
  sphere): the whole render area is white. At its most the object is drawn again, with no pixel clearly changed from
  its render at the run's count.

Renders are asynchronous: every check polls screenshots until the render has settled (the page reports a
full-resolution render and two screenshots in a row agree) or a deadline passes.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple

import numpy as np
import pytest
from PIL import Image
from websockets.sync.client import ClientConnection, connect

from tests.helpers import micro_config, train

CHROMIUM = "chromium"
"""Debian's package name for the browser, as found on the PATH."""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason="needs the `chromium` browser on the PATH (apt install chromium)"
    ),
]

HOST = "127.0.0.1"
"""Every server and browser address stays on the loopback interface."""
LOOPBACK_ONLY_RULES = f"MAP * ~NOTFOUND, EXCLUDE {HOST}"
"""Chromium host-resolver rules: no name resolves, so the page's external images (nerfstudio's logo) fail at once,
the same way on every machine, and nothing leaves the machine."""
NS_VIEWER = Path(sys.executable).parent / "ns-viewer"
"""nerfstudio's viewer command of the running virtual environment."""
VIEWER_START_TIMEOUT_S = 90.0
"""Seconds for ns-viewer to import nerfstudio, load the checkpoint and listen (about 20 on two CPU cores)."""
BROWSER_START_TIMEOUT_S = 20.0
"""Seconds for Chromium to open its DevTools port."""
PAGE_TIMEOUT_S = 30.0
"""Seconds for the page to load, connect and show the viewer's controls."""
RENDER_TIMEOUT_S = 45.0
"""Seconds for a render to arrive and settle at full resolution after a camera or seed change."""
CDP_TIMEOUT_S = 30.0
"""Seconds for one DevTools command to answer."""
STOP_TIMEOUT_S = 5.0
"""Seconds a process may take to exit after SIGTERM before it is killed."""
POLL_S = 0.25
"""Pause between two polls of the page."""
VIEWPORT_WIDTH = 1280
"""Browser viewport width in CSS pixels (device scale 1, so also screenshot pixels)."""
VIEWPORT_HEIGHT = 1100
"""Viewport height: tall enough for the whole control panel, our controls included, without scrolling."""
ZOOM_OUT_WHEEL_EVENTS = 8
"""Mouse-wheel notches that zoom out: the viewer's first camera sits 0.52 units from the origin, inside the object's
shell (radius ~0.6); zooming out brings the whole object into view, on white."""
WHEEL_DELTA = 300
"""Scroll distance of one wheel notch, in CSS pixels (positive zooms out)."""
NEW_SEED = 7
"""The seed typed into the Seed field (the run shows seed 0 first)."""
WHITE_LEVEL = 230
"""A pixel whose darkest channel is at least this is white render background (JPEG noise included)."""
OBJECT_LEVEL = 215
"""A pixel whose darkest channel is at most this is clearly not white: object (renders have no other colour)."""
BORDER_WIDTH = 0.08
"""Width of the render area's border band, as a fraction of the area's smaller side."""
CENTER_SIZE = 0.2
"""Side of the render area's central box, as a fraction of the area's width and height."""
AXES_CORNER_PX = 90
"""Side of the bottom-left corner of the render area that holds the world-axes widget, left out of the checks."""
MIN_WHITE_BORDER = 0.95
"""Share of the border band that must be white for the object to be surrounded by render background."""
MIN_OBJECT_CENTER = 0.95
"""Share of the central box that must be object-coloured."""
CHANGED_LEVEL = 30
"""A pixel changed when one of its channels moved by more than this."""
MIN_CHANGED_SHARE = 0.02
"""Share of the render area that must change for a new object (the object covers ~15% of it at this zoom)."""
MIN_WHITE_AREA = 0.99
"""Share of the render area (the axes widget's corner left out) that must be white when nothing is drawn."""
FIELD_MARGIN_PX = 4
"""Margin around the render area and the typed-in field (antialiased edges, focus ring) left out of the comparison
of the interface."""
TITLE_BAR_POINT = (600, 25)
"""An empty spot of the title bar, where the mouse rests so that no tooltip covers the panel."""


# ---------------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    """A port that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def stop_process_group(process: subprocess.Popen) -> None:
    """Ends a process started in its own session and every process in its group: SIGTERM, then SIGKILL."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass
    try:  # children that outlived the leader (the group id is the leader's pid)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_processes_mentioning(marker: str) -> None:
    """Kills the processes whose command line contains `marker`: a folder of ours (Chromium's crash handler leaves
    its process group and names our private home folder)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command_line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in command_line:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def tail(path: Path, num_chars: int = 3000) -> str:
    """The end of a log file, for failure messages."""
    return path.read_text(errors="replace")[-num_chars:] if path.exists() else "(no log)"


@dataclass
class RunningViewer:
    """An ns-viewer process and the address it serves."""

    process: subprocess.Popen
    url: str


@pytest.fixture
def trained_config(tmp_path: Path) -> Path:
    """config.yml of a one-iteration micro run: an untrained generator still draws a coloured blob per seed."""
    config = micro_config(tmp_path / "outputs", max_num_iterations=1)
    train(config)
    return config.get_base_dir() / "config.yml"


@pytest.fixture
def viewer(trained_config: Path, tmp_path: Path) -> Iterator[RunningViewer]:
    """`ns-viewer --load-config ...` on 127.0.0.1, as a user starts it; it blocks, so it runs in the background."""
    log_path = tmp_path / "ns_viewer.log"
    command = [
        str(NS_VIEWER),
        "--load-config", str(trained_config),
        "--viewer.websocket-host", HOST,
        "--viewer.websocket-port", str(free_port()),
    ]  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
            start_new_session=True,
        )
    try:
        # viser moves to the next port if ours was taken meanwhile: read the port it announces.
        deadline = time.monotonic() + VIEWER_START_TIMEOUT_S
        port: Optional[int] = None
        while port is None or not accepts_connections(port):
            assert process.poll() is None, f"ns-viewer exited with {process.returncode}:\n{tail(log_path)}"
            assert time.monotonic() < deadline, f"ns-viewer did not start in time:\n{tail(log_path)}"
            found = re.search(rf"ws://{re.escape(HOST)}:(\d+)", log_path.read_text(errors="replace"))
            port = int(found.group(1)) if found else None
            time.sleep(POLL_S)
        yield RunningViewer(process, f"http://{HOST}:{port}")
    finally:
        stop_process_group(process)


def accepts_connections(port: int) -> bool:
    """Whether something listens on `port` of the loopback interface."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------- the browser


class DevToolsPage:
    """One browser tab driven through the Chrome DevTools Protocol (JSON messages over a websocket)."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.last_id = 0

    def call(self, method: str, **params: Any) -> dict:
        """Sends a command and returns its result; events arriving meanwhile are skipped."""
        self.last_id += 1
        self.connection.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        deadline = time.monotonic() + CDP_TIMEOUT_S
        while True:
            message = json.loads(self.connection.recv(timeout=max(deadline - time.monotonic(), 0.0)))
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (reading the page, as a user reads the screen)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def try_evaluate(self, expression: str) -> Any:
        """`evaluate`, or None while the page is (re)loading and has no document to evaluate in."""
        try:
            return self.evaluate(expression)
        except RuntimeError:
            return None

    def screenshot(self) -> np.ndarray:
        """The viewport as [height, width, 3] uint8 RGB."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))

    def click(self, x: float, y: float) -> None:
        for event in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=event, x=x, y=y, button="left", clickCount=1)

    def move_mouse(self, x: float, y: float) -> None:
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def wheel(self, x: float, y: float, delta_y: float) -> None:
        self.call("Input.dispatchMouseEvent", type="mouseWheel", x=x, y=y, deltaX=0, deltaY=delta_y)

    def select_all_and_type(self, text: str) -> None:
        """Ctrl+A in the focused field, then typing `text` over the selection."""
        self.call("Input.dispatchKeyEvent", type="keyDown", key="a", code="KeyA", modifiers=2, commands=["selectAll"])
        self.call("Input.dispatchKeyEvent", type="keyUp", key="a", code="KeyA", modifiers=2)
        self.call("Input.insertText", text=text)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[DevToolsPage]:
    """A fresh headless Chromium (own profile and home folder) with one tab, driven through DevTools."""
    home = tmp_path / "browser_home"
    profile = tmp_path / "browser_profile"
    home.mkdir()
    profile.mkdir()
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-crash-reporter",
        "--disable-breakpad", "--enable-unsafe-swiftshader", f"--host-resolver-rules={LOOPBACK_ONLY_RULES}",
        f"--user-data-dir={profile}",
        f"--remote-debugging-address={HOST}", "--remote-debugging-port=0",
        f"--window-size={VIEWPORT_WIDTH},{VIEWPORT_HEIGHT}", "about:blank",
    ]  # fmt: skip
    environment = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "XDG_CACHE_HOME": str(home)}
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment, start_new_session=True
    )
    connection: Optional[ClientConnection] = None
    try:
        # Port 0: Chromium picks a free port and writes it to DevToolsActivePort in the profile.
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + BROWSER_START_TIMEOUT_S
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, f"chromium exited with {process.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port in time"
            time.sleep(POLL_S)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://{HOST}:{port}/json/list", timeout=CDP_TIMEOUT_S) as response:
            targets = json.load(response)
        tab = next(target for target in targets if target["type"] == "page")
        connection = connect(tab["webSocketDebuggerUrl"], max_size=None, open_timeout=CDP_TIMEOUT_S)
        devtools = DevToolsPage(connection)
        devtools.call(
            "Emulation.setDeviceMetricsOverride",
            width=VIEWPORT_WIDTH,
            height=VIEWPORT_HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield devtools
    finally:
        if connection is not None:
            connection.close()
        stop_process_group(process)
        kill_processes_mentioning(str(home))


# ---------------------------------------------------------------------------------------------------- the viewer's page


@dataclass(frozen=True)
class Box:
    """A rectangle of the screenshot in whole pixels: rows [top, bottom), columns [left, right)."""

    top: int
    left: int
    bottom: int
    right: int

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.top : self.bottom, self.left : self.right]

    def grown(self, margin: int) -> "Box":
        return Box(max(self.top - margin, 0), max(self.left - margin, 0), self.bottom + margin, self.right + margin)

    @property
    def center(self) -> Tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2


def labelled_input(label: str) -> str:
    """JavaScript for the input that a viser label names (viser writes `<label for=id>` beside each input)."""
    return (
        "document.getElementById(Array.from(document.querySelectorAll('label'))"
        f".find(l => l.textContent === {json.dumps(label)}).htmlFor)"
    )


def button(text: str) -> str:
    """JavaScript for the button showing `text`."""
    return f"Array.from(document.querySelectorAll('button')).find(b => b.textContent.trim() === {json.dumps(text)})"


def screen_rect(element: str) -> str:
    """JavaScript for [top, left, bottom, right] of an element's bounding box, in CSS pixels."""
    return f"(() => {{ const r = ({element}).getBoundingClientRect(); return [r.top, r.left, r.bottom, r.right]; }})()"


def box_of(page: DevToolsPage, element: str) -> Box:
    """Where an element lies on screen (its bounding box, rounded outwards to whole pixels)."""
    top, left, bottom, right = page.evaluate(screen_rect(element))
    return Box(math.floor(top), math.floor(left), math.ceil(bottom), math.ceil(right))


def render_area(page: DevToolsPage) -> Box:
    """The 3D view: the box of the canvas container left of the control panel (the narrowest canvas's parent),
    shrunk by a pixel for antialiased edges."""
    narrowest_canvas_container = (
        "Array.from(document.querySelectorAll('canvas')).map(c => c.parentElement)"
        ".sort((a, b) => a.getBoundingClientRect().width - b.getBoundingClientRect().width)[0]"
    )
    top, left, bottom, right = page.evaluate(screen_rect(narrowest_canvas_container))
    return Box(math.ceil(top) + 1, math.ceil(left) + 1, math.floor(bottom) - 1, math.floor(right) - 1)


def full_resolution_render_shown(page: DevToolsPage) -> bool:
    """Whether the last render the page reports ("Resolution: WxHpx") is the full-resolution one ("Max res"):
    the viewer first sends quick low-resolution previews."""
    return bool(
        page.evaluate(
            "(() => { const m = document.body.innerText.match(/Resolution:\\s*(\\d+)x(\\d+)px/);"
            f" const slider = ({labelled_input('Max res')}).querySelector('[role=slider]');"
            " const maxRes = slider.getAttribute('aria-valuenow');"
            " return m !== null && Math.max(+m[1], +m[2]) === +maxRes; })()"
        )
    )


def object_drawn(image: np.ndarray, area: Box) -> bool:
    """A coloured object on white render background: see the module docstring."""
    view = area.crop(image).astype(np.int16)
    darkest = view.min(axis=-1)
    height, width = darkest.shape
    band = max(int(BORDER_WIDTH * min(height, width)), 1)
    border = np.ones_like(darkest, dtype=bool)
    border[band : height - band, band : width - band] = False
    border[height - AXES_CORNER_PX :, :AXES_CORNER_PX] = False
    center_h, center_w = int(CENTER_SIZE * height / 2), int(CENTER_SIZE * width / 2)
    center = darkest[height // 2 - center_h : height // 2 + center_h, width // 2 - center_w : width // 2 + center_w]
    white_border = float((darkest[border] >= WHITE_LEVEL).mean())
    object_center = float((center <= OBJECT_LEVEL).mean())
    return white_border >= MIN_WHITE_BORDER and object_center >= MIN_OBJECT_CENTER


def nothing_drawn(image: np.ndarray, area: Box) -> bool:
    """White render background over the whole render area, the axes widget's corner left out."""
    darkest = area.crop(image).min(axis=-1)
    shown = np.ones_like(darkest, dtype=bool)
    shown[darkest.shape[0] - AXES_CORNER_PX :, :AXES_CORNER_PX] = False
    return float((darkest[shown] >= WHITE_LEVEL).mean()) >= MIN_WHITE_AREA


def changed_share(before: np.ndarray, after: np.ndarray, area: Box) -> float:
    """Share of the render area's pixels that changed clearly."""
    difference = np.abs(area.crop(before).astype(np.int16) - area.crop(after).astype(np.int16)).max(axis=-1)
    return float((difference > CHANGED_LEVEL).mean())


def outside(image: np.ndarray, boxes: List[Box]) -> np.ndarray:
    """The image with `boxes` blanked out, to compare everything else."""
    kept = image.copy()
    for box in boxes:
        kept[box.top : box.bottom, box.left : box.right] = 0
    return kept


def pull_slider_to_end(page: DevToolsPage, label: str, end: str) -> str:
    """Clicks the `end` ("min" or "max") of the slider's track, as a user pulls it there; returns the value it shows."""
    slider = labelled_input(label)
    thumb = f"({slider}).querySelector('[role=slider]')"
    track = box_of(page, f"({slider}).querySelector('.mantine-Slider-track')")
    page.click(track.left + 1 if end == "min" else track.right - 1, (track.top + track.bottom) / 2)
    page.move_mouse(*TITLE_BAR_POINT)
    value = page.evaluate(f"({thumb}).getAttribute('aria-value{end}')")
    wait_until(lambda: page.evaluate(f"({thumb}).getAttribute('aria-valuenow')") == value, PAGE_TIMEOUT_S, label)
    return value


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls `condition` until it returns something truthy; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(POLL_S)


def settled_render(
    page: DevToolsPage, area: Box, condition: Callable[[np.ndarray], bool], failure_path: Path, what: str
) -> np.ndarray:
    """The first screenshot that shows a settled full-resolution render satisfying `condition`.

    Settled: two screenshots in a row show the same render area, and the page reported the full-resolution render
    just before and just after each of them (the report and the image arrive separately; bracketing the screenshot
    keeps a low-resolution preview that the report overtook from passing). On timeout the last screenshot is saved
    to `failure_path` for the failure message.
    """
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    previous: Optional[np.ndarray] = None
    while True:
        full_before = full_resolution_render_shown(page)
        shot = page.screenshot()
        full = full_before and full_resolution_render_shown(page)
        settled = previous is not None and full and np.array_equal(area.crop(shot), area.crop(previous))
        if settled and condition(shot):
            return shot
        if time.monotonic() > deadline:
            Image.fromarray(shot).save(failure_path)
            raise AssertionError(f"timed out after {RENDER_TIMEOUT_S:.0f} s waiting for {what}; see {failure_path}")
        previous = shot if full else None
        time.sleep(POLL_S)


# ---------------------------------------------------------------------------------------------------- the test


def test_the_viewer_draws_the_object_a_typed_seed_draws_another_and_the_samples_slider_redraws_it(
    viewer: RunningViewer, page: DevToolsPage, tmp_path: Path
) -> None:
    page.call("Page.navigate", url=viewer.url)
    # The controls come from the server once the page is connected.
    wait_until(lambda: page.try_evaluate(f"!!({button('New object')})"), PAGE_TIMEOUT_S, "the viewer's controls")
    assert page.evaluate(f"({labelled_input('Seed')}).value") == "0", "the run's viewed object is seed 0"

    # Hide the training cameras' frustums (photos in the 3D view), then scroll out to see the whole object.
    page.click(*box_of(page, button("Hide Train Cams")).center)
    wait_until(lambda: page.evaluate(f"!!({button('Show Train Cams')})"), PAGE_TIMEOUT_S, "the train cams to hide")
    area = render_area(page)
    for _ in range(ZOOM_OUT_WHEEL_EVENTS):
        page.wheel(*area.center, delta_y=WHEEL_DELTA)

    before = settled_render(
        page, area, lambda shot: object_drawn(shot, area), tmp_path / "failed_before.png", "the object to be drawn"
    )
    Image.fromarray(before).save(tmp_path / "before.png")

    # Type the new seed like a user: click into the field, select its text, type, move the mouse away.
    seed_field = box_of(page, labelled_input("Seed"))
    page.click(*seed_field.center)
    page.select_all_and_type(str(NEW_SEED))
    page.move_mouse(*TITLE_BAR_POINT)
    assert page.evaluate(f"({labelled_input('Seed')}).value") == str(NEW_SEED)

    after = settled_render(
        page,
        area,
        lambda shot: object_drawn(shot, area) and changed_share(before, shot, area) >= MIN_CHANGED_SHARE,
        tmp_path / "failed_after.png",
        f"the object of seed {NEW_SEED} to be drawn",
    )
    Image.fromarray(after).save(tmp_path / "after.png")

    changing = [area.grown(FIELD_MARGIN_PX), seed_field.grown(FIELD_MARGIN_PX)]
    interface_before, interface_after = outside(before, changing), outside(after, changing)
    changed_pixels = int(np.any(interface_before != interface_after, axis=-1).sum())
    assert changed_pixels == 0, f"{changed_pixels} interface pixels changed; see before.png, after.png in {tmp_path}"

    # The slider at its least draws nothing; at its most the same object again.
    least = pull_slider_to_end(page, "Samples per ray", "min")
    blank = settled_render(
        page,
        area,
        lambda shot: nothing_drawn(shot, area),
        tmp_path / "failed_least.png",
        f"nothing to be drawn at {least} samples per ray",
    )
    Image.fromarray(blank).save(tmp_path / "least.png")
    most = pull_slider_to_end(page, "Samples per ray", "max")
    finer = settled_render(
        page,
        area,
        lambda shot: object_drawn(shot, area),
        tmp_path / "failed_most.png",
        f"seed {NEW_SEED}'s object to be drawn again at {most} samples per ray",
    )
    Image.fromarray(finer).save(tmp_path / "most.png")
    same_object = changed_share(after, finer, area) == 0.0
    assert same_object, f"the same object, sampled finer: see after.png and most.png in {tmp_path}"
    assert page.evaluate(f"({labelled_input('Seed')}).value") == str(NEW_SEED)
