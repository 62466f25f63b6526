"""`mobilefer evaluate` on face crops looser than the model's own: does it read them as predict does?

    python benchmarks/bench_eval_crop.py [--clips ../shared/data/videos/*.mp4] [--every 15]
                                         [--loose 1,1.5,2,3]

Labelled face sets outside FER come cropped in their own way: studio portraits with the head and
shoulders, news photos cut with a margin, aligned crops with hair and background. The model
learned from tight 48 px crops, forehead to chin, and predict cuts every face so. This takes the
faces predict finds in frames of the shared real clips (every ``--every``-th frame), labels each
with predict's answer, and writes each face again as a square ``--loose`` times its box's side
around it (inside the frame; a face whose square does not fit is left out), a folder a class.
Each folder is then scored by `evaluate` as a user runs it, by default (images larger than the
model's 48 px faces searched for their face and cut as predict cuts it) and with ``--no-crop-faces``
(each image as it is, centre square): the share that gets predict's answer, and the share of
answers that are "neutral". Agreement with predict, not accuracy: the clips have no labels.
"""
from __future__ import annotations

import argparse
import glob
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from mobilefer.engine.config import EvalConfig
from mobilefer.engine.evaluate import evaluate
from mobilefer.inference.recognizer import EmotionRecognizer
from mobilefer.inference.sources import iter_frames

ROOT = Path(__file__).resolve().parents[1]
CLIPS = sorted(glob.glob(str(ROOT.parent / "shared/data/videos/*.mp4")))


def loose_square(frame: np.ndarray, box, loose: float) -> np.ndarray | None:
    """The square ``loose`` times the box's longer side around its centre, moved inside the
    frame; None where it is larger than the frame."""
    h, w = frame.shape[:2]
    bx, by, bw, bh = box
    side = round(loose * max(bw, bh))
    if side > min(h, w):
        return None
    x = min(max(0, round(bx + bw / 2 - side / 2)), w - side)
    y = min(max(0, round(by + bh / 2 - side / 2)), h - side)
    return frame[y:y + side, x:x + side]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", default=CLIPS)
    parser.add_argument("--every", type=int, default=15, help="every k-th frame of each clip")
    parser.add_argument("--loose", default="1,1.5,2,3", help="crop sides in units of the face box's side")
    parser.add_argument("--model", default=None, help="default: the bundled default model")
    args = parser.parse_args()
    looseness = [float(v) for v in args.loose.split(",")]
    rec = EmotionRecognizer.load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        written: dict[float, int] = Counter()
        faces = 0
        for clip in args.clips:
            for k, frame in enumerate(iter_frames(clip)):
                if k % args.every:
                    continue
                for i, face in enumerate(rec.recognize_frame(frame.image)):
                    faces += 1
                    for loose in looseness:
                        crop = loose_square(frame.image, face.box, loose)
                        if crop is None:
                            continue
                        folder = Path(tmp) / str(loose) / face.top
                        folder.mkdir(parents=True, exist_ok=True)
                        Image.fromarray(np.ascontiguousarray(crop[:, :, ::-1])).save(
                            folder / f"{Path(clip).stem}_{k:04d}_{i}.png")
                        written[loose] += 1
        print(f"{faces} faces predict found on every {args.every}th frame of {len(args.clips)} clip(s); "
              f"model {args.model or 'default'}; load average {os.getloadavg()[0]:.1f}\n")
        print("| crop side / face box side | faces | searched | evaluate, default: predict's answer | neutral "
              "| --no-crop-faces: predict's answer | neutral |")
        print("|---|---|---|---|---|---|---|")
        for loose in looseness:
            if not written[loose]:
                continue
            data = str(Path(tmp) / str(loose))
            row = [f"{loose:g}", str(written[loose])]
            for crop_faces in (None, False):
                report = evaluate(EvalConfig(data=data, model=args.model, crop_faces=crop_faces))
                matrix = np.asarray(report["confusion_matrix"]["matrix"])
                classes = report["confusion_matrix"]["labels"]
                neutral = matrix[:, classes.index("neutral")].sum() / matrix.sum() if "neutral" in classes else 0.0
                if crop_faces is None:
                    searched = report.get("faces", "0").split(" ")[0]
                    row.append(searched)
                row += [f"{report['accuracy']:.3f}", f"{neutral:.3f}"]
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
