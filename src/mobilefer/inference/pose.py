"""Head pose from a face's five landmarks (eyes, nose tip, mouth corners), in degrees.

Roll is the eyes' line against the horizontal. Yaw and pitch come from where the nose tip
stands against the rest of the face after the roll is undone: a face turning sideways moves
the nose tip off the line from the eyes' midpoint to the mouth's (by NOSE_DEPTH interocular
distances times the sine of the turn, while the eyes' distance shrinks by its cosine), and a
face tilting up moves it towards the eyes. NOSE_DEPTH and NOSE_HEIGHT are a generic face's
proportions, not a fit to one person: yaw and pitch are estimates (their sign and size right,
their degrees approximate); roll is measured (docs/live.md, tests/test_pose.py).

Signs: roll > 0 where the face is turned clockwise on the image (its image-right eye lower);
yaw > 0 where the face turns towards the image's right (its nose tip moves right); pitch > 0
where it tilts up. A mirrored picture gives the opposite yaw and roll, the same pitch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# How far the nose tip stands out of the eyes' plane, in interocular distances (an adult's is
# about 2.5-3 cm against 6-6.5 cm between the eyes).
NOSE_DEPTH = 0.45
# Where the nose tip sits between the eyes' line (0) and the mouth's (1) on a frontal face, as
# CenterFace places the points (median of the frontal faces of the webcam montage, docs/live.md).
NOSE_HEIGHT = 0.54
# A face turned further than this is flagged (``Pose.turned``): its emotion is read less reliably.
TURNED_YAW = 45.0
TURNED_PITCH = 35.0


@dataclass(frozen=True)
class Pose:
    yaw: float
    pitch: float
    roll: float

    @property
    def turned(self) -> bool:
        """Turned far from the camera (see TURNED_YAW, TURNED_PITCH)."""
        return abs(self.yaw) > TURNED_YAW or abs(self.pitch) > TURNED_PITCH

    def to_dict(self) -> dict[str, Any]:
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1),
                "turned": self.turned}


def head_pose(landmarks) -> Pose | None:
    """Five (x, y) points in image pixels (eyes, nose tip, mouth corners, image-left first) ->
    the head's pose; None where the points give none (eyes on one spot, mouth on the eyes).
    Plain arithmetic: it runs for every face of every video frame."""
    if landmarks is None:
        return None
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = (tuple(map(float, p)) for p in landmarks)
    dx, dy = rx - lx, ry - ly
    spread = math.hypot(dx, dy)
    if spread < 1e-6:
        return None
    cos, sin = dx / spread, dy / spread
    ex, ey = (lx + rx) / 2, (ly + ry) / 2

    def upright(x: float, y: float) -> tuple[float, float]:  # the eyes' midpoint at 0, their line horizontal
        return (x - ex) * cos + (y - ey) * sin, (y - ey) * cos - (x - ex) * sin

    nose = upright(nx, ny)
    left, right = upright(mlx, mly), upright(mrx, mry)
    mouth = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2)
    if mouth[1] <= 1e-6:
        return None
    midline = mouth[0] * nose[1] / mouth[1]  # the eyes-to-mouth line at the nose tip's height
    yaw = math.atan2(nose[0] - midline, NOSE_DEPTH * spread)
    pitch = math.atan2((NOSE_HEIGHT - nose[1] / mouth[1]) * mouth[1], NOSE_DEPTH * spread)
    return Pose(math.degrees(yaw), math.degrees(pitch), math.degrees(math.atan2(dy, dx)))
