"""mobilefer: facial emotion recognition with MobileNetV3.

Importing the package imports nothing heavy; the public API resolves lazily so that the
torch-free runtime (ONNX models) never pulls in PyTorch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MobileferError": "mobilefer.errors",
    "ModelMeta": "mobilefer.meta",
    "create_model": "mobilefer.models",
    "list_models": "mobilefer.models",
    "save_model": "mobilefer.checkpoint",
    "load_model": "mobilefer.checkpoint",
    "read_meta": "mobilefer.runtime",
    "resolve_model": "mobilefer.runtime",
    "load_classifier": "mobilefer.runtime",
    "TrainConfig": "mobilefer.engine.config",
    "EvalConfig": "mobilefer.engine.config",
    "train": "mobilefer.engine.train",
    "evaluate": "mobilefer.engine.evaluate",
    "EmotionRecognizer": "mobilefer.inference.recognizer",
    "PredictConfig": "mobilefer.inference.predict",
    "predict": "mobilefer.inference.predict",
    "ExportConfig": "mobilefer.export.onnx",
    "export": "mobilefer.export.onnx",
    "export_onnx": "mobilefer.export.onnx",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mobilefer' has no attribute {name!r}")


__all__ = sorted(_LAZY) + ["__version__"]
