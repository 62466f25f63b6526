from pathlib import Path

import numpy as np
import pytest

from helpers import run_without_torch
from mobilefer.checkpoint import read_meta, save_model
from mobilefer.export.onnx import export_onnx
from mobilefer.errors import ModelFileError
from mobilefer.runtime import OnnxClassifier, read_onnx_meta, resolve_model
from mobilefer.meta import ModelMeta
from mobilefer.models import create_model

ROOT = Path(__file__).parents[1]
ROOT_WEIGHTS = ROOT / "src" / "mobilefer" / "weights"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small", 3, 1).eval()
    meta = ModelMeta(arch="mobilenet_v3_small", classes=["happy", "sad", "surprise"], input_size=64,
                     channels=1, base_size=24, mean=[0.5], std=[0.25], tta="flip",
                     metrics={"accuracy": 0.5})
    path = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    save_model(model, meta, path)
    return path


def test_fp32_export_round_trip(checkpoint, tmp_path, folder_data):
    report = export_onnx(checkpoint, tmp_path / "m.onnx", calib_data=str(folder_data), check_count=32)
    assert report.max_abs_diff < 1e-4 and report.label_agreement == 1.0
    meta = read_onnx_meta(report.path)
    assert meta == read_meta(checkpoint)  # every field survives, tta and metrics included
    clf = OnnxClassifier(report.path)
    for n in (1, 5):  # dynamic batch axis
        probs = clf(np.random.default_rng(n).normal(size=(n, 1, 64, 64)).astype(np.float32))
        assert probs.shape == (n, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert clf(np.zeros((0, 1, 64, 64), np.float32)).shape == (0, 3)


@pytest.mark.slow
def test_int8_export_keeps_metadata_and_shrinks(checkpoint, tmp_path, folder_data, monkeypatch):
    fp32 = export_onnx(checkpoint, tmp_path / "a.onnx")
    int8 = export_onnx(checkpoint, tmp_path / "b.onnx", int8=True, calib_data=str(folder_data), calib_count=48)
    assert int8.int8 and int8.bytes < fp32.bytes / 2
    assert read_onnx_meta(int8.path).classes == ["happy", "sad", "surprise"]
    assert int8.calibration == f"48 images of {folder_data}" and not fp32.calibration
    assert int8.warning == ""  # it agrees well enough on these images
    import mobilefer.export.onnx as export_module

    monkeypatch.setattr(export_module, "INT8_MIN_AGREEMENT", 1.01)  # no INT8 model can pass this
    warned = export_onnx(checkpoint, tmp_path / "w.onnx", int8=True, calib_data=str(folder_data), calib_count=48)
    assert "same class as PyTorch on only" in warned.warning
    with pytest.raises(ValueError, match="calib-data"):
        export_onnx(checkpoint, tmp_path / "c.onnx", int8=True)


def test_int8_export_from_the_command_line_shows_our_lines_only(checkpoint, tmp_path, folder_data, capfd, caplog):
    from mobilefer.cli import main

    with caplog.at_level("INFO", logger="mobilefer"):
        assert main(["export", "--model", str(checkpoint), "--out", str(tmp_path / "q.onnx"), "--int8",
                     "--calib-data", str(folder_data), "--calib-count", "16"]) == 0
    out, err = capfd.readouterr()
    assert "wrote" in out and "calibrating on 16 images" in caplog.text
    assert "Collecting tensor data" not in out + err and "histogram" not in out + err


def test_corrupt_and_foreign_onnx_files_get_clear_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ModelFileError, match="bad.onnx: not a loadable ONNX model"):
        OnnxClassifier(bad)
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(foreign))
    with pytest.raises(ModelFileError, match="without mobilefer metadata"):
        OnnxClassifier(foreign)


def test_predict_and_evaluate_run_without_torch(tmp_path, folder_data, checkpoint, bundled_model):
    done = run_without_torch("predict", str(ROOT / "examples" / "astronaut.jpg"), "--json", str(tmp_path / "f.jsonl"))
    assert done.returncode == 0, done.stderr
    assert '"label": "happy"' in (tmp_path / "f.jsonl").read_text()
    onnx_path = export_onnx(checkpoint, tmp_path / "m.onnx").path
    done = run_without_torch("evaluate", "--model", str(onnx_path), "--data", str(folder_data))
    assert done.returncode == 0, done.stderr
    assert "macro-F1" in done.stdout
    done = run_without_torch("evaluate", "--model", str(checkpoint), "--data", str(folder_data))
    assert done.returncode == 2 and "mobilefer[train]" in done.stderr and "Traceback" not in done.stderr


def test_a_models_pytorch_weights_come_back_from_its_onnx_export_bit_for_bit(checkpoint, tmp_path):
    """safetensors -> ONNX -> safetensors gives the same tensors and metadata; and the bundled
    ONNX file -> the safetensors made from it -> ONNX gives the same initializers."""
    import dataclasses

    import onnx
    from onnx import numpy_helper
    from safetensors.numpy import load_file

    from mobilefer.runtime.derive import checkpoint_of, weights_from_onnx

    exported = export_onnx(checkpoint, tmp_path / "m.onnx").path
    state, _ = weights_from_onnx(exported)
    original = load_file(str(checkpoint))
    assert set(state) == set(original)
    assert all(state[k].dtype == original[k].dtype and np.array_equal(state[k], original[k]) for k in original)
    made = checkpoint_of(exported)
    assert dataclasses.asdict(read_meta(made)) == dataclasses.asdict(read_meta(checkpoint))
    assert checkpoint_of(exported) == made  # made once

    bundled = resolve_model("ferplus-small").path
    made = load_file(str(resolve_model("ferplus-small", torch_weights=True).path))
    assert len([k for k in made if k.endswith("num_batches_tracked")]) == 34 and made["features.0.1.num_batches_tracked"] > 0
    again = export_onnx(resolve_model("ferplus-small", torch_weights=True).path, tmp_path / "again.onnx").path
    initializers = lambda path: {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}  # noqa: E731
    first, second = initializers(bundled), initializers(again)
    assert set(first) == set(second) and all(np.array_equal(first[k], second[k]) for k in first)
    with pytest.raises(ValueError, match="holds no PyTorch weights"):  # an INT8 file has none to give
        weights_from_onnx(ROOT_WEIGHTS / "centerface_int8.onnx")


def test_bundled_models_describe_themselves():
    from mobilefer.data.ferplus import EMOTIONS
    from mobilefer.runtime import BUNDLED, DEFAULT_MODEL, read_meta

    assert DEFAULT_MODEL == "ferplus-small"
    for name, entry in BUNDLED.items():
        meta = read_onnx_meta(entry.path())
        torch_meta = read_meta(resolve_model(name, torch_weights=True).path)  # made from the ONNX file
        assert (torch_meta.classes, torch_meta.input_size, torch_meta.face_margin) == (
            meta.classes, meta.input_size, meta.face_margin), name
        assert meta.base_size == 48 and meta.channels == 1 and meta.tta == "flip"
        if name.startswith("ferplus"):
            assert meta.classes == EMOTIONS and meta.face_margin == 0.0  # the FER-crop margin
            assert meta.metrics["accuracy"] > 0.85
        else:
            assert meta.classes == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
            assert meta.metrics["accuracy"] > 0.68
