"""More views of each face at test time than the model's flip: shifted, zoomed and turned copies,
their probabilities averaged, on FER+ Valid.

    python benchmarks/tta_views.py [--model ferplus-small] [--data ../shared/data/ferplus/ferplus_valid.zip]
                                   [--shift SEED] [--sets "2 turns"]

Each 48 px face is moved 2 px left, right, up and down, zoomed 0.93x and 1.08x and turned 8
degrees either way (bilinear, edges reflected): views inside training's own augmentation (shift
8 %, scale 0.85-1.1, rotation 12 degrees). Each view goes through the model as it is (its flip,
temperature and prior correction), and the views' probabilities are averaged. Accuracy, balanced
accuracy, macro-F1 and the share of "neutral" answers for each set of views, against the face
alone; each extra view costs one more pass of the network. ``--shift SEED``: the same on the
shifted copy of those faces that `mobilefer evaluate --shift SEED` scores (faces as cameras show
them); ``--sets``: only the named sets of views (comma-separated), so only their views are made.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from mobilefer.data.readers import load_images
from mobilefer.data.shift import shift_faces, warp
from mobilefer.engine.evaluate import face_probabilities
from mobilefer.engine.metrics import score
from mobilefer.runtime import load_classifier

# name: (dx, dy, scale, degrees)
VIEWS = {"shift right": (2, 0, 1, 0), "shift left": (-2, 0, 1, 0), "shift up": (0, -2, 1, 0),
         "shift down": (0, 2, 1, 0), "zoom in": (0, 0, 1.08, 0), "zoom out": (0, 0, 0.93, 0),
         "turn left": (0, 0, 1, 8), "turn right": (0, 0, 1, -8)}
SETS = {"the face alone": [], "4 shifts": ["shift right", "shift left", "shift up", "shift down"],
        "2 zooms": ["zoom in", "zoom out"], "2 turns": ["turn left", "turn right"], "all 8": list(VIEWS)}


def view(faces: np.ndarray, dx: float, dy: float, scale: float, degrees: float) -> np.ndarray:
    """Every face moved, zoomed and turned alike, as the shifted set turns and crops a face."""
    return np.stack([warp(face, degrees, scale, (dx, dy)) for face in faces])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ferplus-small")
    parser.add_argument("--data", default="../shared/data/ferplus/ferplus_valid.zip")
    parser.add_argument("--shift", type=int, default=None, metavar="SEED",
                        help="the shifted copy of the faces that evaluate --shift SEED scores")
    parser.add_argument("--sets", default=",".join(SETS), help="sets of views to score, comma-separated")
    args = parser.parse_args()
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    if not names or any(n not in SETS for n in names):
        parser.error(f"--sets {args.sets!r}: expected names from {', '.join(SETS)}")
    sets = {name: SETS[name] for name in names}
    clf = load_classifier(args.model)
    meta = clf.meta
    data = load_images(args.data, channels=meta.channels, base_size=meta.base_size, classes=meta.classes)
    faces = data.images if args.shift is None else shift_faces(data.images, args.shift)[0]
    started = time.perf_counter()
    wanted = sorted({v for extra in sets.values() for v in extra}, key=list(VIEWS).index)
    probs = {"face": face_probabilities(clf, faces)}
    probs.update({name: face_probabilities(clf, view(faces, *VIEWS[name])) for name in wanted})
    shifted = "" if args.shift is None else f", shifted (seed {args.shift})"
    print(f"{args.model} on {args.data}{shifted}: {len(data)} faces, {1 + len(wanted)} views in "
          f"{time.perf_counter() - started:.0f} s\n")
    print("| views averaged | network passes | accuracy | balanced | macro-F1 | answers \"neutral\" |")
    print("|---|---|---|---|---|---|")
    neutral = meta.classes.index("neutral")
    for name, extra in sets.items():
        mean = np.mean([probs["face"], *(probs[v] for v in extra)], axis=0)
        report = score(data.labels, mean.argmax(1), meta.classes)
        print(f"| {name} | {1 + len(extra)} | {report['accuracy']:.4f} | {report['balanced_accuracy']:.3f} | "
              f"{report['macro_f1']:.3f} | {np.mean(mean.argmax(1) == neutral):.1%} |")


if __name__ == "__main__":
    main()
