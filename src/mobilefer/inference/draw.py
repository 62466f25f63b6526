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
