"""Transforms on uint8 image batches already on the training device (no per-image Python).

``eval_transform`` is the torch twin of :func:`mobilefer.data.preprocess.normalize_batch`
(tested equal). ``train_transform`` draws one random affine view per image (scale, rotation,
shift, flip) and samples it straight at the input size, then jitters brightness/contrast,
degrades a share of the faces as a camera does (out of focus, sensor noise, dim or uneven
light: the changes of :mod:`mobilefer.data.shift`, drawn here on the device with their own
strengths) and erases a random patch.
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
    degrade: float = 0.0  # the share of faces blurred, noised or lit badly


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
    if aug.degrade > 0:
        x = _degrade(x, aug.degrade, gen)
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


BLUR_SIGMA = (0.3, 1.5)  # in pixels of a 48 px face
NOISE_SIGMA = (0.01, 0.06)  # of the full range
LIGHT_LOW, LIGHT_HIGH = (0.25, 1.0), (0.6, 1.25)  # gain at the dark and the bright side


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Each image of (N, C, H, W) blurred by its own Gaussian (sigma: (N,) in pixels)."""
    n, c, h, w = x.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps.view(1, -1) / sigma.view(-1, 1)) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N*C, K)
    flat = F.pad(x.reshape(1, n * c, h, w), (radius,) * 4, mode="replicate")
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, -1), groups=n * c)
    flat = F.conv2d(flat, kernel.view(n * c, 1, -1, 1), groups=n * c)
    return flat.view(n, c, h, w)


def _degrade(x: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """A share ``prob`` of [0, 1] images (N, C, S, S): a third each blurred, noised or lit from
    one side (dim overall when both gains are low)."""
    n, _, size, _ = x.shape
    dev = x.device
    kind = torch.randint(0, 3, (n,), generator=gen, device=dev)
    apply = torch.rand(n, generator=gen, device=dev) < prob
    sigma = _uniform(n, *BLUR_SIGMA, gen, dev) * (size / 48)
    noise = torch.randn(x.shape, generator=gen, device=dev) * _uniform(n, *NOISE_SIGMA, gen, dev).view(n, 1, 1, 1)
    angle = _uniform(n, 0, 2 * math.pi, gen, dev).view(n, 1, 1, 1)
    low, high = _uniform(n, *LIGHT_LOW, gen, dev), _uniform(n, *LIGHT_HIGH, gen, dev)
    out = x.clone()
    pick = torch.nonzero(apply & (kind == 0)).flatten()
    if len(pick):
        out[pick] = _blur(x[pick], sigma[pick])
    pick = torch.nonzero(apply & (kind == 1)).flatten()
    out[pick] = x[pick] + noise[pick]
    pick = torch.nonzero(apply & (kind == 2)).flatten()
    if len(pick):
        axis = torch.linspace(-0.5, 0.5, size, device=dev)
        a = angle[pick]
        ramp = (axis.view(1, 1, 1, -1) * torch.cos(a) + axis.view(1, 1, -1, 1) * torch.sin(a)) / 1.42 + 0.5
        gain = low[pick].view(-1, 1, 1, 1) + (high[pick] - low[pick]).view(-1, 1, 1, 1) * ramp
        out[pick] = x[pick] * gain
    return out.clamp_(0.0, 1.0)
