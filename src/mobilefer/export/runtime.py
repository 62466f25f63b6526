"""The PyTorch-free runtime: ONNX models on ONNX Runtime, metadata from ``metadata_props``.

Nothing here imports torch; ``mobilefer predict|evaluate`` with an ``.onnx`` model run on
the base install (numpy, Pillow, OpenCV, onnxruntime).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mobilefer.meta import METADATA_KEY, ModelMeta, decode_meta


class OnnxModelError(ValueError):
    """An .onnx file that is not a usable mobilefer model; the message says why."""


def _session_options(threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Full graph optimisation fuses Conv+BN+activation: the biggest single win for MobileNetV3.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # MobileNetV3 is a chain of small ops: no parallel branches for inter-op threads to use.
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    # Small per-face batches gain little past a few cores and lose to thread wake-up costs.
    options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
    # Idle intra-op threads spin by default, taking the cores OpenCV's face detector needs next:
    # with spinning off, detect + classify of a 640x480 frame went from 28.6 to 17.6 ms (2 CPUs).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def open_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session for ``path``, or OnnxModelError naming the file."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"{path}: no such model file")
    try:
        return ort.InferenceSession(str(path), _session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for corrupt files
        first = str(exc).strip().splitlines()[0][:200]
        raise OnnxModelError(f"{path}: not a loadable ONNX model ({first})") from None


def meta_from_session(session, path: str | Path) -> ModelMeta:
    return decode_meta(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path, OnnxModelError,
                       "ONNX model without mobilefer metadata; export it with `mobilefer export`")


def read_onnx_meta(path: str | Path) -> ModelMeta:
    return meta_from_session(open_session(path, threads=1), path)


class OnnxClassifier:
    """An exported model on ONNX Runtime: float32 (N, C, H, W) in, probabilities (N, K) out."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, threads)
        self.meta = meta_from_session(self.session, self.path)
        self.input_name = self.session.get_inputs()[0].name
        shape = self.session.get_inputs()[0].shape
        if len(shape) != 4 or shape[1] != self.meta.channels:
            raise OnnxModelError(f"{path}: input shape {shape} does not match the metadata ({self.meta.channels} channels)")

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from mobilefer.inference.classifier import softmax

        if len(x) == 0:
            return np.zeros((0, self.meta.num_classes), dtype=np.float32)
        if self.meta.tta == "flip":
            both = softmax(self.logits(np.concatenate([x, x[..., ::-1]])))
            return (both[: len(x)] + both[len(x) :]) / 2
        return softmax(self.logits(x))
