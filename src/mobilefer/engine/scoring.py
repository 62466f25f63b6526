"""A PyTorch model's class probabilities on uint8 images already on its device, through THE
eval transform and the model's flip averaging: how training validates and a teacher reads."""
from __future__ import annotations

import torch
from torch import nn

from mobilefer.data.augment import eval_transform
from mobilefer.meta import ModelMeta


@torch.no_grad()
def logit_views(model: nn.Module, images: torch.Tensor, meta: ModelMeta, batch: int = 512,
                amp: bool = False) -> list[torch.Tensor]:
    """The network's float32 logits (N, K) for uint8 images (N, C, S, S) on the model's device,
    one tensor per test-time view (the images, and mirrored where the model flips)."""
    model.eval()
    views: list[list[torch.Tensor]] = [[], []] if meta.tta == "flip" else [[]]
    for i in range(0, len(images), batch):
        x = eval_transform(images[i : i + batch], meta).contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            views[0].append(model(x).float())
            if len(views) == 2:
                views[1].append(model(x.flip(3)).float())
    return [torch.cat(v) if v else torch.zeros(0, meta.num_classes) for v in views]


def predict_tensors(model: nn.Module, images: torch.Tensor, meta: ModelMeta, batch: int = 512, amp: bool = False) -> torch.Tensor:
    """Class probabilities float32 (N, K) for uint8 images (N, C, S, S) on the model's device, at
    the model's temperature, averaged over its views, after its prior correction (runtime/probs.py)."""
    views = logit_views(model, images, meta, batch, amp)
    probs = sum((v / meta.temperature).softmax(1) for v in views) / len(views)
    weights = meta.class_weights()
    if weights is None:
        return probs
    probs = probs * torch.tensor(weights, dtype=probs.dtype, device=probs.device)
    return probs / probs.sum(1, keepdim=True)
