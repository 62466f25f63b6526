"""Which crop around a detector's box matches the face crops a model learned from (FER+).

    python benchmarks/bench_face_crop.py --data ../shared/data/ferplus/ferplus_valid.zip

1. Geometry: each detector runs on FER+ faces (enlarged 4x, the picture continued past its edges
   by replicating them) and its box is measured in units of the FER crop: centre, width,
   height. A box that spans the crop edge to edge means margin 0 reproduces the training crop.
2. Accuracy through the detector: the same faces, detected, cropped with each margin and
   classified, against FER+ majority labels (a unit case: the faces are FER's own).
3. Real footage: faces in frames of the shared clips through both crops; without labels, the
   share whose top class changes and the mean confidence of each.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from mobilefer.data.readers import load_images
from mobilefer.inference.detectors import face_crop
from mobilefer.inference.recognizer import EmotionRecognizer
from mobilefer.inference.sources import iter_frames

PAD = 4  # enlargement of each 48 px face, and the border around it in face sides


def on_canvas(face: np.ndarray) -> np.ndarray:
    """uint8 (48, 48) gray FER face -> BGR canvas with the face enlarged in its middle."""
    side = face.shape[0] * PAD
    up = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(cv2.copyMakeBorder(up, side, side, side, side, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2BGR)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data/ferplus/ferplus_valid.zip")
    parser.add_argument("--model", default=None, help="default: the bundled default model")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--margins", default="0.15,0.0")
    parser.add_argument("--videos", default="../shared/data/videos")
    parser.add_argument("--every", type=int, default=15, help="video frames: every Nth")
    args = parser.parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    data = load_images(args.data, limit=args.limit, seed=1, channels=1, base_size=48)
    print(f"{len(data)} faces of {args.data} (majority labels)")
    for name in ("centerface", "haar"):
        rec = EmotionRecognizer.load(args.model, detector=name, min_face=20)
        side = data.images.shape[1] * PAD
        boxes, probs, kept = [], {m: [] for m in margins}, []
        for i, face in enumerate(data.images[:, :, :, 0]):
            canvas = on_canvas(face)
            found = rec.detector.detect(canvas)
            if not found:
                continue
            box = max(found, key=lambda b: b.w * b.h)
            boxes.append(((box.x + box.w / 2 - side) / side, (box.y + box.h / 2 - side) / side, box.w / side,
                          box.h / side))
            kept.append(i)
            for m in margins:
                crop = cv2.cvtColor(face_crop(canvas, box, m), cv2.COLOR_BGR2RGB)
                probs[m].append(rec.classify_crops([crop])[0])
        geometry = np.median(np.array(boxes), axis=0)
        truth = np.array([rec.classes.index(data.classes[data.labels[i]]) for i in kept])
        print(f"\n{name}: found {len(kept)} of {len(data)}; median box in FER-crop units: centre "
              f"({geometry[0]:.3f}, {geometry[1]:.3f}), width {geometry[2]:.3f}, height {geometry[3]:.3f} "
              f"-> implied margin {(1 / max(geometry[2:]) - 1) / 2:+.3f}")
        for m in margins:
            accuracy = float((np.argmax(probs[m], 1) == truth).mean())
            print(f"  margin {m:.2f}: accuracy {accuracy:.3f} on the faces it found")

    clips = sorted(Path(args.videos).glob("*.mp4"))
    if not clips:
        return
    rec = EmotionRecognizer.load(args.model, detector="auto")
    print(f"\nreal clips ({rec.detector.name}, every {args.every}th frame): faces whose top class changes "
          f"between margins {margins[0]} and {margins[1]}, mean top-class probability of each")
    for clip in clips:
        changed, total, conf = 0, 0, {m: [] for m in margins}
        for frame in (f.image for f in iter_frames(str(clip)) if (f.index + 1) % args.every == 0):
            for box in rec.detector.detect(frame):
                p = {m: rec.classify_crops([cv2.cvtColor(face_crop(frame, box, m), cv2.COLOR_BGR2RGB)])[0]
                     for m in margins}
                total += 1
                changed += int(np.argmax(p[margins[0]]) != np.argmax(p[margins[1]]))
                for m in margins:
                    conf[m].append(float(p[m].max()))
        if total:
            print(f"  {clip.name}: {total} faces, top class changes on {changed / total:.0%}; mean confidence "
                  + ", ".join(f"margin {m}: {np.mean(conf[m]):.3f}" for m in margins))


if __name__ == "__main__":
    main()
