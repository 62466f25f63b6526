"""Where a video's faces are, frame by frame, at a fraction of a full-frame detection per frame.

A video (file, camera, stream) goes through :class:`VideoFaces`, which carries out on each frame's
pixels the looks its :class:`~.plan.LivePlan` asks for (the plan itself never sees a pixel):

- its first frame, and the first frame after each cut, get a whole-frame detection
  (a new shot has new faces: nothing carries over, :class:`~.tracking.CutDetector`);
- every ``every``-th frame after that gets a whole-frame detection too, taken in on that frame:
  tracks it does not confirm end, faces it finds that no track had join as new faces. One that
  finds a face not followed on the frame before brings the next one nearer, to ``every // 2``
  frames (faces keep coming into view in a crowd: see
  :meth:`~.tracking.DetectionSchedule.found`). While faces are followed, two of three of these
  look only for faces of at least ``search_fraction`` of the smallest one, at the scale that needs
  (a frame of large faces costs a quarter);
- in between, each face seen on the last frame is looked for near its last box (:mod:`.follow`;
  with the detector every ``check_every`` frames, faces taking turns, matched from its last patch
  between), a face lost on the frames just before is looked for again (``look_again``), and every
  ``glance_every`` frames a thumbnail of the frame catches large faces coming into view.

Faces a little smaller than the smallest reported (down to ``hidden`` of it) are tracked and
followed unseen, and reported from the first frame they are large enough; faces a whole-frame
search sees on weak evidence alone are followed unseen too, until a look scores them as a new
face needs. Reporting holds still at its limits, in every mode: a face seen on the frame before
is kept on weaker evidence than a new one, and one reported on the frame before stays reported
down to ``shown_down_to`` of the smallest size reported (the numbers are
:class:`~.plan.LiveRules`).

In a file, whose frames are read ahead, each scheduled whole-frame search starts as soon as the
one before it ends, on the frame it is scheduled for, on a thread of its own: it runs beside the
following of the frames between and is taken in on its own frame, with the same result as if it
ran there (its bounds come from the faces followed after the search before, either way). A
search run on the current frame and taken in frames later measures worse: no faster on a busy
2-core machine, and faces coming into view wait longer (hikers' recall 0.902 against 0.935).

A whole-frame search for faces no smaller than a mobile detector finds (:mod:`.blazeface`, the
``proposer``: 40 px and up in a 640x480 frame) takes that detector's boxes as proposals and has
the detector look at a square around each, as it follows a face: the same boxes, scores and
landmarks at a fraction of the cost. The searches for every face, the first frame's and each
cut's, stay the detector's own.

Whole-frame searches of HD frames look at VIDEO_DETECT_PIXELS pixels (see
:func:`~.detectors.video_min_face`), and so does following (:func:`~.detectors.video_scale`):
a face is reported when the whole-frame search would report it. ``every=1`` detects the whole
frame on every frame, with the same tracks and reporting rules: the reference the others are
measured against.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from mobilefer.inference.blazeface import BlazeFace
from mobilefer.inference.detectors import Box, FaceDetector
from mobilefer.inference.faces import finish_boxes
from mobilefer.inference.follow import FaceFollower, find_patch, patch_of
from mobilefer.inference.plan import RULES, Again, Follow, Glance, LivePlan, LiveRules, Look, Whole
from mobilefer.inference.tracking import CutDetector, IoUTracker, Track


def _key(box: Box) -> tuple[int, int, int, int]:
    return box.x, box.y, box.w, box.h


# A file's glances are looked for this many frames ahead (see VideoFaces._glance_ahead): one
# frame's time and more for a ~4 ms pass (a 160x120 thumbnail).
GLANCE_AHEAD = 2


class VideoFaces:
    """Tracks of one video's faces; call it with each frame in order. The looks each frame needs
    come from a :class:`~.plan.LivePlan`; this carries them out on the frame's pixels. ``ahead``
    (k -> the frame k frames after the last one given, or None) lets each scheduled whole-frame
    search start early (a file read ahead); the tracks are the same with it or without.
    ``proposer``: the mobile detector whose boxes the searches for large enough faces start from
    (None: every search is the detector's own)."""

    def __init__(self, detector: FaceDetector, tracker: IoUTracker, every: int, min_face: int,
                 ahead: Callable[[int], np.ndarray | None] | None = None, proposer: BlazeFace | None = None,
                 rules: LiveRules = RULES) -> None:
        self.detector, self.tracker, self.proposer = detector, tracker, proposer
        self.plan = LivePlan(tracker, every, min_face, detector.threshold, detector.smallest_seen, rules)
        self.ahead = ahead if detector.thread_safe else None
        self.follower = FaceFollower(detector, rules)
        self.cuts = CutDetector()
        self._early: tuple[Whole, Future] | None = None  # the next scheduled search, started early
        self._searcher: ThreadPoolExecutor | None = None  # its thread (idle between searches)
        self._glances: dict[int, Future] = {}  # frame index -> its thumbnail's faces, looked for ahead
        self._glancer: ThreadPoolExecutor | None = None  # their thread
        self._patches: dict[tuple[int, int, int, int], np.ndarray] = {}  # the faces seen last frame: box -> pixels

    @property
    def schedule(self):
        return self.plan.schedule

    def __call__(self, image: np.ndarray) -> tuple[list[Track], bool, bool]:
        """uint8 (H, W, 3) BGR frame -> (its tracks, whether the whole frame was searched, whether
        the frame starts a new shot)."""
        cut = self.cuts(image)
        if not cut and self.cuts.jumped and self._patches:
            cut = self._faces_gone(image)
        steps = self.plan.frame(image.shape[1], image.shape[0], cut)
        try:
            look = next(steps)
            while True:
                look = steps.send(self._look(look, image))
        except StopIteration as done:
            tracks, searched = done.value
        # copies of the faces' pixels, for the next frame to match them from: the caller gets
        # ``image`` back to draw on (a copy of the whole frame cost 12 % of the main thread at 1080p)
        self._patches = {_key(t.box): patch_of(image, t.box) for t in self.tracker.live()}
        if searched and self.schedule.every > 1:
            self._start_early()
        self._glance_ahead()
        return tracks, searched, cut

    def _look(self, look: Look, image: np.ndarray) -> list:
        """What ``look`` finds on ``image``."""
        if isinstance(look, Whole):
            early, self._early = self._early, None
            if early is not None and early[0] is look:
                return early[1].result()
            return self._detect(image, look.min_face, look.min_box)
        if isinstance(look, Follow):
            patches = [self._patches.get(_key(box)) for box in look.boxes]
            return self.follower.follow(image, list(look.boxes), look.min_box, patches, list(look.check))
        if isinstance(look, Again):
            return self.follower.follow(image, list(look.boxes), look.min_box, retry=False)
        assert isinstance(look, Glance)
        ahead = self._glances.pop(self.plan.index, None)
        return self.follower.glance(image, list(look.boxes), look.min_box, ahead.result() if ahead else None)

    def _faces_gone(self, image: np.ndarray) -> bool:
        """Whether no face seen on the frame before is where it was on ``image`` (its patch
        matches nowhere near its box): on a frame that jumped, a cut to another shot of the same
        set. On the shared clips without cuts no frame is both (selfie, hikers, at every size)."""
        live = self.tracker.live()
        return bool(live) and all(find_patch(self._patches[_key(t.box)], image, t.box, self.plan.rules) is None
                                  for t in live)

    def _detect(self, image: np.ndarray, min_face: int, min_box: int) -> list[Box]:
        h, w = image.shape[:2]
        if self.proposer is not None and min_face >= self.proposer.smallest_face(w, h):
            return self._proposed(image, min_face, min_box)
        return self.detector.detect(image, upscale=False, min_face=min_face, min_box=min_box,
                                    confidence=self.plan.rules.follow_confidence)

    def _proposed(self, image: np.ndarray, min_face: int, min_box: int) -> list[Box]:
        """A whole-frame search from the proposer's boxes: the detector looks at a square around
        each, as around a followed face; two looks that found one face give it once."""
        boxes = self.follower.proposed(image, self.proposer.detect(image), min_box)
        return finish_boxes(boxes, min_face, None, min_box)

    def _glance_ahead(self) -> None:
        """In a file, look for the faces of the thumbnail GLANCE_AHEAD frames on now, where that
        frame may glance (its index a multiple of ``glance_every``), on a thread of its own: the
        glance's detector pass needs the frame alone, so it runs beside the following of the
        frames before it, and its frame only filters its boxes (the same answer as looking
        there). A frame that turns out to be searched instead drops it."""
        index = self.plan.index + GLANCE_AHEAD
        for stale in [i for i in self._glances if i <= self.plan.index]:
            del self._glances[stale]
        if self.ahead is None or self.schedule.every == 1 or index % self.plan.rules.glance_every:
            return
        upcoming = self.ahead(GLANCE_AHEAD)
        if upcoming is not None:
            if self._glancer is None:
                self._glancer = ThreadPoolExecutor(1, thread_name_prefix="mobilefer-glance")
            self._glances[index] = self._glancer.submit(self.follower.glance_faces, upcoming)

    def _start_early(self) -> None:
        """Start the next scheduled whole-frame search now, on a thread of its own, where its
        frame is known already: it runs beside the following of the frames before it and is
        taken in on its own frame, as if it had run there."""
        upcoming = self.ahead(self.schedule.next) if self.ahead else None
        if upcoming is not None:
            _, look = self.plan.upcoming(upcoming.shape[1], upcoming.shape[0])
            if self._searcher is None:
                self._searcher = ThreadPoolExecutor(1, thread_name_prefix="mobilefer-search")
            self._early = (look, self._searcher.submit(self._detect, upcoming, look.min_face, look.min_box))
