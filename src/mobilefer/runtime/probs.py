"""Class probabilities from a network's logits, as every numpy runtime (ONNX, LiteRT) computes
them: softmax at the model's temperature, its flip averaging and its prior correction. No
runtime imported here."""
from __future__ import annotations

import numpy as np

from mobilefer.meta import ModelMeta


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def probabilities(logits, x: np.ndarray, meta: ModelMeta, flip: bool = True) -> np.ndarray:
    """float32 (N, C, H, W) -> probabilities (N, K) from ``logits`` (a function of a batch), at the
    model's temperature, with its flip averaging (both views in one call) unless ``flip`` is
    False (each image read as given); the numpy runtimes' shared __call__."""
    if len(x) == 0:
        return np.zeros((0, meta.num_classes), dtype=np.float32)
    if meta.tta == "flip" and flip:
        both = softmax(logits(np.concatenate([x, x[..., ::-1]])) / meta.temperature)
        return corrected((both[: len(x)] + both[len(x):]) / 2, meta)
    return corrected(softmax(logits(x) / meta.temperature), meta)


def corrected(probs: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """``probs`` (N, K) after the model's prior correction (ModelMeta.class_weights), as every
    runtime applies it: after the temperature and the flip averaging."""
    return reweighted(probs, meta.class_weights())


def paired(a: np.ndarray, b: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """The flip average of two views' probabilities (N, K) as a runtime gives each (after the
    prior correction): the correction undone, the mean taken, the correction made again, so two
    views of one face read apart give what reading both at once gives."""
    weights = meta.class_weights()
    if weights is None:
        return (a + b) / 2
    undone = [1 / w for w in weights]
    return reweighted((reweighted(a, undone) + reweighted(b, undone)) / 2, weights)


def reweighted(probs: np.ndarray, weights: list[float] | None) -> np.ndarray:
    """``probs`` (N, K) each multiplied by its class's weight and summed to 1 again, in their own
    dtype; as they are where ``weights`` is None."""
    if weights is None:
        return probs
    p = probs * np.asarray(weights, dtype=probs.dtype)
    return p / p.sum(axis=1, keepdims=True)
