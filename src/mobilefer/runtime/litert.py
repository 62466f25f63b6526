"""LiteRT (TensorFlow Lite) models: ``mobilefer export --format tflite`` writes them, the
``ai-edge-litert`` interpreter runs them (``pip install 'mobilefer[litert]'``); never imports torch.

The model's metadata travels inside the file the way TFLite's own model metadata carries
associated files: a zip appended to the flatbuffer, here holding ``mobilefer.json`` (the
ModelMeta JSON that ONNX files keep in ``metadata_props``). The interpreter ignores the bytes
after the flatbuffer; :func:`read_litert_meta` reads the zip's directory at the end of the file.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from mobilefer import cores
from mobilefer.errors import ModelFileError, require
from mobilefer.meta import ModelMeta, decode_meta
from mobilefer.quiet import others_quiet
from mobilefer.runtime.probs import probabilities

META_NAME = "mobilefer.json"
FLATBUFFER_ID = b"TFL3"  # bytes 4-8 of every TFLite flatbuffer


def attach_meta(path: Path, meta: ModelMeta) -> None:
    """Append ``meta`` to the .tflite file at ``path`` (a zip after the flatbuffer)."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(META_NAME, meta.to_json())


def read_litert_meta(path: str | Path) -> ModelMeta:
    """The metadata of a .tflite file written by mobilefer, read without the interpreter."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
        if head[4:8] != FLATBUFFER_ID:
            raise ModelFileError(f"{path}: not a LiteRT/TFLite model (no TFL3 flatbuffer)")
        with zipfile.ZipFile(path) as bundle:
            text = bundle.read(META_NAME).decode()
    except OSError as exc:
        raise ModelFileError(f"{path}: unreadable ({exc.strerror or exc})") from None
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError):
        raise ModelFileError(f"{path}: a .tflite without mobilefer metadata (or cut short); "
                             "export it with `mobilefer export --format tflite`") from None
    return decode_meta(text, path, ModelFileError, "damaged mobilefer metadata")


def _quantize(x: np.ndarray, tensor: dict) -> np.ndarray:
    """float32 -> the tensor's type: an INT8 model's input is int8 at its (scale, zero point)."""
    if tensor["dtype"] == np.float32:
        return x
    scale, zero = tensor["quantization"]
    info = np.iinfo(tensor["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(tensor["dtype"])


def _dequantize(q: np.ndarray, tensor: dict) -> np.ndarray:
    if tensor["dtype"] == np.float32:
        return q
    scale, zero = tensor["quantization"]
    return (q.astype(np.float32) - zero) * scale


class LiteRTClassifier:
    """A .tflite model on the LiteRT interpreter: float32 (N, C, H, W) in, probabilities (N, K)
    out, one face per invocation (the batch-1 graph phones run)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        require("ai_edge_litert", "litert", f"{path}: a LiteRT model")
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.meta = read_litert_meta(self.path)
        threads = cores.budget(threads)
        try:
            with others_quiet():  # the interpreter announces its XNNPACK delegate on stderr
                self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ModelFileError(f"{self.path}: not a loadable LiteRT model ({first})") from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        want = [1, self.meta.channels, self.meta.input_size, self.meta.input_size]
        if len(inputs) != 1 or list(inputs[0]["shape"]) != want:
            raise ModelFileError(f"{self.path}: input shape {[list(i['shape']) for i in inputs]} does not match "
                                 f"the metadata ({want})")
        if len(outputs) != 1 or list(outputs[0]["shape"]) != [1, self.meta.num_classes]:
            raise ModelFileError(f"{self.path}: output shape {[list(o['shape']) for o in outputs]} does not match "
                                 f"the metadata's {self.meta.num_classes} classes")
        self._in, self._out = inputs[0], outputs[0]

    def logits(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), self.meta.num_classes), dtype=np.float32)
        for i, one in enumerate(np.ascontiguousarray(x, dtype=np.float32)):
            self.interpreter.set_tensor(self._in["index"], _quantize(one[None], self._in))
            self.interpreter.invoke()
            out[i] = _dequantize(self.interpreter.get_tensor(self._out["index"]), self._out)[0]
        return out

    def __call__(self, x: np.ndarray, flip: bool = True) -> np.ndarray:
        return probabilities(self.logits, x, self.meta, flip)
