"""ONNX models on ONNX Runtime, metadata from ``metadata_props``; never imports torch."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mobilefer import cores
from mobilefer.errors import ModelFileError
from mobilefer.meta import METADATA_KEY, ModelMeta, decode_meta
from mobilefer.runtime.probs import probabilities


def session_options(threads: int | None = None):
    """ONNX Runtime CPU settings for a MobileNet-like chain of small ops (the classifier, CenterFace)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Full graph optimisation fuses Conv+BN+activation: the biggest single win for MobileNetV3.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # MobileNetV3 is a chain of small ops: no parallel branches for inter-op threads to use.
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    # Small per-face batches gain little past a few cores and lose to thread wake-up costs.
    options.intra_op_num_threads = cores.budget(threads)
    # Idle intra-op threads spin by default, taking the cores OpenCV's face detector needs next:
    # with spinning off, detect + classify of a 640x480 frame went from 28.6 to 17.6 ms (2 CPUs).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def open_session(path: str | Path, threads: int | None = None, providers: list | None = None):
    """An ONNX Runtime session for ``path`` (CPU unless ``providers`` names others that this
    onnxruntime has, e.g. CUDAExecutionProvider), or ModelFileError naming the file."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    have = set(ort.get_available_providers())
    named = lambda p: p[0] if isinstance(p, tuple) else p  # noqa: E731  (a name, or (name, options))
    chosen = [p for p in (providers or []) if named(p) in have and named(p) != "CPUExecutionProvider"]
    options = session_options(threads)  # a bad $MOBILEFER_THREADS is its own error, not the file's
    try:
        return ort.InferenceSession(str(path), options, providers=[*chosen, "CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for corrupt files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelFileError(f"{path}: not a loadable ONNX model ({first})") from None


def meta_from_session(session, path: str | Path) -> ModelMeta:
    return decode_meta(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path, ModelFileError,
                       "ONNX model without mobilefer metadata; export it with `mobilefer export`")


def read_onnx_meta(path: str | Path) -> ModelMeta:
    return meta_from_session(open_session(path, threads=1), path)


def _check_io(session, meta: ModelMeta, path: Path) -> None:
    """The graph's input and output shapes must agree with the metadata, or nothing runs."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = inputs[0].shape
    if len(inputs) != 1 or len(shape) != 4 or shape[1] != meta.channels:
        raise ModelFileError(f"{path}: input shape {shape} does not match the metadata "
                             f"(one input of N x {meta.channels} x H x W)")
    fixed = [d for d in shape[2:] if isinstance(d, int)]
    if any(d != meta.input_size for d in fixed):
        raise ModelFileError(f"{path}: input shape {shape} does not match the metadata's input size {meta.input_size}")
    out = outputs[0].shape
    if len(out) != 2 or (isinstance(out[1], int) and out[1] != meta.num_classes):
        raise ModelFileError(f"{path}: output shape {out} does not match the metadata's "
                             f"{meta.num_classes} classes ({', '.join(meta.classes)})")


class OnnxClassifier:
    """An exported model on ONNX Runtime: float32 (N, C, H, W) in, probabilities (N, K) out."""

    def __init__(self, path: str | Path, threads: int | None = None, providers: list | None = None) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, threads, providers)
        self.meta = meta_from_session(self.session, self.path)
        _check_io(self.session, self.meta, self.path)
        self.input_name = self.session.get_inputs()[0].name

    def logits(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]
        if out.ndim != 2 or out.shape[1] != self.meta.num_classes:  # a dynamic output dim the graph hid
            raise ModelFileError(f"{self.path}: the model gives {out.shape[-1]} outputs but its metadata "
                                 f"names {self.meta.num_classes} classes")
        return out

    def __call__(self, x: np.ndarray, flip: bool = True) -> np.ndarray:
        return probabilities(self.logits, x, self.meta, flip)
