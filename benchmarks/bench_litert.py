"""LiteRT (.tflite) against ONNX and PyTorch for one model, in the same run: file size, per-face
latency (median of single-face calls, no flip averaging), max |p - p_torch| and same top class
on real faces, and accuracy with the model's own flip averaging on labelled faces.

    python benchmarks/bench_litert.py [--model ferplus-small] [--data .../ferplus_valid.zip]

Needs the export and litert extras. Exports ONNX INT8, LiteRT fp32 and LiteRT INT8 into a
temporary folder (INT8 calibrated on 512 faces of --data, as `mobilefer export --int8` does);
the ONNX fp32 file is the bundled one (or exported, for a .safetensors --model).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def latency_ms(clf, faces: np.ndarray, repeats: int = 200) -> float:
    clf.meta.tta = "none"
    clf(faces[:1])
    times = []
    for i in range(repeats):
        one = faces[i % len(faces)][None]
        started = time.perf_counter()
        clf(one)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="ferplus-small")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ferplus" / "ferplus_valid.zip"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from mobilefer.data.preprocess import normalize_batch
    from mobilefer.data.readers import load_images
    from mobilefer.engine.metrics import score
    from mobilefer.export.onnx import ExportConfig, export
    from mobilefer.runtime import load_classifier, read_meta, resolve_model

    torch.set_num_threads(args.threads)
    meta = read_meta(resolve_model(args.model, torch_weights=True).path)
    data = load_images(args.data, channels=meta.channels, base_size=meta.base_size, classes=meta.classes)
    faces = normalize_batch(data.images, meta)
    with tempfile.TemporaryDirectory() as tmp:
        files = {"PyTorch (safetensors)": resolve_model(args.model, torch_weights=True).path}
        try:
            files["ONNX fp32"] = resolve_model(args.model).path
        except ValueError:
            files["ONNX fp32"] = export(ExportConfig(model=args.model, out=f"{tmp}/fp32.onnx")).path
        calib = dict(calib_data=args.data, calib_count=512, threads=args.threads)
        files["ONNX INT8"] = export(ExportConfig(model=args.model, out=f"{tmp}/int8.onnx", int8=True, **calib)).path
        files["LiteRT fp32"] = export(ExportConfig(model=args.model, out=f"{tmp}/fp32.tflite", **calib)).path
        files["LiteRT INT8"] = export(ExportConfig(model=args.model, out=f"{tmp}/int8.tflite", int8=True, **calib)).path
        reference = load_classifier(files["PyTorch (safetensors)"], threads=args.threads)
        reference.meta.tta = "none"
        expected = reference(faces)
        print(f"{args.model} on {len(faces)} faces of {args.data} (majority labels); {args.threads} thread(s); "
              f"load average {os.getloadavg()[0]:.1f}")
        print("| file | size MB | ms per face | max abs dp vs PyTorch | same top class | accuracy (model's TTA) |")
        print("|---|---|---|---|---|---|")
        for name, path in files.items():
            clf = load_classifier(path, threads=args.threads)
            tta = clf.meta.tta
            clf.meta.tta = "none"
            probs = clf(faces)
            dp, same = float(np.abs(probs - expected).max()), float((probs.argmax(1) == expected.argmax(1)).mean())
            clf.meta.tta = tta
            accuracy = score(data.labels, clf(faces).argmax(1), meta.classes)["accuracy"]
            print(f"| {name} | {Path(path).stat().st_size / 1e6:.2f} | {latency_ms(clf, faces):.2f} | {dp:.1e} | "
                  f"{same:.1%} | {accuracy:.4f} |", flush=True)


if __name__ == "__main__":
    main()
