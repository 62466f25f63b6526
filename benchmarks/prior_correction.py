"""What a prior correction stored in the model would do: logits minus tau * log(the training
prior), on FER+ Valid and on its shifted copy (evaluate --shift 0).

    python benchmarks/prior_correction.py [--model ferplus-small] [--data ../shared/data/ferplus]

For each tau: accuracy, balanced accuracy, macro-F1 and the recall of contempt, disgust and fear
(the rare classes), at the model's own temperature. tau 0 is the network without its correction;
tau 1 the balanced posterior (Menon et al. 2021, logit adjustment). The prior is the model's own
(ModelMeta.prior: the FER+ models carry each emotion's share of FER+ Train's votes), else the
share of each class among FER+ Train's faces (each face's most voted emotion), read from the data.
The shipped models' correction is `python scripts/calibrate_bundled.py` (temperature refitted).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RARE = ("contempt", "disgust", "fear")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ferplus-small")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ferplus"))
    parser.add_argument("--taus", default="0,0.1,0.2,0.3,0.5,0.7,1")
    args = parser.parse_args()

    from mobilefer.data.readers import load_images
    from mobilefer.data.shift import shift_faces
    from mobilefer.engine.evaluate import face_probabilities
    from mobilefer.engine.metrics import score
    from mobilefer.runtime import load_classifier

    clf = load_classifier(args.model, threads=1)
    meta = clf.meta
    meta.prior_correction = 0.0  # each tau below in its place
    if meta.prior:
        prior = np.asarray(meta.prior)
    else:
        train = load_images(str(Path(args.data) / "ferplus_train.zip"), channels=meta.channels,
                            base_size=meta.base_size, classes=meta.classes)
        prior = np.bincount(train.labels, minlength=meta.num_classes) / len(train)
    valid = load_images(str(Path(args.data) / "ferplus_valid.zip"), channels=meta.channels,
                        base_size=meta.base_size, classes=meta.classes)

    def probs(images):
        return face_probabilities(clf, images)

    sets = {"Valid": probs(valid.images), "shifted": probs(shift_faces(valid.images, 0)[0])}
    print(f"{args.model}; prior: " + ", ".join(f"{c} {p:.3f}" for c, p in zip(meta.classes, prior)))
    print("| tau | set | accuracy | balanced | macro-F1 | " + " | ".join(f"{c} recall" for c in RARE) + " |")
    print("|---|---|---|---|---|" + "---|" * len(RARE))
    for tau in (float(t) for t in args.taus.split(",")):
        for name, p in sets.items():
            r = score(valid.labels, (np.log(np.clip(p, 1e-12, 1)) - tau * np.log(prior)).argmax(1), meta.classes)
            rare = " | ".join(f"{r['per_class'][c]['recall']:.2f}" for c in RARE)
            print(f"| {tau:g} | {name} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | {r['macro_f1']:.3f} | {rare} |")


if __name__ == "__main__":
    main()
