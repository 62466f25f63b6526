"""Transforms on uint8 image batches already on the training device (no per-image Python).

``eval_transform`` is the torch twin of :func:`mobilefer.data.preprocess.normalize_batch`
(tested equal). ``train_transform`` draws one random affine view per image (scale, rotation,
shift, flip) and samples it straight at the input size, then jitters brightness/contrast
and erases a random patch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mobilefer.meta import ModelMeta


@dataclass(frozen=True)
class Augment:
    scale: tuple[float, float] = (0.85, 1.1)
    rotate: float = 12.0
    translate: float = 0.08
    flip: bool = True
    jitter: float = 0.25
    erase: float = 0.25


def _normalize(x: torch.Tensor, meta: ModelMeta) -> torch.Tensor:
    mean = torch.tensor(meta.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(meta.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def eval_transform(images: torch.Tensor, meta: ModelMeta) -> torch.Tensor:
    """uint8 (N, C, S, S) at base size -> float32 (N, C, input, input), normalised."""
    x = images.float().div_(255.0)
    if x.shape[-1] != meta.input_size:
        x = F.interpolate(x, size=(meta.input_size,) * 2, mode="bilinear", align_corners=False, antialias=False)
    return _normalize(x, meta)


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (high - low) + low


def train_transform(images: torch.Tensor, meta: ModelMeta, aug: Augment, gen: torch.Generator) -> torch.Tensor:
    """uint8 (N, C, S, S) -> augmented float32 (N, C, input, input), normalised."""
    n, dev, size = images.shape[0], images.device, meta.input_size
    x = images.float().div_(255.0)
    scale = _uniform(n, *aug.scale, gen, dev)
    angle = _uniform(n, -aug.rotate, aug.rotate, gen, dev) * (math.pi / 180.0)
    shift = _uniform(2 * n, -2 * aug.translate, 2 * aug.translate, gen, dev).view(n, 2)  # [-1, 1] spans 2
    mirror = torch.ones(n, device=dev)
    if aug.flip:
        mirror = torch.where(torch.rand(n, generator=gen, device=dev) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [torch.stack([cos * mirror, -sin, shift[:, 0]], 1), torch.stack([sin * mirror, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if aug.jitter > 0:
        contrast = _uniform(n, 1 - aug.jitter, 1 + aug.jitter, gen, dev).view(n, 1, 1, 1)
        bright = _uniform(n, -aug.jitter / 2, aug.jitter / 2, gen, dev).view(n, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean + bright).clamp_(0.0, 1.0)
    x = _normalize(x, meta)
    if aug.erase > 0:
        x = _erase(x, aug.erase, gen)
    return x


def _erase(x: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017): a patch of 2-20 % of the area set to the mean."""
    n, _, h, w = x.shape
    dev = x.device
    area = _uniform(n, 0.02, 0.2, gen, dev) * h * w
    aspect = torch.exp(_uniform(n, math.log(0.3), math.log(3.3), gen, dev))
    eh = (area * aspect).sqrt().clamp(1, h).long()
    ew = (area / aspect).sqrt().clamp(1, w).long()
    top = (torch.rand(n, generator=gen, device=dev) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=gen, device=dev) * (w - ew + 1)).long()
    apply = torch.rand(n, generator=gen, device=dev) < prob
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    mask = (
        (rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1))
        & apply.view(n, 1, 1)
    )
    return x.masked_fill(mask.unsqueeze(1), 0.0)
