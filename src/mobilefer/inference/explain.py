"""Why the model said what it said: a map of which pixels of a face its label rests on, in the
runtime (any model format, no PyTorch).

The face as the model sees it (its base-size crop) is copied MASKS times, each copy with a
random SHARE of its pixels covered by the face's own mean grey, and all copies go to the
classifier in one batch. A pixel's weight is how much further the label's log probability falls
in the copies where it is covered than in those where it is not: the pixels whose covering
costs the label most. (Covering square patches instead, the usual occlusion map, ranked the
pixels worse: with its top tenth of the face covered the label fell further than with a random
tenth on 53 of 61 faces of the shared clips, against 60 of 61 for this map; docs/live.md.)

:func:`deletion_drops` holds a map honest: covering the pixels it weighs most must lower the
label's probability more than covering as many pixels at random (tests, benchmarks).
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from mobilefer.data.preprocess import center_square, to_base
from mobilefer.inference.faces import Box, crop_region

MASKS = 128  # covered copies a face: ~0.25 s a face on 2 cores with flip averaging (ferplus-small)
SHARE = 0.1  # of the face's pixels covered in each
SEED = 0  # the masks are the same on every call: a face's map is reproducible

Classify = Callable[[np.ndarray], np.ndarray]  # uint8 (N, S, S, C) base-size faces -> probabilities (N, K)


def _fill(base: np.ndarray) -> np.ndarray:
    return base.reshape(-1, base.shape[2]).mean(0).round().astype(np.uint8)


def deletion_map(base: np.ndarray, classify: Classify, label: int, masks: int = MASKS, share: float = SHARE,
                 seed: int = SEED) -> np.ndarray:
    """uint8 (S, S, C) base-size face -> float32 (S, S): how much further class ``label``'s log
    probability falls where a pixel is covered than where it is not (negative: covering it helps).
    Log probability: a confident face's probability hardly moves (0.9997 -> 0.9990) where its
    log does, and the map is about the order of the pixels."""
    side, channels = base.shape[0], base.shape[2]
    covered = np.random.default_rng(seed).random((masks, side * side)) < share
    copies = np.repeat(base[None], masks + 1, axis=0)
    fill = _fill(base)
    for k in range(masks):
        copies[k + 1].reshape(-1, channels)[covered[k]] = fill
    logs = np.log(np.clip(classify(copies)[:, label], 1e-12, 1.0))
    falls = logs[0] - logs[1:]
    on = covered.astype(np.float64)
    heat = falls @ on / np.maximum(on.sum(0), 1) - falls @ (1 - on) / np.maximum((1 - on).sum(0), 1)
    return heat.reshape(side, side).astype(np.float32)


def face_base(rgb: np.ndarray, box: Box, margin: float, channels: int, base_size: int) -> tuple[np.ndarray, tuple]:
    """The base-size face the model sees (uint8 (S, S, C)) and the square of ``rgb`` it was made
    from, (x, y, side) in image pixels."""
    x0, y0, x1, y1 = crop_region(rgb.shape, box, margin)
    crop = rgb[y0:y1, x0:x1]
    side = min(crop.shape[:2])
    top, left = (crop.shape[0] - side) // 2, (crop.shape[1] - side) // 2
    return to_base(center_square(crop), channels, base_size), (x0 + left, y0 + top, side)


def over_box(heat: np.ndarray, square: tuple[int, int, int], box: Box) -> np.ndarray:
    """A base-size map laid over its square of the image and cut to ``box``: float32 (h, w)."""
    x, y, side = square
    big = cv2.resize(heat, (side, side), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((box.h, box.w), np.float32)
    bx0, by0 = max(box.x, x), max(box.y, y)
    bx1, by1 = min(box.x + box.w, x + side), min(box.y + box.h, y + side)
    if bx1 > bx0 and by1 > by0:
        out[by0 - box.y:by1 - box.y, bx0 - box.x:bx1 - box.x] = big[by0 - y:by1 - y, bx0 - x:bx1 - x]
    return out


def deletion_drops(base: np.ndarray, heat: np.ndarray, classify: Classify, label: int, share: float = 0.1,
                   tries: int = 3, seed: int = 0) -> tuple[float, float]:
    """(fall of ``label``'s probability with the ``share`` of pixels ``heat`` weighs most covered,
    mean fall with as many pixels covered at random over ``tries``): the first should be larger."""
    side = base.shape[0]
    count = max(1, round(share * side * side))
    fill = _fill(base)
    rng = np.random.default_rng(seed + 1)  # not the map's own masks
    masks = [np.argsort(heat.ravel())[::-1][:count]] + [rng.choice(side * side, count, replace=False)
                                                         for _ in range(tries)]
    copies = np.repeat(base[None], len(masks) + 1, axis=0)
    for k, chosen in enumerate(masks, 1):
        copies[k].reshape(-1, base.shape[2])[chosen] = fill
    probs = classify(copies)[:, label]
    return float(probs[0] - probs[1]), float(np.mean(probs[0] - probs[2:]))
