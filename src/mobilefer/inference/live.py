"""Where a video's faces are, frame by frame, at a fraction of a full-frame detection per frame.

A video (file, camera, stream) goes through :class:`VideoFaces`:

- its first frame, and the first frame after each cut, get a whole-frame detection
  (a new shot has new faces: nothing carries over, :class:`~.tracking.CutDetector`);
- every ``every``-th frame after that gets a whole-frame detection too, taken in on that frame:
  tracks it does not confirm end, faces it finds that no track had join as new faces;
- in between, each face seen on the last frame is looked for near its last box
  (:mod:`.follow`), and every ``GLANCE_EVERY`` frames a thumbnail of the frame catches large
  faces coming into view.

Running the whole-frame detection on a second thread and taking it in 3 frames later was
measured against this on the shared clips (docs/benchmarks.md): no faster on a busy 2-core
machine, and faces coming into view waited 3 frames longer (hikers' recall 0.902 against 0.935).

Whole-frame searches of HD frames look at VIDEO_DETECT_PIXELS pixels (see
:func:`~.detectors.video_min_face`). ``every=1`` detects the whole frame on every frame.
"""
from __future__ import annotations

import numpy as np

from mobilefer.inference.detectors import Box, FaceDetector, video_min_face
from mobilefer.inference.follow import GLANCE_EVERY, FaceFollower
from mobilefer.inference.tracking import CutDetector, DetectionSchedule, IoUTracker, Track


class VideoFaces:
    """Tracks of one video's faces; call it with each frame in order."""

    def __init__(self, detector: FaceDetector, tracker: IoUTracker, every: int, min_face: int) -> None:
        self.detector, self.tracker = detector, tracker
        self.schedule = DetectionSchedule(every)
        self.min_face = min_face
        self.follower = FaceFollower(detector, min_face)
        self.cuts = CutDetector()
        self._index = -1

    def __call__(self, image: np.ndarray) -> tuple[list[Track], bool, bool]:
        """uint8 (H, W, 3) BGR frame -> (its tracks, whether the whole frame was searched, whether
        the frame starts a new shot)."""
        self._index += 1
        cut = self.cuts(image)
        if cut:  # another shot: no box, id or emotion carries over to its faces
            self.tracker.cut()
        if self.schedule.due(self._index == 0 or cut):
            return self.tracker.update(self._detect(image)), True, cut
        live = self.tracker.live()
        tracks = self.tracker.moved(live, self.follower.follow(image, [t.box for t in live]))
        if self._index % GLANCE_EVERY == 0:
            tracks += self.tracker.extend(self.follower.glance(image, [t.box for t in tracks]))
        return tracks, False, cut

    def _detect(self, image: np.ndarray) -> list[Box]:
        # Following keeps a face down to min_face even on HD: one that walks away stays known
        # (measured: holding followed faces to the whole-frame search's size lost recall, 0.932
        # -> 0.893 on the hikers at 720p, without fewer extra faces)
        h, w = image.shape[:2]
        smallest = getattr(self.detector, "smallest_seen", self.min_face)
        return self.detector.detect(image, upscale=False, min_face=video_min_face(w, h, self.min_face, smallest))
