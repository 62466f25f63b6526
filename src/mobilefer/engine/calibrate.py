"""A model's temperature: the one number its logits are divided by before the softmax so that
its top probability says how often such a face is right (expected calibration error, see
metrics.calibration). Fitted on validation data by the least negative log-likelihood of the
labels, with the model's own flip averaging; no PyTorch needed (logits from any runtime).
"""
from __future__ import annotations

import numpy as np

from mobilefer.runtime.probs import reweighted

# the temperatures looked at: 0.25 to 4, evenly in log space (a fine enough grid that the fit
# is reproducible to the last digit kept)
GRID = np.exp(np.linspace(np.log(0.25), np.log(4.0), 401))


def probabilities(views: list[np.ndarray], temperature: float, weights: list[float] | None = None) -> np.ndarray:
    """The mean over ``views`` (logits (N, K) of each test-time view) of softmax(logits / T),
    after the prior correction's class ``weights`` (ModelMeta.class_weights) where given."""
    out = 0.0
    for logits in views:
        z = logits / temperature
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        out = out + e / e.sum(1, keepdims=True)
    return reweighted(out / len(views), weights)


def fit_temperature(views: list[np.ndarray], labels: np.ndarray, weights: list[float] | None = None) -> float:
    """The temperature on GRID that gives ``labels`` the least negative log-likelihood (with the
    model's prior correction, its class ``weights``, applied after it, as every runtime does)."""
    labels = np.asarray(labels)
    index = np.arange(len(labels))

    def nll(t: float) -> float:
        return float(-np.log(np.clip(probabilities(views, t, weights)[index, labels], 1e-12, 1)).mean())

    return round(float(min(GRID, key=nll)), 4)
