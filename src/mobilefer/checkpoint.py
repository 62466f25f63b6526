"""Self-describing checkpoints: safetensors weights with the model's metadata in the header.

One file, ``*.safetensors``: tensors plus ``{"mobilefer": <ModelMeta JSON>}`` in the
safetensors metadata. Loading never unpickles. The origin notebook's plain state_dict
``.pth`` files load too (``weights_only=True``), given their class names.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mobilefer.atomic import atomic_path
from mobilefer.meta import METADATA_KEY, ModelMeta, decode_meta


class CheckpointError(ValueError):
    """A model file cannot be used; the message names it and says why."""


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file, read from its header alone (no torch)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            if size > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(handle.read(size))
    except (OSError, struct.error, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors file ({exc})") from None
    return header.get("__metadata__") or {}


def read_meta(path: str | Path) -> ModelMeta:
    """The metadata of a saved model (.safetensors or .onnx) without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    if path.suffix == ".onnx":
        from mobilefer.export.runtime import read_onnx_meta

        return read_onnx_meta(path)
    return decode_meta(read_safetensors_metadata(path).get(METADATA_KEY), path, CheckpointError,
                       "no mobilefer metadata; was it saved by mobilefer?")


def save_model(model: Any, meta: ModelMeta, path: str | Path) -> Path:
    """Write weights and metadata to ``path`` (.safetensors) atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={METADATA_KEY: meta.to_json()})
    return path


def legacy_meta(arch: str, classes: Sequence[str], in_chans: int, input_size: int) -> ModelMeta:
    """Metadata for a notebook-era state_dict: ImageNet normalisation at ``input_size``."""
    from mobilefer.classes import canonical_names
    from mobilefer.models import imagenet_stats

    mean, std = imagenet_stats(in_chans)
    return ModelMeta(
        arch=arch, classes=canonical_names(classes), input_size=input_size, channels=in_chans,
        base_size=input_size, mean=mean, std=std, face_margin=0.0,
        config={"imported_from": "state_dict"},
    )


def load_model(
    path: str | Path,
    *,
    classes: Sequence[str] | None = None,
    input_size: int = 224,
    device: str = "cpu",
) -> tuple[Any, ModelMeta]:
    """Load ``(model in eval mode, meta)`` from a .safetensors checkpoint or a plain .pth state_dict.

    ``classes`` (in output order) and ``input_size`` are needed for .pth files only.
    """
    import torch

    from mobilefer.models import create_model, infer_arch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    if path.suffix in (".pth", ".pt"):
        if not classes:
            raise CheckpointError(f"{path}: a plain state_dict has no class names; pass --classes a,b,c in output order")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for non-weights pickles
            raise CheckpointError(f"{path}: not a plain state_dict ({exc})") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: expected a state_dict, got {type(state).__name__}")
        state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from nn.DataParallel
        try:
            arch, in_chans, num_classes = infer_arch(state)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        if num_classes != len(classes):
            raise CheckpointError(f"{path}: the model has {num_classes} outputs but {len(classes)} classes were given")
        meta = legacy_meta(arch, classes, in_chans, input_size)
    elif path.suffix == ".safetensors":
        from safetensors.torch import load_file

        meta = read_meta(path)
        state = load_file(str(path))
    else:
        raise CheckpointError(f"{path}: expected a .safetensors checkpoint (or a .pth state_dict with --classes)")
    model = create_model(meta.arch, meta.num_classes, meta.channels)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit {meta.arch} ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), meta
