"""LiteRT (.tflite) export and runtime: verified like ONNX, self-describing, one more --model format."""
import json
import os

import numpy as np
import pytest

# `make test` runs this file again in the litert venv, where a missing converter must fail
if not os.environ.get("MOBILEFER_REQUIRE_LITERT"):
    pytest.importorskip("litert_torch", reason="the litert extra is not installed (make test runs it in .venv-litert)")

from conftest import write_folder  # noqa: E402
from helpers import tiny_config  # noqa: E402
from mobilefer.cli import main  # noqa: E402
from mobilefer.engine.train import train  # noqa: E402
from mobilefer.export.onnx import ExportConfig, export  # noqa: E402
from mobilefer.runtime import load_classifier, read_meta  # noqa: E402

pytestmark = pytest.mark.slow  # a conversion takes ~30 s


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("litert")
    data = write_folder(root / "faces", per_class=8)
    best = train(tiny_config(data, root / "run", epochs=1, tta="flip")).best
    return data, best, root


def test_tflite_export_matches_pytorch_and_works_as_a_model(tiny, capfd, caplog):
    data, best, root = tiny
    out = root / "tiny.tflite"
    with caplog.at_level("INFO", logger="mobilefer"):
        assert main(["export", "--model", str(best), "--out", str(out), "--format", "tflite",
                     "--calib-data", str(data)]) == 0
    printed, said = capfd.readouterr()
    # our progress, and none of the converter's, JAX's, TensorFlow's or absl's own lines (behind -v)
    assert "converting mobilenet_v3_small to LiteRT fp32" in caplog.text
    assert not [line for line in said.splitlines() if any(word in line for word in ("JAX", "absl", "oneDNN", "tpu",
                                                                                    "XNNPACK", "W1", "I0"))], said
    assert "fp32" in printed and "max |p_tflite - p_torch|" in printed and "same top class 100.0%" in printed
    meta = read_meta(out)  # the metadata rides in the file
    assert meta.classes == read_meta(best).classes and meta.tta == "flip"
    assert main(["info", str(out)]) == 0 and json.loads(capfd.readouterr().out)["classes"] == meta.classes
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, meta.channels, meta.input_size, meta.input_size)).astype(np.float32)
    lite, torch_model = load_classifier(out), load_classifier(best)
    assert np.abs(lite(x) - torch_model(x)).max() < 1e-4  # flip averaging included
    assert lite(x[:0]).shape == (0, meta.num_classes)


def test_int8_tflite_is_calibrated_on_the_data_and_checked(tiny):
    data, best, root = tiny
    report = export(ExportConfig(model=str(best), out=str(root / "int8.tflite"), int8=True, calib_data=str(data)))
    assert report.int8 and report.calibration.startswith("24 images of") and report.num_checked == 24
    fp32 = export(ExportConfig(model=str(best), out=str(root / "fp32.tflite")))
    assert report.bytes < fp32.bytes / 2  # int8 weights
    assert load_classifier(root / "int8.tflite")(np.zeros((2, 1, 32, 32), np.float32)).sum(1) == pytest.approx(1, abs=1e-3)


def test_bad_tflite_files_get_one_clear_message(tiny, tmp_path, capsys):
    _, best, root = tiny
    good = root / "tiny.tflite"
    if not good.exists():
        export(ExportConfig(model=str(best), out=str(good)))
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    bare = tmp_path / "bare.tflite"  # the flatbuffer alone, no mobilefer metadata
    bare.write_bytes(good.read_bytes()[: good.read_bytes().rfind(b"PK\x03\x04")])
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    for path, needle in ((cut, "without mobilefer metadata (or cut short)"), (bare, "without mobilefer metadata"),
                         (junk, "not a LiteRT/TFLite model")):
        code = main(["predict", str(root / "faces" / "happy" / "000.png"), "--model", str(path), "--detector", "none"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and needle in err, err
    with pytest.raises(Exception, match="LiteRT export holds no trainable"):
        train(tiny_config(root / "faces", tmp_path / "r", pretrained=str(good)))
