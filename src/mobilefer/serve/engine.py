"""One model per worker process, shared by a few inference slots.

ONNX Runtime sessions are safe to call from several threads, so the classifier is loaded
once; OpenCV's DNN nets are not, so each slot owns its detectors. A request borrows a slot
for the length of one inference (the gate guarantees one is free).
"""
from __future__ import annotations

import ctypes
import queue
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from mobilefer import web
from mobilefer.runtime import Classifier, load_classifier
from mobilefer.inference.detectors import available_detectors, create_detector, detector_name
from mobilefer.inference.recognizer import EmotionRecognizer, Face
from mobilefer.serve.config import ServeConfig
from mobilefer.runtime import resolve_model
from mobilefer.runtime.devices import Device, choose_device


# glibc keeps the blocks a request freed, so a worker would stay at its peak; handing them back
# (malloc_trim) costs ~25 ms, too much for every request. So: at once after an image this big,
# and otherwise whenever the worker falls idle (at most once a second).
RELEASE_AFTER_PIXELS = 4_000_000
RELEASE_WHEN_IDLE_S = 1.0


def release_memory() -> None:
    """Return freed heap memory to the operating system (glibc's malloc_trim; a no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# An explanation goes out over its face's box at most this many cells on its longer side.
EXPLAIN_CELLS = 48


@dataclass
class Recognition:
    faces: list[Face]
    detector: str
    width: int
    height: int
    timing_ms: dict[str, float]
    explanation: dict[str, Any] | None = None  # the asked face's map: {"face", "rows", "cols", "weights"}


class _Slot:
    """The detectors one inference thread uses, created on first use (the default one at start)."""

    def __init__(self, classifier: Classifier, config: ServeConfig, device: Device) -> None:
        self.classifier, self.config, self.device = classifier, config, device
        self.recognizers: dict[str, EmotionRecognizer] = {}

    def recognizer(self, detector: str) -> EmotionRecognizer:
        if detector not in self.recognizers:
            found = create_detector(detector, min_face=self.config.min_face, max_faces=self.config.max_faces,
                                    providers=self.device.providers)
            self.recognizers[detector] = EmotionRecognizer(self.classifier, found)
        return self.recognizers[detector]


class Engine:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.model_file = resolve_model(config.model)
        self.model_path = self.model_file.path
        self.device = choose_device(config.device)
        self.classifier = load_classifier(self.model_path, threads=config.threads, device=self.device)
        self.meta = self.classifier.meta
        self.detectors = available_detectors()
        self.default_detector = self.resolve_detector(config.detector)
        self.executor = ThreadPoolExecutor(config.slots, thread_name_prefix="mobilefer-inference")
        self._trimmer = ThreadPoolExecutor(1, thread_name_prefix="mobilefer-trim")
        self._released, self._scheduled = 0.0, False
        self._detector_model: bytes | None = None
        self._slots: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        blank = np.zeros((240, 320, 3), np.uint8)
        for _ in range(config.slots):
            slot = _Slot(self.classifier, config, self.device)
            rec = slot.recognizer(self.default_detector)
            rec.detector.detect(blank)  # first runs allocate; keep that off requests
            rec.classify_crops([blank])
            self._slots.put(slot)

    def resolve_detector(self, name: str) -> str:
        """A detector name, auto resolved, or DetectorUnavailable naming what is missing."""
        name = detector_name(name)
        if name not in self.detectors:
            create_detector(name)  # raises DetectorUnavailable with the install hint
        return name

    def recognize(self, frame: np.ndarray, detector: str | None = None, min_face: int | None = None,
                  max_faces: int | None = None, video: bool = False, explain: int | None = None,
                  uncertain: float | None = None) -> Recognition:
        """uint8 (H, W, 3) BGR frame -> faces; blocking, called from the executor.

        ``detector``: a name from :meth:`resolve_detector` (default: the server's); ``video``: a
        camera or video frame (see :meth:`EmotionRecognizer.recognize_frame`); ``explain``: the
        index of a face to explain (:meth:`EmotionRecognizer.explain`), its map at most
        EXPLAIN_CELLS across; ``uncertain``: the threshold under which a face is labelled
        "uncertain" (default: the server's)."""
        name = detector or self.default_detector
        timing: dict[str, float] = {}
        explanation = None
        slot = self._slots.get()
        try:
            rec = slot.recognizer(name)
            faces = rec.recognize_frame(frame, min_face=min_face, max_faces=max_faces, video=video, timing=timing)
            threshold = self.config.uncertain if uncertain is None else uncertain
            faces = [face.with_uncertain(threshold) for face in faces]
            if explain is not None and explain < len(faces):
                start = time.perf_counter()
                heat = rec.explain(frame, faces[explain])
                scale = min(1.0, EXPLAIN_CELLS / max(heat.shape))
                if scale < 1:
                    size = (max(1, round(heat.shape[1] * scale)), max(1, round(heat.shape[0] * scale)))
                    heat = cv2.resize(heat, size, interpolation=cv2.INTER_AREA)
                explanation = {"face": explain, "rows": heat.shape[0], "cols": heat.shape[1],
                               "weights": [round(float(v), 5) for v in heat.ravel()]}
                timing["explain"] = 1000 * (time.perf_counter() - start)
        finally:
            self._slots.put(slot)
        return Recognition(faces, name, frame.shape[1], frame.shape[0], timing, explanation)

    def release_when_idle(self, idle: Callable[[], bool]) -> None:
        """Trim freed memory on a thread of its own once no request is left: at most once a
        second, and once more after the last request of a burst (``idle()`` says whether
        none is in progress)."""
        if self._scheduled:
            return
        self._scheduled = True
        delay = max(0.0, RELEASE_WHEN_IDLE_S - (time.monotonic() - self._released))
        self._trimmer.submit(self._trim_later, delay, idle)

    def _trim_later(self, delay: float, idle: Callable[[], bool]) -> None:
        time.sleep(delay)
        self._scheduled = False
        if idle():
            release_memory()
            self._released = time.monotonic()

    def model_info(self) -> dict[str, Any]:
        return web.model_info(self.meta, self.model_path.name) | {
            "detectors": self.detectors, "default_detector": self.default_detector}

    def browser_unavailable(self) -> str | None:
        """Why the page cannot run this server's models itself, or None when it can."""
        if self.model_file.kind != "onnx":
            return (f"the server's model is {self.model_path.name}; the browser runs ONNX models "
                    "(serve a bundled name or an .onnx from mobilefer export)")
        if "centerface" not in self.detectors:
            return "the server has no CenterFace detector to give the browser (its weights file is missing)"
        return None

    def site_info(self) -> dict[str, Any]:
        return web.site_info(self.meta, web.display_name(self.model_file), server=True,
                             unavailable=self.browser_unavailable(), uncertain=self.config.uncertain) | {
            "detectors": self.detectors, "default_detector": self.default_detector}

    def detector_model(self) -> bytes:
        """CenterFace for the page's browser mode, read once."""
        if self._detector_model is None:
            self._detector_model = web.detector_model()
        return self._detector_model

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._trimmer.shutdown(wait=False, cancel_futures=True)
