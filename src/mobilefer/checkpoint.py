"""Self-describing checkpoints: safetensors weights with the model's metadata in the header.

One file, ``*.safetensors``: tensors plus ``{"mobilefer": <ModelMeta JSON>}`` in the
safetensors metadata. Loading never unpickles. The origin notebook's plain state_dict
``.pth`` files load too (``weights_only=True``), given their class names.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mobilefer.atomic import atomic_path
from mobilefer.errors import ModelFileError
from mobilefer.meta import METADATA_KEY, ModelMeta
from mobilefer.runtime.files import read_meta



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
        raise ModelFileError(f"{path}: no such model file")
    if path.suffix in (".pth", ".pt"):
        if not classes:
            raise ModelFileError(f"{path}: a plain state_dict has no class names; pass --classes a,b,c in output order")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for non-weights pickles
            raise ModelFileError(f"{path}: not a plain state_dict ({exc})") from None
        if not isinstance(state, dict):
            raise ModelFileError(f"{path}: expected a state_dict, got {type(state).__name__}")
        state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from nn.DataParallel
        try:
            arch, in_chans, num_classes = infer_arch(state)
        except ValueError as exc:
            raise ModelFileError(f"{path}: {exc}") from None
        if num_classes != len(classes):
            raise ModelFileError(f"{path}: the model has {num_classes} outputs but {len(classes)} classes were given")
        meta = legacy_meta(arch, classes, in_chans, input_size)
    elif path.suffix == ".safetensors":
        meta = read_meta(path)
        state = read_weights(path)
    else:
        raise ModelFileError(f"{path}: expected a .safetensors checkpoint (or a .pth state_dict with --classes)")
    try:
        model = create_model(meta.arch, meta.num_classes, meta.channels)
    except ValueError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not fit {meta.arch} ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), meta


def read_weights(path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """The tensors of a .safetensors file; ModelFileError naming the file if it is damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mobilefer.runtime.files import read_safetensors_metadata

    read_safetensors_metadata(path)  # a cut or foreign file fails here with a clear message
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: unreadable weights ({str(exc).splitlines()[0][:200]})") from None


def start_from(model: Any, path: str | Path, start: ModelMeta, classes: Sequence[str]) -> dict[str, str | None]:
    """Copy a trained mobilefer model's weights into ``model`` (same arch, ``classes`` outputs).

    Everything but the last layer is copied as is. The last layer's row (weights and bias)
    of each class is taken from the start model's class of the same name (synonyms and
    close spellings count, see :func:`mobilefer.classes.match_classes`); classes the start
    model lacks keep their fresh initialisation. Returns {class: start class or None}.
    """
    import torch

    from mobilefer.classes import match_classes

    state = read_weights(path)
    own = model.state_dict()
    head = sorted(k for k in own if k.startswith("classifier.") and k.endswith(".weight"))[-1].removesuffix(".weight")
    body = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    bad = [k for k, v in body.items() if k not in own or own[k].shape != v.shape]
    missing = [k for k in own if not k.startswith(head + ".") and k not in body]
    if bad or missing:
        raise ModelFileError(f"{path}: its weights do not fit a {start.arch} with {model_channels(model)} channel(s) "
                             f"({len(bad)} mismatched, {len(missing)} missing tensors)")
    model.load_state_dict(body, strict=False)
    rows = match_classes(list(classes), start.classes)
    weight, bias = model.get_parameter(head + ".weight"), model.get_parameter(head + ".bias")
    with torch.no_grad():
        for k, row in enumerate(rows):
            if row is not None:
                weight[k] = state[head + ".weight"][row]
                bias[k] = state[head + ".bias"][row]
    return {name: (start.classes[row] if row is not None else None) for name, row in zip(classes, rows)}


def model_channels(model: Any) -> int:
    return int(model.features[0][0].weight.shape[1])
