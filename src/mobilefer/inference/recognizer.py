"""Faces found in a frame, each labelled with its emotion: detect, crop, classify (one batch).

>>> rec = EmotionRecognizer.load()              # the bundled default model, ferplus-small
>>> for face in rec.recognize("group.jpg"):
...     print(face.box, face.label, round(face.score, 2))
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image

from mobilefer.errors import ConfigError, SourceError, check_fields, whole
from mobilefer.data.images import as_bgr_frame, bgr_to_rgb
from mobilefer.data.preprocess import normalize_batch, preprocess
from mobilefer.runtime import Classifier, load_classifier
from mobilefer.runtime.devices import choose_device
from mobilefer.runtime.probs import paired
from mobilefer.inference.detectors import (DEFAULT_MIN_FACE, DETECTOR_CHOICES, Box, FaceDetector, create_detector,
                                           face_crop, video_search_min_face)
from mobilefer.inference.blazeface import MODEL as BLAZEFACE_MODEL, BlazeFace
from mobilefer.inference.explain import deletion_map, face_base, over_box
from mobilefer.inference.live import VideoFaces
from mobilefer.inference.pose import Pose, head_pose
from mobilefer.inference.sources import Frame, Lookahead, expand_sources, iter_frames, source_kind
from mobilefer.inference.tracking import IoUTracker, Smoother, Track, View


# The five landmarks' names in the flat outputs (CSV, Parquet): l and r are image-left and -right.
LANDMARK_NAMES = ("eye_l", "eye_r", "nose", "mouth_l", "mouth_r")
LANDMARK_COLUMNS = [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"]
POSE_COLUMNS = ["yaw", "pitch", "roll"]

# The label of a face whose top probability is under the recognizer's ``uncertain`` threshold;
# its score and probs stay the model's, so the top class is still there to read.
UNCERTAIN = "uncertain"


@dataclass
class Face:
    """One recognised face. ``box`` is (x, y, w, h) in source pixels; ``landmarks`` its eyes, nose
    tip and mouth corners as (x, y) in source pixels, image-left first, where the detector finds
    them (CenterFace; Haar: None); ``pose`` the head's yaw, pitch and roll from them."""

    box: tuple[int, int, int, int]
    label: str
    score: float
    probs: dict[str, float]
    id: int | None = None
    detector_score: float = 1.0
    landmarks: tuple[tuple[float, float], ...] | None = None
    pose: Pose | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "box": list(self.box), "label": self.label, "score": round(self.score, 4),
                "probs": {k: round(v, 4) for k, v in self.probs.items()},
                "landmarks": [list(p) for p in self.landmarks] if self.landmarks else None,
                "pose": self.pose.to_dict() if self.pose else None}

    @property
    def top(self) -> str:
        """The class with the highest probability, also when ``label`` is UNCERTAIN."""
        return max(self.probs, key=self.probs.get)

    def with_uncertain(self, threshold: float) -> "Face":
        """This face labelled UNCERTAIN when its top probability is under ``threshold``, else by
        its top class."""
        return replace(self, label=UNCERTAIN if self.score < threshold else self.top)

    def columns(self) -> dict[str, float | None]:
        """The landmarks and pose as flat columns (LANDMARK_COLUMNS, POSE_COLUMNS; None: none)."""
        points = [v for p in self.landmarks for v in p] if self.landmarks else [None] * len(LANDMARK_COLUMNS)
        pose = [round(getattr(self.pose, k), 1) for k in POSE_COLUMNS] if self.pose else [None] * 3
        return dict(zip(LANDMARK_COLUMNS + POSE_COLUMNS, points + pose))


@dataclass
class FrameResult:
    source: str
    frame: int
    time_s: float
    faces: list[Face] = field(default_factory=list)
    image: np.ndarray | None = None  # the BGR frame, for drawing
    error: str | None = None
    classified: bool = True  # False when some labels were carried over (--every, CLASSIFY_RATE, CLASSIFY_FACES)
    fps: float = 0.0  # the source's frame rate (videos, cameras)
    cut: bool = False  # the frame starts a new shot: its faces are new faces
    timing_ms: dict[str, float] = field(default_factory=dict)  # detect (or follow), classify

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "frame": self.frame, "time_s": self.time_s,
                "faces": [f.to_dict() for f in self.faces]}


# Videos, cameras and streams run the detector over the whole frame on every 10th frame and at
# cuts, and follow each face near its last box between (inference/follow.py); measured on real
# clips against detection on every frame in benchmarks/bench_live.py.
DEFAULT_VIDEO_DETECT_EVERY = 10
# Frames whose faces are found but not yet classified, at most (see EmotionRecognizer.stream).
CLASSIFY_AHEAD = 2
# A video frame classifies its new faces and, of the others classified at least a 1/CLASSIFY_RATE
# of a second ago (3 frames at 30 frames/s; every frame under 15 frames/s), the CLASSIFY_FACES
# classified longest ago, or more where that keeps every face classified within CLASSIFY_WITHIN
# frames: one to three faces are classified 10 times a second, a group of five each 6 times, a
# crowd of 30 one a frame and of 50 two (each once a second); the labels between are carried
# over (``FrameResult.classified`` is False). A classification (flip-averaged, 160 px) costs 2-6
# ms of CPU, as much as following a face; 10 a second instead of on every frame: 9-15 % more
# frames/s on the shared clips (640x480, AVX2 EPYC), the same top label on 99.3 % of the
# montage's faces, 98.3 % of the hikers' and 93.0 % of the selfie's (shaken and blurred, where
# the label on every frame flips more). A crowd's faces, which come and go, are classified as
# they come (a 1080p crowd of ~48 faces: ~1.4 new ones a frame).
CLASSIFY_RATE = 10
CLASSIFY_FACES = 1
CLASSIFY_WITHIN = 30
# A followed face's probabilities are an average of its classifications (weight VIDEO_SMOOTH's
# ALPHA to the newest, ~0.14 s to move half way at CLASSIFY_RATE) unless smooth="none": a label
# that changes with every blurred frame reads as noise (changes of label on the shared clips:
# selfie 16 -> 3, hikers 64 -> 16, montage 2 -> 0, with VIDEO_VIEWS; docs/benchmarks.md).
VIDEO_SMOOTH = "ema:0.4"
# Where the model reads a face with its mirror image (tta flip) and a video's face's probabilities
# average its classifications (a smoother over more than one), a known face is read in one
# view, the one its last classification did not read, and the two are averaged: half the
# network's work for each classification after a face's first, and a face that does not move
# gets a photo's probabilities every time (one view alone would not do: FER+ Valid 0.869 and
# 0.863 against 0.874 for both). A face whose last view is over VIEW_PAIR_WITHIN s old (--every
# 2s; a crowd's face, classified in turn) is read in both again, so the two views of an answer
# are never further apart. Whole predict on the shared 640x480 clips, 10 rounds taking
# turns, against both views every time: hikers 1.09x (CPU -9 %, label changes 25 -> 16),
# montage 1.02x, selfie 1.01x; 97.6-100 % of face-frames keep their label
# (benchmarks/video_views.py, docs/benchmarks.md).
VIDEO_VIEWS = True
VIEW_PAIR_WITHIN = 0.5

# The recognition settings every door shares (predict, batch, serve): one rule each.
RECOGNITION_RULES = {
    "detector": (lambda v: v in DETECTOR_CHOICES, " or ".join(DETECTOR_CHOICES)),
    "detect_every": (whole(1), "a whole number of frames, at least 1"),
    "min_face": (whole(1), "a face side of at least 1 pixel"),
    "max_faces": (whole(1), "at least 1 face"),
    "uncertain": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 1.0, "a probability from 0 (never uncertain) up to, not including, 1"),
}


def check_uncertain(value: float, name: str = "uncertain") -> None:
    """One line naming ``name`` when ``value`` is no threshold for UNCERTAIN."""
    check_fields(SimpleNamespace(**{name: value}), {name: RECOGNITION_RULES["uncertain"]})


@dataclass(frozen=True)
class Cadence:
    """How often to classify: every ``frames`` frames or every ``seconds`` seconds."""

    frames: int = 1
    seconds: float = 0.0

    @classmethod
    def parse(cls, spec: str | None) -> "Cadence":
        if not spec:
            return cls()
        text = spec.strip().lower()
        try:
            if text.endswith("f"):
                frames = int(text[:-1])
                if frames >= 1:
                    return cls(frames=frames)
            elif text.endswith("s"):
                seconds = float(text[:-1])
                if seconds > 0:
                    return cls(seconds=seconds)
        except ValueError:
            pass
        raise ConfigError(f"--every {spec!r}: expected frames like 5f or seconds like 2s")


class EmotionRecognizer:
    """Detector + classifier; the classifier's metadata decides all face preprocessing."""

    def __init__(self, classifier: Classifier, detector: FaceDetector, margin: float | None = None,
                 uncertain: float = 0.0) -> None:
        self.classifier, self.detector = classifier, detector
        self.meta = classifier.meta
        self.margin = self.meta.face_margin if margin is None else margin
        check_uncertain(uncertain)
        self.uncertain = uncertain  # a face whose top probability is under it is labelled UNCERTAIN
        # a video's searches for large faces start from BlazeFace's proposals (live.VideoFaces)
        self.proposals = detector.proposals and BLAZEFACE_MODEL.exists()
        self._proposer: BlazeFace | None = None

    @classmethod
    def load(cls, model: str | Path | None = None, *, detector: str = "auto", margin: float | None = None,
             min_face: int = DEFAULT_MIN_FACE, max_faces: int | None = None, threads: int | None = None,
             classes: list[str] | None = None, device: str = "auto", uncertain: float = 0.0) -> "EmotionRecognizer":
        """From a saved model (.onnx, .safetensors, .pth with classes); no path: the bundled one.
        ``device``: auto, cpu, cuda or cuda:N (:func:`~mobilefer.runtime.devices.choose_device`);
        ``uncertain``: label a face UNCERTAIN when its top probability is under this (0: never)."""
        check_uncertain(uncertain)
        where = choose_device(device)
        clf = load_classifier(model, classes=classes, threads=threads, device=where)
        found = create_detector(detector, min_face=min_face, max_faces=max_faces, threads=threads,
                                providers=where.providers)
        return cls(clf, found, margin, uncertain)

    @property
    def classes(self) -> list[str]:
        return self.meta.classes

    def classify_crops(self, crops: list[np.ndarray], mirrored: list[bool] | None = None) -> np.ndarray:
        """Face crops, uint8 RGB or gray (any size) -> probabilities float32 (N, K), one batch, with
        the model's flip averaging; ``mirrored``: each crop read in one view instead, mirrored
        where True (a video's known faces, see VIDEO_VIEWS)."""
        if not crops:
            return np.zeros((0, self.meta.num_classes), dtype=np.float32)
        x = preprocess(crops, self.meta)
        if mirrored is None:
            return self.classifier(x)
        x[mirrored] = x[mirrored][..., ::-1]
        return self.classifier(x, flip=False)

    def explain(self, image: str | Path | bytes | Image.Image | np.ndarray, face: "Face | Box") -> np.ndarray:
        """Why ``face`` of ``image`` got its label: float32 (box height, box width), higher where
        covering the face lowers its label's probability more (see :mod:`.explain`; negative
        where covering it raises it). ``image`` as :meth:`recognize` takes it; ``face`` one of
        its faces (its label is explained) or a box (the label the model gives it). One batch of
        MASKS covered copies a face."""
        frame = as_bgr_frame(image)
        box = face if isinstance(face, Box) else Box(*face.box)
        base, square = face_base(bgr_to_rgb(frame), box, self.margin, self.meta.channels, self.meta.base_size)

        def classify(batch: np.ndarray) -> np.ndarray:
            return self.classifier(normalize_batch(batch, self.meta))

        label = (self.classes.index(face.top) if isinstance(face, Face)
                 else int(np.argmax(classify(base[None])[0])))
        return over_box(deletion_map(base, classify, label), square, box)

    def label_faces(self, boxes: list[Box], probs: np.ndarray, ids: list[int] | None = None) -> list[Face]:
        """Typed faces from boxes and their class probabilities (ids default to positions)."""
        faces = []
        for i, (box, p) in enumerate(zip(boxes, probs)):
            k = int(np.argmax(p))
            face = Face(tuple(box.as_list()), self.classes[k], float(p[k]), {c: float(v) for c, v in zip(self.classes, p)},
                        ids[i] if ids is not None else i, box.score, box.landmarks, head_pose(box.landmarks))
            faces.append(face.with_uncertain(self.uncertain))
        return faces

    def crops(self, frame: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        """uint8 (H, W, 3) BGR frame -> the RGB face crops the classifier sees, one per box."""
        return [bgr_to_rgb(face_crop(frame, b, self.margin)) for b in boxes]

    def classify_boxes(self, frame: np.ndarray, boxes: list[Box]) -> list[Face]:
        """uint8 (H, W, 3) BGR frame and its face boxes -> faces, in the order of the boxes."""
        return self.label_faces(boxes, self.classify_crops(self.crops(frame, boxes)))

    def recognize_frame(self, frame: np.ndarray, *, min_face: int | None = None, max_faces: int | None = None,
                        video: bool = False, timing: dict[str, float] | None = None) -> list[Face]:
        """uint8 (H, W, 3) BGR frame -> faces, best detection first.

        ``min_face``/``max_faces`` override the detector's own for this frame; ``video``: the
        frame is one of a video or camera, looked at as a video's whole-frame search looks (never
        enlarged, an HD frame at most VIDEO_DETECT_PIXELS); ``timing``, if given, receives the
        milliseconds spent in ``detect`` and ``classify``."""
        start = time.perf_counter()
        if video:
            smallest = self.detector.min_face if min_face is None else min_face
            boxes = self.detector.detect(frame, upscale=False, max_faces=max_faces,
                                         min_face=video_search_min_face(self.detector, frame, smallest))
        else:
            boxes = self.detector.detect(frame, min_face=min_face, max_faces=max_faces)
        found = time.perf_counter()
        faces = self.classify_boxes(frame, boxes)
        if timing is not None:
            timing["detect"] = 1000 * (found - start)
            timing["classify"] = 1000 * (time.perf_counter() - found)
        return faces

    def recognize_many(self, frames: list[np.ndarray]) -> list[list[Face]]:
        """Still images, uint8 (H, W, 3) BGR -> their faces, as :meth:`recognize_frame` finds them,
        with the faces of all images classified in one batch (fewer, fuller classifier calls)."""
        boxes = [self.detector.detect(frame) for frame in frames]
        probs = self.classify_crops([crop for frame, found in zip(frames, boxes) for crop in self.crops(frame, found)])
        out, start = [], 0
        for found in boxes:
            out.append(self.label_faces(found, probs[start : start + len(found)]))
            start += len(found)
        return out

    def recognize(self, image: str | Path | bytes | Image.Image | np.ndarray) -> list[Face]:
        """A path, encoded bytes, a PIL image, or a BGR (H, W, 3) / gray (H, W) array (uint8,
        uint16, or float in [0, 1]) -> faces. See :func:`~mobilefer.data.images.as_bgr_frame`."""
        return self.recognize_frame(as_bgr_frame(image))

    def stream(self, source: str | int | Path | Sequence[str | Path], *, every: str | Cadence | None = None,
               smooth: str | None = None, detect_every: int | None = None,
               tracker: IoUTracker | None = None) -> Iterator[FrameResult]:
        """Recognise frame by frame (a generator): tracked ids, optional smoothing and cadence.

        ``source``: an image, a video, a webcam index or a stream URL; or a folder (searched
        recursively, videos included), a glob, a ``.txt`` list of paths, or a list of any of
        these, expanded as ``predict`` expands them and recognised one after the other (what
        names no usable file comes out first, as a result with ``error``; SourceError where
        nothing does). ``every`` classifies only every N frames / seconds and carries labels
        over between. ``smooth``: ema[:ALPHA], window[:N] or none; None: VIDEO_SMOOTH for
        videos, cameras and streams. ``detect_every`` runs the detector over the whole frame on every k-th
        frame (and after each cut) and follows the faces in between (see
        :class:`~.live.VideoFaces`); None: DEFAULT_VIDEO_DETECT_EVERY for videos, cameras and
        streams, 1 for photos. ``tracker`` is used for the first source; each further source
        gets a fresh one with the same settings.
        """
        if source is not None and not isinstance(source, (str, int, Path, list, tuple)):
            raise SourceError(f"stream takes a path, a webcam index, a URL or a list of them, not a "
                              f"{type(source).__name__}; for one picture in memory use recognize()")
        specs = [source] if isinstance(source, (str, int, Path)) else list(source or [])
        if not [s for s in specs if str(s).strip()]:
            raise SourceError("stream needs a source: an image, folder, glob, .txt list, video, webcam index or URL")
        sources, bad = expand_sources([str(s) for s in specs])
        for path, reason in bad:
            yield FrameResult(path, 0, 0.0, error=reason)
        template = tracker or IoUTracker()
        for i, one in enumerate(sources):
            yield from self._stream_one(one, every, smooth, detect_every, template if i == 0 else template.fresh())

    def _blazeface(self) -> BlazeFace:
        if self._proposer is None:
            self._proposer = BlazeFace()
        return self._proposer

    def _stream_one(self, source: str, every: str | Cadence | None, smooth: str | None, detect_every: int | None,
                    tracker: IoUTracker) -> Iterator[FrameResult]:
        """:meth:`stream` of one image, video, webcam or stream."""
        kind = source_kind(source)
        still = kind == "image"
        if detect_every is None:
            detect_every = 1 if still else DEFAULT_VIDEO_DETECT_EVERY
        ok, expected = RECOGNITION_RULES["detect_every"]
        if not ok(detect_every):
            raise ConfigError(f"--detect-every {detect_every!r}: expected {expected}")
        cadence = every if isinstance(every, Cadence) else Cadence.parse(every)
        smoother = Smoother.parse(VIDEO_SMOOTH if smooth is None and not still else smooth)
        min_face = self.detector.min_face
        last_classified_t = -1e9
        # A frame's faces are classified on a second thread while the next frame's faces are
        # found (decoding runs on a third, see sources.py): results come out in order, the same
        # as one thread gives, CLASSIFY_AHEAD frames later.
        with ThreadPoolExecutor(1, thread_name_prefix="mobilefer-classify") as pool:
            pending: deque[Future] = deque()
            frames = iter_frames(source)
            if kind == "video":  # a file: its later frames are there to look at
                frames = Lookahead(frames)
                ahead = _images_ahead(frames)
            else:
                ahead = None
            video = None if still else VideoFaces(self.detector, tracker, detect_every, min_face, ahead,
                                                  self._blazeface() if self.proposals else None)
            for frame in frames:
                if frame.error:
                    failed = FrameResult(frame.source, frame.index, frame.time_s, error=frame.error)
                    pending.append(pool.submit(lambda result=failed: result))
                else:
                    found = self._find_faces(frame, tracker, video, cadence, last_classified_t)
                    if found.due:  # always after a cut: its faces are new
                        last_classified_t = frame.time_s if cadence.seconds else frame.index
                    pending.append(pool.submit(self._label_frame, found, smoother))
                while len(pending) > CLASSIFY_AHEAD or (pending and pending[0].done()):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _find_faces(self, frame: Frame, tracker: IoUTracker, video: VideoFaces | None, cadence: Cadence,
                    last_t: float) -> "_FoundFaces":
        """One frame's faces (a photo: detected; a video frame: see :class:`VideoFaces`), their
        boxes as they are now, and whether all of them are due to be classified."""
        start = time.perf_counter()
        if video is None:
            tracks, detected, cut = tracker.update(self.detector.detect(frame.image)), True, False
        else:
            tracks, detected, cut = video(frame.image)
        if cut:
            due = True
        elif cadence.seconds:
            due = frame.time_s - last_t >= cadence.seconds
        else:
            due = frame.index - last_t >= cadence.frames
        return _FoundFaces(frame, tracks, [t.box for t in tracks], detected, cut, due,
                           1000 * (time.perf_counter() - start))

    def _label_frame(self, found: "_FoundFaces", smoother: Smoother | None) -> FrameResult:
        """The new faces and, when due, of the others those classified longest ago (see
        CLASSIFY_FACES), classified in frame order on one thread: only here are a track's
        emotions read or written."""
        start = time.perf_counter()
        image, tracks, boxes = found.frame.image, found.tracks, found.boxes
        chosen = [i for i, t in enumerate(tracks) if t.probs is None]
        if found.due:
            known = sorted((i for i, t in enumerate(tracks) if t.probs is not None),
                           key=lambda i: (tracks[i].classified_at, tracks[i].id))
            budget = max(CLASSIFY_FACES, -(-len(known) // CLASSIFY_WITHIN))
            gap = max(1, round(found.frame.fps / CLASSIFY_RATE))
            ready = [i for i in known if found.frame.index - tracks[i].classified_at >= gap]
            chosen += ready[: max(0, budget - len(chosen))]
        if chosen:
            crops = self.crops(image, [boxes[i] for i in chosen])
            if VIDEO_VIEWS and self.meta.tta == "flip" and smoother is not None and smoother.averages:
                probs = self._views_in_turn(crops, [tracks[i] for i in chosen], found.frame.time_s)
            else:
                probs = self.classify_crops(crops)
            for i, p in zip(chosen, probs):
                tracks[i].update_probs(p, smoother)
                tracks[i].classified_at = found.frame.index
        probs = np.stack([t.probs for t in tracks]) if tracks else np.zeros((0, self.meta.num_classes))
        faces = self.label_faces(boxes, probs, [t.id for t in tracks])
        timing = {"detect" if found.detected else "follow": found.ms,
                  "classify": 1000 * (time.perf_counter() - start)}
        frame = found.frame
        return FrameResult(frame.source, frame.index, frame.time_s, faces, image,
                           classified=found.due and len(chosen) == len(tracks), fps=frame.fps, cut=found.cut,
                           timing_ms=timing)

    def _views_in_turn(self, crops: list[np.ndarray], tracks: list[Track], time_s: float) -> np.ndarray:
        """VIDEO_VIEWS: probabilities (N, K), in order, each the mean of two views of a face: a new
        face's crop (its track keeps no view read in the last VIEW_PAIR_WITHIN s) read as it is
        and mirrored, a known one's in the view its last classification did not read, paired
        with that one (probs.paired: as both read at once). Each track keeps the view read last,
        of this frame (``time_s``)."""
        new = [k for k, t in enumerate(tracks) if t.last_view is None or time_s - t.last_view.time_s > VIEW_PAIR_WITHIN]
        known = [k for k in range(len(tracks)) if k not in new]
        sides = [not tracks[k].last_view.mirrored for k in known]
        read = self.classify_crops([crops[k] for k in new] * 2 + [crops[k] for k in known],
                                   [False] * len(new) + [True] * len(new) + sides)
        n = len(new)
        last = np.array([tracks[k].last_view.probs for k in known], dtype=np.float32).reshape(len(known), self.meta.num_classes)
        other = np.concatenate([read[n:2 * n], last])
        probs = np.empty((len(crops), self.meta.num_classes), dtype=np.float32)
        probs[new + known] = paired(np.concatenate([read[:n], read[2 * n:]]), other, self.meta)
        for j, k in enumerate(new):
            tracks[k].last_view = View(True, read[n + j], time_s)
        for j, (k, side) in enumerate(zip(known, sides)):
            tracks[k].last_view = View(side, read[2 * n + j], time_s)
        return probs


def _images_ahead(frames: Lookahead) -> Callable[[int], np.ndarray | None]:
    """k -> the image of the k-th frame after the last one given, where there is one."""
    def ahead(k: int) -> np.ndarray | None:
        frame = frames.peek(k)
        return None if frame is None or frame.error else frame.image
    return ahead


@dataclass
class _FoundFaces:
    """A frame's faces found, waiting to be classified: the tracks and their boxes on this frame
    (the tracks move on with the next frame before this one is classified)."""

    frame: Frame
    tracks: list[Track]
    boxes: list[Box]
    detected: bool
    cut: bool
    due: bool
    ms: float
