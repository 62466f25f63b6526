"""A classifier is a saved model behind one call: preprocessed batch in, probabilities out.

``load_classifier(ref)`` resolves the reference and picks the backend by format: ``.onnx``
runs on ONNX Runtime (no PyTorch imported), ``.safetensors`` / ``.pth`` on PyTorch. Both
apply the model's test-time augmentation (``meta.tta``) themselves.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mobilefer.errors import MissingExtraError, importable
from mobilefer.meta import ModelMeta
from mobilefer.runtime.probs import corrected

if TYPE_CHECKING:
    from mobilefer.runtime.devices import Device


class Classifier(Protocol):
    meta: ModelMeta

    def __call__(self, x: np.ndarray, flip: bool = True) -> np.ndarray:
        """float32 (N, C, H, W) from :func:`~mobilefer.data.preprocess.preprocess` -> probs float32 (N, K),
        with the model's flip averaging (``meta.tta``) unless ``flip`` is False: each image as given."""


# On the CPU a PyTorch model reads at most CPU_CHUNK images a call: its activations are allocated
# afresh each call and faulted into memory page by page (600 FER+ faces through the Large at 192
# px, 256 a call: 58.6 s, 38.0 of them in the kernel; 32 a call: 33.9 s; the same probabilities).
CPU_CHUNK = 32


class TorchClassifier:
    """A PyTorch model on the CPU (or a given device)."""

    def __init__(self, model, meta: ModelMeta, device: str = "cpu") -> None:
        self.model, self.meta, self.device = model, meta, device

    def __call__(self, x: np.ndarray, flip: bool = True) -> np.ndarray:
        import torch

        if str(self.device) == "cpu" and len(x) > CPU_CHUNK:
            return np.concatenate([self(x[i:i + CPU_CHUNK], flip) for i in range(0, len(x), CPU_CHUNK)])

        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
            temperature = self.meta.temperature
            p = (self.model(t).float() / temperature).softmax(1)
            if self.meta.tta == "flip" and flip:
                p = (p + (self.model(t.flip(3)).float() / temperature).softmax(1)) / 2
        return corrected(p.cpu().numpy(), self.meta)


def require_torch(what: str, extra: str = "train") -> None:
    """MissingExtraError naming the extra when PyTorch is not installed."""
    if not (importable("torch") and importable("safetensors")):
        raise MissingExtraError(f"{what} needs PyTorch: pip install 'mobilefer[{extra}]'")


def load_classifier(
    ref: str | Path | None = None,
    *,
    classes: Sequence[str] | None = None,
    input_size: int = 224,
    tta: str | None = None,
    threads: int | None = None,
    device: "Device | None" = None,
) -> Classifier:
    """Open a model for inference (bundled name, path, None: the default).

    ``tta`` ("none"/"flip") overrides the model's own; ``classes`` and ``input_size`` are
    for plain ``.pth`` state_dicts only; ``device``: where it runs (:mod:`.devices`; None: the
    CPU); a LiteRT model runs on the CPU only.
    """
    from mobilefer.runtime.devices import CPU_DEVICE
    from mobilefer.runtime.refs import resolve_model

    device = device or CPU_DEVICE
    model = resolve_model(ref)
    if model.kind == "onnx":
        from mobilefer.runtime.onnx import OnnxClassifier

        clf: Classifier = OnnxClassifier(model.path, threads=threads, providers=device.providers)
    elif model.kind == "tflite":
        from mobilefer.runtime.litert import LiteRTClassifier

        if device.gpu is not None:
            from mobilefer.errors import ConfigError

            raise ConfigError(f"{model.path}: a LiteRT model runs on the CPU here; use --device cpu, or the .onnx")
        clf = LiteRTClassifier(model.path, threads=threads)
    else:
        require_torch(f"{model.path}: a PyTorch model (export it to ONNX to run without PyTorch)")
        from mobilefer import cores
        from mobilefer.checkpoint import load_model

        cores.limit_torch(threads)
        net, meta = load_model(model.path, classes=classes, input_size=input_size)
        clf = TorchClassifier(net.to(device.name), meta, device.name)
    if tta is not None:
        if tta not in ("none", "flip"):
            from mobilefer.errors import ConfigError

            raise ConfigError(f"--tta {tta!r}: expected none or flip")
        clf.meta.tta = tta
    return clf
