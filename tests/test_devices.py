"""--device: one rule for where inference runs, checked before any work; the GPU where
onnxruntime-gpu opens one (these machines have none: the choice is tested on ONNX Runtime's
answers, and scripts/gpu_check.py compares GPU with CPU results where a GPU is lent)."""
import logging

import onnxruntime as ort
import pytest

from mobilefer.errors import ConfigError, MissingExtraError
from mobilefer.runtime import devices
from mobilefer.runtime.devices import CPU, CPU_DEVICE, CUDA, Device, choose_device, gpu_works, parse_device


@pytest.fixture
def gpu_build(monkeypatch):
    """ONNX Runtime's CUDA build, its GPU opening or not as the test says."""
    opens = {"value": True}
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(devices, "gpu_works", lambda index: opens["value"])
    return opens


def test_device_names_are_parsed_once_for_every_verb():
    assert parse_device("auto") == ("auto", 0) and parse_device(" CUDA:1 ") == ("cuda", 1)
    for bad in ("gpu", "cpu:1", "cuda:", "cuda:x", ""):
        with pytest.raises(ConfigError, match="expected auto, cpu, cuda or cuda:N"):
            parse_device(bad)
    assert Device("cuda:1").providers == [(CUDA, {"device_id": 1}), CPU] and Device("cuda:1").gpu == 1
    assert CPU_DEVICE.providers == [CPU] and CPU_DEVICE.gpu is None


def test_auto_takes_a_gpu_that_opens_and_says_so(gpu_build, caplog):
    with caplog.at_level(logging.INFO, logger="mobilefer"):
        assert choose_device("auto") == Device("cuda:0")
    assert "running on the GPU (CUDA device 0)" in caplog.text
    assert choose_device("cuda:1") == Device("cuda:1")
    assert choose_device("cpu") == CPU_DEVICE
    gpu_build["value"] = False  # the CUDA build, but no GPU or no CUDA libraries
    assert choose_device("auto") == CPU_DEVICE
    with pytest.raises(ConfigError, match="CUDA device 0 did not open"):
        choose_device("cuda")


def test_cuda_without_the_gpu_build_names_the_package(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU])
    assert choose_device("auto") == CPU_DEVICE
    with pytest.raises(MissingExtraError, match="pip install onnxruntime-gpu"):
        choose_device("cuda")


@pytest.mark.skipif(CUDA in ort.get_available_providers(), reason="this onnxruntime has CUDA")
def test_a_cpu_build_opens_no_gpu_and_sessions_fall_back_to_the_cpu(bundled_model):
    from mobilefer.runtime.onnx import open_session

    gpu_works.cache_clear()
    assert gpu_works(0) is False
    assert open_session(bundled_model, providers=Device("cuda:0").providers).get_providers() == [CPU]


def test_every_verb_checks_its_device_before_any_work(tmp_path, capsys):
    from mobilefer.batch import BatchConfig
    from mobilefer.cli import main
    from mobilefer.engine.config import EvalConfig
    from mobilefer.inference.predict import PredictConfig
    from mobilefer.serve.config import ServeConfig

    for make in (lambda: PredictConfig(source="x.jpg", device="gpu"), lambda: EvalConfig(data="x", device="gpu"),
                 lambda: ServeConfig(device="gpu"), lambda: BatchConfig(sources=["x"], out=str(tmp_path), device="gpu")):
        with pytest.raises(ConfigError, match="--device 'gpu'"):
            make()
    with pytest.raises(ConfigError, match="--gpus-per-worker"):
        BatchConfig(sources=["x"], out=str(tmp_path / "b"), device="cuda")
    if CUDA not in ort.get_available_providers():
        assert main(["predict", "x.jpg", "--device", "cuda"]) == 2
        assert "pip install onnxruntime-gpu" in capsys.readouterr().err


def test_the_recognizer_runs_where_it_is_told(astronaut_bgr, bundled_model):
    from mobilefer.inference.recognizer import EmotionRecognizer

    on_cpu = EmotionRecognizer.load(bundled_model, device="cpu")
    assert on_cpu.classifier.session.get_providers() == [CPU]
    assert on_cpu.detector.session.get_providers() == [CPU]
    assert on_cpu.recognize(astronaut_bgr)[0].label == EmotionRecognizer.load(bundled_model).recognize(astronaut_bgr)[0].label
