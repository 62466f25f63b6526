"""BlazeFace's proposals against CenterFace's own whole-frame searches, on real clips.

    python benchmarks/bench_proposals.py [--videos ../shared/data/videos] [--rounds 3]

Each clip of ../shared/data/videos is recognised in this process as `mobilefer predict` does
(the bundled default model and detector, the default schedule), with the searches for faces of
28 px and up (640x480) started from BlazeFace's proposals (the default) and with every search
CenterFace's own, the two alternating, ``--rounds`` times each. For each: the median frames/s
(recognition only: decode, faces, classification) and CPU time a frame (all threads; on a busy
machine the steadier figure), the searches, how many started from
proposals, and face recall and extra faces against CenterFace's search on every frame (IoU >=
0.3, the same frame). The machine's load average is printed with each clip.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def boxes_of(rec, clip: Path, **options) -> tuple[list[list], float, float]:
    """The boxes of each frame, frames/s, and CPU milliseconds a frame (all threads)."""
    from mobilefer.inference.faces import Box

    start, cpu = time.perf_counter(), time.process_time()
    frames = [[Box(*face.box) for face in result.faces] for result in rec.stream(str(clip), **options)]
    return frames, len(frames) / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / len(frames)


def agreement(reference: list[list], got: list[list]) -> tuple[float, float]:
    """(recall, extra faces per reference face) of ``got`` against ``reference``, frame by frame."""
    from mobilefer.inference.faces import iou

    faces = sum(map(len, reference))
    hit = sum(any(iou(a, b) >= 0.3 for b in frame) for ref, frame in zip(reference, got) for a in ref)
    extra = sum(not any(iou(a, b) >= 0.3 for b in ref) for ref, frame in zip(reference, got) for a in frame)
    return hit / max(faces, 1), extra / max(faces, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", default=str(ROOT.parent / "shared" / "data" / "videos"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from mobilefer.inference import live
    from mobilefer.inference.recognizer import EmotionRecognizer

    rec = EmotionRecognizer.load()
    searches = {"all": 0, "proposed": 0}
    detect, proposed = live.VideoFaces._detect, live.VideoFaces._proposed

    def counted(name, method):
        def wrapper(self, *a):
            searches[name] += 1
            return method(self, *a)
        return wrapper

    live.VideoFaces._detect, live.VideoFaces._proposed = counted("all", detect), counted("proposed", proposed)
    print("| clip | path | frames/s (median) | CPU ms a frame (median) | searches (from proposals) | recall | extra faces |")
    print("|---|---|---|---|---|---|---|")
    for clip in sorted(Path(args.videos).glob("*.mp4")):
        rec.proposals = False
        reference, _, _ = boxes_of(rec, clip, detect_every=1)
        rates: dict[bool, list[float]] = {True: [], False: []}
        cpu: dict[bool, list[float]] = {True: [], False: []}
        rows: dict[bool, tuple] = {}
        for _ in range(args.rounds):
            for on in (True, False):
                rec.proposals = on
                searches.update(all=0, proposed=0)
                frames, rate, ms = boxes_of(rec, clip)
                rates[on].append(rate)
                cpu[on].append(ms)
                rows[on] = (dict(searches), *agreement(reference, frames))  # the same every round
        for on in (True, False):
            seen, recall, extra = rows[on]
            print(f"| {clip.stem} | {'proposals' if on else 'CenterFace only'} | {statistics.median(rates[on]):.1f} | "
                  f"{statistics.median(cpu[on]):.2f} | {seen['all']} ({seen['proposed']}) | {recall:.3f} | "
                  f"{100 * extra:.1f} % |")
        ratio = statistics.median(rates[True]) / statistics.median(rates[False])
        cpu_ratio = statistics.median(cpu[True]) / statistics.median(cpu[False])
        print(f"| {clip.stem} | ratio | {ratio:.2f} | {cpu_ratio:.2f} | | | load {os.getloadavg()[0]:.1f} |")


if __name__ == "__main__":
    main()
