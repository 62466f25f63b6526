"""Where a video's faces are, frame by frame, at a fraction of a full-frame detection per frame.

A video (file, camera, stream) goes through :class:`VideoFaces`:

- its first frame, and the first frame after each cut, get a whole-frame detection
  (a new shot has new faces: nothing carries over, :class:`~.tracking.CutDetector`);
- every ``every``-th frame after that gets a whole-frame detection too, taken in on that frame:
  tracks it does not confirm end, faces it finds that no track had join as new faces. One that
  finds a face not followed on the frame before brings the next one nearer, to ``every // 2``
  frames (faces keep coming into view in a crowd: see
  :meth:`~.tracking.DetectionSchedule.found`). While faces are followed, two of three of these
  look only for faces of at least SEARCH_FRACTION of the smallest one, at the scale that needs
  (a frame of large faces costs a quarter);
- in between, each face seen on the last frame is looked for near its last box (:mod:`.follow`;
  with the detector every CHECK_EVERY frames, faces taking turns, matched from its last patch
  between), a face lost on the frames just before is looked for again (LOOK_AGAIN), and every
  ``GLANCE_EVERY`` frames a thumbnail of the frame catches large faces coming into view.

Faces a little smaller than the smallest reported (down to HIDDEN of it) are tracked and
followed unseen, and reported from the first frame they are large enough; faces a whole-frame
search sees on weak evidence alone are followed unseen too, until a look scores them as a new
face needs. Reporting holds still at its limits, in every mode: a face seen on the frame before
is kept on weaker evidence than a new one, and one reported on the frame before stays reported
down to SHOWN_DOWN_TO of the smallest size reported (see the constants below).

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
from mobilefer.inference.detectors import BOX_TOLERANCE, Box, FaceDetector, video_search_min_face
from mobilefer.inference.faces import finish_boxes
from mobilefer.inference.follow import FOLLOW_CONFIDENCE, GLANCE_EVERY, FaceFollower, match_patch
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
# A face reported on the frame before stays reported while its box is at least SHOWN_DOWN_TO of
# the smallest reported, and a face seen on the frame before is kept at a detector score of
# follow.FOLLOW_CONFIDENCE (a new one needs the detector's own threshold). A detector's box for a
# face at the limit comes out a pixel or two larger or smaller from one frame to the next, and its
# score moves as much: without these the face is reported on and off.
SHOWN_DOWN_TO = 0.875
# A followed face is looked for with the detector on every CHECK_EVERY-th frame (faces take
# turns, by id), and matched from its last patch on the frames between (see follow.match_patch); with
# more than CHECK_EVERY * CHECK_FACES faces, on every ceil(faces / CHECK_FACES)-th frame: a crowd
# costs about CHECK_FACES detector squares a frame, and a patch match (~0.1 ms) for each other face.
CHECK_EVERY = 2
CHECK_FACES = 4
# A face lost (its looks and its patch missed it) is looked for again near its last box on the
# frames up to LOOK_AGAIN after it was last seen, at most LOOK_AGAIN_FACES faces a frame (the
# latest lost first), and resumed where a look is as sure of it as a new face needs: a square
# that scores a face under FOLLOW_CONFIDENCE for a frame (blur, a turn) where the whole-frame
# search still sees it (hikers, 6 versions against every-frame detection: recall 0.952 -> 0.958,
# extra faces 2.1 -> 2.3 %; the 7x5 crowd 0.937 -> 0.941; a 10x7 crowd ~5 % slower).
LOOK_AGAIN = 3
LOOK_AGAIN_FACES = 2


def _unseen_box(min_face: int) -> int:
    """The smallest box kept (followed, maybe unseen) where faces of ``min_face`` are reported."""
    return int(BOX_TOLERANCE * HIDDEN * min_face)


class VideoFaces:
    """Tracks of one video's faces; call it with each frame in order. ``ahead`` (k -> the frame
    k frames after the last one given, or None) lets each scheduled whole-frame search start
    early (a file read ahead); the tracks are the same with it or without. ``proposer``: the
    mobile detector whose boxes the searches for large enough faces start from (None: every
    search is the detector's own)."""

    def __init__(self, detector: FaceDetector, tracker: IoUTracker, every: int, min_face: int,
                 ahead: Callable[[int], np.ndarray | None] | None = None, proposer: BlazeFace | None = None) -> None:
        self.detector, self.tracker, self.proposer = detector, tracker, proposer
        self.schedule = DetectionSchedule(every)
        self.min_face = min_face
        self.ahead = ahead if detector.thread_safe else None
        self.follower = FaceFollower(detector)
        self.cuts = CutDetector()
        self._index = -1
        self._searches = 0  # scheduled whole-frame searches since the last full restart
        self._smallest: int | None = None  # the smallest face followed after the last search
        self._early: tuple[int, Future] | None = None  # the next scheduled search, started early
        self._searcher: ThreadPoolExecutor | None = None  # its thread (idle between searches)
        self._previous: np.ndarray | None = None
        self._reported: set[int] = set()  # the ids reported on the last frame

    def __call__(self, image: np.ndarray) -> tuple[list[Track], bool, bool]:
        """uint8 (H, W, 3) BGR frame -> (its tracks, whether the whole frame was searched, whether
        the frame starts a new shot)."""
        # Its own copy: the caller gets ``image`` back to draw on, perhaps while the next frame
        # is matched against this one on another thread.
        previous, self._previous = self._previous, image.copy()
        self._index += 1
        cut = self.cuts(image)
        if not cut and self.cuts.jumped and previous is not None:
            cut = self._faces_gone(previous, image)
        if cut:  # another shot: no box, id or emotion carries over to its faces
            self.tracker.cut()
        whole_min = self._whole_min(image)
        if self.schedule.every == 1:  # the reference: the whole-frame search on every frame
            tracks = self._keep(self._detect(image, whole_min, _unseen_box(whole_min)))
            return self._shown(tracks, whole_min), True, cut
        restart = self._index == 0 or cut
        if self.schedule.due(restart):
            early, self._early = self._early, None
            if early is not None and early[0] == self._index and not restart:
                boxes = early[1].result()
            else:  # a cut drops the search started for a later frame: the cut's own restarts the schedule
                boxes = self._detect(image, *self._bounds(whole_min, restart))
            followed = {t.id for t in self.tracker.live()}
            tracks = self._keep(boxes)
            self.schedule.found(not restart and any(t.id not in followed and not t.held for t in tracks))
            live = [t for t in self.tracker.live() if not t.held]  # held faces set no search's bounds
            self._smallest = min(min(t.box.w, t.box.h) for t in live) if live else None
            self._start_early()
            return self._shown(tracks, whole_min), True, cut
        live = self.tracker.live()
        hidden = _unseen_box(whole_min)
        period = max(CHECK_EVERY, -(-len(live) // CHECK_FACES))
        check = [(self._index + t.id) % period == 0 for t in live]
        tracks = self.tracker.moved(live, self.follower.follow(image, [t.box for t in live], hidden, previous, check))
        threshold = self.detector.threshold or 0.0
        lost = sorted((t for t in self.tracker.tracks if 1 < t.missed <= LOOK_AGAIN), key=lambda t: t.missed)
        if lost:  # faces lost on the frames before, looked for again where they were
            lost = lost[:LOOK_AGAIN_FACES]
            found = self.follower.follow(image, [t.box for t in lost], hidden, retry=False)
            again = [(t, b) for t, b in zip(lost, found) if b is not None and b.score >= threshold]
            tracks += self.tracker.resume(again)
        for t in tracks:  # a held face a look scores as a new face needs is a face (a patch match keeps the score)
            t.held = t.held and t.box.score < threshold
        if self._index % GLANCE_EVERY == 0:
            tracks += self.tracker.extend(self.follower.glance(image, [t.box for t in tracks], hidden))
        return self._shown(tracks, whole_min), False, cut

    def _faces_gone(self, previous: np.ndarray, image: np.ndarray) -> bool:
        """Whether no face seen on the ``previous`` frame is where it was on ``image`` (its patch
        matches nowhere near its box): on a frame that jumped, a cut to another shot of the same
        set. On the shared clips without cuts no frame is both (selfie, hikers, at every size)."""
        live = self.tracker.live()
        return bool(live) and all(match_patch(previous, image, t.box) is None for t in live)

    def _whole_min(self, image: np.ndarray) -> int:
        return video_search_min_face(self.detector, image, self.min_face)

    def _keep(self, boxes: list[Box]) -> list[Track]:
        """The tracks of a whole-frame search's boxes: one scoring under the detector's own
        threshold continues a face seen on the last frame. Between searches, one that continues
        none is held: followed unseen until a look scores it as a new face needs (every-frame
        detection reports such a face from the first frame it scores that; a search that lands
        on a frame it scores 0.45 would leave it until the next one: hikers on 6 versions,
        recall 0.948 -> 0.952, extra faces 2.3 -> 2.1 %)."""
        return self.tracker.update(boxes, confidence=self.detector.threshold,
                                   hold=self.schedule.every > 1)

    def _shown(self, tracks: list[Track], whole_min: int) -> list[Track]:
        """The tracks to report: faces as large as the whole-frame search reports (``whole_min``),
        and those reported on the last frame down to SHOWN_DOWN_TO of that."""
        limit = BOX_TOLERANCE * whole_min
        shown = [t for t in tracks if not t.held and (min(t.box.w, t.box.h) >= limit or (
                 t.id in self._reported and min(t.box.w, t.box.h) >= SHOWN_DOWN_TO * limit))]
        self._reported = {t.id for t in shown}
        return shown

    def _bounds(self, whole_min: int, restart: bool) -> tuple[int, int]:
        """The smallest face the next whole-frame search looks for and the smallest box it keeps:
        after a restart, every FULL_SEARCH_EVERY-th time and when no face was followed after the
        last search, every face; else faces of SEARCH_FRACTION of the smallest followed then."""
        self._searches = 0 if restart else self._searches + 1
        if not restart and self._smallest is not None and self._searches % FULL_SEARCH_EVERY:
            whole_min = max(whole_min, int(SEARCH_FRACTION * self._smallest))
        return whole_min, _unseen_box(whole_min)

    def _detect(self, image: np.ndarray, min_face: int, min_box: int) -> list[Box]:
        h, w = image.shape[:2]
        if self.proposer is not None and min_face >= self.proposer.smallest_face(w, h):
            return self._proposed(image, min_face, min_box)
        return self.detector.detect(image, upscale=False, min_face=min_face, min_box=min_box,
                                    confidence=FOLLOW_CONFIDENCE)

    def _proposed(self, image: np.ndarray, min_face: int, min_box: int) -> list[Box]:
        """A whole-frame search from the proposer's boxes: the detector looks at a square around
        each, as around a followed face; two looks that found one face give it once."""
        boxes = self.follower.proposed(image, self.proposer.detect(image), min_box)
        return finish_boxes(boxes, min_face, None, min_box)

    def _start_early(self) -> None:
        """Start the next scheduled whole-frame search now, on a thread of its own, where its
        frame is known already: it runs beside the following of the frames before it and is
        taken in on its own frame, as if it had run there."""
        upcoming = self.ahead(self.schedule.next) if self.ahead else None
        if upcoming is not None:
            bounds = self._bounds(self._whole_min(upcoming), restart=False)
            if self._searcher is None:
                self._searcher = ThreadPoolExecutor(1, thread_name_prefix="mobilefer-search")
            self._early = (self._index + self.schedule.next, self._searcher.submit(self._detect, upcoming, *bounds))
