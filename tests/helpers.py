"""Shared test helpers: a fast training config on the synthetic data, a free loopback port,
`mobilefer serve` in a child process."""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from mobilefer.engine.config import TrainConfig
from mobilefer.inference.detectors import available_detectors

# The Chromium the page's tests and benchmarks drive: $MOBILEFER_CHROMIUM, else one on the PATH.
CHROMIUM = os.environ.get("MOBILEFER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

def write_photos_of(rgb, folder: Path, count: int, mirrored: bool = False, stem: str = "") -> None:
    """``count`` 560x420 photos of the face in ``rgb`` (uint8 RGB), shrunk to 300 px and placed
    a little further along a plain background of another grey each time:
    ``folder``/``stem``0.png, ..."""
    import cv2
    import numpy as np
    from PIL import Image

    face = cv2.resize(rgb, (300, 300))
    face = face[:, ::-1] if mirrored else face
    for i in range(count):
        canvas = np.full((420, 560, 3), 60 + 10 * i, np.uint8)
        canvas[40 + 10 * i: 340 + 10 * i, 20 * i: 300 + 20 * i] = face
        Image.fromarray(canvas).save(folder / f"{stem}{i}.png")


# CenterFace's weights are bundled; a stripped install without them skips the tests that need it.
needs_centerface = pytest.mark.skipif("centerface" not in available_detectors(),
                                      reason="CenterFace weights missing (mobilefer/weights/centerface_int8.onnx)")


def tiny_config(data, out, **overrides) -> TrainConfig:
    settings = dict(
        data=str(data), out=str(out), arch="mobilenet_v3_small", img_size=32, epochs=12, batch_size=8,
        lr=3e-3, warmup_epochs=0.5, val_split=0.25, seed=0, progress=False, device="cpu", pretrained="none",
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_in_child(*args: str, timeout_s: float = 60.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """`mobilefer serve --port FREE *args` in a child process; yields its URL and the process once
    /healthz answers."""
    import httpx

    port = free_port()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "mobilefer.cli", "serve", "--port", str(port), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"server did not start:\n{proc.communicate()[0]}")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


BLOCK_TORCH = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('torch', 'torchvision'):
                raise ImportError('torch is blocked in this test')
    sys.meta_path.insert(0, Block())
    from mobilefer.cli import main
    code = main(sys.argv[1:])
    assert 'torch' not in sys.modules
    sys.exit(code)
""")


def run_without_torch(*args: str) -> subprocess.CompletedProcess:
    """`mobilefer ARGS` in a child process where importing torch fails, as on the runtime install."""
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH, *args], capture_output=True, text=True, timeout=120)


def write_y4m(frames: Iterable, path: Path, fps: int = 30) -> Path:
    """BGR frames, all one size, as a Y4M clip (4:2:0): the format Chromium's fake camera plays
    (--use-file-for-fake-video-capture), looping."""
    import cv2

    with open(path, "wb") as out:
        for i, frame in enumerate(frames):
            if i == 0:
                out.write(f"YUV4MPEG2 W{frame.shape[1]} H{frame.shape[0]} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def clip_frames(clip: Path, count: int, size: tuple[int, int] = (640, 480)) -> Iterator:
    """The first ``count`` frames of a video, BGR, at ``size`` (width, height)."""
    import cv2

    cap = cv2.VideoCapture(str(clip))
    try:
        for _ in range(count):
            ok, frame = cap.read()
            if not ok:
                return
            yield frame if frame.shape[1::-1] == size else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    finally:
        cap.release()


def astronaut_head(astronaut_bgr, side: int):
    """The astronaut photo's head (its face and 30 px around), scaled so the face is ``side`` px wide."""
    import cv2

    from conftest import ASTRONAUT_FACE

    x, y, w, h = ASTRONAUT_FACE
    head = astronaut_bgr[y - 30: y + h + 30, x - 30: x + w + 30]
    return cv2.resize(head, None, fx=side / w, fy=side / w, interpolation=cv2.INTER_AREA)


def composite(astronaut_bgr, scales=(0.5, 1.0, 1.6)):
    """A 1200x700 frame with the astronaut's head pasted at several scales; returns frame and boxes."""
    import cv2
    import numpy as np

    from conftest import ASTRONAUT_FACE

    x, y, w, h = ASTRONAUT_FACE
    head = astronaut_bgr[max(0, y - 40): y + h + 40, max(0, x - 40): x + w + 40]
    canvas = np.full((700, 1200, 3), 90, dtype=np.uint8)
    boxes, left = [], 20
    for s in scales:
        patch = cv2.resize(head, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        top = 100
        canvas[top: top + patch.shape[0], left: left + patch.shape[1]] = patch
        boxes.append((left + int(40 * s), top + int((y - max(0, y - 40)) * s), int(w * s), int(h * s)))
        left += patch.shape[1] + 40
    return canvas, boxes


def walk_frames(astronaut_bgr) -> list:
    """16 frames of 640x480: a face walking right 9 px a frame; from frame 4 a small second face
    (too small for the thumbnail glance) stands still on the right."""
    import numpy as np

    big, small = astronaut_head(astronaut_bgr, 90), astronaut_head(astronaut_bgr, 40)
    frames = []
    for i in range(16):
        frame = np.full((480, 640, 3), 60, np.uint8)
        frame[120: 120 + big.shape[0], 40 + 9 * i: 40 + 9 * i + big.shape[1]] = big
        if i >= 4:
            frame[300: 300 + small.shape[0], 520: 520 + small.shape[1]] = small
        frames.append(frame)
    return frames


def texture(seed: int = 0):
    """A 640x480 picture with detail at a face's scale (noise at 1/8 size, enlarged)."""
    import cv2
    import numpy as np

    small = np.random.default_rng(seed).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    return cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)


def cameraman_head(side: int):
    """scikit-image's cameraman (another person than the astronaut), his face ``side`` px wide, BGR."""
    import cv2
    from skimage import data

    cameraman = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    x, y, w, h = 195, 113, 68, 85  # the cameraman's face (CenterFace's box)
    return cv2.resize(cameraman[y - 30: y + h + 20, x - 25: x + w + 25], None, fx=side / w, fy=side / w,
                      interpolation=cv2.INTER_AREA)


def room_cut_frames(astronaut_bgr) -> list:
    """20 frames of 640x480, a hard cut at frame 10 to another room (dark, then light) and another
    person a little to the side, each face drifting right 1 px a frame."""
    import numpy as np

    one, other = astronaut_head(astronaut_bgr, 90), cameraman_head(90)
    frames = []
    for i in range(20):
        shot = i >= 10
        frame, head = np.full((480, 640, 3), 200 if shot else 50, np.uint8), other if shot else one
        left = 250 + (40 if shot else 0) + i
        frame[150: 150 + head.shape[0], left: left + head.shape[1]] = head
        frames.append(frame)
    return frames


def seat_cut_frames(astronaut_bgr) -> list:
    """24 frames of 640x480 of talking heads filmed in one set: the same background, the astronaut
    for 12 frames, then the cameraman where the astronaut sat (a cut at frame 12), both swaying."""
    one, other = astronaut_head(astronaut_bgr, 120), cameraman_head(120)
    frames = []
    for i in range(24):
        frame, head, left = texture(7), one if i < 12 else other, 240 + i % 3
        frame[100: 100 + head.shape[0], left: left + head.shape[1]] = head
        frames.append(frame)
    return frames


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, headers_to_send: dict[str, str], **kwargs) -> None:
        self.headers_to_send = headers_to_send  # before the base class, which serves the request
        super().__init__(*args, **kwargs)

    def end_headers(self) -> None:
        for name, value in self.headers_to_send.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, *args) -> None:
        pass


def site_headers(folder: Path) -> dict[str, str]:
    """The headers an exported site's _headers file asks for on every path (Netlify's format)."""
    lines = (folder / "_headers").read_text().splitlines()
    assert lines[0] == "/*"
    return dict(line.strip().split(": ", 1) for line in lines[1:] if line.strip())


@contextlib.contextmanager
def static_host(folder: Path, headers: dict[str, str] | None = None) -> Iterator[str]:
    """`python -m http.server -d folder` on a free loopback port, in a thread, sending ``headers``
    with every file as a static host that reads _headers would; yields its URL."""
    handler = functools.partial(_QuietFiles, directory=str(folder), headers_to_send=headers or {})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def camera_browser(playwright, camera: Path):
    """Headless Chromium whose fake camera plays ``camera`` (a Y4M file, write_y4m), with the
    camera's permission granted: a page's webcam on real frames."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}"])
