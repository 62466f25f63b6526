"""A model's self-description, read from any format without loading its weights (no torch)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

from mobilefer.errors import ModelFileError
from mobilefer.meta import METADATA_KEY, ModelMeta, decode_meta

_MAX_HEADER = 100_000_000


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file, read from its header alone."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(8)
            if len(raw) < 8:
                raise ValueError("file too short")
            (size,) = struct.unpack("<Q", raw)
            if size > _MAX_HEADER:
                raise ValueError("header too large")
            text = handle.read(size)
            if len(text) < size:
                raise ValueError("truncated header")
            header = json.loads(text)
            end = handle.seek(0, 2)
    except (OSError, struct.error, ValueError) as exc:
        raise ModelFileError(f"{path}: not a safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a safetensors file (header is not a JSON object)")
    # A cut file has an intact header but fewer bytes than its tensors need: say so here,
    # not in a loader's obscure error later.
    needed = max((v["data_offsets"][1] for k, v in header.items()
                  if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v), default=0)
    if end < 8 + size + needed:
        raise ModelFileError(f"{path}: truncated safetensors file ({end} bytes, its header needs {8 + size + needed})")
    return header.get("__metadata__") or {}


def read_meta(ref: str | Path | None = None) -> ModelMeta:
    """The metadata of a model (bundled name, .safetensors, .onnx or .tflite path; None: the default)."""
    from mobilefer.runtime.refs import resolve_model

    model = resolve_model(ref)
    if model.kind == "onnx":
        from mobilefer.runtime.onnx import read_onnx_meta

        return read_onnx_meta(model.path)
    if model.kind == "tflite":
        from mobilefer.runtime.litert import read_litert_meta

        return read_litert_meta(model.path)
    if model.kind == "pth":
        raise ModelFileError(f"{model.path}: a plain state_dict carries no metadata; "
                             "load it with its class names (--classes a,b,c) or convert it with `mobilefer train`")
    return decode_meta(read_safetensors_metadata(model.path).get(METADATA_KEY), model.path, ModelFileError,
                       "no mobilefer metadata; was it saved by mobilefer?")
