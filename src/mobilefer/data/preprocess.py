"""The one eval transform, in numpy/OpenCV: used by evaluation, prediction, export
calibration and the server, with and without PyTorch.

Two stages, both driven only by :class:`~mobilefer.meta.ModelMeta`:

1. :func:`to_base` - centre square crop, convert to the model's channels, area-resize to
   ``base_size`` (uint8). Dataset readers apply the same stage when they cache images.
2. :func:`normalize_batch` - bilinear resize to ``input_size``, scale to [0, 1], subtract
   mean, divide by std: float32 (N, C, H, W). The training loop's torch version
   (:func:`mobilefer.data.augment.eval_transform`) is proven equal to this in the tests.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mobilefer.data.images import to_channels
from mobilefer.meta import ModelMeta


def center_square(img: np.ndarray) -> np.ndarray:
    """Centre crop to a square of side min(H, W)."""
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return img[top : top + side, left : left + side]


def to_base(img: np.ndarray, channels: int, base_size: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) RGB -> uint8 (base_size, base_size, channels)."""
    img = to_channels(center_square(img), channels)
    if img.shape[0] != base_size:
        # INTER_AREA averages when shrinking (no aliasing); it is bilinear when enlarging.
        img = cv2.resize(img, (base_size, base_size), interpolation=cv2.INTER_AREA)
        if img.ndim == 2:
            img = img[:, :, None]
    return img


def normalize_batch(base: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """uint8 (N, S, S, C) at base size -> float32 (N, C, input, input), normalised."""
    n, s = base.shape[0], meta.input_size
    out = np.empty((n, meta.channels, s, s), dtype=np.float32)
    mean = np.asarray(meta.mean, dtype=np.float32)[:, None, None]
    inv_std = 1.0 / np.asarray(meta.std, dtype=np.float32)[:, None, None]
    for i in range(n):
        img = base[i].astype(np.float32) * (1.0 / 255.0)
        if img.shape[0] != s:
            # float32 input: OpenCV then computes exact half-pixel bilinear, like torch's interpolate.
            img = cv2.resize(img, (s, s), interpolation=cv2.INTER_LINEAR)
        if img.ndim == 2:
            img = img[:, :, None]
        out[i] = (img.transpose(2, 0, 1) - mean) * inv_std
    return out


def preprocess(images: Sequence[np.ndarray], meta: ModelMeta) -> np.ndarray:
    """Images (uint8 gray or RGB, any size) -> network input float32 (N, C, H, W)."""
    if len(images) == 0:
        return np.zeros((0, meta.channels, meta.input_size, meta.input_size), dtype=np.float32)
    base = np.stack([to_base(img, meta.channels, meta.base_size) for img in images])
    return normalize_batch(base, meta)
