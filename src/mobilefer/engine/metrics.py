"""Classification metrics in numpy (no torch): accuracy, per-class P/R/F1, confusion matrix."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 (K, K): rows are true classes, columns predicted ones."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def report(cm: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics from a confusion matrix, in the JSON layout ``mobilefer evaluate`` writes.

    Macro-F1 averages over the classes present in the data (support > 0), so evaluating
    on a subset of a model's classes is not punished for the absent ones.
    """
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = int(cm.sum())
    present = support > 0
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        # the mean recall of the classes present: a model that calls every face neutral scores
        # 1 / classes here, whatever share of the faces are neutral
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "num_samples": total,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": {"labels": list(classes), "matrix": cm.tolist()},
    }


def score(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    return report(confusion_matrix(y_true, y_pred, len(classes)), classes)


def calibration(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> dict[str, Any]:
    """How far the top probability is from how often it is right: the expected calibration error
    (the bins' |accuracy - confidence| weighted by their share of faces) over ``bins`` equal
    confidence bins, and each bin's (confidence, accuracy, count) for a reliability plot."""
    probs, y_true = np.asarray(probs, dtype=np.float64), np.asarray(y_true)
    if not len(probs):
        return {"ece": 0.0, "bin_count": bins, "bins": []}
    confidence, right = probs.max(1), probs.argmax(1) == y_true
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            conf, acc = float(confidence[chosen].mean()), float(right[chosen].mean())
            ece += chosen.mean() * abs(acc - conf)
            rows.append({"confidence": round(conf, 4), "accuracy": round(acc, 4), "count": int(chosen.sum())})
    return {"ece": float(ece), "bin_count": bins, "bins": rows}


def format_report(result: dict[str, Any]) -> str:
    """The report as a terminal table: per-class rows, then the confusion matrix."""
    classes = result["confusion_matrix"]["labels"]
    width = max(9, *(len(c) for c in classes))
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for name in classes:
        row = result["per_class"][name]
        lines.append(
            f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}  {row['support']:7d}"
        )
    lines.append(
        f"{'accuracy':<{width}}  {result['accuracy']:9.3f}   macro-F1 {result['macro_f1']:.3f}   n={result['num_samples']}"
    )
    lines.append(f"{'balanced':<{width}}  {result['balanced_accuracy']:9.3f}   (the mean of the classes' recalls)")
    if "calibration" in result:
        found = result["calibration"]
        lines.append(f"{'ECE':<{width}}  {found['ece']:9.3f}   (expected calibration error, "
                     f"{found.get('bin_count', len(found['bins']))} confidence bins)")
    lines.append("")
    lines.append("confusion matrix (rows: true, columns: predicted)")
    cell = max(6, *(len(c[:8]) + 1 for c in classes))
    lines.append(" " * width + "".join(f"{c[:8]:>{cell}}" for c in classes))
    for name, row in zip(classes, result["confusion_matrix"]["matrix"]):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)
