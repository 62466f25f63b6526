"""IoU tracking and temporal smoothing, so a face keeps its id and its label does not flicker."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

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
