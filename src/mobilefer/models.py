"""Model registry over torchvision's MobileNetV3 (wrapped, not re-implemented).

``create_model(name, num_classes, in_chans)`` builds a network with a fresh head for
``num_classes`` and, on request, ImageNet weights (downloaded by torchvision's weights API,
or read from a local state_dict). One-channel models get the RGB stem folded into one channel.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

from mobilefer.errors import ConfigError, ModelFileError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchSpec:
    builder: Callable[..., nn.Module]
    weights: object  # torchvision weights enum member for ImageNet


_REGISTRY: dict[str, ArchSpec] = {
    "mobilenet_v3_large": ArchSpec(tvm.mobilenet_v3_large, tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V1),
    "mobilenet_v3_small": ArchSpec(tvm.mobilenet_v3_small, tvm.MobileNet_V3_Small_Weights.IMAGENET1K_V1),
}
ALIASES = {"large": "mobilenet_v3_large", "small": "mobilenet_v3_small"}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_stats(channels: int) -> tuple[list[float], list[float]]:
    """ImageNet mean/std for ``channels`` (one channel: the average over RGB)."""
    if channels == 3:
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    return [sum(IMAGENET_MEAN) / 3], [sum(IMAGENET_STD) / 3]


class PretrainedWeightsError(ModelFileError):
    """Start weights were asked for but cannot be had or used; the message says what to do."""


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def resolve_arch(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown architecture {name!r}; choose one of {', '.join(list_models())}")
    return name


def imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Download (or take from the torch cache) torchvision's ImageNet weights for ``name``."""
    weights = _REGISTRY[resolve_arch(name)].weights
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        url = weights.url
        target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        raise PretrainedWeightsError(
            f"cannot download ImageNet weights for {name} ({exc}).\n"
            f"Offline? Fetch {url}\nand place it at {target}, or pass --pretrained PATH to a local state_dict."
        ) from None


def _load_pretrained(model: nn.Module, source: str, name: str, in_chans: int) -> None:
    if source == "imagenet":
        state = imagenet_state_dict(name)
    else:
        path = Path(source)
        if not path.is_file():
            raise PretrainedWeightsError(f"{path}: no such weights file (expected a torchvision state_dict)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise PretrainedWeightsError(f"{path}: expected a state_dict, got {type(state).__name__}")
    stem_key = "features.0.0.weight"
    if in_chans == 1 and stem_key in state and state[stem_key].shape[1] == 3:
        # A gray image is R=G=B, so summing the RGB filters keeps the stem's response.
        state[stem_key] = state[stem_key].sum(dim=1, keepdim=True)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    dropped = sorted(set(state) - set(usable))
    model.load_state_dict(usable, strict=False)
    log.info("loaded %d pretrained tensors from %s (left out: %s)", len(usable), source, ", ".join(dropped) or "none")


def create_model(name: str, num_classes: int, in_chans: int = 1, pretrained: str | None = None) -> nn.Module:
    """A torchvision MobileNetV3 with a ``num_classes`` head taking ``in_chans`` channels.

    ``pretrained``: None (random init), "imagenet", or a path to a torchvision state_dict.
    """
    name = resolve_arch(name)
    if in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")
    model = _REGISTRY[name].builder(weights=None)
    if in_chans != 3:
        stem: nn.Conv2d = model.features[0][0]
        model.features[0][0] = nn.Conv2d(
            in_chans, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False
        )
        nn.init.kaiming_normal_(model.features[0][0].weight, mode="fan_out")
    if pretrained:
        _load_pretrained(model, pretrained, name, in_chans)
    head: nn.Linear = model.classifier[-1]
    model.classifier[-1] = nn.Linear(head.in_features, num_classes)
    nn.init.normal_(model.classifier[-1].weight, 0, 0.01)
    nn.init.zeros_(model.classifier[-1].bias)
    return model


def infer_arch(state: dict[str, torch.Tensor]) -> tuple[str, int, int]:
    """(arch, in_chans, num_classes) of a MobileNetV3 state_dict, from its tensor shapes."""
    try:
        in_chans = int(state["features.0.0.weight"].shape[1])
        head_keys = sorted(k for k in state if k.startswith("classifier.") and k.endswith(".weight"))
        num_classes = int(state[head_keys[-1]].shape[0])
        last_features = int(state["classifier.0.weight"].shape[1])
    except (KeyError, IndexError):
        raise ValueError("not a MobileNetV3 state_dict (no features.0.0 / classifier weights)") from None
    arch = {960: "mobilenet_v3_large", 576: "mobilenet_v3_small"}.get(last_features)
    if arch is None:
        raise ValueError(f"not a MobileNetV3 state_dict (last feature width {last_features})")
    return arch, in_chans, num_classes
