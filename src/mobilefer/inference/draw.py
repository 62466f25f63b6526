"""Drawing results on OpenCV frames (uint8 (H, W, 3) BGR, modified in place)."""
from __future__ import annotations

import cv2
import numpy as np

from mobilefer.inference.recognizer import Face

# BGR colours per canonical emotion; other classes get a stable colour from their name.
COLOURS = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (0, 200, 255),
    "neutral": (200, 200, 200), "sad": (200, 120, 40), "surprise": (0, 140, 255),
}


def colour(label: str) -> tuple[int, int, int]:
    if label in COLOURS:
        return COLOURS[label]
    seed = sum(ord(c) * 31 ** i for i, c in enumerate(label)) % 2**32
    return tuple(int(v) for v in np.random.default_rng(seed).integers(60, 255, 3))


def draw_faces(frame: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Box, label and score for each face."""
    thick = max(1, round(min(frame.shape[:2]) / 320))
    for face in faces:
        x, y, w, h = face.box
        c = colour(face.label)
        cv2.rectangle(frame, (x, y), (x + w, y + h), c, thick + 1)
        text = f"{face.label} {face.score:.2f}" + (f" #{face.id}" if face.id is not None else "")
        scale = max(0.4, min(1.2, w / 160))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = y - th - base - 4 if y - th - base - 4 >= 0 else y + h
        cv2.rectangle(frame, (x, top), (x + tw + 4, top + th + base + 4), c, -1)
        cv2.putText(frame, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return frame


# An explanation is drawn at least this many pixels across (a small face is enlarged to it).
EXPLAIN_SIDE = 256


def explanation_overlay(frame: np.ndarray, face: Face, heat: np.ndarray) -> np.ndarray:
    """A new BGR picture of ``face`` from ``frame`` with ``heat`` (float (h, w) over its box,
    from ``EmotionRecognizer.explain``) over it: red where the label rests most, nothing where
    covering the face does not lower it; its label above. ``frame`` is not changed."""
    x, y, w, h = face.box
    crop = frame[y:y + h, x:x + w]
    scale = max(1.0, EXPLAIN_SIDE / max(w, h))
    size = (round(w * scale), round(h * scale))
    crop = cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    weight = cv2.resize(np.clip(heat, 0, None), size, interpolation=cv2.INTER_LINEAR)
    # the map is a per-pixel estimate: drawn smoothed over about a twentieth of the face, and
    # only where it reaches a third of its peak, so the regions read, not the speckle
    weight = cv2.GaussianBlur(weight, (0, 0), max(1.0, size[0] / 20))
    weight = weight / weight.max() if weight.max() > 0 else weight
    weight = np.clip((weight - 1 / 3) * 1.5, 0, 1)
    colours = cv2.applyColorMap((255 * weight).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = 0.6 * weight[:, :, None]
    picture = (crop * (1 - alpha) + colours * alpha).astype(np.uint8)
    band = np.full((28, picture.shape[1], 3), 30, np.uint8)
    cv2.putText(band, f"{face.label} {face.score:.2f}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour(face.label), 1,
                cv2.LINE_AA)
    return np.vstack([band, picture])
