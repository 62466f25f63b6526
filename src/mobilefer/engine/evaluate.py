"""Honest evaluation: per-class metrics and a confusion matrix for any saved model.

Works for PyTorch checkpoints and ONNX models alike (no torch import for the latter):
images go through the model's own eval transform, classes are matched by name.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from mobilefer.atomic import atomic_path, write_text
from mobilefer.data.preprocess import normalize_batch
from mobilefer.data.readers import csv_has_usage, describe_skipped, load_images
from mobilefer.data.shift import CHANGES, shift_faces
from mobilefer.engine.config import EvalConfig
from mobilefer.engine.metrics import calibration, score
from mobilefer.errors import MissingExtraError
from mobilefer.runtime import load_classifier
from mobilefer.runtime.devices import choose_device

log = logging.getLogger(__name__)


def face_probabilities(clf, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """A classifier's probabilities (N, K) for faces at its base size (uint8 (N, S, S, C)),
    normalised as its metadata says and read ``batch_size`` at a time."""
    return np.concatenate([clf(normalize_batch(faces[i : i + batch_size], clf.meta))
                           for i in range(0, len(faces), batch_size)])


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Score ``config.model`` on ``config.data``; write JSON/PNG if asked. Returns the report.

    Images larger than the model's own faces are searched for their face first, as predict
    crops faces (:meth:`LargestFaceCrop.for_model`); the report's ``faces`` says how many. The
    report also carries ``skipped`` (unreadable files), ``dropped`` (vote data: images without a
    majority label, by reason) and ``model`` (its summary). Vote data (FER+) is always scored
    against the majority label.
    """
    clf = load_classifier(config.model, classes=config.classes, tta=config.tta, threads=config.threads,
                          device=choose_device(config.device))
    meta = clf.meta
    usage = config.usage or ("PublicTest" if csv_has_usage(config.data) else None)
    from mobilefer.inference.detectors import LargestFaceCrop

    crop = LargestFaceCrop.for_model(meta, config.crop_faces)
    data = load_images(
        config.data, usage=usage, channels=meta.channels, base_size=meta.base_size,
        classes=meta.classes, workers=config.workers, limit=config.limit, pixels=config.pixels, crop=crop,
    )
    images, changes = data.images, None
    if config.shift is not None:
        images, changes = shift_faces(images, config.shift)
    probs = face_probabilities(clf, images, config.batch_size)
    result = {**score(data.labels, probs.argmax(1), meta.classes), "calibration": calibration(probs, data.labels)}
    if changes is not None:
        result["shift"] = {"seed": config.shift, "by_change": by_change(data.labels, probs.argmax(1), changes)}
    if crop is not None and (said := crop.summary()):
        result["faces"] = said
    if config.json:
        write_text(config.json, json.dumps(result, indent=2) + "\n")
    if config.plot:
        plot_confusion(result, config.plot, title=f"{meta.arch} on {config.data}")
    if data.skipped:
        log.warning(describe_skipped(data.skipped))
    return {**result, "skipped": [reason for _, reason in data.skipped], "dropped": data.dropped,
            "model": meta.summary()}


def by_change(labels: np.ndarray, predicted: np.ndarray, changes: list[str]) -> dict[str, dict[str, Any]]:
    """Each change's faces and accuracy, in the order :data:`mobilefer.data.shift.CHANGES` lists them."""
    changes_arr = np.asarray(changes)
    out = {}
    for name in CHANGES:
        pick = changes_arr == name
        if not pick.any():
            continue
        out[name] = {"faces": int(pick.sum()), "accuracy": float((labels[pick] == predicted[pick]).mean())}
    return out


def plot_confusion(result: dict[str, Any], path: str, title: str = "") -> None:
    """Row-normalised confusion matrix heat-map with counts and, where the report has them, the
    reliability plot beside it, written as PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("plots need matplotlib: pip install 'mobilefer[plot]'") from None
    labels = result["confusion_matrix"]["labels"]
    cm = np.array(result["confusion_matrix"]["matrix"], dtype=np.float64)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    side = 0.6 + 0.8 * len(labels)
    bins = result.get("calibration", {}).get("bins", [])
    fig, axes = plt.subplots(1, 2 if bins else 1, figsize=((side + 0.4) + (side if bins else 0), side), dpi=120,
                             squeeze=False)
    ax = axes[0, 0]
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{share[i, j]:.2f}\n{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(f"{title}\naccuracy {result['accuracy']:.3f}, balanced {result['balanced_accuracy']:.3f}, "
                 f"macro-F1 {result['macro_f1']:.3f}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    if bins:  # the reliability plot: how often a face is right against the model's confidence in it
        rel = axes[0, 1]
        rel.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
        rel.bar([b["confidence"] for b in bins], [b["accuracy"] for b in bins], width=1 / 15, alpha=0.7,
                edgecolor="black", linewidth=0.5)
        rel.set_xlim(0, 1)
        rel.set_ylim(0, 1)
        rel.set_xlabel("confidence (top probability)")
        rel.set_ylabel("accuracy")
        rel.set_title(f"reliability: ECE {result['calibration']['ece']:.3f}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
