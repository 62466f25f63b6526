"""IoU tracking, temporal smoothing and the detection schedule of a video: a face keeps its id,
its label does not flicker, and the detector runs only when it may find something new."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from mobilefer.errors import ConfigError
from mobilefer.inference.detectors import Box


def iou(a: Box, b: Box) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


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


@dataclass
class Track:
    id: int
    box: Box
    probs: np.ndarray | None = None  # smoothed class probabilities
    history: deque = field(default_factory=deque)
    missed: int = 0

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

    def __init__(self, threshold: float = 0.3, max_missed: int = 15) -> None:
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

    def update(self, boxes: list[Box]) -> list[Track]:
        """The track for each box, in the boxes' order (new ids for unmatched boxes)."""
        pairs = sorted(
            ((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
            reverse=True,
        )
        matched: dict[int, Track] = {}
        used: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < self.threshold:
                break
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
            if track is None:
                track = Track(self._next_id, box)
                self._next_id += 1
                self.tracks.append(track)
            track.box, track.missed = box, 0
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
    the selfie's whip pans (benchmarks/bench_live_clips.py, docs/benchmarks.md).
    """

    SIZE = (64, 36)

    def __init__(self, change: float = 12.0, jump: float = 3.0, hist: float = 0.12) -> None:
        self.change, self.jump, self.hist = change, jump, hist
        self._thumb: np.ndarray | None = None
        self._hist: np.ndarray | None = None
        self._diff: float | None = None

    def __call__(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` (uint8 BGR or gray) starts a new shot."""
        small = cv2.resize(frame, self.SIZE, interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        hist = cv2.normalize(cv2.calcHist([gray], [0], None, [32], [0, 256]), None)
        thumb = gray.astype(np.float32)
        cut = False
        if self._thumb is not None:
            diff = float(np.abs(thumb - self._thumb).mean())
            calm_before = self._diff is None or diff > self.jump * self._diff
            cut = (diff > self.change and calm_before
                   and cv2.compareHist(self._hist, hist, cv2.HISTCMP_BHATTACHARYYA) > self.hist)
            self._diff = diff
        self._thumb, self._hist = thumb, hist
        return cut


class DetectionSchedule:
    """When to run the detector on a video: on every ``every``-th frame, whenever no face is
    tracked, and at once when the picture changes outside the tracked faces (a cut, a face
    coming in, a face moving out of its box). ``every=1`` detects on every frame.

    The change test compares a 32x18 gray thumbnail with the one of the last detection,
    cell by cell (a cell is 1/32 of the width); cells under a tracked face (grown by a cell)
    do not count, so talking does not trigger it and walking does.
    """

    GRID = (32, 18)

    def __init__(self, every: int = 1, change: float = 24.0) -> None:
        self.every, self.change = every, change
        self._last: np.ndarray | None = None
        self._since = 0

    def _thumb(self, frame: np.ndarray) -> np.ndarray:
        small = cv2.resize(frame, self.GRID, interpolation=cv2.INTER_AREA).astype(np.float32)
        return small.mean(axis=2) if small.ndim == 3 else small

    def due(self, frame: np.ndarray, boxes: list[Box]) -> bool:
        """Whether to detect on ``frame`` (uint8 BGR), given the boxes tracked so far."""
        self._since += 1
        if self.every <= 1 or not boxes or self._last is None or self._since >= self.every:
            return True
        diff = np.abs(self._thumb(frame) - self._last)
        gw, gh = self.GRID
        h, w = frame.shape[:2]
        for b in boxes:
            x0, y0 = max(0, int(b.x * gw / w) - 1), max(0, int(b.y * gh / h) - 1)
            x1, y1 = int((b.x + b.w) * gw / w) + 2, int((b.y + b.h) * gh / h) + 2
            diff[y0:y1, x0:x1] = 0
        return bool(diff.max() > self.change)

    def detected(self, frame: np.ndarray) -> None:
        """The detector ran on ``frame``: the next change test compares against it."""
        self._since = 0
        if self.every > 1:
            self._last = self._thumb(frame)
