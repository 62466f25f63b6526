"""A shifted test set: the same faces as a camera or a photo in the world would show them.

:func:`shift_faces` gives each face one real-world change, drawn from a seed: out of focus,
sensor noise, heavy JPEG, dim light, uneven light, a turn of up to 20 degrees, a looser or a
tighter crop, a hand or glasses over part of the face. The changes are dealt round-robin over a
seeded shuffle, so each covers a tenth of the faces and every class meets every change; each
face's strength comes from its own generator (the seed and the face's index). The same seed on
the same set gives the same faces, bit for bit. Faces are uint8 (N, S, S, C) at any size, grey
or colour, as the readers give them (``data.images``).

``mobilefer evaluate --shift SEED`` scores a model on the shifted copy of any labelled set and
reports each change's accuracy beside the whole.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

Face = np.ndarray  # one face, float32 (S, S, C) in [0, 255]


def _blur(face: Face, rng: np.random.Generator) -> Face:
    sigma = rng.uniform(0.6, 1.5) * face.shape[0] / 48  # out of focus, or a face far away scaled up
    return cv2.GaussianBlur(face, (0, 0), sigma).reshape(face.shape)


def _noise(face: Face, rng: np.random.Generator) -> Face:
    return face + rng.normal(0.0, rng.uniform(5.0, 15.0), face.shape).astype(np.float32)  # a small sensor


def _jpeg(face: Face, rng: np.random.Generator) -> Face:
    ok, data = cv2.imencode(".jpg", face.clip(0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY,
                                                                           int(rng.integers(15, 40))])
    flag = cv2.IMREAD_GRAYSCALE if face.shape[2] == 1 else cv2.IMREAD_COLOR
    return cv2.imdecode(data, flag).astype(np.float32).reshape(face.shape)


def _dim(face: Face, rng: np.random.Generator) -> Face:
    # little light: everything darker and flatter, with the noise a camera adds to make up for it
    dark = face * rng.uniform(0.25, 0.5) + rng.uniform(0.0, 10.0)
    return dark + rng.normal(0.0, 3.0, face.shape).astype(np.float32)


def _uneven(face: Face, rng: np.random.Generator) -> Face:
    # light from one side: brightness falls from 1.2 to 0.3 across the face in a random direction
    size = face.shape[0]
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) - 0.5
    ramp = (xs * np.cos(angle) + ys * np.sin(angle)) / 0.71 * 0.5 + 0.5  # 0..1 corner to corner
    low, high = rng.uniform(0.25, 0.4), rng.uniform(1.05, 1.25)
    return face * (low + (high - low) * ramp)[..., None]


def warp(face: Face, angle: float, scale: float, shift: tuple[float, float]) -> Face:
    """``face`` turned by ``angle`` degrees and scaled about its centre, then moved by ``shift``
    px (bilinear, edges reflected); the same shape."""
    size = face.shape[0]
    m = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, scale)
    m[:, 2] += shift
    out = cv2.warpAffine(face, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out.reshape(face.shape)


def _rotate(face: Face, rng: np.random.Generator) -> Face:
    return warp(face, rng.choice((-1, 1)) * rng.uniform(8.0, 20.0), 1.0, (0.0, 0.0))


def _looser(face: Face, rng: np.random.Generator) -> Face:
    # a detector's box with more room around the face: the face smaller, off centre
    size = face.shape[0]
    return warp(face, 0.0, rng.uniform(0.72, 0.85), tuple(rng.uniform(-0.06, 0.06, 2) * size))


def _tighter(face: Face, rng: np.random.Generator) -> Face:
    # a box that cuts into the forehead, chin or cheeks
    size = face.shape[0]
    return warp(face, 0.0, rng.uniform(1.15, 1.32), tuple(rng.uniform(-0.05, 0.05, 2) * size))


def _hand(face: Face, rng: np.random.Generator) -> Face:
    # a hand at the mouth, chin or a cheek: a palm and fingers of one skin tone, lit from above
    size = face.shape[0]
    s = size / 48
    mask = np.zeros((size, size), np.uint8)
    where = rng.choice(("mouth", "left", "right"))
    cx = {"mouth": 24, "left": 10, "right": 38}[where] + rng.uniform(-3, 3)
    cy = {"mouth": 42, "left": 36, "right": 36}[where] + rng.uniform(-2, 3)
    cv2.ellipse(mask, (int(cx * s), int(cy * s)), (int(rng.uniform(9, 13) * s), int(rng.uniform(7, 10) * s)),
                rng.uniform(-30, 30), 0, 360, 255, -1)
    tilt = rng.uniform(-0.5, 0.5)
    for k in range(4):  # fingers reaching up over the face
        x0 = cx + (k - 1.5) * 4.2
        top = cy - rng.uniform(11, 17)
        cv2.line(mask, (int(x0 * s), int(cy * s)), (int((x0 + tilt * 8) * s), int(top * s)), 255,
                 max(1, int(3.6 * s)))
    tone = rng.uniform(110, 210)
    shade = np.linspace(1.08, 0.85, size, dtype=np.float32)[:, None] * tone
    skin = (shade + rng.normal(0, 4, (size, size)).astype(np.float32))[..., None]
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), 0.7 * s)[..., None]
    return face * (1 - alpha) + skin * alpha


def _glasses(face: Face, rng: np.random.Generator) -> Face:
    # glasses at the eyes: dark frames, and dark lenses half of the time (sunglasses)
    size = face.shape[0]
    s = size / 48
    y = rng.uniform(17, 21)
    half_gap = rng.uniform(8.5, 10.5)
    w, h = rng.uniform(7, 9), rng.uniform(5, 6.5)
    frames = np.zeros((size, size), np.uint8)
    lenses = np.zeros((size, size), np.uint8)
    for cx in (24 - half_gap, 24 + half_gap):
        centre, axes = (int(cx * s), int(y * s)), (int(w * s), int(h * s))
        cv2.ellipse(lenses, centre, axes, 0, 0, 360, 255, -1)
        cv2.ellipse(frames, centre, axes, 0, 0, 360, 255, max(1, int(1.3 * s)))
    cv2.line(frames, (int((24 - half_gap + w) * s), int(y * s)), (int((24 + half_gap - w) * s), int(y * s)),
             255, max(1, int(1.3 * s)))
    out = face.copy()
    if rng.random() < 0.5:
        lens = (lenses > 0)[..., None]
        out = np.where(lens, out * rng.uniform(0.1, 0.3) + rng.uniform(5, 20), out)
    frame = (frames > 0)[..., None]
    return np.where(frame, rng.uniform(10, 40), out)


CHANGES: dict[str, Callable[[Face, np.random.Generator], Face]] = {
    "blur": _blur, "noise": _noise, "jpeg": _jpeg, "dim": _dim, "uneven_light": _uneven, "rotate": _rotate,
    "looser_crop": _looser, "tighter_crop": _tighter, "hand": _hand, "glasses": _glasses,
}


def shift_faces(images: np.ndarray, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """The shifted copy of ``images`` (uint8 (N, S, S, C)) and the change each face got."""
    if images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise ValueError(f"expected square faces (N, S, S, C), got an array of shape {images.shape}")
    names = list(CHANGES)
    order = np.random.default_rng([seed, 0]).permutation(len(images))
    change = np.empty(len(images), dtype=object)
    change[order] = [names[i % len(names)] for i in range(len(images))]
    out = np.empty_like(images)
    for i, face in enumerate(images):
        rng = np.random.default_rng([seed, 1, i])
        shifted = CHANGES[change[i]](face.astype(np.float32), rng)
        out[i] = np.rint(shifted.clip(0, 255)).astype(np.uint8)
    return out, list(change)
