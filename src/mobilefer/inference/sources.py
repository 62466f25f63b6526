"""Frame sources as generators: an image, a folder or glob of images, a video file (an
animated GIF is one), a webcam index or a stream URL. Nothing builds a list of all frames.

Frames are uint8 (H, W, 3) BGR, as OpenCV gives them. An image that cannot be read
yields a :class:`Frame` with ``error`` set, so a batch reports it and carries on.
"""
from __future__ import annotations

import glob
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mobilefer.data.images import ImageDecodeError, is_image_name, read_image, rgb_to_bgr
from mobilefer.errors import SourceError

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})
OPEN_TIMEOUT_MS = 5000
# A video file up to this many pixels a frame is decoded on one thread (its own, ahead of the
# reader): FFmpeg's frame threads cost more CPU than they save on 2 cores that also detect and
# classify (per frame, hikers 640x480: 1.8 -> 1.2-1.4 ms, 1080p: 13.2-13.5 -> 11.9). Larger
# frames (4K: ~45 ms a frame on one thread) keep FFmpeg's threads.
ONE_THREAD_PIXELS = 1920 * 1080


def is_video_file(path: Path) -> bool:
    """Whether the file at ``path`` is a video: its suffix is a video's, or it is a GIF of more
    than one frame (a reaction clip, which FFmpeg decodes as a video). Only a GIF's header and
    the start of its second frame are read; one that cannot be read is an image, and fails as
    one."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return True
    if path.suffix.lower() != ".gif":
        return False
    try:
        with Image.open(path) as gif:
            return bool(getattr(gif, "is_animated", False))
    except (OSError, ValueError, SyntaxError):  # not a GIF after all, or damaged: read as an image, it says so
        return False


@dataclass
class Frame:
    source: str
    index: int
    time_s: float
    image: np.ndarray | None  # uint8 (H, W, 3) BGR; None when ``error`` is set
    error: str | None = None
    fps: float = 0.0  # the video's or camera's frame rate; 0 for still images


def _image_frame(path: Path, index: int = 0) -> Frame:
    try:
        return Frame(str(path), index, 0.0, rgb_to_bgr(read_image(path)))
    except ImageDecodeError as exc:
        return Frame(str(path), index, 0.0, None, str(exc))


def _capture(target: int | str, label: str) -> cv2.VideoCapture:
    if isinstance(target, str) and "://" in target:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    elif isinstance(target, str):  # a file
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        if cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_WIDTH) * cap.get(cv2.CAP_PROP_FRAME_HEIGHT) > ONE_THREAD_PIXELS:
            cap.release()
            cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG)
    else:
        cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        cap.release()
        raise SourceError(label)
    return cap


def _fps(cap: cv2.VideoCapture) -> float:
    """The capture's frame rate, or 30 where it reports none or nonsense."""
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    return fps if 1.0 <= fps <= 240.0 else 30.0


def frame_count(path: str) -> int | None:
    """The number of frames a video file declares, or None where it declares none (a stream, a
    file without an index): a progress bar's total, never a bound on what is read."""
    cap = cv2.VideoCapture(path)
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    finally:
        cap.release()
    return count if count > 0 else None


def _video_frames(cap: cv2.VideoCapture, name: str, live: bool) -> Iterator[Frame]:
    fps = _fps(cap)
    started = time.monotonic()
    # A file is decoded ahead on a thread (FFmpeg releases the GIL), beside the detector and
    # classifier; a camera or stream is read when asked, so frames stay fresh.
    images = _read(cap) if live else _read_ahead(cap, _read_depth(cap))
    index = -1
    try:
        for index, image in enumerate(images):
            t = time.monotonic() - started if live else index / fps
            yield Frame(name, index, round(t, 4), image, fps=fps)
        if index < 0:
            raise SourceError(f"{name}: no frames could be read " + ("(it sent none)" if live else "(an empty or damaged video)"))
    finally:
        images.close()
        cap.release()


def _read(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, image = cap.read()
        if not ok or image is None:
            return  # end of file, or a truncated one: stop with what was read
        yield image


# A file's frames are decoded up to READ_AHEAD_BYTES ahead of the reader (4 to 16 frames): the
# whole-frame search and the glance look frames ahead (sources.Lookahead), and with only 4 in
# hand the reader waited for the decoder at each such look (the selfie at 640x480: a sixth of the
# main thread's time).
READ_AHEAD_BYTES = 64_000_000


def _read_depth(cap: cv2.VideoCapture) -> int:
    """How many of ``cap``'s frames are decoded ahead: READ_AHEAD_BYTES of them, 4 to 16."""
    size = 3 * int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) * int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    return max(4, min(16, READ_AHEAD_BYTES // max(size, 1)))


def _read_ahead(cap: cv2.VideoCapture, depth: int = 4) -> Iterator[np.ndarray]:
    """Frames of ``cap`` decoded on a thread, at most ``depth`` ahead of the reader."""
    frames: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                frames.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def decode() -> None:
        try:
            for image in _read(cap):
                if stop.is_set():
                    return
                put(image)
        finally:
            put(None)

    thread = threading.Thread(target=decode, name="mobilefer-decode", daemon=True)
    thread.start()
    try:
        while (image := frames.get()) is not None:
            yield image
    finally:
        stop.set()
        thread.join()


def source_kind(source: str | int) -> str:
    """image, images, video, webcam or stream."""
    text = str(source)
    if text.isdigit():
        return "webcam"
    if "://" in text:
        return "stream"
    path = Path(text)
    if path.is_dir() or any(ch in text for ch in "*?["):
        return "images"
    if is_video_file(path):
        return "video"
    return "image"


def iter_frames(source: str | int) -> Iterator[Frame]:
    """Frames of ``source``; SourceError (before the first frame) if it cannot be opened."""
    text, kind = str(source), source_kind(source)
    if kind == "webcam":
        cap = _capture(int(text), f"no webcam at index {text} (or it is in use)")
        return _video_frames(cap, f"webcam:{text}", live=True)
    if kind == "stream":
        cap = _capture(text, f"{text}: stream did not open within {OPEN_TIMEOUT_MS / 1000:.0f} s")
        return _video_frames(cap, text, live=True)
    if kind == "images":
        raise SourceError(f"{text}: a folder or glob names many sources; expand it with expand_sources")
    path = Path(text)
    if not path.exists():
        raise SourceError(f"{text}: no such file")
    if kind == "video":
        cap = _capture(text, f"{text}: cannot open video (unsupported codec or not a video)")
        return _video_frames(cap, text, live=False)
    return iter([_image_frame(path)])


def expand_sources(specs: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(sources to recognise one after the other, [(path, reason)] for what names no usable
    file). One image, video, webcam or URL is taken as it is (a missing one fails when it is
    opened); several, a folder, a glob or a .txt list are expanded by :func:`list_sources`,
    images first; SourceError where they name nothing usable. Every entry point that takes
    sources (``predict``, ``EmotionRecognizer.stream``) takes them through here."""
    if len(specs) == 1 and source_kind(specs[0]) != "images" and not specs[0].lower().endswith(".txt"):
        if Path(specs[0]).is_symlink() and not Path(specs[0]).exists():
            raise SourceError(f"{specs[0]}: a symbolic link that loops or points to nothing")
        return list(specs), []
    images, videos, bad = list_sources(specs)
    if not images and not videos:
        raise SourceError("; ".join(reason for _, reason in bad) or f"{' '.join(specs)}: no images or videos")
    return images + videos, bad


def list_sources(specs: list[str]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """The files that ``specs`` name: files, folders (searched recursively), globs and ``.txt``
    lists of paths -> (images, videos, [(path, reason)] for what names no usable file), each
    once, in order; paths only, nothing is read but a GIF's first frames (:func:`is_video_file`).
    ``predict`` and ``batch`` take sources alike."""
    images: list[str] = []
    videos: list[str] = []
    bad: list[tuple[str, str]] = []

    def add(path: Path, spec: str) -> None:
        suffix = path.suffix.lower()
        if is_video_file(path):
            videos.append(str(path))
        elif is_image_name(path.name):
            images.append(str(path))
        else:
            bad.append((str(path), f"{spec}: not an image or video file ({suffix or 'no suffix'})"))

    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            entries = sorted(p for p in path.rglob("*") if not p.name.startswith("."))
            found = [p for p in entries if p.is_file()]
            # a link that loops or points nowhere is neither file nor folder: say so, never drop it
            broken = [p for p in entries if p.is_symlink() and not p.exists()]
            media = [p for p in found if p.suffix.lower() in VIDEO_SUFFIXES or is_image_name(p.name)]
            if not media and not broken:
                bad.append((spec, f"{spec}: no images or videos in the folder"))
            for p in media:
                add(p, spec)
            for p in broken:
                bad.append((str(p), f"{p}: a symbolic link that loops or points to nothing"))
        elif path.suffix.lower() == ".txt" and path.is_file():
            for line in _read_list(path).splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    listed = Path(line) if Path(line).is_absolute() else path.parent / line
                    if listed.is_file():
                        add(listed, f"{spec}")
                    else:
                        bad.append((str(listed), f"{listed}: no such file (listed in {spec})"))
        elif any(ch in spec for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            if not matches:
                bad.append((spec, f"{spec}: matches no file"))
            for p in matches:
                add(p, spec)
        elif path.is_file():
            add(path, spec)
        else:
            bad.append((spec, f"{spec}: no such file or folder"))
    unique = lambda items: list(dict.fromkeys(items))  # noqa: E731
    return unique(images), unique(videos), bad


def _read_list(path: Path) -> str:
    """A list file's text: UTF-8 (a byte-order mark is dropped), else Latin-1, as paths were saved."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class Lookahead:
    """Frames, with a look at those still to come (:meth:`peek`). Only for a file: a camera's or
    a stream's later frames do not exist yet, and waiting for them would make every frame late."""

    def __init__(self, frames: Iterator[Frame]) -> None:
        self._frames = frames
        self._buffer: deque[Frame] = deque()

    def __iter__(self) -> "Lookahead":
        return self

    def __next__(self) -> Frame:
        return self._buffer.popleft() if self._buffer else next(self._frames)

    def peek(self, k: int) -> Frame | None:
        """The ``k``-th frame after the last one given (k >= 1), or None past the end."""
        while len(self._buffer) < k:
            try:
                self._buffer.append(next(self._frames))
            except StopIteration:
                return None
        return self._buffer[k - 1]
