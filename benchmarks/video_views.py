"""A video's known faces read in one view a classification, paired with the other view read
last (recognizer.VIDEO_VIEWS), against both views on every classification: what it does to the
labels and what it saves.

    python benchmarks/video_views.py [--model ferplus-small] [--rounds 6]
        [--data ../shared/data/ferplus/ferplus_valid.zip] [--videos ../shared/data/videos]

FER+ Valid (labelled): each face read in both views (the flip average: a photo, a new face, and
a face that does not move, which pairs its two views), and in one view alone (what a known face
would get without the pairing), scored.

The shared clips: the whole `mobilefer predict CLIP --json` command with and without, taking
turns (``--rounds`` each, medians, CPU of the command's process), the share of face-frames with
the same label, and how often a followed face's label changes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# The command, with VIDEO_VIEWS set first (an argument, so both arms run the same code).
COMMAND = ("import sys; import mobilefer.inference.recognizer as r; r.VIDEO_VIEWS = sys.argv[1] == '1'; "
           "from mobilefer.cli import main; sys.exit(main(sys.argv[2:]))")


def still_faces(model: str, data: str) -> None:
    """The Valid table: each way of reading a still face, scored."""
    from mobilefer.data.preprocess import normalize_batch
    from mobilefer.data.readers import load_images
    from mobilefer.engine.metrics import score
    from mobilefer.runtime import load_classifier

    clf = load_classifier(model)
    meta = clf.meta
    faces = load_images(data, channels=meta.channels, base_size=meta.base_size, classes=meta.classes)

    def read(mirrored: bool) -> np.ndarray:
        out = []
        for i in range(0, len(faces), 256):
            x = normalize_batch(faces.images[i:i + 256], meta)
            out.append(clf(x[..., ::-1] if mirrored else x, flip=False))
        return np.concatenate(out)

    plain, mirror = read(False), read(True)
    print(f"{model} on {data}: {len(faces)} faces\n")
    print("| a face read in | accuracy | balanced | macro-F1 | same label as both views |")
    print("|---|---|---|---|---|")
    both = (plain + mirror) / 2
    for name, probs in [("both views (a photo, a new face, a still face in turns)", both),
                        ("one view, as it is", plain), ("one view, mirrored", mirror)]:
        report = score(faces.labels, probs.argmax(1), meta.classes)
        print(f"| {name} | {report['accuracy']:.4f} | {report['balanced_accuracy']:.3f} | {report['macro_f1']:.3f} | "
              f"{np.mean(probs.argmax(1) == both.argmax(1)):.1%} |")
    print()


def labels(path: Path) -> dict[tuple[int, int], str]:
    """(frame, id) -> label of a --json file."""
    out = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        for face in row.get("faces", []):
            out[(row["frame"], face["id"])] = face["label"]
    return out


def changes(found: dict[tuple[int, int], str]) -> int:
    last: dict[int, str] = {}
    count = 0
    for (_, face), label in sorted(found.items()):
        count += face in last and last[face] != label
        last[face] = label
    return count


def clips(videos: Path, rounds: int) -> None:
    """The clips' table: the whole command both ways, taking turns."""
    print("| clip | views in turn: s (CPU s) | both views: s (CPU s) | ratio | same label | label changes |")
    print("|---|---|---|---|---|---|")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for clip in sorted(videos.glob("*.mp4")):
        times: dict[str, list[tuple[float, float]]] = {"1": [], "0": []}
        with tempfile.TemporaryDirectory() as tmp:
            out = {arm: Path(tmp) / f"{arm}.jsonl" for arm in times}
            for _ in range(rounds):
                for arm in times:
                    before = os.times()
                    start = time.perf_counter()
                    subprocess.run([sys.executable, "-c", COMMAND, arm, "predict", str(clip), "--json", str(out[arm])],
                                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    wall = time.perf_counter() - start
                    after = os.times()
                    times[arm].append((wall, after.children_user + after.children_system
                                       - before.children_user - before.children_system))
            one, both = labels(out["1"]), labels(out["0"])
        med = {arm: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for arm, t in times.items()}
        shared = one.keys() & both.keys()
        same = np.mean([one[k] == both[k] for k in shared]) if shared else float("nan")
        print(f"| {clip.stem} | {med['1'][0]:.2f} ({med['1'][1]:.2f}) | {med['0'][0]:.2f} ({med['0'][1]:.2f}) | "
              f"{med['0'][0] / med['1'][0]:.2f}x | {same:.1%} of {len(shared)} | {changes(one)} / {changes(both)} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ferplus-small")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ferplus" / "ferplus_valid.zip"))
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--no-stills", action="store_true", help="only the clips")
    args = parser.parse_args()
    if not args.no_stills:
        still_faces(args.model, args.data)
    clips(args.videos, args.rounds)
    print(f"\nload average {os.getloadavg()[0]:.1f}; CPU: {cpu_name()}")


def cpu_name() -> str:
    """The CPU's model name, and whether it has 8-bit dot products (VNNI)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown")
    return f"{name} ({'with' if 'vnni' in info else 'without'} VNNI)"


if __name__ == "__main__":
    main()
