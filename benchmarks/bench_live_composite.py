"""A unit case for live recognition (bench_live.py measures real clips): a composite clip with
known boxes, frames/s of the whole `mobilefer predict VIDEO --json` command, per stage, and
face recall, against the origin notebook's loop measured in the same run.

1. A 640x360 clip, 275 frames at 30 frames/s, 1-3 faces (the public-domain astronaut's head):
   one drifting across, one sliding in from the edge at frame 60, a small one cut in at frame
   150 and gone at 240. Ground-truth boxes are known for every frame.
2. The whole command (process start, model load, decode, detect, track, classify, JSON out),
   median of 3 runs, per detector and mode; the same stages timed inside one process.
3. Recall of the ground-truth faces (IoU >= 0.4), and faces reported where there is none.
4. Recall on a photo with faces from 16 to 96 px, and faces found on 14 photos without
   people (scikit-image's), for the default smallest face and the earlier default of 32 px.

    python benchmarks/bench_live_composite.py
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FACE = (180, 62, 90, 110)  # the astronaut's face in skimage's 512x512 portrait (tests/conftest.py)


def _head(side: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The astronaut's head scaled so her face box is ``side`` px wide; the face box inside the patch."""
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    x, y, w, h = FACE
    pad = 30
    patch = photo[y - pad: y + h + pad, x - pad: x + w + pad]
    s = side / w
    return cv2.resize(patch, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), (round(pad * s), round(pad * s),
                                                                                round(w * s), round(h * s))


def _background(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    coarse = rng.integers(60, 140, (9, 16, 3), dtype=np.uint8)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def make_clip(path: Path, frames: int = 275) -> list[list[tuple[int, int, int, int]]]:
    """Write the clip; return the ground-truth face boxes of each frame."""
    back = _background(640, 360)
    faces = [(_head(90), lambda i: (20 + i, 40), 0, frames),                # drifting right
             (_head(60), lambda i: (640 - 4 * (i - 60), 200), 60, frames),    # slides in from the right
             (_head(36), lambda i: (520, 30), 150, 240)]                      # cut in, then gone
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 360))
    truth = []
    for i in range(frames):
        frame = back.copy()
        boxes = []
        for (patch, (fx, fy, fw, fh)), where, first, last in faces:
            if not first <= i < last:
                continue
            x, y = where(i)
            x = max(x, 640 - 4 * (i - 60)) if first == 60 else x
            ph, pw = patch.shape[:2]
            x0, x1 = max(0, x), min(640, x + pw)
            if x1 - x0 <= 0:
                continue
            frame[y: y + ph, x0:x1] = patch[:, x0 - x: x1 - x]
            if x + fx >= 0 and x + fx + fw <= 640:  # the face itself wholly in view
                boxes.append((x + fx, y + fy, fw, fh))
        writer.write(frame)
        truth.append(boxes)
    writer.release()
    return truth


def iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def score(truth, found) -> tuple[float, int]:
    """(share of ground-truth faces matched, faces reported that match none)."""
    hits = total = extra = 0
    for gt, boxes in zip(truth, found):
        total += len(gt)
        hits += sum(any(iou(g, b) >= 0.4 for b in boxes) for g in gt)
        extra += sum(not any(iou(g, b) >= 0.4 for g in gt) for b in boxes)
    return hits / max(1, total), extra


def whole_command(video: Path, out: Path, *args: str, runs: int = 3) -> tuple[float, list]:
    """Median wall seconds of `mobilefer predict VIDEO --json OUT ARGS`, and the boxes it wrote."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mobilefer.cli", "predict", str(video), "--json", str(out), *args],
                       check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return statistics.median(times), [[f["box"] for f in r["faces"]] for r in rows]


def stages(video: Path, detector: str, detect_every: int | None) -> dict[str, float]:
    """Mean ms per frame of each stage inside one process (after a warm-up pass)."""
    from mobilefer.inference.recognizer import EmotionRecognizer

    cap = cv2.VideoCapture(str(video))
    decode, n = time.perf_counter(), 0
    while cap.read()[0]:
        n += 1
    decode = 1000 * (time.perf_counter() - decode) / n
    rec = EmotionRecognizer.load(detector=detector)
    for _ in rec.stream(str(video), detect_every=detect_every):
        pass
    sums: dict[str, float] = {}
    detections = frames = 0
    write = 0.0
    start = time.perf_counter()
    for result in rec.stream(str(video), detect_every=detect_every):
        frames += 1
        detections += "detect" in result.timing_ms
        for key, value in result.timing_ms.items():
            sums[key] = sums.get(key, 0.0) + value
        t = time.perf_counter()
        json.dumps(result.to_dict())
        write += time.perf_counter() - t
    total = 1000 * (time.perf_counter() - start) / frames
    out = {k: v / frames for k, v in sums.items()}
    return {"decode": decode, **out, "write": 1000 * write / frames, "total": total,
            "detections": detections, "frames": frames}


def photo_recall(min_face: int | None) -> tuple[float, int, int]:
    """(recall of faces >= 20 px on a 1280x720 photo of 24 faces from 16 to 96 px, false faces on
    14 photos without people, faces the detector keeps of the 16-18 px ones)."""
    from skimage import data

    from mobilefer.inference.detectors import create_detector

    sizes = [16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 80, 96] * 2
    frame = _background(1280, 720)
    truth = []
    for i, side in enumerate(sizes):
        patch, (fx, fy, fw, fh) = _head(side)
        x, y = 30 + (i % 8) * 155, 30 + (i // 8) * 230
        frame[y: y + patch.shape[0], x: x + patch.shape[1]] = patch
        truth.append((x + fx, y + fy, fw, fh))
    options = {} if min_face is None else {"min_face": min_face}
    detector = create_detector("auto", **options)
    found = [b.as_list() for b in detector.detect(frame)]
    wanted = [t for t, s in zip(truth, sizes) if s >= 20]
    recall = sum(any(iou(t, f) >= 0.4 for f in found) for t in wanted) / len(wanted)
    empties = [data.coffee(), data.rocket(), data.coins(), data.hubble_deep_field(), data.moon(), data.brick(),
               data.grass(), data.gravel(), data.text(), data.page(), data.immunohistochemistry(),
               data.chelsea(), data.stereo_motorcycle()[0], data.astronaut()[400:, :200]]
    false = sum(len(detector.detect(np.ascontiguousarray(cv2.cvtColor(e, cv2.COLOR_GRAY2BGR) if e.ndim == 2
                                                          else e[:, :, ::-1]))) for e in empties)
    return recall, false


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_inference import origin_loop

    from mobilefer.inference.detectors import DEFAULT_MIN_FACE, available_detectors
    from mobilefer.inference.recognizer import DEFAULT_VIDEO_DETECT_EVERY

    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}, OpenCV {cv2.__version__}, {len(os.sched_getaffinity(0))} CPUs; "
          f"defaults: min face {DEFAULT_MIN_FACE} px, detect every {DEFAULT_VIDEO_DETECT_EVERY} frames on video")
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "clip.mp4"
        truth = make_clip(video)
        frames = len(truth)
        origin = origin_loop(video, None)["total"]
        print(f"\n## Whole command, {frames} frames of 640x360 with 1-3 faces (median of 3 runs)")
        print("| command | s | frames/s | x origin | face recall | faces where none |")
        print("|---|---|---|---|---|---|")
        print(f"| origin notebook loop (median ms per frame {origin:.1f}, in process) | | {1000 / origin:.1f} | 1.0 | | |")
        detectors = [d for d in available_detectors() if d != "none"]
        for detector in detectors[::-1]:
            for args in ([], ["--detect-every", "1"]):
                label = " ".join(["mobilefer predict clip.mp4 --json out.jsonl", f"--detector {detector}", *args])
                seconds, found = whole_command(video, Path(tmp) / "out.jsonl", "--detector", detector, *args)
                recall, extra = score(truth, found)
                print(f"| `{label}` | {seconds:.2f} | {frames / seconds:.1f} | {origin * frames / 1000 / seconds:.1f} | "
                      f"{recall:.3f} | {extra} |")

        print("\n## Stages inside one process (mean ms per frame; detect is per detection)")
        print("| detector | mode | decode* | detect | detections | follow | classify | JSON | total | frames/s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for detector in detectors[::-1]:
            for every in (None, 1):
                r = stages(video, detector, every)
                per_detection = r.get("detect", 0) * r["frames"] / max(1, r["detections"])
                print(f"| {detector} | {'default' if every is None else 'every frame'} | {r['decode']:.2f} | "
                      f"{per_detection:.1f} | {r['detections']}/{r['frames']} | {r.get('follow', 0):.2f} | "
                      f"{r['classify']:.2f} | {r['write']:.2f} | {r['total']:.1f} | {1000 / r['total']:.0f} |")
        print("*decode runs on its own thread beside the rest; its time is not part of the total")

    print("\n## Faces found on a photo (1280x720, 24 faces of 16-96 px) and on 14 photos without people")
    print("| smallest face | recall of faces >= 20 px | faces found without people |")
    print("|---|---|---|")
    for min_face in (None, 32):
        recall, false = photo_recall(min_face)
        print(f"| {'default ' + str(DEFAULT_MIN_FACE) if min_face is None else min_face} px | {recall:.2f} | {false} |")


if __name__ == "__main__":
    main()
