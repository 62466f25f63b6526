"""Where a video's faces are, frame by frame, at a fraction of a full-frame detection per frame.

A video (file, camera, stream) goes through :class:`VideoFaces`:

- its first frame, and the first frame after each cut, get a whole-frame detection
  (a new shot has new faces: nothing carries over, :class:`~.tracking.CutDetector`);
- every ``every``-th frame after that gets a whole-frame detection too, taken in on that frame:
  tracks it does not confirm end, faces it finds that no track had join as new faces. While
  faces are followed, two of three of these look only for faces of at least SEARCH_FRACTION of
  the smallest one, at the scale that needs (a frame of large faces costs a quarter);
- in between, each face seen on the last frame is looked for near its last box
  (:mod:`.follow`), and every ``GLANCE_EVERY`` frames a thumbnail of the frame catches large
  faces coming into view.

Faces a little smaller than the smallest reported (down to HIDDEN of it) are tracked and
followed unseen, and reported from the first frame they are large enough.

Running the whole-frame detection on a second thread and taking it in 3 frames later was
measured against this on the shared clips (docs/benchmarks.md): no faster on a busy 2-core
machine, and faces coming into view waited 3 frames longer (hikers' recall 0.902 against 0.935).

Whole-frame searches of HD frames look at VIDEO_DETECT_PIXELS pixels (see
:func:`~.detectors.video_min_face`), and so does following (:func:`~.detectors.video_scale`):
a face is reported when the whole-frame search would report it. ``every=1`` detects the whole
frame on every frame: the reference the others are measured against.
"""
from __future__ import annotations

import numpy as np

from mobilefer.inference.detectors import BOX_TOLERANCE, Box, FaceDetector, video_min_face
from mobilefer.inference.follow import GLANCE_EVERY, FaceFollower
from mobilefer.inference.tracking import CutDetector, DetectionSchedule, IoUTracker, Track

# A scheduled whole-frame search while faces are followed looks for faces down to SEARCH_FRACTION
# of the smallest one followed; every FULL_SEARCH_EVERY-th search (about once a second at 30
# frames/s), the first frame, each cut and a frame with no face followed look for every face.
SEARCH_FRACTION = 0.5
FULL_SEARCH_EVERY = 3
# Faces down to HIDDEN of the smallest reported are tracked and followed but not reported: one
# that grows into view (someone walking towards the camera) is reported on the first frame it is
# large enough, instead of at the next whole-frame search, and one whose box comes out a pixel
# too small for a frame is not lost (hikers, 640x480: recall 0.929 -> 0.960).
HIDDEN = 0.75


def _unseen_box(min_face: int) -> int:
    """The smallest box kept (followed, maybe unseen) where faces of ``min_face`` are reported."""
    return int(BOX_TOLERANCE * HIDDEN * min_face)


class VideoFaces:
    """Tracks of one video's faces; call it with each frame in order."""

    def __init__(self, detector: FaceDetector, tracker: IoUTracker, every: int, min_face: int) -> None:
        self.detector, self.tracker = detector, tracker
        self.schedule = DetectionSchedule(every)
        self.min_face = min_face
        self.follower = FaceFollower(detector)
        self.cuts = CutDetector()
        self._index = -1
        self._searches = 0

    def __call__(self, image: np.ndarray) -> tuple[list[Track], bool, bool]:
        """uint8 (H, W, 3) BGR frame -> (its tracks, whether the whole frame was searched, whether
        the frame starts a new shot)."""
        self._index += 1
        cut = self.cuts(image)
        if cut:  # another shot: no box, id or emotion carries over to its faces
            self.tracker.cut()
        h, w = image.shape[:2]
        whole_min = video_min_face(w, h, self.min_face, getattr(self.detector, "smallest_seen", self.min_face))
        if self.schedule.every == 1:  # the reference: the detector alone, on every frame
            return self.tracker.update(self.detector.detect(image, upscale=False, min_face=whole_min)), True, cut
        if self.schedule.due(self._index == 0 or cut):
            tracks = self.tracker.update(self._detect(image, whole_min, restart=self._index == 0 or cut))
            return self._shown(tracks, whole_min), True, cut
        live = self.tracker.live()
        hidden = _unseen_box(whole_min)
        tracks = self.tracker.moved(live, self.follower.follow(image, [t.box for t in live], hidden))
        if self._index % GLANCE_EVERY == 0:
            tracks += self.tracker.extend(self.follower.glance(image, [t.box for t in tracks], hidden))
        return self._shown(tracks, whole_min), False, cut

    @staticmethod
    def _shown(tracks: list[Track], whole_min: int) -> list[Track]:
        """The tracks to report: faces as large as the whole-frame search reports (``whole_min``)."""
        return [t for t in tracks if min(t.box.w, t.box.h) >= BOX_TOLERANCE * whole_min]

    def _detect(self, image: np.ndarray, min_face: int, restart: bool) -> list[Box]:
        self._searches = 0 if restart else self._searches + 1
        live = self.tracker.live()
        if live and self._searches % FULL_SEARCH_EVERY:
            min_face = max(min_face, int(SEARCH_FRACTION * min(min(t.box.w, t.box.h) for t in live)))
        return self.detector.detect(image, upscale=False, min_face=min_face, min_box=_unseen_box(min_face))
