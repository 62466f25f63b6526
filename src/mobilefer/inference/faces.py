"""What every face detector shares: the :class:`Box` it returns (with a face's landmarks where
it finds them), the :class:`FaceDetector` interface, the size rules every detector and the page
follow, and the crop a face is classified from. No detector lives here (:mod:`.centerface`,
:mod:`.haar`, the registry in :mod:`.detectors`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

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
WORK_WIDTH = 320  # a frame is looked at about this wide (see work_ratio)
Landmarks = tuple[tuple[float, float], ...]  # (x, y) of the eyes, nose tip and mouth corners, image-left first


@dataclass(frozen=True)
class Box:
    """A face box in source pixels: top-left (x, y), width, height, detector confidence, and the
    face's five landmarks (eyes, nose tip, mouth corners; image-left first) where the detector
    finds them (CenterFace), else None. Two boxes are equal by their place and score alone."""

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0
    landmarks: Landmarks | None = field(default=None, compare=False)

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def mapped(self, x: int, y: int, w: int, h: int, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> "Box":
        """The box at (x, y, w, h) with this one's score and its landmarks moved as the box was:
        each point p becomes p * scale + (dx, dy)."""
        marks = None if self.landmarks is None else tuple(
            (round(px * scale + dx, 1), round(py * scale + dy, 1)) for px, py in self.landmarks)
        return Box(x, y, w, h, self.score, marks)


class FaceDetector(Protocol):
    """What every detector declares, so no caller has to probe for it."""

    name: str
    thread_safe: bool  # detect() may run on two threads at once (a video's whole-frame search ahead)
    smallest_seen: int  # the smallest face side it finds reliably, in pixels of the copy it looks at
    min_face: int  # its smallest face in source pixels, when a call names none
    threshold: float | None  # the calibrated score it keeps a face from (CenterFace); None: uncalibrated
    windows: bool  # detect(scale=, window=) looks at a window of a whole-frame pass, sized by pass_size()
    # a video's searches for large faces may start from a mobile detector's proposals (.blazeface):
    # its looks around them give the boxes, scores and landmarks its own search would
    proposals: bool

    def detect(self, frame: np.ndarray, *, min_face: int | None = None, max_faces: int | None = None,
               upscale: bool = True, confidence: float | None = None, min_box: int | None = None,
               scale: float | None = None) -> list[Box]:
        """uint8 (H, W, 3) BGR frame -> face boxes, best first; the bounds override the detector's own.
        ``upscale``: a still image may be enlarged to find faces under the detector's own smallest
        (and CenterFace places its rolled faces' landmarks again upright, a second small pass
        each); video frames pass False. ``confidence``: the lowest score kept, for detectors with a
        calibrated score (CenterFace); None: the detector's own threshold. ``min_box``: the smallest
        box side kept (default: BOX_TOLERANCE * min_face); the scale the frame is searched at still
        follows ``min_face`` (a video follows faces a little under min_face unseen). ``scale``: look
        at the frame at exactly this scale, in one pass (a followed face's square, looked at as the
        whole-frame search looks at it); the boxes still come back in the frame's pixels. Detectors
        with a ``pass_size`` (CenterFace) also take ``window``: with ``scale``, look only at the
        pixels (x0, y0, x1, y1) of the whole frame's pass at that scale, as that pass sees them."""

    def detect_many(self, looks: list[tuple[np.ndarray, dict]]) -> list[list[Box]]:
        """``detect(image, **options)`` for each look, in order (CenterFace: one network run for
        all of a size)."""


class OneByOne:
    """detect_many for a detector that looks at one image at a time."""

    def detect_many(self, looks: list[tuple[np.ndarray, dict]]) -> list[list[Box]]:
        return [self.detect(image, **options) for image, options in looks]


def gray_or_bgr(frame: np.ndarray) -> np.ndarray:
    """A frame as the detectors take it: 3-channel BGR (a gray frame expanded, alpha dropped)."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    return frame[:, :, :3]


def work_ratio(width: int, height: int, work_width: int, min_face: int, smallest_seen: int,
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
    return video_min_face(w, h, min_face, detector.smallest_seen)


def finish_boxes(boxes: list[Box], min_face: int, max_faces: int | None, min_box: int | None = None) -> list[Box]:
    """A detector's boxes kept as every detector keeps them: large enough, best first, at most ``max_faces``."""
    # A detector's box for a face of side s measures s give or take a fifth: a face of
    # min_face pixels must not be dropped because its box came out a little small.
    smallest = BOX_TOLERANCE * min_face if min_box is None else min_box
    kept = [b for b in boxes if min(b.w, b.h) >= smallest]
    kept.sort(key=lambda b: (b.score, b.w * b.h), reverse=True)
    return kept[:max_faces] if max_faces else kept


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def crop_region(shape: tuple[int, ...], box: Box, margin: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the square around ``box`` grown by ``margin`` of its side per edge,
    clamped to a frame of ``shape`` (H, W, ...): where :func:`face_crop` cuts."""
    h, w = shape[:2]
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    x0, y0 = max(0, int(round(cx - side / 2))), max(0, int(round(cy - side / 2)))
    x1, y1 = min(w, int(round(cx + side / 2))), min(h, int(round(cy + side / 2)))
    return x0, y0, x1, y1


def face_crop(frame: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """A square crop around ``box`` grown by ``margin`` of its side per edge, clamped to the frame."""
    x0, y0, x1, y1 = crop_region(frame.shape, box, margin)
    return frame[y0:y1, x0:x1]
