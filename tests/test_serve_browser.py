"""The page as a person uses it: a real headless Chromium, a server started like `mobilefer serve`.

Needs Debian's chromium (``apt-get install chromium``) and the playwright package (which
drives it; no browser download). `.ci/run` installs both; elsewhere these tests skip.
"""
from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import serve_in_child

REQUIRED = os.environ.get("MOBILEFER_REQUIRE_BROWSER") == "1"  # CI sets it: fail, never skip
CHROMIUM = os.environ.get("MOBILEFER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not REQUIRED:
    pytest.importorskip("fastapi")
    pytest.importorskip("playwright.sync_api")
from playwright import sync_api  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM and not REQUIRED, reason="needs Chromium: apt-get install chromium")]


@pytest.fixture(scope="module")
def server():
    """`mobilefer serve` in a child process on a free loopback port, until the module ends."""
    with serve_in_child() as (url, _):
        yield url


def fake_webcam(astronaut_bgr: np.ndarray, path: Path, frames: int = 20) -> Path:
    """A 640x480 Y4M clip (4:2:0, Chromium's fake-camera format) of the astronaut drifting sideways."""
    head = cv2.resize(astronaut_bgr, (420, 420))
    with open(path, "wb") as out:
        out.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for i in range(frames):
            frame = np.full((480, 640, 3), 90, np.uint8)
            x = 60 + 4 * i
            frame[30:450, x:x + 420] = head
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


@pytest.fixture()
def open_page():
    """Opens pages in headless Chromium launched with extra arguments; errors on the page are collected."""
    with sync_api.sync_playwright() as p:
        browsers = []

        def open_page(*args: str):
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", *args])
            browsers.append(browser)
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            return page, problems

        yield open_page
        for browser in browsers:
            browser.close()


# Reads the stage canvas where the last answer's first box has its top and left edges.
EDGE_PIXELS = """() => {
  const s = window.mobilefer, f = s.last.faces[0], c = document.getElementById('stage');
  const sx = c.width / s.last.image.width, sy = c.height / s.last.image.height;
  const g = c.getContext('2d');
  const top = g.getImageData(Math.round((f.box[0] + f.box[2] / 2) * sx), Math.round(f.box[1] * sy), 1, 1).data;
  const left = g.getImageData(Math.round(f.box[0] * sx), Math.round((f.box[1] + f.box[3] / 2) * sy), 1, 1).data;
  return {top: Array.from(top), left: Array.from(left), color: s.colorOf(f.label), label: f.label};
}"""


def assert_box_drawn(page) -> None:
    found = page.evaluate(EDGE_PIXELS)
    want = [int(found["color"][i:i + 2], 16) for i in (1, 3, 5)]
    for edge in ("top", "left"):
        got = found[edge][:3]
        assert max(abs(a - b) for a, b in zip(got, want)) < 40, (edge, got, want, found["label"])


def test_upload_a_photo_draws_boxes_labels_and_bars(server, open_page, astronaut_bgr, tmp_path):
    page, problems = open_page()
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    page.goto(server)
    page.wait_for_function("() => document.getElementById('model').textContent.includes('mobilenet_v3')")
    page.set_input_files("#file", str(photo))
    page.wait_for_function("() => document.getElementById('faces').dataset.count === '1'", timeout=20_000)
    item = page.locator("#faces li").first
    classes = page.evaluate("window.mobilefer.classes")
    assert item.get_attribute("data-label") in classes
    assert item.locator(".bar").count() == len(classes)  # one bar per class
    assert page.evaluate("[document.getElementById('stage').width, document.getElementById('stage').height]") == [512, 512]
    assert_box_drawn(page)
    assert page.locator("#rtt").inner_text().endswith("ms")
    assert "1 face" in page.locator("#status").inner_text()
    # the same photo dropped onto the drop zone, as from a file manager
    page.evaluate("""(b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'dropped.jpg', {type: 'image/jpeg'}));
      document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", base64.b64encode(photo.read_bytes()).decode())
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('dropped.jpg: 1 face')")
    assert page.evaluate("window.mobilefer.results") == 2
    assert_box_drawn(page)
    assert problems == []  # no script errors, no blocked resources (the page's CSP holds)


def test_a_bad_file_shows_the_servers_message(server, open_page):
    page, problems = open_page()
    page.goto(server)
    page.set_input_files("#file", {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a picture"})
    page.wait_for_function("() => document.getElementById('status').classList.contains('error')", timeout=20_000)
    status = page.locator("#status").inner_text()
    assert "415" in status and "not an image" in status
    assert page.locator("#faces li").count() == 0


def test_webcam_sends_frames_and_live_labels_appear(server, open_page, astronaut_bgr, tmp_path):
    clip = fake_webcam(astronaut_bgr, tmp_path / "webcam.y4m")
    page, problems = open_page("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                               f"--use-file-for-fake-video-capture={clip}")
    page.goto(server)
    page.click("#camera")
    page.wait_for_function("() => Number(document.getElementById('faces').dataset.results) >= 5 && "
                           "document.getElementById('faces').dataset.count === '1'", timeout=30_000)
    assert page.evaluate("document.getElementById('video').videoWidth") == 640
    assert_box_drawn(page)
    label = page.locator("#faces li").first.get_attribute("data-label")
    assert label in page.evaluate("window.mobilefer.classes")
    assert float(page.locator("#rate-out").inner_text()) > 1  # several answers a second
    page.click("#camera")
    assert page.locator("#camera").inner_text() == "Start webcam"
    assert problems == []
