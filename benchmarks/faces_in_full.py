"""How right the landmarks, pose and explanations are, on a real portrait and the shared clips.

    python benchmarks/faces_in_full.py [--videos ../shared/data/videos] [--every 40]

- roll: the astronaut portrait (examples/) turned by known angles: the roll read against the
  turn plus the portrait's own roll;
- yaw in the mirror: each face of every ``--every``-th frame of the clips, and the same frame
  mirrored: how often a face turned more than 15 degrees turns the other way in the mirror, and
  the median of |yaw + mirrored yaw| over all faces;
- the deletion test: covering the top tenth of a face's explanation against a random tenth,
  on the faces of those frames, for the explanation and for square-patch occlusion beside it;
- the time an explanation takes (median over the faces).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def occlusion(base: np.ndarray, classify, label: int, patch: float = 1 / 4, stride: float = 1 / 8) -> np.ndarray:
    """The usual square-patch occlusion map, as a baseline for the deletion test."""
    side = base.shape[0]
    size, step = max(2, round(side * patch)), max(1, round(side * stride))
    starts = sorted(set(range(0, side - size + 1, step)) | {side - size})
    corners = [(y, x) for y in starts for x in starts]
    fill = base.reshape(-1, base.shape[2]).mean(0).round().astype(np.uint8)
    copies = np.repeat(base[None], len(corners) + 1, axis=0)
    for k, (y, x) in enumerate(corners, 1):
        copies[k, y:y + size, x:x + size] = fill
    logs = np.log(np.clip(classify(copies)[:, label], 1e-12, 1))
    heat, count = np.zeros((side, side)), np.zeros((side, side))
    for fall, (y, x) in zip(logs[0] - logs[1:], corners):
        heat[y:y + size, x:x + size] += fall
        count[y:y + size, x:x + size] += 1
    return heat / np.maximum(count, 1)


def main() -> None:
    from mobilefer import EmotionRecognizer
    from mobilefer.data.images import bgr_to_rgb
    from mobilefer.data.preprocess import normalize_batch
    from mobilefer.inference.explain import deletion_drops, deletion_map, face_base
    from mobilefer.inference.faces import Box, iou
    from mobilefer.inference.pose import head_pose
    from mobilefer.inference.sources import iter_frames

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    parser.add_argument("--every", type=int, default=40)
    args = parser.parse_args()
    rec = EmotionRecognizer.load()
    detector = rec.detector

    portrait = cv2.imread(str(ROOT / "examples" / "astronaut.jpg"))
    own = head_pose(detector.detect(portrait)[0].landmarks).roll
    h, w = portrait.shape[:2]
    print(f"| turn of the portrait | roll read | expected (turn + its own {own:.1f}) |")
    print("|---|---|---|")
    for degrees in (-30, -20, -10, 10, 20, 30):  # counter-clockwise: the face's roll is -degrees
        turned = cv2.warpAffine(portrait, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0), (w, h),
                                borderMode=cv2.BORDER_REPLICATE)
        roll = head_pose(detector.detect(turned)[0].landmarks).roll
        print(f"| {-degrees:+d} | {roll:+.1f} | {own - degrees:+.1f} |")

    def classify(batch):
        return rec.classifier(normalize_batch(batch, rec.meta))

    flips, sums, ours, theirs, seconds = [], [], [], [], []
    for clip in sorted(args.videos.glob("*.mp4")):
        for frame in (f.image for f in iter_frames(str(clip)) if f.index % args.every == 0):
            mirror = detector.detect(frame[:, ::-1].copy())
            for face in rec.recognize(frame):
                box = Box(*face.box)
                flipped = Box(frame.shape[1] - box.x - box.w, box.y, box.w, box.h)
                twin = max(mirror, key=lambda b: iou(b, flipped), default=None)
                if face.pose and twin is not None and iou(twin, flipped) > 0.5 and twin.landmarks:
                    other = head_pose(twin.landmarks).yaw
                    sums.append(abs(face.pose.yaw + other))
                    if abs(face.pose.yaw) > 15:
                        flips.append(np.sign(face.pose.yaw) != np.sign(other))
                base, _ = face_base(bgr_to_rgb(frame), box, rec.margin, rec.meta.channels, rec.meta.base_size)
                label = rec.classes.index(face.label)
                start = time.perf_counter()
                rec.explain(frame, face)
                seconds.append(time.perf_counter() - start)
                top, chance = deletion_drops(base, deletion_map(base, classify, label), classify, label)
                ours.append(top > chance)
                top, chance = deletion_drops(base, occlusion(base, classify, label), classify, label)
                theirs.append(top > chance)
    print(f"\nyaw in the mirror: {sum(flips)} of {len(flips)} faces turned over 15 degrees turn the other way; "
          f"median |yaw + mirrored yaw| {np.median(sums):.1f} degrees over {len(sums)} faces")
    print(f"deletion test (top tenth against a random tenth): explanation {sum(ours)} of {len(ours)}, "
          f"square-patch occlusion {sum(theirs)} of {len(theirs)}")
    print(f"explain: median {1000 * np.median(seconds):.0f} ms a face")


if __name__ == "__main__":
    main()
