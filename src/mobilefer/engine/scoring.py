"""A PyTorch model's class probabilities on uint8 images already on its device, through THE
eval transform and the model's flip averaging: how training validates and a teacher reads."""
from __future__ import annotations

import torch
from torch import nn

from mobilefer.data.augment import eval_transform
from mobilefer.meta import ModelMeta


@torch.no_grad()
def predict_tensors(model: nn.Module, images: torch.Tensor, meta: ModelMeta, batch: int = 512, amp: bool = False) -> torch.Tensor:
    """Class probabilities float32 (N, K) for uint8 images (N, C, S, S) on the model's device."""
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = eval_transform(images[i : i + batch], meta).contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            p = (model(x).float() / meta.temperature).softmax(1)
            if meta.tta == "flip":
                p = (p + (model(x.flip(3)).float() / meta.temperature).softmax(1)) / 2
        out.append(p.float())
    return torch.cat(out) if out else torch.zeros(0, meta.num_classes)
