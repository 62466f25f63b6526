"""Faces turned upright by CenterFace's eye landmarks before they are classified: what it does
on FER+ Valid and on its shifted copy (evaluate --shift 0, whose "rotate" faces are turned 8-20
degrees).

    python benchmarks/upright_faces.py [--model ferplus-small] [--limits 8,12]

Each 48 px face is enlarged 3x into the middle of a 288 px square (its edges repeated) for
CenterFace, whose five points give the face's roll (inference/pose.py); a face rolled by at least
a limit is turned back by that roll about its centre (edges repeated) and classified again.
Accuracy on all faces and on the faces turned, with the model's own prior correction.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
ENLARGE, PAD = 3, 72


def rolls(faces: np.ndarray, detector) -> np.ndarray:
    """Each gray 48 px face's roll in degrees by its landmarks (NaN where none were found)."""
    from mobilefer.inference.pose import head_pose

    out = np.full(len(faces), np.nan)
    for i, face in enumerate(faces):
        side = face.shape[0] * ENLARGE
        big = cv2.resize(face[..., 0], (side, side), interpolation=cv2.INTER_LINEAR)
        square = cv2.cvtColor(cv2.copyMakeBorder(big, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2BGR)
        boxes = [b for b in detector.detect(square, min_face=40, upscale=False) if b.landmarks is not None]
        pose = head_pose(max(boxes, key=lambda b: b.w * b.h).landmarks) if boxes else None
        if pose is not None:
            out[i] = pose.roll
    return out


def turned(faces: np.ndarray, roll: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """``faces`` with those rolled by ``limit`` degrees or more turned back, and which those are."""
    chosen = np.abs(np.nan_to_num(roll)) >= limit
    out = faces.copy()
    side = faces.shape[1]
    for i in np.flatnonzero(chosen):
        turn = cv2.getRotationMatrix2D(((side - 1) / 2, (side - 1) / 2), float(roll[i]), 1.0)
        out[i, ..., 0] = cv2.warpAffine(faces[i, ..., 0], turn, (side, side), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE)
    return out, chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ferplus-small")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ferplus"))
    parser.add_argument("--limits", default="8,12")
    args = parser.parse_args()

    from mobilefer.data.readers import load_images
    from mobilefer.data.shift import shift_faces
    from mobilefer.engine.evaluate import face_probabilities
    from mobilefer.inference.centerface import CenterFaceDetector
    from mobilefer.runtime import load_classifier

    clf = load_classifier(args.model, threads=1)
    meta = clf.meta
    detector = CenterFaceDetector(threads=1)
    valid = load_images(str(Path(args.data) / "ferplus_valid.zip"), channels=1, base_size=meta.base_size,
                        classes=meta.classes)
    labels = valid.labels
    shifted, change = shift_faces(valid.images, 0)

    def predict(faces):
        return face_probabilities(clf, faces).argmax(1)

    print(f"{args.model}: faces turned upright by their landmarks before they are classified")
    print("| faces | landmarks found | roll limit | faces turned | accuracy, all | turned: before | turned: after | 'rotate' faces: before | after |")
    print("|---|---|---|---|---|---|---|---|---|")
    rotate = np.asarray(change) == "rotate"
    for name, faces in (("FER+ Valid", valid.images), ("shifted", shifted)):
        roll = rolls(faces, detector)
        before = predict(faces) == labels
        for limit in (float(v) for v in args.limits.split(",")):
            upright, chosen = turned(faces, roll, limit)
            after = predict(upright) == labels
            rot = (f"{before[rotate].mean():.3f} | {after[rotate].mean():.3f}" if name == "shifted" else "- | -")
            print(f"| {name} | {np.mean(~np.isnan(roll)):.2f} | {limit:g} | {chosen.sum()} | {before.mean():.4f} -> "
                  f"{after.mean():.4f} | {before[chosen].mean():.3f} | {after[chosen].mean():.3f} | {rot} |")


if __name__ == "__main__":
    main()
