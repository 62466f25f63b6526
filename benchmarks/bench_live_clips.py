"""Live recognition on real footage: each clip of ../shared/data/videos through the whole
`mobilefer predict CLIP --json` command with defaults, against the same detector on every frame
and the origin notebook's loop, in the same run.

    python benchmarks/bench_live_clips.py [--videos ../shared/data/videos]

Per clip: whole-command frames/s; the share of frames the detector ran on; face recall against
the detector run on every frame (IoU >= 0.3, same frame) and extra faces (defaults' faces with
no every-frame face); for clips with known cuts (the montage: frames listed in the clips'
README), how many cuts gave every face after them a new id. The origin loop (Haar on every
frame, Large at 224 px, one face at a time) is timed on the first 150 frames of each clip.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

CUTS = {"intel_asl_webcam_montage_cuts.mp4": [109, 186, 273, 322, 395, 484, 552]}


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def run(clip: Path, out: Path, *args: str) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mobilefer.cli", "predict", str(clip), "--json", str(out), *args],
                   check=True, capture_output=True)
    seconds = time.perf_counter() - started
    return seconds, [json.loads(line) for line in out.read_text().splitlines()]


def detections(clip: Path) -> tuple[int, int]:
    """(frames the detector ran on, frames) with defaults, counted in one process."""
    from mobilefer.inference.recognizer import EmotionRecognizer

    ran = frames = 0
    for result in EmotionRecognizer.load().stream(str(clip)):
        frames += 1
        ran += "detect" in result.timing_ms
    return ran, frames


def origin_rate(clip: Path, frames: int = 150) -> float:
    """Frames/s of the notebook's loop: Haar on every full frame, each face through an eager
    MobileNetV3-Large at 224 px, one at a time."""
    import torch

    from mobilefer.models import create_model

    model = create_model("mobilenet_v3_large", 9, 3).eval()
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    cap = cv2.VideoCapture(str(clip))
    started, count = time.perf_counter(), 0
    with torch.inference_mode():
        while count < frames:
            ok, frame = cap.read()
            if not ok:
                break
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            for x, y, w, h in cascade.detectMultiScale(gray, 1.1, 5):
                face = cv2.resize(frame[y:y + h, x:x + w], (224, 224)).astype(np.float32) / 255
                model(torch.from_numpy(face).permute(2, 0, 1)[None])
            count += 1
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", default="../shared/data/videos")
    args = parser.parse_args()
    clips = sorted(Path(args.videos).glob("*.mp4"))
    print("| clip | frames | frames/s | x origin | detector on | recall vs every frame | extra faces | "
          "new ids at cuts |\n|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            seconds, default = run(clip, Path(tmp) / "d.jsonl")
            _, every = run(clip, Path(tmp) / "e.jsonl", "--detect-every", "1")
            ran, frames = detections(clip)
            truth = sum(len(r["faces"]) for r in every)
            found = sum(any(iou(t["box"], f["box"]) >= 0.3 for f in d["faces"])
                        for d, e in zip(default, every) for t in e["faces"])
            extra = sum(not any(iou(f["box"], t["box"]) >= 0.3 for t in e["faces"])
                        for d, e in zip(default, every) for f in d["faces"])
            cuts = CUTS.get(clip.name)
            fresh = "-"
            if cuts:
                seen = set()
                ids_before = {}
                for r in default:
                    ids_before[r["frame"]] = set(seen)
                    seen |= {f["id"] for f in r["faces"]}
                by_frame = {r["frame"]: {f["id"] for f in r["faces"]} for r in default}
                fresh = f"{sum(not (by_frame.get(c, set()) & ids_before.get(c, set())) for c in cuts)} of {len(cuts)}"
            origin = origin_rate(clip)
            rate = len(default) / seconds
            print(f"| {clip.name} | {frames} | {rate:.1f} | {rate / origin:.1f} | {ran / frames:.0%} | "
                  f"{found / max(1, truth):.3f} | {extra / max(1, truth):.1%} | {fresh} |", flush=True)


if __name__ == "__main__":
    main()
