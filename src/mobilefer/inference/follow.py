"""Follow tracked faces from frame to frame by looking for each one near where it was.

Between full-frame detections a video's faces move (people walk, cameras shake and pan). The
detector looks again only at a square around each tracked face, ``region`` times the face's
side and at least ``input`` pixels across once scaled (the numbers are :class:`~.plan.LiveRules`'). A face that the whole-frame search sees
at its own scale (:func:`~.detectors.video_scale`) is looked at in a window of that search's own
pixels: a slice of the frame resized as the search resizes it (HD frames, and 640x360 ones,
which CenterFace looks at as 640x384), so its box measures what the search's would and it is
reported when that search would report it (hikers 1280x720 against every-frame detection:
recall 0.949 -> 0.962). A larger face is looked at in a smooth copy of its square, ``input`` px
across. Smaller squares were measured worse: CenterFace needs the context (a 48 px square around
a 16 px face lost it where the whole frame found it). CenterFace (INT8) on a 96 px square costs
~1/16 of a 640x480 frame's search and ~1/30 of an HD one's, so following a face is cheap at any size.
"""
from __future__ import annotations

import cv2
import numpy as np

from mobilefer.data.images import shrink
from mobilefer.inference.detectors import Box, FaceDetector, video_scale
from mobilefer.inference.plan import RULES, LiveRules
from mobilefer.inference.tracking import iou

def _ratio(box: Box, scale: float, side_in: int, rules: LiveRules = RULES) -> float:
    """The scale ``box``'s square is looked at: the whole-frame search's (``scale``), or less, so
    that a square ``rules.region`` times the box's side is ``side_in`` px across."""
    return min(scale, side_in / (rules.region * max(box.w, box.h)))


def _region(box: Box, width: int, height: int, scale: float, side_in: int = RULES.input,
            rules: LiveRules = RULES) -> tuple[tuple[int, int, int, int], float]:
    """The square (x0, y0, x1, y1) around ``box``, ``rules.region`` times its side and at least
    ``side_in`` px once scaled, moved inside the frame, and the scale it is looked at (:func:`_ratio`)."""
    ratio = _ratio(box, scale, side_in, rules)
    side = min(int(round(side_in / ratio)), width, height)
    x0 = int(round(min(max(0.0, box.x + box.w / 2.0 - side / 2.0), width - side)))
    y0 = int(round(min(max(0.0, box.y + box.h / 2.0 - side / 2.0), height - side)))
    return (x0, y0, x0 + side, y0 + side), ratio


def _window(box: Box, width: int, height: int, size: tuple[int, int], side_in: int,
            grid: int = RULES.grid) -> tuple[int, int, int, int]:
    """The square (x0, y0, x1, y1) of the whole-frame search's pixels (its pass over a ``width``
    x ``height`` frame is ``size``) around ``box``, ``side_in`` px across (or the pass's side where
    shorter), starting on the ``grid`` px lattice and moved inside the pass."""
    pass_w, pass_h = size
    side_x, side_y = min(side_in, pass_w), min(side_in, pass_h)
    x0 = (box.x + box.w / 2.0) * pass_w / width - side_x / 2.0
    y0 = (box.y + box.h / 2.0) * pass_h / height - side_y / 2.0
    x0, y0 = round(x0 / grid) * grid, round(y0 / grid) * grid
    x0 = int(round(min(max(0.0, x0), pass_w - side_x)))
    y0 = int(round(min(max(0.0, y0), pass_h - side_y)))
    return x0, y0, x0 + side_x, y0 + side_y


class FaceFollower:
    """Finds each of a frame's earlier faces again near its last box, with ``detector``, as
    ``rules`` say."""

    def __init__(self, detector: FaceDetector, rules: LiveRules = RULES) -> None:
        self.detector, self.rules = detector, rules

    def follow(self, frame: np.ndarray, boxes: list[Box], min_box: int,
               patches: list[np.ndarray | None] | None = None, check: list[bool] | None = None,
               retry: bool = True) -> list[Box | None]:
        """uint8 (H, W, 3) BGR frame and last frame's boxes -> each face's box now, or None where
        it was not found near its last place (it left, turned away, was covered, or its box is
        now under ``min_box`` px). With ``patches`` (each box's pixels on the frame before,
        :func:`patch_of`), a face whose ``check`` is False is matched from its patch instead,
        where that matches well. The others are looked for with the detector in a square around
        each, all squares in one call, and those it misses once more in a larger square (see
        LiveRules.retry_input)."""
        out: list[Box | None] = [None] * len(boxes)
        todo = []
        for i, box in enumerate(boxes):
            if patches is not None and check is not None and not check[i] and patches[i] is not None:
                out[i] = find_patch(patches[i], frame, box, self.rules)
            if out[i] is None:
                todo.append(i)
        for side_in in (self.rules.input, self.rules.retry_input) if retry else (self.rules.input,):
            for i, moved in zip(todo, self._look(frame, [boxes[i] for i in todo], min_box, side_in)):
                out[i] = moved
            todo = [i for i in todo if out[i] is None]
        return out

    def glance(self, frame: np.ndarray, boxes: list[Box], min_box: int,
               found: list[Box] | None = None) -> list[Box]:
        """Faces large enough to be seen in a ``rules.glance_width`` px copy of ``frame`` (and boxes of
        ``min_box`` px or more) that overlap none of ``boxes`` (the faces followed already).
        ``found``: the copy's faces (:meth:`glance_faces`), where they were looked for already."""
        found = self.glance_faces(frame) if found is None else found
        return [b for b in found if min(b.w, b.h) >= min_box and all(iou(b, other) < 0.3 for other in boxes)]

    def glance_faces(self, frame: np.ndarray) -> list[Box]:
        """The faces the detector sees in a ``rules.glance_width`` px copy of ``frame``, in the
        frame's pixels: the glance's pixel work, which needs nothing but the frame."""
        width = min(self.rules.glance_width, frame.shape[1])
        small = shrink(frame, width)
        ratio = width / frame.shape[1]
        return [b.mapped(int(b.x / ratio), int(b.y / ratio), int(b.w / ratio), int(b.h / ratio), 1 / ratio)
                for b in self.detector.detect(small, min_face=self.detector.smallest_seen, upscale=False)]

    def proposed(self, frame: np.ndarray, proposals: list[Box], min_box: int) -> list[Box]:
        """The detector's boxes for another detector's ``proposals`` (BlazeFace's): each looked for in
        a square around it as a followed face is (:meth:`follow`); two proposals of one face give
        it once. Best first."""
        boxes: list[Box] = []
        for box in sorted(filter(None, self.follow(frame, proposals, min_box)), key=lambda b: -b.score):
            if all(iou(box, other) < 0.5 for other in boxes):
                boxes.append(box)
        return boxes

    def _look(self, frame: np.ndarray, boxes: list[Box], min_box: int, side_in: int) -> list[Box | None]:
        """Each of ``boxes``' faces looked for in one square ``side_in`` px across as looked at: a
        window of the whole-frame search's pixels (on its ``grid`` lattice), or a smooth copy of a
        large face's square; None where it is not there or its box is under ``min_box`` px."""
        if not boxes:
            return []
        squares = [self._square(frame, box, side_in) for box in boxes]
        wanted = [(image, options) for image, options, _ in filter(None, squares)]
        found = iter(self.detector.detect_many(wanted))
        return [None if square is None else _pick(box, next(found), *square[2], min_box)
                for box, square in zip(boxes, squares)]

    def _square(self, frame: np.ndarray, box: Box,
                side_in: int) -> tuple[np.ndarray, dict, tuple[int, int, float]] | None:
        """How ``box``'s face is looked at (see :meth:`_look`): the image and detect() options, and
        the corner (x0, y0) in the frame and scale ``unit`` its boxes map back by; None where the
        square is too small to look at."""
        h, w = frame.shape[:2]
        scale = video_scale(w, h)
        ratio = _ratio(box, scale, side_in, self.rules)
        # a face that halved its size from one frame to the next is another face (or a false one)
        seen = max(8, int(max(box.w, box.h) * ratio / 2))  # pixels, as looked at
        pass_size = self.detector.pass_size if self.detector.windows else None
        if ratio == scale and pass_size is not None:
            # as the whole-frame search looks at it: its pixels, resampled as it resamples them
            window = _window(box, w, h, pass_size(w, h, scale), side_in, self.rules.grid)
            return (frame, {"min_face": int(seen / ratio), "upscale": False, "confidence": self.rules.follow_confidence,
                            "scale": scale, "window": window}, (0, 0, 1.0))
        (x0, y0, x1, y1), _ = _region(box, w, h, scale, side_in, self.rules)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        region = frame[y0:y1, x0:x1]
        if ratio < scale:  # a large face: a smooth copy, looked at whole (its box's last pixel does not matter)
            region, look, unit = _smooth(region, ratio), None, ratio
        else:  # a detector without the search's lattice: the square at the search's scale
            look, unit = ratio, 1.0
        return (region, {"min_face": int(seen * unit / ratio), "upscale": False, "confidence": self.rules.follow_confidence,
                         "scale": look}, (x0, y0, unit))


def _pick(box: Box, found: list[Box], x0: int, y0: int, unit: float, min_box: int) -> Box | None:
    """Of the boxes ``found`` in a square whose corner is (``x0``, ``y0``) in the frame and which
    was looked at ``unit`` times its size, the one that is ``box``'s face now, in the frame's
    pixels: the one overlapping ``box`` most (else the best scoring); None where nothing was
    found or its box is under ``min_box`` px."""
    if not found:
        return None
    last = Box(int((box.x - x0) * unit), int((box.y - y0) * unit), int(box.w * unit), int(box.h * unit))
    best = max(found, key=lambda b: (iou(b, last), b.score))
    if iou(best, last) == 0.0:
        best = max(found, key=lambda b: b.score)
    moved = best.mapped(x0 + int(round(best.x / unit)), y0 + int(round(best.y / unit)),
                        int(round(best.w / unit)), int(round(best.h / unit)), 1 / unit, x0, y0)
    if min(moved.w, moved.h) < min_box:
        return None  # the full-frame detector would not report it either
    return moved


def _smooth(image: np.ndarray, ratio: float) -> np.ndarray:
    """``image`` scaled by ``ratio`` < 1, each pixel the average of those it covers: whole blocks
    averaged first (OpenCV's fast path for whole factors), what is left of the scale after. The
    last partial row and column of blocks are left out (at most a few pixels at the far edges).
    OpenCV's area reduction by a fraction costs several times more (a 690 px square to 96 px:
    ~1.9 ms against ~0.7; a large face on 1080p is followed in squares of ~1000 px)."""
    step = max(1, int(1.0 / ratio))
    h, w = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    if step > 1:
        image = cv2.resize(image[:h, :w], (w // step, h // step), interpolation=cv2.INTER_AREA)
    size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
    return image if size == image.shape[1::-1] else cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _small_gray(image: np.ndarray, step: int) -> np.ndarray:
    """``image`` in gray with each ``step`` x ``step`` block averaged into one pixel (the last
    partial row and column of blocks left out): OpenCV's fast area reduction, several times
    quicker than its general one at fractional scales (a crowd's faces: ~0.6 against ~0.1 ms)."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    if step == 1:
        return gray
    h, w = gray.shape[0] // step, gray.shape[1] // step
    return cv2.resize(gray[: h * step, : w * step], (w, h), interpolation=cv2.INTER_AREA)


def patch_of(image: np.ndarray, box: Box) -> np.ndarray:
    """A copy of ``box``'s pixels in ``image``: what a face is matched from on the next frame (a
    video keeps its faces' patches, not the whole frame before)."""
    return image[box.y:box.y + box.h, box.x:box.x + box.w].copy()


def match_patch(previous: np.ndarray, frame: np.ndarray, box: Box, rules: LiveRules = RULES) -> Box | None:
    """``box``'s patch of the frame ``previous`` found in ``frame``: :func:`find_patch`."""
    return find_patch(previous[box.y:box.y + box.h, box.x:box.x + box.w], frame, box, rules)


def find_patch(patch: np.ndarray, frame: np.ndarray, box: Box, rules: LiveRules = RULES) -> Box | None:
    """``box``'s ``patch`` (its pixels on the frame before) found in ``frame`` near where it was
    (same size), or None where it matches under ``rules.match_min`` or at the edge of the window
    looked in (it moved further)."""
    h, w = frame.shape[:2]
    side = max(box.w, box.h)
    step = max(1, round(side / rules.match_side))
    margin = step * max(2, -(-int(rules.match_margin * side) // step))  # whole steps: a still face matches in place
    x0, y0 = max(0, box.x - margin), max(0, box.y - margin)
    x1, y1 = min(w, box.x + box.w + margin), min(h, box.y + box.h + margin)
    patch = _small_gray(patch, step)
    window = _small_gray(frame[y0:y1, x0:x1], step)
    if min(patch.shape) < 4 or patch.shape[0] >= window.shape[0] or patch.shape[1] >= window.shape[1]:
        return None  # a face at the frame's edge: no room to look around it
    if float(cv2.meanStdDev(patch)[1][0, 0]) < 2.0:
        return None  # a flat patch (a dark or blown-out frame) matches anywhere
    scores = cv2.matchTemplate(window, patch, cv2.TM_CCOEFF_NORMED)
    _, best, _, (bx, by) = cv2.minMaxLoc(scores)
    edge_x = bx in (0, scores.shape[1] - 1) and (x0 > 0 if bx == 0 else x1 < w)
    edge_y = by in (0, scores.shape[0] - 1) and (y0 > 0 if by == 0 else y1 < h)
    if not best >= rules.match_min or edge_x or edge_y:
        return None
    x = min(x0 + bx * step, w - box.w)  # stay inside the frame
    y = min(y0 + by * step, h - box.h)
    return box.mapped(x, y, box.w, box.h, dx=x - box.x, dy=y - box.y)  # its landmarks move with it
