"""End-to-end recognition speed on the CPU, and per-face classifier latency by runtime.

1. frames/s on a 640x480 video with 1-3 faces (the public-domain astronaut portrait,
   pasted and moving), split into decode / detect / classify / draw, per detector and
   bundled model; the origin notebook's loop (full-frame Haar, one eager PyTorch forward
   per face at 224 px through PIL transforms) measured in the same run, as a ratio.
2. per-face latency at batch 1 and 8 and throughput at batch 32: PyTorch eager vs ONNX
   Runtime fp32 vs INT8 (when the checkpoints/INT8 files are given), with file sizes.

    python benchmarks/bench_inference.py [--runs runs/fer2013 --int8 runs/export]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def faces_frame(count: int, shift: int = 0) -> np.ndarray:
    """A 640x480 BGR frame with ``count`` (1-3) copies of the astronaut's head, shifted right by ``shift``."""
    from skimage import data

    face = np.ascontiguousarray(data.astronaut()[30:200, 150:320, ::-1])
    frame = np.full((480, 640, 3), 80, np.uint8)
    for k in range(count):
        patch = cv2.resize(face, None, fx=0.6 + 0.2 * k, fy=0.6 + 0.2 * k)
        x, y = 10 + 200 * k + shift, 40 + 30 * k
        frame[y: y + patch.shape[0], x: x + patch.shape[1]] = patch
    return frame


def make_video(path: Path, frames: int = 90) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    for i in range(frames):
        writer.write(faces_frame(1 + (i // 30) % 3, shift=i % 30))  # 1, 2, then 3 faces, drifting
    writer.release()
    return path


def median_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


def end_to_end(video: Path, model: Path, detector: str) -> dict[str, float]:
    from mobilefer.inference.draw import draw_faces
    from mobilefer.inference.recognizer import EmotionRecognizer

    rec = EmotionRecognizer.load(model, detector=detector)
    cap = cv2.VideoCapture(str(video))
    stages = {"decode": [], "detect": [], "classify": [], "draw": [], "total": []}
    while True:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        if not ok:
            break
        t1 = time.perf_counter()
        timing: dict[str, float] = {}
        faces = rec.recognize_frame(frame, timing=timing)  # the product's own detect -> crop -> classify
        t2 = time.perf_counter()
        draw_faces(frame, faces)
        t3 = time.perf_counter()
        parts = {"decode": 1000 * (t1 - t0), **timing, "draw": 1000 * (t3 - t2), "total": 1000 * (t3 - t0)}
        for key, value in parts.items():
            stages[key].append(value)
    return {k: statistics.median(v) for k, v in stages.items()}


def stream_ms(video: Path, model: Path, detector: str, detect_every: int) -> float:
    """Mean ms per frame of ``EmotionRecognizer.stream`` (decode, detect every k, track, classify),
    after one warm-up pass; the mean, as skipped detections make the median flatter than the truth."""
    from mobilefer.inference.recognizer import EmotionRecognizer

    rec = EmotionRecognizer.load(model, detector=detector)
    for _ in rec.stream(str(video), detect_every=detect_every):
        pass
    start, frames = time.perf_counter(), 0
    for _ in rec.stream(str(video), detect_every=detect_every):
        frames += 1
    return 1000 * (time.perf_counter() - start) / frames


def origin_loop(video: Path, checkpoint: Path | None) -> dict[str, float]:
    """The notebook: full-frame Haar, then per face PIL Resize(224) + eager Large forward."""
    import torch
    from PIL import Image
    from torchvision import transforms

    from mobilefer.models import create_model

    model = create_model("mobilenet_v3_large", 9, 3).eval()
    tf = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    cap = cv2.VideoCapture(str(video))
    totals = []
    while True:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        if not ok:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for x, y, w, h in cascade.detectMultiScale(gray, 1.1, 4):
            crop = Image.fromarray(cv2.cvtColor(frame[y: y + h, x: x + w], cv2.COLOR_BGR2RGB))
            with torch.no_grad():
                model(tf(crop).unsqueeze(0))
        totals.append(time.perf_counter() - t0)
    return {"total": median_ms(totals)}


def latency(model_path: Path, batch: int, repeats: int = 30, threads: int | None = None) -> float:
    """Median ms per call of the network alone (no TTA) at ``batch``."""
    from mobilefer.runtime import load_classifier

    clf = load_classifier(model_path, tta="none", threads=threads)
    m = clf.meta
    x = np.random.default_rng(0).normal(size=(batch, m.channels, m.input_size, m.input_size)).astype(np.float32)
    clf(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        clf(x)
        times.append(time.perf_counter() - t)
    return median_ms(times)


def cold_start(model: Path, image: Path) -> float:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mobilefer.cli", "predict", str(image), "--model", str(model)],
                       check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    from mobilefer.inference.detectors import available_detectors
    from mobilefer.runtime import resolve_model

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=Path, help="folder with large.safetensors / small.safetensors (PyTorch rows)")
    parser.add_argument("--int8", type=Path, help="folder with fer2013_{large,small}_int8.onnx")
    args = parser.parse_args()
    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}, OpenCV {cv2.__version__}, {len(os.sched_getaffinity(0))} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "faces.mp4")
        base = origin_loop(video, None)["total"]
        face_detectors = [d for d in available_detectors() if d != "none"]  # "none" finds no faces
        print("\n## Each frame of a 640x480 video (1-3 faces) recognised as a still image (median ms per frame)")
        print("| pipeline | decode | detect | classify | draw | total | frames/s | x origin |\n|---|---|---|---|---|---|---|---|")
        print(f"| origin notebook loop (full-frame Haar, eager Large 224, per face) | | | | | {base:.1f} | {1000 / base:.1f} | 1.0 |")
        for name in ("fer2013-small", "fer2013-large"):
            for det in face_detectors:
                r = end_to_end(video, resolve_model(name).path, det)
                print(f"| {det} + {name} (ONNX) | {r['decode']:.1f} | {r['detect']:.1f} | {r['classify']:.1f} | "
                      f"{r['draw']:.1f} | {r['total']:.1f} | {1000 / r['total']:.1f} | {base / r['total']:.1f} |")
        detector = face_detectors[-1]
        for k in (1, 3):
            ms = stream_ms(video, resolve_model("fer2013-small").path, detector, k)
            print(f"| `stream(detect_every={k})`, {detector} + fer2013-small, tracking (mean) | | | | | "
                  f"{ms:.1f} | {1000 / ms:.1f} | {base / ms:.1f} |")

    print("\n## Classifier alone (median ms per call; no TTA)")
    print("| model | runtime | file MB | batch 1 | batch 8 | batch 32 | faces/s at 32 |\n|---|---|---|---|---|---|---|")
    for arch, name in (("large", "fer2013-large"), ("small", "fer2013-small")):
        rows = []
        if args.runs and (args.runs / f"{arch}.safetensors").is_file():
            rows.append(("PyTorch eager", args.runs / f"{arch}.safetensors"))
        rows.append(("ORT fp32", resolve_model(name).path))
        if args.int8 and (args.int8 / f"fer2013_{arch}_int8.onnx").is_file():
            rows.append(("ORT int8", args.int8 / f"fer2013_{arch}_int8.onnx"))
        for runtime, path in rows:
            b1, b8, b32 = (latency(path, b) for b in (1, 8, 32))
            print(f"| {arch} | {runtime} | {path.stat().st_size / 1e6:.1f} | {b1:.2f} | {b8:.2f} | {b32:.2f} | {32000 / b32:.0f} |")

    cpus = len(os.sched_getaffinity(0))
    counts = sorted({1, 2, 4, cpus} & set(range(1, max(4, cpus) + 1)))
    print("\n## Batch-1 latency by ONNX Runtime intra-op threads (median ms; the default is min(4, CPUs))")
    print("| model | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in counts) + " |")
    print("|---|" + "---|" * len(counts))
    for name in ("fer2013-small", "fer2013-large"):
        print(f"| {name} | " + " | ".join(f"{latency(resolve_model(name).path, 1, threads=t):.2f}" for t in counts) + " |")

    image = Path(__file__).parents[1] / "examples" / "astronaut.jpg"
    print("\n## Cold start of `mobilefer predict` on one image (median of 3, s)")
    print(f"ONNX (small): {cold_start(resolve_model('fer2013-small').path, image):.2f}")
    if args.runs and (args.runs / "small.safetensors").is_file():
        print(f"PyTorch checkpoint (small): {cold_start(args.runs / 'small.safetensors', image):.2f}")


if __name__ == "__main__":
    main()
