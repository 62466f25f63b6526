"""On a machine with an NVIDIA GPU and onnxruntime-gpu: recognise a clip and a folder of photos
with --device cuda and with --device cpu, and compare every face's probabilities.

    python scripts/gpu_check.py CLIP PHOTO_FOLDER [--tolerance 1e-4]

Prints the device ONNX Runtime opened, the largest difference per source kind, and exits 1
where a face differs by more than the tolerance, its box differs, or the faces are not the same.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def faces_of(source: str, device: str) -> list[tuple]:
    """(source, frame, id, box, probabilities) of every face, as predict finds them."""
    from mobilefer import EmotionRecognizer

    rec = EmotionRecognizer.load(device=device)
    return [(r.source, r.frame, f.id, f.box, f.probs) for r in rec.stream(source) for f in r.faces]


def main() -> int:
    import onnxruntime as ort

    from mobilefer.runtime.devices import choose_device

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("photos")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}; "
          f"--device cuda opens {choose_device('cuda').name}")
    worst = 0.0
    for source in (args.clip, args.photos):
        gpu, cpu = faces_of(source, "cuda"), faces_of(source, "cpu")
        if [f[:4] for f in gpu] != [f[:4] for f in cpu]:
            print(f"{source}: the GPU found other faces or boxes than the CPU")
            return 1
        diff = max((abs(g[4][c] - p[4][c]) for g, p in zip(gpu, cpu) for c in g[4]), default=0.0)
        print(f"{source}: {len(gpu)} faces, largest probability difference {diff:.2e}")
        worst = max(worst, diff)
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
