"""How often a followed face's label changes on real clips, for each way of smoothing it.

    python benchmarks/label_changes.py [--videos ../shared/data/videos] [--smooth none,ema:0.4,window:5]

Each clip of ../shared/data/videos is recognised as ``mobilefer predict`` does (the bundled
default model, default detector and schedule) once per smoothing; a change is a face whose
label differs from its label on the frame it was last reported. The table gives the changes and
the face-frames they are among; ``default`` is recognizer.VIDEO_SMOOTH, what a video gets
without --smooth.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def label_changes(rec, clip: Path, smooth: str) -> tuple[int, int]:
    """(label changes, face-frames) of ``clip`` recognised with ``smooth``."""
    last: dict[int, str] = {}
    changes = frames = 0
    for result in rec.stream(str(clip), smooth=smooth):
        for face in result.faces:
            frames += 1
            changes += face.id in last and last[face.id] != face.label
            last[face.id] = face.label
    return changes, frames


def main() -> None:
    from mobilefer import EmotionRecognizer
    from mobilefer.inference.recognizer import VIDEO_SMOOTH

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    parser.add_argument("--smooth", default=f"none,ema:0.6,{VIDEO_SMOOTH},ema:0.3,window:5")
    args = parser.parse_args()
    clips = sorted(args.videos.glob("*.mp4"))
    rec = EmotionRecognizer.load()
    print("| smoothing | " + " | ".join(c.stem for c in clips) + " |")
    print("|---|" + "---|" * len(clips))
    for smooth in args.smooth.split(","):
        cells = [label_changes(rec, clip, smooth) for clip in clips]
        name = f"{smooth} (default)" if smooth == VIDEO_SMOOTH else smooth
        print(f"| {name} | " + " | ".join(f"{c} in {f}" for c, f in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
