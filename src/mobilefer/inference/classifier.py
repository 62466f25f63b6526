"""A classifier is a saved model behind one call: preprocessed batch in, probabilities out.

``load_classifier(path)`` picks the backend by file type: ``.onnx`` runs on ONNX Runtime
(no PyTorch imported), ``.safetensors`` / ``.pth`` on PyTorch. Both apply the model's
test-time augmentation (``meta.tta``) themselves.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from mobilefer.meta import ModelMeta


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class Classifier(Protocol):
    meta: ModelMeta

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, C, H, W) from :func:`~mobilefer.data.preprocess.preprocess` -> probs float32 (N, K)."""


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


class TorchClassifier:
    """A PyTorch model on the CPU (or a given device)."""

    def __init__(self, model, meta: ModelMeta, device: str = "cpu") -> None:
        self.model, self.meta, self.device = model, meta, device

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
            p = self.model(t).float().softmax(1)
            if self.meta.tta == "flip":
                p = (p + self.model(t.flip(3)).float().softmax(1)) / 2
        return p.cpu().numpy()


def load_classifier(
    path: str | Path,
    *,
    classes: Sequence[str] | None = None,
    input_size: int = 224,
    tta: str | None = None,
    threads: int | None = None,
) -> Classifier:
    """Open a saved model for inference; ``tta`` ("none"/"flip") overrides the model's own."""
    path = Path(path)
    if path.suffix == ".onnx":
        from mobilefer.export.runtime import OnnxClassifier

        clf: Classifier = OnnxClassifier(path, threads=threads)
    else:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise MissingExtraError(
                f"{path}: PyTorch checkpoints need PyTorch: pip install 'mobilefer[train]', "
                "or export the model to ONNX and use the .onnx file"
            ) from None
        from mobilefer.checkpoint import load_model

        model, meta = load_model(path, classes=classes, input_size=input_size)
        clf = TorchClassifier(model, meta)
    if tta is not None:
        clf.meta.tta = tta
    return clf
