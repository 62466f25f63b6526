"""Every model-file format behind one loader, without PyTorch unless a PyTorch model is asked for.

- :func:`resolve_model` turns a reference (a bundled name, a path, None for the default) into
  a :class:`ModelFile`, or one :class:`~mobilefer.errors.ModelFileError` naming what is wrong.
- :func:`read_meta` reads a model's self-description from any format without its weights.
- :func:`load_classifier` opens a model for inference: ``.onnx`` on ONNX Runtime, ``.tflite``
  on the LiteRT interpreter, ``.safetensors`` / ``.pth`` on PyTorch (imported only then).
"""
from __future__ import annotations

from mobilefer.runtime.classifier import Classifier, TorchClassifier, load_classifier
from mobilefer.runtime.files import read_meta, read_safetensors_metadata
from mobilefer.runtime.onnx import OnnxClassifier, read_onnx_meta
from mobilefer.runtime.probs import softmax
from mobilefer.runtime.refs import BUNDLED, DEFAULT_MODEL, ModelFile, bundled_names, resolve_model

__all__ = [
    "BUNDLED", "DEFAULT_MODEL", "Classifier", "ModelFile", "OnnxClassifier", "TorchClassifier", "bundled_names",
    "load_classifier", "read_meta", "read_onnx_meta", "read_safetensors_metadata", "resolve_model", "softmax",
]
