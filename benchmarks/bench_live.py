"""Live recognition on real footage: the whole `mobilefer predict CLIP --json` command with
defaults on each clip of ../shared/data/videos, at its own 640x480, its middle 640x360 (a
16:9 crop: the network looks at 640x360 frames as 640x384) and made into 1280x720 and 1920x1080
copies (ffmpeg from imageio-ffmpeg: scaled with Lanczos, pillarboxed, H.264), against the same
command detecting on every frame and the origin notebook's loop, in the same run.

    python benchmarks/bench_live.py [--videos ../shared/data/videos] [--sizes 360,480,720,1080 | --sizes ""]
                                    [--no-units] [--rounds 3]

Per clip and size: whole-command frames/s (process start, model load, decode, faces, JSON), the
median of ``--rounds`` runs, with the slowest and fastest beside it;
the share of frames that took in a whole-frame detection; face recall against `--detect-every
1` (the same detector on every frame, with the same tracks and reporting rules; IoU >= 0.3,
same frame) and extra faces (faces with no every-frame face); for the clip with known cuts (the
montage, cut frames from the clips' README) how many cuts gave every face after them a new id;
the origin loop (Haar on every full frame, MobileNetV3-Large at 224 px, one face at a time)
timed on the first 150 frames. Then two
panning crowds (tiles of the selfie clip, ~29 and ~48 faces a frame at 1920x1080) and the composite
clip of one still portrait over a still background (bench_live_composite.py): unit cases. The
machine's load average is printed with each row: rates on a shared machine move with it, the
ratios less.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CUTS = {"intel_asl_webcam_montage_cuts": [109, 186, 273, 322, 395, 484, 552]}


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def make_size(clip: Path, height: int, out: Path) -> Path:
    """``clip`` scaled to ``height`` (Lanczos), pillarboxed to 16:9, H.264 (crf 20); 360: the
    middle 640x360 of a 640x480 clip, unscaled."""
    import imageio_ffmpeg

    width = height * 16 // 9
    resize = "crop=640:360" if height == 360 else f"scale=-2:{height}:flags=lanczos,pad={width}:{height}:(ow-iw)/2:0"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-vf",
                    resize, "-c:v", "libx264",
                    "-crf", "20", "-preset", "fast", "-pix_fmt", "yuv420p", "-an", str(out)], check=True)
    return out


def predict(clip: Path, out: Path, *args: str) -> tuple[float, list[dict]]:
    """Wall seconds of the whole command, and its JSON lines."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mobilefer.cli", "predict", str(clip), "--json", str(out), *args],
                   check=True, capture_output=True, env=env)
    seconds = time.perf_counter() - started
    return seconds, [json.loads(line) for line in out.read_text().splitlines()]


def detections(clip: Path) -> tuple[int, int]:
    """(frames that took in a whole-frame detection, frames) with defaults."""
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


def compare(default: list[dict], every: list[dict]) -> tuple[float, float]:
    """(recall of the every-frame faces, extra faces per every-frame face), IoU >= 0.3 in the same frame."""
    truth = sum(len(r["faces"]) for r in every)
    found = sum(any(iou(t["box"], f["box"]) >= 0.3 for f in d["faces"])
                for d, e in zip(default, every) for t in e["faces"])
    extra = sum(not any(iou(f["box"], t["box"]) >= 0.3 for t in e["faces"])
                for d, e in zip(default, every) for f in d["faces"])
    return found / max(1, truth), extra / max(1, truth)


def new_ids_at(cuts: list[int], rows: list[dict]) -> str:
    """How many cuts gave every face on the cut's frame an id never seen before it."""
    seen: set[int] = set()
    fresh = 0
    for row in rows:
        ids = {f["id"] for f in row["faces"]}
        if row["frame"] in cuts:
            fresh += bool(ids) and not ids & seen
        seen |= ids
    return f"{fresh} of {len(cuts)}"


# The panning crowds: (columns, rows, tile width) of the selfie clip's tiles, 4:3 each
CROWDS = {"7x5 tiles of 320x240": (7, 5, 320), "10x7 tiles of 240x180": (10, 7, 240)}


def panning_crowd(selfie: Path, out: Path, columns: int = 7, rows: int = 5, tile: int = 320,
                  frames: int = 240) -> Path:
    """A unit case for the worst case, a panning camera over a crowd: ``columns`` x ``rows``
    tiles of the selfie clip ``tile`` px wide (7x5 of 320 px: faces of ~100 px, 25-33 a frame;
    10x7 of 240 px: ~75 px, ~48 a frame), each from another moment (faces come into view all
    the time: each tile plays the selfie's pans), a 1920x1080 window panning over them (up to
    ~4-5 px a frame)."""
    side = (tile, tile * 3 // 4)
    source = cv2.VideoCapture(str(selfie))
    tiles = []
    while len(tiles) < frames:
        ok, frame = source.read()
        if not ok:
            break
        tiles.append(cv2.resize(frame, side, interpolation=cv2.INTER_AREA))
    width, height = columns * side[0], rows * side[1]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (1920, 1080))
    for t in range(frames):
        canvas = np.zeros((height, width, 3), np.uint8)
        for i in range(columns * rows):
            r, c = divmod(i, columns)
            canvas[side[1] * r: side[1] * (r + 1), side[0] * c: side[0] * (c + 1)] = tiles[(t + 23 * i) % len(tiles)]
        room_x, room_y = (width - 1920) // 2, (height - 1080) // 2
        dx, dy = int(room_x + (room_x - 10) * np.sin(t / 40)), int(room_y + (room_y - 5) * np.sin(t / 55))
        writer.write(canvas[dy: dy + 1080, dx: dx + 1920])
    writer.release()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", default=str(ROOT.parent / "shared" / "data" / "videos"))
    parser.add_argument("--sizes", default="360,480,720,1080",
                        help="heights: 480 is each clip as it is, 360 its middle 640x360")
    parser.add_argument("--no-units", action="store_true", help="the real clips alone, without the unit cases")
    parser.add_argument("--rounds", type=int, default=3, help="runs of the default command a clip and size (the median is given)")
    args = parser.parse_args()
    clips = sorted(Path(args.videos).glob("*.mp4"))
    sizes = [int(s) for s in args.sizes.split(",") if s]  # --sizes "": the unit cases alone
    from mobilefer.inference.centerface_choice import machine_key
    from mobilefer.inference.detectors import centerface_weights

    print(f"{len(os.sched_getaffinity(0))} CPUs of {machine_key()}; OpenCV {cv2.__version__}; "
          f"detector {centerface_weights().name}")
    print("| clip | size | frames | frames/s | slowest - fastest | every frame: frames/s | origin loop: frames/s | x origin | "
          "whole-frame detections | recall vs every frame | extra faces | new ids at cuts | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for height in sizes:
            for clip in clips:
                video = clip if height == 480 else make_size(clip, height, Path(tmp) / f"{clip.stem}_{height}p.mp4")
                runs = [predict(video, Path(tmp) / "d.jsonl") for _ in range(max(1, args.rounds))]
                default = runs[0][1]  # the same lines every run
                rates = sorted(len(default) / seconds for seconds, _ in runs)
                every_s, every = predict(video, Path(tmp) / "e.jsonl", "--detect-every", "1")
                ran, frames = detections(video)
                recall, extra = compare(default, every)
                cuts = CUTS.get(clip.stem)
                origin = origin_rate(video)
                rate = float(np.median(rates))
                w, h = cv2.VideoCapture(str(video)).read()[1].shape[1::-1]
                print(f"| {clip.stem} | {w}x{h} | {frames} | {rate:.1f} | {rates[0]:.0f} - {rates[-1]:.0f} | "
                      f"{len(every) / every_s:.1f} | {origin:.1f} | "
                      f"{rate / origin:.1f} | {ran / frames:.0%} | {recall:.3f} | {extra:.1%} | "
                      f"{new_ids_at(cuts, default) if cuts else '-'} | {os.getloadavg()[0]:.1f} |", flush=True)

    if args.no_units:
        return
    selfie = Path(args.videos) / "openmpf_handheld_selfie_rot90meta.mp4"
    for name, (columns, rows, tile) in CROWDS.items() if selfie.is_file() else ():
        with tempfile.TemporaryDirectory() as tmp:
            video = panning_crowd(selfie, Path(tmp) / "crowd.mp4", columns, rows, tile)
            seconds, default = predict(video, Path(tmp) / "d.jsonl")
            every_s, every = predict(video, Path(tmp) / "e.jsonl", "--detect-every", "1")
            recall, extra = compare(default, every)
            faces = sum(len(r["faces"]) for r in every) / len(every)
            print(f"\nPanning crowd unit case (1920x1080, {name} of the selfie, {faces:.1f} faces a frame): "
                  f"{len(default) / seconds:.1f} frames/s whole command, every frame {len(every) / every_s:.1f}, "
                  f"recall {recall:.3f}, extra {extra:.1%}, load {os.getloadavg()[0]:.1f}", flush=True)

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_live_composite import make_clip, score, whole_command

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "composite.mp4"
        truth = make_clip(video)
        seconds, found = whole_command(video, Path(tmp) / "c.jsonl")
        recall, extra = score(truth, found)
        print(f"\nComposite unit case (one still portrait over a still background, 640x360, known boxes): "
              f"{len(truth) / seconds:.1f} frames/s whole command, recall {recall:.3f}, {extra} faces where none")


if __name__ == "__main__":
    main()
