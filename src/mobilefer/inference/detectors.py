"""Face detectors by name, behind one interface (:class:`~.faces.FaceDetector`).

Every detector takes an OpenCV frame, uint8 (H, W, 3) BGR, and returns :class:`~.faces.Box` es
in source pixels, best first; no face is an empty list. Detection runs on a copy downscaled
towards ``work_width`` and boxes are mapped back - but never so far that a ``min_face`` face
drops below what the detector sees.

- ``centerface`` (:mod:`.centerface`): CenterFace on ONNX Runtime, with five landmarks a face.
- ``haar`` (:mod:`.haar`): OpenCV's frontal-face cascade, without landmarks.
- ``none``: no detection; the whole image is one face (for pre-cropped faces, e.g. a FER dataset).
- ``auto``: centerface when its weights are found, else haar.

The names other modules import from here (the rules, :class:`Box`, the detectors) are those
of :mod:`.faces`, :mod:`.centerface` and :mod:`.haar`, one place each.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mobilefer.errors import ConfigError, DetectorUnavailable
from mobilefer.inference.centerface import (BUNDLED_CENTERFACE, CENTERFACE_NMS, CENTERFACE_THRESHOLD,
                                            CenterFaceDetector, _named_centerface, centerface_file,
                                            centerface_fp32, centerface_weights)
from mobilefer.inference.faces import (BOX_TOLERANCE, DEFAULT_MIN_FACE, LARGE_FACE_PASS, MAX_DETECT_PIXELS,
                                       MAX_TILES, MAX_UPSCALE, SMALLEST_SEEN, VIDEO_DETECT_PIXELS, WORK_WIDTH, Box,
                                       FaceDetector, Landmarks, OneByOne, face_crop, video_min_face, video_scale,
                                       video_search_min_face)
from mobilefer.inference.haar import HaarDetector

if TYPE_CHECKING:
    from mobilefer.meta import ModelMeta

DETECTOR_CHOICES = ("auto", "haar", "centerface", "none")
__all__ = [  # what other modules take from here, wherever it is defined
    "BOX_TOLERANCE", "BUNDLED_CENTERFACE", "CENTERFACE_NMS", "CENTERFACE_THRESHOLD", "DEFAULT_MIN_FACE",
    "DETECTORS", "DETECTOR_CHOICES", "LARGE_FACE_PASS", "MAX_DETECT_PIXELS", "MAX_TILES", "MAX_UPSCALE",
    "SMALLEST_SEEN", "VIDEO_DETECT_PIXELS", "WORK_WIDTH", "Box", "CenterFaceDetector", "DetectorUnavailable",
    "FaceDetector", "HaarDetector", "LargestFaceCrop", "Landmarks", "WholeImage", "available_detectors",
    "centerface_file", "centerface_fp32", "centerface_weights", "create_detector", "detector_name", "face_crop",
    "video_min_face", "video_scale", "video_search_min_face",
]


class WholeImage(OneByOne):
    """The whole frame is the face: for images that are already face crops."""

    name = "none"
    thread_safe = True
    smallest_seen = 1
    threshold = None
    windows = False
    proposals = False

    def __init__(self, min_face: int = DEFAULT_MIN_FACE, **_options) -> None:
        self.min_face = min_face

    def detect(self, frame: np.ndarray, *, min_face: int | None = None, max_faces: int | None = None,
               upscale: bool = True, confidence: float | None = None, min_box: int | None = None,
               scale: float | None = None) -> list[Box]:
        return [Box(0, 0, frame.shape[1], frame.shape[0], 1.0)]


DETECTORS = {"haar": HaarDetector, "centerface": CenterFaceDetector, "none": WholeImage}


def available_detectors() -> list[str]:
    return ["haar"] + (["centerface"] if centerface_weights(default=BUNDLED_CENTERFACE) else []) + ["none"]


def detector_name(name: str, weights: str | Path | None = None) -> str:
    """The detector ``name`` stands for: auto is centerface if its weights are here, else haar
    (a file named by ``weights`` or $MOBILEFER_CENTERFACE that is not there is an error, never
    a silent fall back to haar)."""
    named, said = _named_centerface(weights)
    if named and name in ("auto", "centerface") and not Path(named).is_file():
        raise DetectorUnavailable(f"CenterFace weights not found: {said} is not a file")
    if name == "auto":
        return "centerface" if centerface_weights(weights, default=BUNDLED_CENTERFACE) else "haar"
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}; choose one of auto, {', '.join(DETECTORS)}")
    return name


def create_detector(name: str = "auto", **options) -> FaceDetector:
    """A detector by name: haar, centerface, none or auto (see :func:`detector_name`)."""
    name = detector_name(name, options.get("weights"))
    if name != "centerface":  # where the file, the device and ONNX Runtime's threads matter
        for key in ("weights", "providers", "threads"):
            options.pop(key, None)
    return DETECTORS[name](**options)


class LargestFaceCrop:
    """For training and evaluation on photos that are not face crops: the largest face of an
    image, cropped as predict crops it (same detector rules and margin). Thread-safe (one
    detector per thread). No face: NoFaceError, so a reader skips the image and says why; or,
    where not ``required``, the image as it is. Images whose short side is at most
    ``crops_up_to`` px are face crops already and kept as they are. ``searched`` and
    ``faceless`` count the images looked at and those without a face."""

    def __init__(self, detector: str = "auto", margin: float = 0.15, min_face: int = DEFAULT_MIN_FACE,
                 crops_up_to: int = 0, required: bool = True) -> None:
        self.name, self.margin, self.min_face = detector_name(detector), margin, min_face
        self.crops_up_to, self.required = crops_up_to, required
        self.searched = self.faceless = 0
        self._count = threading.Lock()
        self._local = threading.local()
        if required:
            self._detector()  # a missing detector fails here, not in a reader's thread

    @staticmethod
    def cuts(crop_faces: bool | None, base_size: int | None) -> bool:
        """Whether images are cut to their faces: ``crop_faces`` True (every image), or None where
        the face size the model takes (``base_size``) is known (the images larger than it)."""
        return bool(crop_faces or (crop_faces is None and base_size))

    @classmethod
    def by_rule(cls, crop_faces: bool | None, margin: float, base_size: int | None) -> "LargestFaceCrop | None":
        """The crop labelled images get in evaluation, a fine-tune and export calibration, as predict
        crops a face at ``margin``: ``crop_faces`` True: every image's largest face, an image
        without one left out. None (with a ``base_size``): images larger than the model's faces
        (on the short side: photos, or crops made otherwise) are searched for their largest face and
        kept whole where none is found; the others are face crops as the model's own were. False,
        or None without a face size: every image as it is (None returned)."""
        if not cls.cuts(crop_faces, base_size):
            return None
        if crop_faces:
            return cls(margin=margin)
        return cls(margin=margin, crops_up_to=base_size, required=False)

    @classmethod
    def for_model(cls, meta: "ModelMeta", crop_faces: bool | None = None) -> "LargestFaceCrop | None":
        """:meth:`by_rule` for a model's images outside training (evaluation, export calibration):
        its margin and faces; ``crop_faces`` None is True for a model trained with --crop-faces."""
        if crop_faces is None and meta.config.get("crop_faces", False):
            crop_faces = True
        return cls.by_rule(crop_faces, meta.face_margin, meta.base_size)

    def _detector(self) -> FaceDetector:
        if not hasattr(self._local, "detector"):
            self._local.detector = create_detector(self.name, min_face=self.min_face)
        return self._local.detector

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W) gray or (H, W, 3) RGB -> the crop of its largest face, same colour order."""
        from mobilefer.data.images import rgb_to_bgr
        from mobilefer.errors import NoFaceError

        if min(image.shape[:2]) <= self.crops_up_to:
            return image
        boxes = self._detector().detect(rgb_to_bgr(image))
        with self._count:
            self.searched += 1
            self.faceless += not boxes
        if boxes:
            return face_crop(image, max(boxes, key=lambda b: b.w * b.h), self.margin)
        if self.required:
            raise NoFaceError(f"no face found by {self.name}")
        return image

    def summary(self) -> str:
        """What the crop did, for a report: '' where it looked at no image."""
        if not self.searched:
            return ""
        which = f"over {self.crops_up_to} px on their short side " if self.crops_up_to else ""
        kept = f"; no face in {self.faceless}, kept whole" if self.faceless and not self.required else ""
        return f"{self.searched} image(s) {which}searched for their largest face and cropped as predict crops it{kept}"
