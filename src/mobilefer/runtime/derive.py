"""PyTorch weights from an exported ONNX file, for fine-tuning and export: the package ships each
bundled model once, as ONNX, and a fine-tune makes its ``.safetensors`` the first time it needs
one, in the user's cache, bit for bit the weights the file was exported from (mobilefer exports
keep every BatchNorm as a node, so each state tensor is an initializer under its own name; the
few whole-number buffers no forward pass reads, and the names of tensors the exporter stored once
for several, ride in the metadata, BUFFERS_KEY).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from mobilefer.atomic import atomic_path
from mobilefer.errors import ModelFileError, require
from mobilefer.meta import BUFFERS_KEY, METADATA_KEY

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """mobilefer's folder in the user's cache ($XDG_CACHE_HOME, else ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mobilefer"


def weights_from_onnx(path: str | Path) -> tuple[dict, str]:
    """(state dict of numpy arrays, the metadata's JSON) of a mobilefer fp32 ONNX export;
    ModelFileError where the file's weights are not the model's own (an older export with its
    BatchNorms folded into the convolutions, or an INT8 one)."""
    require("onnx", "train", "fine-tuning a bundled model")
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props or not any(n.op_type == "BatchNormalization" for n in model.graph.node):
        raise ModelFileError(f"{path}: holds no PyTorch weights to fine-tune from (not a mobilefer export with its "
                             "BatchNorms kept); fine-tune from its .safetensors")
    inputs = {i.name for i in model.graph.input}
    state = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.name not in inputs}
    import numpy as np

    kept = json.loads(props.get(BUFFERS_KEY, "{}"))
    for name, value in kept.get("ints", {}).items():
        state[name] = np.array(value, dtype=np.int64)
    for name, twin in kept.get("same_as", {}).items():  # stored once for several names
        state[name] = state[twin].copy()
    return state, props[METADATA_KEY]


def checkpoint_of(onnx_path: Path) -> Path:
    """The ``.safetensors`` made from ``onnx_path`` (made once, then kept in the cache under the
    file's checksum, so another version of the file gets its own)."""
    data = onnx_path.read_bytes()
    target = cache_dir() / "weights" / f"{onnx_path.stem}-{hashlib.sha256(data).hexdigest()[:16]}.safetensors"
    if target.is_file():
        return target
    require("safetensors", "train", "fine-tuning a bundled model")
    from safetensors.numpy import save_file

    state, meta = weights_from_onnx(onnx_path)
    log.info("made %s's PyTorch weights from it, once: %s", onnx_path.name, target)
    with atomic_path(target) as tmp:
        save_file({k: v for k, v in sorted(state.items())}, str(tmp), metadata={METADATA_KEY: meta})
    return target
