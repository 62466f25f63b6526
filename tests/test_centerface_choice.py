"""Each machine runs the bundled CenterFace file it runs faster, timed once and remembered."""
from __future__ import annotations

import json

import pytest

from mobilefer.inference import centerface_choice
from mobilefer.inference.centerface_choice import FP32, INT8, faster_centerface
from mobilefer.inference.detectors import CenterFaceDetector, centerface_weights


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """No file named, a cache of the test's own, nothing remembered in the process."""
    monkeypatch.delenv("MOBILEFER_CENTERFACE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    faster_centerface.cache_clear()
    yield tmp_path / "mobilefer" / "centerface.json"
    faster_centerface.cache_clear()


def timed(monkeypatch, ms: dict) -> list:
    """``probe`` answering ``ms``; returns the list of its calls."""
    calls = []
    monkeypatch.setattr(centerface_choice, "probe", lambda files: calls.append(files) or ms)
    return calls


def test_the_file_a_machine_runs_faster_is_chosen_and_remembered_for_the_next_process(own_cache, monkeypatch):
    calls = timed(monkeypatch, {INT8: 10.0, FP32: 7.0})
    assert faster_centerface() == FP32 and centerface_weights() == FP32
    assert json.loads(own_cache.read_text()) == {centerface_choice.machine_key(): FP32.name}
    faster_centerface.cache_clear()  # a new process: the cache answers, nothing is timed again
    assert faster_centerface() == FP32 and len(calls) == 1
    assert CenterFaceDetector().weights == FP32


def test_int8_stays_unless_fp32_is_clearly_faster(own_cache, monkeypatch):
    timed(monkeypatch, {INT8: 10.0, FP32: 9.5})  # within a busy machine's noise
    assert faster_centerface() == INT8


def test_a_named_file_or_the_page_takes_no_timing(own_cache, monkeypatch):
    calls = timed(monkeypatch, {INT8: 10.0, FP32: 5.0})
    assert centerface_weights(INT8) == INT8 and centerface_weights(default=INT8) == INT8
    monkeypatch.setenv("MOBILEFER_CENTERFACE", str(FP32))
    assert centerface_weights() == FP32 and not calls and not own_cache.exists()


def test_a_cache_that_is_unreadable_or_from_another_machine_is_timed_again(own_cache, monkeypatch):
    own_cache.parent.mkdir(parents=True)
    for text in ("{not json", json.dumps({"another CPU | 64 cores | onnxruntime 1.0": FP32.name})):
        own_cache.write_text(text)
        calls = timed(monkeypatch, {INT8: 5.0, FP32: 9.0})
        faster_centerface.cache_clear()
        assert faster_centerface() == INT8 and len(calls) == 1
    assert json.loads(own_cache.read_text()) == {"another CPU | 64 cores | onnxruntime 1.0": FP32.name,
                                                 centerface_choice.machine_key(): INT8.name}


def test_a_cache_that_cannot_be_written_only_means_timing_again(own_cache, monkeypatch):
    own_cache.parent.parent.mkdir(parents=True, exist_ok=True)
    own_cache.parent.write_text("a file where the cache folder would be")
    timed(monkeypatch, {INT8: 10.0, FP32: 5.0})
    assert faster_centerface() == FP32
    assert sorted(p.name for p in own_cache.parent.parent.iterdir()) == ["mobilefer"]  # nothing half-written


def test_a_probe_that_fails_leaves_the_int8_file_and_remembers_nothing(own_cache, monkeypatch):
    def broken(files):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : cannot run")

    monkeypatch.setattr(centerface_choice, "probe", broken)
    assert faster_centerface() == INT8 and not own_cache.exists()


def test_the_probe_times_both_bundled_files_on_this_machine():
    ms = centerface_choice.probe([INT8, FP32], runs=1)
    assert set(ms) == {INT8, FP32} and all(0 < v < 10_000 for v in ms.values())


def test_a_named_file_that_is_missing_or_no_centerface_is_one_error_naming_the_variable(own_cache, monkeypatch,
                                                                                          bundled_model, tmp_path):
    from mobilefer.errors import DetectorUnavailable
    from mobilefer.inference.detectors import create_detector
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("not a model")
    cases = [(tmp_path / "missing.onnx", "is not a file"),
             (bundled_model, "not a CenterFace model"),  # the emotion classifier's ONNX file
             (not_onnx, "not a usable CenterFace model")]
    for path, message in cases:
        monkeypatch.setenv("MOBILEFER_CENTERFACE", str(path))
        for name in ("auto", "centerface"):  # auto never falls back to haar in silence
            with pytest.raises(DetectorUnavailable, match=rf"\$MOBILEFER_CENTERFACE={path}.*{message}"):
                create_detector(name)
    assert create_detector("haar").name == "haar"  # haar asked for by name needs no CenterFace
