"""The live plan of a video's faces, apart from the pixels: which looks each frame needs, and how
the boxes they find become tracks.

:class:`LivePlan` knows frame sizes, boxes and tracks, never pixels. Each frame
(:meth:`LivePlan.frame`, a generator) asks for looks one step at a time and is sent the boxes
each one found:

- :class:`Whole`: a whole-frame search for faces down to ``min_face`` px, keeping boxes of
  ``min_box`` px and up; on the first frame, at a cut and every ``every`` frames
  (:class:`~.tracking.DetectionSchedule`);
- :class:`Follow`: between searches, each face seen on the frame before looked for near its
  last box, with the detector where ``check`` says so, else matched from its patch first;
- :class:`Again`: faces lost on the frames just before, looked for once more where they were;
- :class:`Glance`: every ``glance_every`` frames, a thumbnail of the frame, for large faces
  coming into view that overlap none of ``boxes``.

:class:`~.live.VideoFaces` carries the looks out on a video's frames; the browser page's
``plan.js`` is this module written again, name for name, and ``camera.js`` carries its looks
out on a camera's frames. A trace of Python's looks and their boxes, replayed through the page's
plan, gives the same looks and tracks (tests/test_plan_trace.py).

A track is in one of four states (:meth:`LivePlan.state`): ``new`` (seen, not reported yet:
smaller than reported faces, down to ``hidden`` of them), ``held`` (a search saw it on weak
evidence alone: followed, not reported, until a look scores it as a new face needs), ``shown``
(reported on this frame) and ``lost`` (not seen on this frame; it ends ``max_missed`` frames on).

Every number of the plan is in :class:`LiveRules`; ``site.json`` is made from :data:`RULES`.
"""
from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from mobilefer.inference.faces import BOX_TOLERANCE, Box, video_min_face
from mobilefer.inference.tracking import DetectionSchedule, IoUTracker, Track


@dataclass(frozen=True)
class LiveRules:
    """The live plan's numbers and its looks', each with the measurement that chose it."""

    # A scheduled whole-frame search while faces are followed looks for faces down to
    # search_fraction of the smallest one followed; every full_search_every-th search (about
    # once a second at 30 frames/s), the first frame, each cut and a frame with no face followed
    # look for every face.
    search_fraction: float = 0.5
    full_search_every: int = 3
    # Faces down to hidden of the smallest reported are tracked and followed but not reported: one
    # that grows into view (someone walking towards the camera) is reported on the first frame it
    # is large enough, instead of at the next whole-frame search, and one whose box comes out a
    # pixel too small for a frame is not lost (hikers, 640x480: recall 0.929 -> 0.960).
    hidden: float = 0.75
    # A face reported on the frame before stays reported while its box is at least shown_down_to
    # of the smallest reported, and a face seen on the frame before is kept at a detector score of
    # follow_confidence (a new one needs the detector's own threshold). A detector's box for
    # a face at the limit comes out a pixel or two larger or smaller from one frame to the next,
    # and its score moves as much: without these the face is reported on and off.
    shown_down_to: float = 0.875
    # A followed face is looked for with the detector on every check_every-th frame (faces take
    # turns, by id), and matched from its last patch on the frames between (follow.match_patch);
    # with more than check_every * check_faces faces, on every ceil(faces / check_faces)-th
    # frame: a crowd costs about check_faces detector squares a frame, and a patch match
    # (~0.1 ms) for each other face.
    check_every: int = 2
    check_faces: int = 4
    # A face lost (its looks and its patch missed it) is looked for again near its last box on
    # the frames up to look_again after it was last seen, at most look_again_faces faces a frame
    # (the latest lost first), and resumed where a look is as sure of it as a new face needs: a
    # square that scores a face under follow_confidence for a frame (blur, a turn) where the
    # whole-frame search still sees it (hikers, 6 versions against every-frame detection: recall
    # 0.952 -> 0.958, extra faces 2.1 -> 2.3 %; the 7x5 crowd 0.937 -> 0.941; a 10x7 crowd ~5 % slower).
    look_again: int = 3
    look_again_faces: int = 2
    # Between searches the whole frame is glanced at every glance_every frames, in a copy
    # glance_width px wide: a large face coming into view (after a pan, someone stepping close)
    # is found within glance_every frames instead of at the next search, for the cost of a
    # thumbnail (every 3rd frame against every 2nd, shared 640x480 clips in one run: 4-6 % more
    # frames/s, the same recall; every 4th lost the selfie's recall, 0.981 -> 0.963).
    glance_every: int = 3
    glance_width: int = 160

    # How a look is made (follow.py carries the looks out). A face is looked for in a square
    # region times its side (a face may move its side per frame) and at least input px across
    # as the detector sees it (the context a face needs).
    region: float = 3.0
    input: int = 96
    # A face that was there a frame ago is kept on weaker evidence than a new one (CenterFace's
    # score 0.4 instead of 0.5): a hand over the face or motion blur does not drop it. Whole-frame
    # searches keep a known face on the same evidence.
    follow_confidence: float = 0.4
    # A window of the whole-frame search's pixels starts on that search's grid px lattice
    # (CenterFace's coarsest stride): there the detector computes nearly what the whole-frame
    # search computes, so a face at the edge of the detector's threshold or size limit is seen as
    # that search would see it (13 versions of the hikers, 512x384 to 1920x1080, some mirrored,
    # against every-frame detection: recall 0.950 -> 0.957 on average, higher on 9, lower on 3,
    # extra faces 2.1 % either way, at the same cost; benchmarks/live_agreement.py). A face the
    # detector misses in its input px square is looked for once more in a retry_input px one
    # (hikers 640x480: recall 0.968 -> 0.983, for ~1 % more CPU).
    retry_input: int = 128
    grid: int = 32
    # On the frames a face is not looked for with the detector (check_every), its last patch is
    # matched in a window match_margin of its side wider on each edge, both reduced by a whole
    # step so the face is about match_side px across (normalised cross-correlation: ~0.1 ms
    # against ~1.5 for the detector); a match under match_min (a hand over the face, a turn, a
    # face gone) and a face at the window's edge are looked for with the detector at once.
    match_side: int = 24
    match_margin: float = 0.5
    match_min: float = 0.8


RULES = LiveRules()


@dataclass(frozen=True)
class Whole:
    """Search the whole frame for faces of ``min_face`` px and up; keep boxes of ``min_box`` px and up."""

    min_face: int
    min_box: int


@dataclass(frozen=True)
class Follow:
    """Each of ``boxes`` (faces seen on the frame before) near where it was: with the detector
    where ``check``, else matched from its patch on the frame before first; its box now, or None."""

    boxes: tuple[Box, ...]
    check: tuple[bool, ...]
    min_box: int


@dataclass(frozen=True)
class Again:
    """Each of ``boxes`` (faces lost on the frames just before) looked for once more where it was,
    with the detector only; its box now, or None."""

    boxes: tuple[Box, ...]
    min_box: int


@dataclass(frozen=True)
class Glance:
    """Large faces in a thumbnail of the frame (boxes of ``min_box`` px and up) that overlap none
    of ``boxes`` (the faces followed already)."""

    boxes: tuple[Box, ...]
    min_box: int


Look = Whole | Follow | Again | Glance
# A frame of the plan: it yields looks, is sent each look's boxes, and returns the frame's
# reported tracks and whether the whole frame was searched.
FrameSteps = Generator[Look, list, tuple[list[Track], bool]]


class LivePlan:
    """The looks of one video's frames and the tracks they give (see the module's text).
    ``threshold``: the detector's score for a new face (None: any); ``smallest_seen``: the
    smallest face it sees, in px."""

    def __init__(self, tracker: IoUTracker, every: int, min_face: int, threshold: float | None,
                 smallest_seen: int, rules: LiveRules = RULES) -> None:
        self.tracker, self.rules = tracker, rules
        self.schedule = DetectionSchedule(every)
        self.min_face, self.threshold, self.smallest_seen = min_face, threshold, smallest_seen
        self.index = -1
        self.searches = 0  # scheduled whole-frame searches since the last full restart
        self.smallest: int | None = None  # the smallest face followed after the last search
        self.early: tuple[int, Whole] | None = None  # the next scheduled search, asked for early
        self.shown: set[int] = set()  # the ids reported on the last frame

    def unseen_box(self, min_face: int) -> int:
        """The smallest box kept (followed, maybe unseen) where faces of ``min_face`` are reported."""
        return int(BOX_TOLERANCE * self.rules.hidden * min_face)

    def whole_min(self, width: int, height: int) -> int:
        """The smallest face a whole-frame search of a ``width`` x ``height`` frame looks for."""
        return video_min_face(width, height, self.min_face, self.smallest_seen)

    def state(self, track: Track) -> str:
        """``track``'s state after the last frame: new, held, shown or lost."""
        if track.missed:
            return "lost"
        return "held" if track.held else "shown" if track.id in self.shown else "new"

    def frame(self, width: int, height: int, cut: bool = False) -> FrameSteps:
        """The next frame's looks (yielded; send each one's boxes back) and its reported tracks
        and whether the whole frame was searched (returned). ``cut``: the frame starts a new
        shot, so no box, id or emotion carries over to its faces."""
        self.index += 1
        if cut:
            self.tracker.cut()
        whole_min = self.whole_min(width, height)
        hidden = self.unseen_box(whole_min)
        if self.schedule.every == 1:  # the reference: the whole-frame search on every frame
            tracks = self._keep((yield Whole(whole_min, hidden)))
            return self._shown(tracks, whole_min), True
        restart = self.index == 0 or cut
        if self.schedule.due(restart):
            early, self.early = self.early, None
            if early is not None and early[0] == self.index and not restart:
                look = early[1]
            else:  # a cut drops the search asked for a later frame: the cut's own restarts the schedule
                look = Whole(*self._bounds(whole_min, restart))
            boxes = yield look
            followed = {t.id for t in self.tracker.live()}
            tracks = self._keep(boxes)
            self.schedule.found(not restart and any(t.id not in followed and not t.held for t in tracks))
            live = [t for t in self.tracker.live() if not t.held]  # held faces set no search's bounds
            self.smallest = min(min(t.box.w, t.box.h) for t in live) if live else None
            return self._shown(tracks, whole_min), True
        live = self.tracker.live()
        period = max(self.rules.check_every, -(-len(live) // self.rules.check_faces))
        check = tuple((self.index + t.id) % period == 0 for t in live)
        found = yield Follow(tuple(t.box for t in live), check, hidden)
        tracks = self.tracker.moved(live, found)
        threshold = self.threshold or 0.0
        lost = sorted((t for t in self.tracker.tracks if 1 < t.missed <= self.rules.look_again),
                      key=lambda t: t.missed)[:self.rules.look_again_faces]
        if lost:  # faces lost on the frames before, looked for again where they were
            found = yield Again(tuple(t.box for t in lost), hidden)
            tracks += self.tracker.resume([(t, b) for t, b in zip(lost, found) if b is not None and b.score >= threshold])
        for t in tracks:  # a held face a look scores as a new face needs is a face (a patch match keeps the score)
            t.held = t.held and t.box.score < threshold
        if self.index % self.rules.glance_every == 0:
            tracks += self.tracker.extend((yield Glance(tuple(t.box for t in tracks), hidden)))
        return self._shown(tracks, whole_min), False

    def upcoming(self, width: int, height: int) -> tuple[int, Whole]:
        """The next scheduled whole-frame search (in how many frames, and its look), its bounds
        fixed now from the faces followed after the last search, as they would be on its frame: a
        caller that has that frame already may start the search early. Ask after a search."""
        look = Whole(*self._bounds(self.whole_min(width, height), restart=False))
        self.early = (self.index + self.schedule.next, look)
        return self.schedule.next, look

    def _keep(self, boxes: list[Box]) -> list[Track]:
        """The tracks of a whole-frame search's boxes: one scoring under the detector's own
        threshold continues a face seen on the last frame. Between searches, one that continues
        none is held: followed unseen until a look scores it as a new face needs (every-frame
        detection reports such a face from the first frame it scores that; a search that lands
        on a frame it scores 0.45 would leave it until the next one: hikers on 6 versions,
        recall 0.948 -> 0.952, extra faces 2.3 -> 2.1 %)."""
        return self.tracker.update(boxes, confidence=self.threshold, hold=self.schedule.every > 1)

    def _shown(self, tracks: list[Track], whole_min: int) -> list[Track]:
        """The tracks to report: faces as large as the whole-frame search reports (``whole_min``),
        and those reported on the last frame down to shown_down_to of that."""
        limit = BOX_TOLERANCE * whole_min
        shown = [t for t in tracks if not t.held and (min(t.box.w, t.box.h) >= limit or (
                 t.id in self.shown and min(t.box.w, t.box.h) >= self.rules.shown_down_to * limit))]
        self.shown = {t.id for t in shown}
        return shown

    def _bounds(self, whole_min: int, restart: bool) -> tuple[int, int]:
        """The smallest face the next whole-frame search looks for and the smallest box it keeps:
        after a restart, every full_search_every-th time and when no face was followed after the
        last search, every face; else faces of search_fraction of the smallest followed then."""
        self.searches = 0 if restart else self.searches + 1
        if not restart and self.smallest is not None and self.searches % self.rules.full_search_every:
            whole_min = max(whole_min, int(self.rules.search_fraction * self.smallest))
        return whole_min, self.unseen_box(whole_min)
