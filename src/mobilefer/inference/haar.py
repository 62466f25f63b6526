"""OpenCV's frontal-face Haar cascade (ships with opencv-python-headless < 5) as a
:class:`~.faces.FaceDetector`: no landmarks, no calibrated score."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mobilefer.errors import DetectorUnavailable
from mobilefer.inference.faces import (DEFAULT_MIN_FACE, MAX_UPSCALE, SMALLEST_SEEN, WORK_WIDTH, Box, OneByOne,
                                       finish_boxes, work_ratio)


class HaarDetector(OneByOne):
    name = "haar"
    smallest_seen = SMALLEST_SEEN["haar"]
    # an OpenCV CascadeClassifier keeps per-call state: one caller at a time (serve gives each slot its own)
    thread_safe = False
    threshold = None  # its score is a cascade's level weight, not a probability
    windows = False
    proposals = False

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
        ratio = scale or work_ratio(gray.shape[1], gray.shape[0], self.work_width, min_face, self.smallest_seen,
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
        return finish_boxes(boxes, min_face, self.max_faces if max_faces is None else max_faces, min_box)
