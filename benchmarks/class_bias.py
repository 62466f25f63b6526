"""A bias for each class fitted on FER+ Valid, scored honestly: fitted on one half of Valid and
scored on the other, against the model's prior correction on the same halves.

    python benchmarks/class_bias.py [--model ferplus-small] [--splits 40]

The bias is fitted by the least negative log-likelihood of the model's probabilities (its own
temperature, its prior correction off), each face weighted by n_class^-alpha: alpha 0 fits
Valid's own class shares, alpha 1 a set with every emotion equally common. Each row is the mean
over ``--splits`` random halvings (each class halved): accuracy, balanced accuracy, macro-F1,
the rare classes' recall and how often the answer is "neutral" (Valid's faces: 37.0 %), on the
scored half of Valid and of its shifted copy (evaluate --shift 0).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RARE = ("contempt", "disgust", "fear")


def fit_bias(logp: np.ndarray, labels: np.ndarray, alpha: float, steps: int = 50) -> np.ndarray:
    """The bias b minimising the weighted mean of -log softmax(logp + b)[label]: Newton's method
    with a step halved until the loss falls (the loss is convex in b; b sums to 0, which leaves
    every softmax as it is)."""
    k = logp.shape[1]
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    weight = np.maximum(counts, 1.0) ** -alpha
    w = weight[labels] / weight[labels].sum()
    onehot = np.eye(k)[labels]

    def loss(b: np.ndarray) -> tuple[float, np.ndarray]:
        z = logp + b
        z = z - z.max(1, keepdims=True)
        lse = np.log(np.exp(z).sum(1))
        return float(w @ (lse - z[np.arange(len(labels)), labels])), np.exp(z - lse[:, None])

    b = np.zeros(k)
    value, p = loss(b)
    for _ in range(steps):
        grad = w @ (p - onehot)
        hess = np.diag(w @ p) - (p * w[:, None]).T @ p  # singular along (1, ..., 1): least squares
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        step -= step.mean()
        size = 1.0
        while size > 1e-4:
            new_value, new_p = loss(b - size * step)
            if new_value <= value:
                break
            size /= 2
        else:
            break
        b, converged = b - size * step, value - new_value < 1e-12
        value, p = new_value, new_p
        if converged:
            break
    return b


def halves(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A mask of about half of each class's faces."""
    chosen = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        chosen[idx[:len(idx) // 2]] = True
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ferplus-small")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ferplus"))
    parser.add_argument("--splits", type=int, default=40)
    parser.add_argument("--alphas", default="0,0.25,0.5,1")
    args = parser.parse_args()

    from mobilefer.data.readers import load_images
    from mobilefer.data.shift import shift_faces
    from mobilefer.engine.evaluate import face_probabilities
    from mobilefer.engine.metrics import score
    from mobilefer.runtime import load_classifier

    clf = load_classifier(args.model, threads=1)
    meta = clf.meta
    tau = meta.prior_correction
    meta.prior_correction = 0.0  # each correction below in its place
    prior = np.asarray(meta.prior)
    valid = load_images(str(Path(args.data) / "ferplus_valid.zip"), channels=meta.channels,
                        base_size=meta.base_size, classes=meta.classes)

    def logp(images):
        return np.log(np.clip(face_probabilities(clf, images), 1e-12, 1.0))

    sets = {"Valid": logp(valid.images), "shifted": logp(shift_faces(valid.images, 0)[0])}
    labels, neutral = valid.labels, meta.classes.index("neutral")
    rng = np.random.default_rng(0)
    rows: dict[str, list[list[float]]] = {}
    for _ in range(args.splits):
        fitted = halves(labels, rng)
        scored = ~fitted
        biases = {f"prior correction {tau:g}": -tau * np.log(prior)}
        for alpha in (float(a) for a in args.alphas.split(",")):
            biases[f"bias, alpha {alpha:g}"] = fit_bias(sets["Valid"][fitted], labels[fitted], alpha)
        for name, bias in biases.items():
            row = []
            for lp in sets.values():
                pred = (lp[scored] + bias).argmax(1)
                r = score(labels[scored], pred, meta.classes)
                row += [r["accuracy"], r["balanced_accuracy"], r["macro_f1"],
                        *(r["per_class"][c]["recall"] for c in RARE), float(np.mean(pred == neutral))]
            rows.setdefault(name, []).append(row)
    print(f"{args.model}: fitted on half of FER+ Valid, scored on the other half ({args.splits} halvings, means)")
    head = ["accuracy", "balanced", "macro-F1", *(f"{c} R" for c in RARE), "neutral answers"]
    print("| correction | " + " | ".join(f"Valid {h}" for h in head) + " | shifted accuracy | shifted neutral answers |")
    print("|---|" + "---|" * (len(head) + 2))
    for name, values in rows.items():
        m = np.mean(values, axis=0)
        valid_cells = [f"{v:.4f}" if i == 0 else f"{v:.3f}" for i, v in enumerate(m[:len(head)])]
        print(f"| {name} | " + " | ".join(valid_cells) + f" | {m[len(head)]:.4f} | {m[-1]:.3f} |")


if __name__ == "__main__":
    main()
