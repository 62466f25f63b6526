"""An exponential moving average of a model's weights (parameters and BatchNorm statistics).

A short fine-tune ends while the weights still move from batch to batch; their average over
the last few hundred steps generalises better than any single step's weights.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """``model``'s average, kept in a copy (``.model``) that evaluates and saves like the original.

    The decay ramps up from 0.1 (``(1 + n) / (10 + n)`` after n updates) so that the average
    of a run's first steps is not held back by the start weights.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        pairs = list(zip(self.model.state_dict().values(), model.state_dict().values()))
        self._floats = [(a, b) for a, b in pairs if a.dtype.is_floating_point]
        self._others = [(a, b) for a, b in pairs if not a.dtype.is_floating_point]

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the source model's current weights (call after each step)."""
        self.updates += 1
        weight = 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))
        averaged, current = zip(*self._floats)
        torch._foreach_lerp_(list(averaged), list(current), weight)
        for a, b in self._others:
            a.copy_(b)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The average's tensors plus its update count, for a resumable training state."""
        return {**self.model.state_dict(), "_updates": torch.tensor([self.updates], dtype=torch.long)}

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        self.updates = int(tensors["_updates"].item())
