"""The bundled INT8 CenterFace against its fp32 original: CPU per pass and the faces each finds.

    python benchmarks/bench_centerface.py [--fp32 PATH] [--clips ../shared/data/videos/*.mp4 ...]
                                          [--rounds 15] [--every 3]

Speed: one ONNX Runtime thread, each pass size a video run looks at (a 640x480 frame's whole
search, a 1280x720 or 1920x1080 frame's at 0.52 megapixels, following's 96 and 128 px windows, the
160 px thumbnail glance), both models alternating, median CPU milliseconds and their ratio.
Agreement: every ``--every``-th frame of each clip searched whole by both, as a video's
whole-frame search does (its scale, its smallest face); recall of the fp32 model's faces by the
INT8 one (IoU >= 0.3), faces only the INT8 model finds, and the mean and spread of the score
difference over matched faces. The fp32 file is the bundled original.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from mobilefer.inference.centerface_choice import machine_key
from mobilefer.inference.detectors import (BUNDLED_CENTERFACE, CenterFaceDetector, centerface_fp32,
                                           video_min_face, video_scale)
from mobilefer.inference.tracking import iou

ROOT = Path(__file__).resolve().parents[1]
CLIPS = sorted((ROOT.parent / "shared/data/videos").glob("*.mp4"))
PASSES = {"640x480 whole": (640, 480), "HD whole (0.52 MP)": (960, 544), "96 px window": (96, 96),
          "128 px window": (128, 128), "glance 160x128": (160, 128)}


def speed(models: dict[str, CenterFaceDetector], rounds: int) -> None:
    rng = np.random.default_rng(0)
    print("| pass | fp32 ms | INT8 ms | fp32 / INT8 |\n|---|---|---|---|")
    for label, (w, h) in PASSES.items():
        blob = (rng.random((1, 3, h, w), dtype=np.float32) * 255).astype(np.float32)
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(rounds):
            for name, model in models.items():
                started = time.process_time()
                model.session.run(None, {model.input_name: blob})
                times[name].append(1000 * (time.process_time() - started))
        fp32, int8 = statistics.median(times["fp32"]), statistics.median(times["int8"])
        print(f"| {label} | {fp32:.2f} | {int8:.2f} | {fp32 / int8:.2f} |", flush=True)


def agreement(models: dict[str, CenterFaceDetector], clips: list[Path], every: int) -> None:
    print("\n| clip | fp32 faces | recall | INT8 only | score INT8 - fp32 |\n|---|---|---|---|---|")
    for clip in clips:
        cap = cv2.VideoCapture(str(clip))
        index = found = hit = extra = 0
        diffs: list[float] = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            index += 1
            if index % every:
                continue
            h, w = frame.shape[:2]
            kw = dict(upscale=False, min_face=video_min_face(w, h, 20, CenterFaceDetector.smallest_seen),
                      scale=video_scale(w, h))
            want, got = models["fp32"].detect(frame, **kw), models["int8"].detect(frame, **kw)
            found += len(want)
            for box in want:
                matches = [g for g in got if iou(box, g) >= 0.3]
                if matches:
                    hit += 1
                    diffs.append(max(matches, key=lambda g: iou(box, g)).score - box.score)
            extra += sum(not any(iou(g, box) >= 0.3 for box in want) for g in got)
        cap.release()
        size = f"{w}x{h}"
        print(f"| {clip.name} ({size}) | {found} | {hit / max(1, found):.3f} | {extra} | "
              f"{np.mean(diffs):+.3f} +- {np.std(diffs):.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fp32", type=Path, default=centerface_fp32())
    parser.add_argument("--clips", type=Path, nargs="*", default=CLIPS)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--every", type=int, default=3)
    args = parser.parse_args()
    if args.fp32 is None:
        raise SystemExit("needs CenterFace's fp32 file: reinstall mobilefer, or --fp32 PATH")
    models = {"fp32": CenterFaceDetector(args.fp32, threads=1), "int8": CenterFaceDetector(BUNDLED_CENTERFACE, threads=1)}
    print(f"{machine_key()}\nCPU ms a pass, one thread, {args.rounds} rounds alternating, medians; "
          f"load {os.getloadavg()[0]:.1f}\n")
    speed(models, args.rounds)
    agreement(models, args.clips, args.every)


if __name__ == "__main__":
    main()
