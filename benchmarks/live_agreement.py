"""How closely following agrees with searching every whole frame, on real clips at several sizes.

    python benchmarks/live_agreement.py [--videos ../shared/data/videos] [--clips hikers]
                                        [--variants 0.8,1,1m,1.25,1.5m,2] [--jobs 2]

Each clip of ../shared/data/videos (or those whose name contains ``--clips``) is played, in one
process, through two VideoFaces fed the same frames: the default schedule and ``every=1`` (the
reference `--detect-every 1` uses), both without reading ahead, so the figures are exactly
reproducible. Each variant is the clip scaled (``1.25``: 800x600 for a 640x480 clip) and, with
``m``, mirrored: the same people seen through other pixels, so a rule is judged on many
samples, not on the one that a pixel's difference at the size limit moves by ~0.02.

Per clip and variant: recall (the reference's reported faces with one of ours at IoU >= 0.3 on
the same frame), extra faces (ours with none), whole-frame searches, and each miss and extra
face by kind: on a frame searched whole (W) or followed (f); a miss followed but not reported
(its box under the size limit) or not followed at all; an extra face the reference follows
without reporting, or has nothing at. The last line is the mean over all rows.
"""
from __future__ import annotations

import argparse
import collections
import multiprocessing
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def variant_frames(clip: Path, variant: str):
    """The clip's frames scaled by the variant's factor and mirrored where it ends in ``m``."""
    mirror = variant.endswith("m")
    factor = float(variant.rstrip("m"))
    cap = cv2.VideoCapture(str(clip))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if mirror:
            frame = cv2.flip(frame, 1)
        if factor != 1:
            size = (round(frame.shape[1] * factor / 2) * 2, round(frame.shape[0] * factor / 2) * 2)
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        yield frame
    cap.release()


def agreement(job: tuple[Path, str]) -> tuple[str, str, str, int, int, int, int, int, collections.Counter]:
    from mobilefer.inference.live import VideoFaces
    from mobilefer.inference.recognizer import EmotionRecognizer
    from mobilefer.inference.tracking import IoUTracker, iou

    clip, variant = job
    detector = EmotionRecognizer.load().detector
    ours_tracker, ref_tracker = IoUTracker(), IoUTracker()
    ours = VideoFaces(detector, ours_tracker, 10, detector.min_face)
    reference = VideoFaces(detector, ref_tracker, 1, detector.min_face)
    kinds: collections.Counter = collections.Counter()
    truth = missed = extra = searches = frames = 0
    size = ""
    for frame in variant_frames(clip, variant):
        size = f"{frame.shape[1]}x{frame.shape[0]}"
        frames += 1
        tracks, whole, _ = ours(frame)
        searches += whole
        ref_tracks, _, _ = reference(frame)
        mode = "W" if whole else "f"
        shown = [t.box for t in tracks]
        truth += len(ref_tracks)
        for t in ref_tracks:
            if not any(iou(t.box, b) >= 0.3 for b in shown):
                missed += 1
                followed = any(iou(t.box, x.box) >= 0.3 for x in ours_tracker.live())
                kinds[f"miss {mode} {'followed, not reported' if followed else 'not followed'}"] += 1
        ref_shown = [t.box for t in ref_tracks]
        for b in shown:
            if not any(iou(b, r) >= 0.3 for r in ref_shown):
                extra += 1
                followed = any(iou(b, x.box) >= 0.3 for x in ref_tracker.live())
                kinds[f"extra {mode} {'reference follows, not reported' if followed else 'reference has none'}"] += 1
    return clip.stem, variant, size, frames, truth, missed, extra, searches, kinds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", default=str(ROOT.parent / "shared" / "data" / "videos"))
    parser.add_argument("--clips", default="", help="only clips whose name contains this")
    parser.add_argument("--variants", default="0.8,1,1m,1.25,1.5m,2",
                        help="scale factors, each mirrored where it ends in m")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    clips = [c for c in sorted(Path(args.videos).glob("*.mp4")) if args.clips in c.stem]
    if not clips:
        sys.exit(f"no .mp4 clip{' named *' + args.clips + '*' if args.clips else ''} in {args.videos}")
    jobs = [(clip, v) for clip in clips for v in args.variants.split(",")]
    from mobilefer.inference.detectors import centerface_weights

    print(f"detector {centerface_weights().name}\n")
    print("| clip | variant | size | frames | reference faces | recall | extra faces | whole-frame searches |")
    print("|---|---|---|---|---|---|---|---|")
    recalls, extras, kinds = [], [], collections.Counter()
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for name, variant, size, frames, truth, missed, extra, searches, counted in pool.imap(agreement, jobs):
            recall, share = 1 - missed / max(1, truth), extra / max(1, truth)
            recalls.append(recall)
            extras.append(share)
            kinds.update(counted)
            print(f"| {name} | {variant} | {size} | {frames} | {truth} | {recall:.3f} | {share:.1%} | "
                  f"{searches / max(1, frames):.0%} |", flush=True)
    print(f"\nMean of {len(recalls)}: recall {sum(recalls) / len(recalls):.4f}, extra faces "
          f"{sum(extras) / len(extras):.2%}")
    for kind, count in sorted(kinds.items()):
        print(f"  {kind}: {count}")


if __name__ == "__main__":
    main()
