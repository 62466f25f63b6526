"""Distillation from a teacher model: its class probabilities become part of the training target.

The teacher (a bundled name or a mobilefer ``.safetensors``, usually a larger model trained on
the same classes) reads every training image once, as evaluation reads it (its own input size,
normalisation and test-time augmentation), before the first epoch. Each step then trains on

    target = (1 - weight) * labels + weight * teacher probabilities

where ``labels`` are the run's own (one-hot, or the vote distribution with ``--labels soft``).
Computing the teacher once keeps a step as cheap as without one: a MobileNetV3-Large forward
pass per image per epoch would cost more than the Small's training step itself on a CPU.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from mobilefer.checkpoint import load_model
from mobilefer.classes import match_classes
from mobilefer.engine.scoring import predict_tensors
from mobilefer.errors import ConfigError

if TYPE_CHECKING:
    from mobilefer.meta import ModelMeta

log = logging.getLogger(__name__)


@dataclass
class Teacher:
    ref: str
    model: torch.nn.Module
    meta: "ModelMeta"
    rows: list[int]  # the teacher's output row of each of the run's classes


def load_teacher(ref: str, classes: list[str], channels: int) -> Teacher:
    """The teacher ``ref`` names, checked against the run's ``classes`` and ``channels`` (a
    ConfigError naming it otherwise): called before the run's folder is made, so a wrong
    teacher leaves nothing behind."""
    from mobilefer.runtime import resolve_model

    try:
        found = resolve_model(ref, torch_weights=True)
    except ValueError as exc:
        raise ConfigError(f"--teacher: {exc}") from None
    model, meta = load_model(found.path)
    # the teacher's own posterior on the faces it was trained on, as the student learns one: its
    # prior correction is for the answers it reports, not for the targets it teaches
    meta.prior_correction = 0.0
    if meta.channels != channels:
        raise ConfigError(f"--teacher {ref}: it reads {meta.channels}-channel images; this run's are {channels}-channel")
    rows = match_classes(list(classes), meta.classes)  # close spellings count, as for fine-tuning
    missing = [name for name, row in zip(classes, rows) if row is None]
    if missing:
        raise ConfigError(f"--teacher {ref}: it has no class {', '.join(missing)} (its classes: "
                          f"{', '.join(meta.classes)}); a teacher must know every class of the run")
    return Teacher(found.ref, model, meta, rows)


def teacher_probs(teacher: Teacher, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The teacher's probabilities (N, len(classes)) in the run's class order for uint8 images (N, C, S, S)."""
    model = teacher.model.to(images.device, memory_format=torch.channels_last)
    started = time.perf_counter()
    probs = predict_tensors(model, images, teacher.meta, batch=batch)[:, teacher.rows]
    probs = probs / probs.sum(1, keepdim=True)  # classes the run leaves out give their share back
    log.info("teacher %s read %d training images in %.0f s (tta %s)", teacher.ref, len(images),
             time.perf_counter() - started, teacher.meta.tta)
    return probs


def mix(labels: torch.Tensor, teacher: torch.Tensor, weight: float) -> torch.Tensor:
    """The step's target distribution: ``labels`` (class indices or distributions) blended with the teacher's."""
    if labels.ndim == 1:
        labels = F.one_hot(labels, teacher.shape[1]).to(teacher.dtype)
    return (1.0 - weight) * labels + weight * teacher
