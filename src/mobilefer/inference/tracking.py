"""IoU tracking, temporal smoothing and the detection schedule of a video: a face keeps its id,
its label does not flicker, and the detector runs only when it may find something new."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from mobilefer.data.images import shrink
from mobilefer.errors import ConfigError
from mobilefer.inference.faces import Box, iou


def iou_matrix(a: list[Box], b: list[Box]) -> np.ndarray:
    """``iou(a[i], b[j])`` for every pair, as a (len(a), len(b)) array of the same values: a
    crowd's tracks are matched in one step (50 faces: ~0.2 ms against ~6 ms pair by pair)."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    p = np.array([(box.x, box.y, box.w, box.h) for box in a], np.float64)[:, None, :]
    q = np.array([(box.x, box.y, box.w, box.h) for box in b], np.float64)[None, :, :]
    w = np.minimum(p[..., 0] + p[..., 2], q[..., 0] + q[..., 2]) - np.maximum(p[..., 0], q[..., 0])
    h = np.minimum(p[..., 1] + p[..., 3], q[..., 1] + q[..., 3]) - np.maximum(p[..., 1], q[..., 1])
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    union = p[..., 2] * p[..., 3] + q[..., 2] * q[..., 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class Smoother:
    """``ema:ALPHA`` (weight of the newest frame) or ``window:N`` (mean of the last N)."""

    kind: str = "ema"
    value: float = 0.4

    @classmethod
    def parse(cls, spec: str | None) -> "Smoother | None":
        if not spec or spec == "none":
            return None
        kind, _, value = spec.partition(":")
        try:
            if kind == "ema":
                alpha = float(value) if value else 0.4
                if 0 < alpha <= 1:
                    return cls("ema", alpha)
            elif kind == "window":
                size = int(value) if value else 5
                if size >= 1:
                    return cls("window", size)
        except ValueError:
            pass
        raise ConfigError(f"--smooth {spec!r}: expected ema[:ALPHA] with 0 < ALPHA <= 1, or window[:N] with N >= 1")

    @property
    def averages(self) -> bool:
        """Whether a face's probabilities mix more than its newest classification."""
        return self.value < 1 if self.kind == "ema" else self.value >= 2


class View(NamedTuple):
    """A face read in one view (recognizer.VIDEO_VIEWS): mirrored or as it is, its probabilities,
    and the time of its frame in seconds."""

    mirrored: bool
    probs: np.ndarray
    time_s: float


@dataclass
class Track:
    id: int
    box: Box
    probs: np.ndarray | None = None  # smoothed class probabilities
    history: deque = field(default_factory=deque)
    missed: int = 0
    held: bool = False  # a face seen only on weak evidence so far: followed, not reported
    classified_at: int = -1  # the video frame its face was last classified on
    last_view: View | None = None  # its last classification's one view (recognizer.VIDEO_VIEWS)

    def update_probs(self, probs: np.ndarray, smoother: Smoother | None) -> np.ndarray:
        if smoother is None or self.probs is None:
            self.probs = probs
        elif smoother.kind == "ema":
            self.probs = smoother.value * probs + (1 - smoother.value) * self.probs
        if smoother is not None and smoother.kind == "window":
            self.history.append(probs)
            while len(self.history) > smoother.value:
                self.history.popleft()
            self.probs = np.mean(self.history, axis=0)
        return self.probs


class IoUTracker:
    """Greedy IoU matching of new boxes to live tracks; tracks unseen for ``max_missed`` frames end."""

    def __init__(self, threshold: float = 0.3, max_missed: int = 30) -> None:
        self.threshold, self.max_missed = threshold, max_missed
        self.tracks: list[Track] = []
        self._next_id = 0

    def fresh(self) -> "IoUTracker":
        """A new tracker with the same settings and no tracks."""
        return type(self)(self.threshold, self.max_missed)

    def cut(self) -> None:
        """The scene changed: every track ends, so each face after a cut gets a new id (ids keep
        counting up, never reused) and carries no earlier face's smoothed emotions."""
        self.tracks = []

    def live(self) -> list[Track]:
        """The tracks whose face was seen on the last frame."""
        return [t for t in self.tracks if t.missed == 0]

    def moved(self, tracks: list[Track], boxes: list[Box | None]) -> list[Track]:
        """Each of ``tracks`` (seen last frame) found again at its box, or not (None); returns
        the tracks seen now, in order. Two that found the same face: the older one keeps it."""
        found = [i for i, box in enumerate(boxes) if box is not None]
        overlap = iou_matrix([boxes[i] for i in found], [boxes[i] for i in found])
        kept: list[int] = []
        for k, i in enumerate(found):
            if not kept or overlap[k, kept].max() < 0.5:
                kept.append(k)
                tracks[i].box = boxes[i]
        seen = [tracks[found[k]] for k in kept]
        ids = {id(track) for track in seen}
        for track in self.tracks:
            track.missed = 0 if id(track) in ids else track.missed + 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return seen

    def resume(self, found: list[tuple[Track, Box]]) -> list[Track]:
        """Lost tracks whose faces were found again, each at its box (after :meth:`moved`); one
        overlapping a face seen now (IoU >= 0.5) stays lost. Returns those resumed, in order."""
        out: list[Track] = []
        for track, box in found:
            if all(iou(box, other.box) < 0.5 for other in self.tracks if other.missed == 0):
                track.box, track.missed = box, 0
                out.append(track)
        return out

    def extend(self, boxes: list[Box]) -> list[Track]:
        """Faces found this frame besides the live tracks (after :meth:`moved`): each continues a
        track lost within ``max_missed`` frames that it overlaps, or starts a new one."""
        lost = [t for t in self.tracks if t.missed > 0]
        out = []
        for box in boxes:
            best = max(lost, key=lambda t: iou(t.box, box), default=None)
            if best is not None and iou(best.box, box) >= self.threshold:
                lost.remove(best)
            else:
                best = Track(self._next_id, box)
                self._next_id += 1
                self.tracks.append(best)
            best.box, best.missed = box, 0
            out.append(best)
        return out

    def update(self, boxes: list[Box], confidence: float | None = None, hold: bool = False) -> list[Track]:
        """The track for each box, in the boxes' order (new ids for unmatched boxes). With
        ``confidence``, a box scoring under it only continues a track seen on the last frame; one
        that does not is left out, or with ``hold`` starts a held track (see Track.held), which
        stays held while its boxes score under ``confidence``."""
        weak = {bi for bi, b in enumerate(boxes) if confidence is not None and b.score < confidence}
        overlap = iou_matrix([t.box for t in self.tracks], boxes)
        close = zip(*(ix.tolist() for ix in np.nonzero(overlap >= self.threshold)))
        pairs = sorted(((float(overlap[ti, bi]), ti, bi) for ti, bi in close
                        if bi not in weak or self.tracks[ti].missed == 0), reverse=True)
        matched: dict[int, Track] = {}
        used: set[int] = set()
        for _, ti, bi in pairs:
            if ti in used or bi in matched:
                continue
            used.add(ti)
            matched[bi] = self.tracks[ti]
        for ti, track in enumerate(self.tracks):
            if ti not in used:
                track.missed += 1
        out = []
        for bi, box in enumerate(boxes):
            track = matched.get(bi)
            if track is None and bi in weak and not hold:
                continue
            if track is None:
                track = Track(self._next_id, box, held=bi in weak)
                self._next_id += 1
                self.tracks.append(track)
            track.box, track.missed = box, 0
            track.held = track.held and bi in weak
            out.append(track)
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return out


class CutDetector:
    """Hard cuts between consecutive frames of a video (an edit from one shot to another).

    A cut changes the whole picture at once: a 64x36 gray thumbnail differs from the last one
    by ``change`` grey levels on average, three times (``jump``) more than the frame before
    differed from its own predecessor (camera motion and shake change every frame alike), and
    the brightness histogram moves (Bhattacharyya distance over ``hist``). On the shared real
    clips this found all 7 cuts of the webcam montage, none in the hikers' walk and 1 during
    the selfie's whip pans (benchmarks/bench_live.py, docs/benchmarks.md).

    A cut within one set (talking heads: the background stays, another person sits where the
    last one sat) changes too little of the picture for that. It still jumps: ``jumped`` says
    the frame changed ``jump`` times as much as the one before and by over ``shift`` grey levels;
    :class:`~.live.VideoFaces` calls such a frame a cut where no face followed is where it was.
    """

    SIZE = (64, 36)

    def __init__(self, change: float = 12.0, jump: float = 3.0, hist: float = 0.12, shift: float = 2.0) -> None:
        self.change, self.jump, self.hist, self.shift = change, jump, hist, shift
        self.jumped = False  # the last frame jumped (see above)
        self._thumb: np.ndarray | None = None
        self._hist: np.ndarray | None = None
        self._diff: float | None = None

    def __call__(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` (uint8 BGR or gray) starts a new shot."""
        small = shrink(frame, *self.SIZE)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        hist = cv2.normalize(cv2.calcHist([gray], [0], None, [32], [0, 256]), None)
        thumb = gray.astype(np.float32)
        cut = False
        if self._thumb is not None:
            diff = float(np.abs(thumb - self._thumb).mean())
            calm_before = self._diff is None or diff > self.jump * self._diff
            cut = (diff > self.change and calm_before
                   and cv2.compareHist(self._hist, hist, cv2.HISTCMP_BHATTACHARYYA) > self.hist)
            self.jumped = self._diff is not None and calm_before and diff > self.shift
            self._diff = diff
        self._thumb, self._hist = thumb, hist
        return cut


class DetectionSchedule:
    """When a video's whole frame goes through the detector: on its first frame, at a cut (a new
    shot has new faces), and ``every`` frames after the last full detection, or half as many
    after one that found faces arriving (see :meth:`found`). In between, each tracked face is
    looked for near its last box (:mod:`.follow`), so motion (people walking, a shaking or
    panning camera) costs no full-frame detection; a face that comes into view is found by the
    next full detection, at most ``every`` frames later. ``every=1`` detects on every frame.
    """

    def __init__(self, every: int = 1) -> None:
        self.every = every
        self.next = every  # frames from the last full detection to the next one
        self._since: int | None = None

    def due(self, cut: bool = False) -> bool:
        """Whether the next frame gets a full-frame detection (``cut``: it starts a new shot)."""
        if cut or self._since is None or self._since + 1 >= self.next:
            self._since = 0
            return True
        self._since += 1
        return False

    def found(self, arriving: bool) -> None:
        """After a full detection: whether it found a face that was not followed on the frame
        before (one that came into view since the detection before). Where faces keep arriving
        (a crowd, a pan over a group) the next detection comes after ``every // 2`` frames, so
        each waits half as long to be found; elsewhere after ``every``."""
        self.next = max(1, self.every // 2) if arriving else self.every
