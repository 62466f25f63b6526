"""Where a video's faces are, frame by frame, at a fraction of a full-frame detection per frame.

A video (file, camera, stream) goes through :class:`VideoFaces`:

- its first frame, and the first frame after each cut, get a whole-frame detection at once
  (a new shot has new faces: nothing carries over, :class:`~.tracking.CutDetector`);
- every ``every``-th frame after that gets a whole-frame detection too, on a second thread
  beside the rest: it starts on frame *s* and its result is taken in on frame *s + DETECT_LAG*
  (always then, however fast it ran, so a run's output never depends on the machine's speed).
  Faces it found that no track had on frame *s* are looked for near there in the current frame
  and join as new faces; tracks it did not confirm end;
- in between, each face seen on the last frame is looked for near its last box
  (:mod:`.follow`), and every ``GLANCE_EVERY`` frames a thumbnail of the frame catches large
  faces coming into view.

Whole-frame searches of HD frames look at VIDEO_DETECT_PIXELS pixels (see
:func:`~.detectors.video_min_face`). ``every=1`` detects the whole frame on every frame.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from mobilefer.inference.detectors import Box, FaceDetector, video_min_face
from mobilefer.inference.follow import GLANCE_EVERY, FaceFollower
from mobilefer.inference.tracking import CutDetector, DetectionSchedule, IoUTracker, Track, iou

# A whole-frame detection started on frame s is taken in on frame s + DETECT_LAG (or before the
# next one starts): it runs on a second core beside the following of 3 frames, and a face that
# comes into view waits 3 frames longer. Measured on the shared clips against taking it in at
# once and against waiting the whole period (benchmarks/bench_live.py, docs/benchmarks.md).
DETECT_LAG = 3


@dataclass
class _Pending:
    future: Future
    frame: int  # the frame it looks at
    boxes: list[tuple[Track, Box]]  # the tracks' boxes on that frame


class VideoFaces:
    """Tracks of one video's faces; call it with each frame in order."""

    def __init__(self, detector: FaceDetector, tracker: IoUTracker, every: int, min_face: int) -> None:
        self.detector, self.tracker = detector, tracker
        self.schedule = DetectionSchedule(every)
        self.min_face = min_face
        self.follower = FaceFollower(detector, min_face)
        self.cuts = CutDetector()
        # a detector that takes one caller at a time (Haar) detects on the frame itself
        self.lag = min(every - 1, DETECT_LAG) if getattr(detector, "thread_safe", False) else 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: _Pending | None = None
        self._index = -1

    def __call__(self, image: np.ndarray) -> tuple[list[Track], bool, bool]:
        """uint8 (H, W, 3) BGR frame -> (its tracks, whether a whole-frame detection was taken
        in, whether the frame starts a new shot)."""
        self._index += 1
        cut = self.cuts(image)
        if cut:  # another shot: no box, id or emotion carries over to its faces
            self.tracker.cut()
            self._pending = None  # it looked at the last shot
        first = self._index == 0 or cut
        due = self.schedule.due(first)
        if due and (first or not self.lag):
            return self.tracker.update(self._detect(image)), True, cut
        live = self.tracker.live()
        tracks = self.tracker.moved(live, self.follower.follow(image, [t.box for t in live]))
        if self._index % GLANCE_EVERY == 0:
            tracks += self.tracker.extend(self.follower.glance(image, [t.box for t in tracks]))
        merged = False
        if self._pending and self._index >= self._pending.frame + self.lag:
            tracks, merged = self._merge(image, tracks), True
        if due:
            self._start(image, tracks)
        return tracks, merged, cut

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _detect(self, image: np.ndarray) -> list[Box]:
        # Following keeps a face down to min_face even on HD: one that walks away stays known
        # (measured: holding followed faces to the whole-frame search's size lost recall, 0.932
        # -> 0.893 on the hikers at 720p, without fewer extra faces)
        h, w = image.shape[:2]
        smallest = getattr(self.detector, "smallest_seen", self.min_face)
        return self.detector.detect(image, upscale=False, min_face=video_min_face(w, h, self.min_face, smallest))

    def _start(self, image: np.ndarray, tracks: list[Track]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="mobilefer-detect")
        self._pending = _Pending(self._pool.submit(self._detect, image), self._index,
                                 [(t, t.box) for t in tracks])

    def _merge(self, image: np.ndarray, tracks: list[Track]) -> list[Track]:
        """Take in the whole-frame detection of a few frames ago: tracks it did not see end,
        faces it found that no track had are looked for in ``image`` and join."""
        pending, self._pending = self._pending, None
        found = pending.future.result()
        confirmed = {id(t) for t, box in pending.boxes if any(iou(box, b) >= self.tracker.threshold for b in found)}
        unconfirmed = {id(t) for t, _ in pending.boxes} - confirmed
        kept = [t for t in tracks if id(t) not in unconfirmed]
        for track in tracks:
            if id(track) in unconfirmed:
                track.missed = 1  # lost: a later detection may find it again and keep its id
        new = [b for b in found if all(iou(b, box) < self.tracker.threshold for _, box in pending.boxes)]
        now = [b for b in self.follower.follow(image, new) if b is not None
               and all(iou(b, t.box) < self.tracker.threshold for t in kept)]
        return kept + self.tracker.extend(now)
