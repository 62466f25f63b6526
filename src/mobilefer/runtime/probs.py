"""Class probabilities from a network's logits, as every numpy runtime (ONNX, LiteRT) computes
them: softmax, and the model's flip averaging. No runtime imported here."""
from __future__ import annotations

import numpy as np

from mobilefer.meta import ModelMeta


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def probabilities(logits, x: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """float32 (N, C, H, W) -> probabilities (N, K) from ``logits`` (a function of a batch), at the
    model's temperature, with its flip averaging (both views in one call); the numpy runtimes'
    shared __call__."""
    if len(x) == 0:
        return np.zeros((0, meta.num_classes), dtype=np.float32)
    if meta.tta == "flip":
        both = softmax(logits(np.concatenate([x, x[..., ::-1]])) / meta.temperature)
        return (both[: len(x)] + both[len(x):]) / 2
    return softmax(logits(x) / meta.temperature)
