import csv
import json
import pickle

import numpy as np
import pytest
from safetensors.torch import load_file

import mobilefer.engine.train as train_module
from helpers import tiny_config
from mobilefer.checkpoint import load_model, read_meta
from mobilefer.engine.config import EvalConfig
from mobilefer.errors import ConfigError
from mobilefer.engine.evaluate import evaluate
from mobilefer.engine.train import lr_at, train


def test_training_learns_a_separable_task(tiny_run):
    _, run, result = tiny_run
    assert result.best_metrics["accuracy"] >= 0.9  # chance is 1/3
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 13))
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert json.loads((run / "config.json").read_text())["arch"] == "mobilenet_v3_small"
    assert len((run / "val_files.txt").read_text().split()) == 18  # 25 % of 72, per class


def test_saved_model_describes_itself(tiny_run):
    _, run, _ = tiny_run
    meta = read_meta(run / "best.safetensors")
    assert meta.classes == ["happy", "sad", "surprise"]
    assert (meta.input_size, meta.channels, meta.base_size) == (32, 1, 24)
    assert meta.config["epochs"] == 12 and meta.data["num_train"] == 54
    assert meta.metrics["accuracy"] >= 0.9 and "torch" in meta.versions


def test_round_trip_then_evaluate_with_json_and_plot(tiny_run, tmp_path):
    data, run, result = tiny_run
    report = evaluate(EvalConfig(model=str(run / "best.safetensors"), data=str(data),
                                 json=str(tmp_path / "r.json"), plot=str(tmp_path / "cm.png")))
    saved = json.loads((tmp_path / "r.json").read_text())
    assert set(saved) == {"accuracy", "balanced_accuracy", "macro_f1", "num_samples", "per_class", "confusion_matrix",
                          "calibration"}
    assert 0 <= saved["calibration"]["ece"] <= 1 and sum(b["count"] for b in saved["calibration"]["bins"]) == 72
    assert set(saved["per_class"]["sad"]) == {"precision", "recall", "f1", "support"}
    assert saved["confusion_matrix"]["labels"] == ["happy", "sad", "surprise"]
    assert np.array(saved["confusion_matrix"]["matrix"]).sum() == saved["num_samples"] == 72
    assert report["accuracy"] >= 0.9
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_on_a_subset_of_the_model_classes(tiny_run, tmp_path):
    from conftest import write_folder

    data, run, _ = tiny_run
    subset = write_folder(tmp_path / "subset", per_class=5, seed=9)
    import shutil

    shutil.rmtree(subset / "Surprised")
    report = evaluate(EvalConfig(model=str(run / "best.safetensors"), data=str(subset)))
    assert report["num_samples"] == 10
    assert report["per_class"]["surprise"]["support"] == 0


def test_loading_never_unpickles(tiny_run, monkeypatch):
    _, run, _ = tiny_run

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading a model")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    model, meta = load_model(run / "best.safetensors")
    assert meta.num_classes == 3


def test_notebook_state_dict_loads_with_classes(tiny_run, tmp_path):
    import torch

    _, run, _ = tiny_run
    model, _ = load_model(run / "best.safetensors")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "old.pth")
    legacy, meta = load_model(tmp_path / "old.pth", classes=["Happiness", "sad", "suprise"], input_size=32)
    assert meta.classes == ["happy", "sad", "surprise"]
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(legacy(x), model(x))
    from mobilefer.errors import ModelFileError

    with pytest.raises(ModelFileError, match="pass --classes"):
        load_model(tmp_path / "old.pth")
    with pytest.raises(ModelFileError, match="3 outputs but 2 classes"):
        load_model(tmp_path / "old.pth", classes=["a", "b"])


def test_no_temporary_files_are_left_behind(tiny_run):
    _, run, _ = tiny_run
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]


@pytest.mark.slow  # three training runs
def test_resume_after_interruption_replays_the_same_run(folder_data, tmp_path, monkeypatch):
    config = dict(epochs=3, ema=0.9)  # the weight average resumes too
    reference = train(tiny_config(folder_data, tmp_path / "full", **config))

    real_write = train_module._write_metrics

    def killed_after_epoch_2(path, history):
        real_write(path, history)
        if len(history) == 2:
            raise KeyboardInterrupt  # as if the job were killed here

    monkeypatch.setattr(train_module, "_write_metrics", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(folder_data, tmp_path / "cut", **config))
    monkeypatch.setattr(train_module, "_write_metrics", real_write)

    with pytest.raises(ConfigError, match="leave out --epochs"):  # a resumed run keeps its settings
        train(tiny_config("", "", resume=str(tmp_path / "cut"), epochs=5))
    resumed = train(tiny_config("", "", resume=str(tmp_path / "cut"), threads=1, **config))
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for name in ("last.safetensors", "best.safetensors"):
        a = load_file(str(tmp_path / "full" / name))
        b = load_file(str(tmp_path / "cut" / name))
        for key in a:
            np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-5, err_msg=f"{name} {key}")
    assert resumed.history[-1]["val_acc"] == reference.history[-1]["val_acc"]


def test_fer_csv_validates_on_public_test_rows(fer_csv, tmp_path):
    result = train(tiny_config(fer_csv, tmp_path / "csv", epochs=1, img_size=48))
    meta = read_meta(result.last)
    assert meta.data["num_train"] == 30 and meta.data["num_val"] == 12
    assert "PublicTest" in meta.data["val"]


def test_lr_schedule_warms_up_then_decays():
    peak = 1e-3
    values = [lr_at(s, 100, 10, peak) for s in range(100)]
    assert values[0] < values[9] == pytest.approx(peak)
    assert values[-1] < 0.05 * peak
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_balanced_accuracy_and_calibration_say_what_accuracy_hides():
    """A model that calls every face the majority class: accuracy 0.9, balanced accuracy 0.5; a
    model 0.95 sure of faces it gets right 3 times in 4 is off by 0.2 in calibration."""
    from mobilefer.engine.metrics import calibration, score

    truth = np.array([0] * 90 + [1] * 10)
    lazy = score(truth, np.zeros(100, int), ["neutral", "sad"])
    assert lazy["accuracy"] == pytest.approx(0.9) and lazy["balanced_accuracy"] == pytest.approx(0.5)
    probs = np.tile([0.95, 0.05], (100, 1))
    labels = np.array([0] * 75 + [1] * 25)
    found = calibration(probs, labels)
    assert found["ece"] == pytest.approx(0.2) and found["bins"] == [{"confidence": 0.95, "accuracy": 0.75,
                                                                      "count": 100}]
    assert calibration(np.zeros((0, 2)), np.zeros(0))["ece"] == 0.0


def test_a_temperature_fitted_on_validation_makes_the_probabilities_honest():
    """The same logits made twice as confident are fitted twice the temperature, and the fitted
    temperature brings the calibration error down."""
    from mobilefer.engine.calibrate import fit_temperature, probabilities
    from mobilefer.engine.metrics import calibration

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 4000)
    honest = rng.normal(0, 1, (4000, 4))
    honest[np.arange(4000), labels] += 1.5  # the right class a little ahead
    sure = 2 * honest  # the same ranking, twice as confident
    temperature = fit_temperature([sure], labels)
    assert temperature == pytest.approx(2 * fit_temperature([honest], labels), rel=0.02)
    assert calibration(probabilities([sure], temperature), labels)["ece"] < \
        calibration(probabilities([sure], 1.0), labels)["ece"] / 2


def test_every_runtime_divides_the_logits_by_the_models_temperature(bundled_model):
    from mobilefer.runtime import load_classifier, read_meta
    from mobilefer.runtime.probs import corrected, softmax

    clf = load_classifier(bundled_model)
    assert read_meta(bundled_model).temperature != 1.0  # the bundled model is calibrated
    x = np.random.default_rng(1).normal(0, 1, (3, clf.meta.channels, clf.meta.input_size, clf.meta.input_size))
    x = x.astype(np.float32)
    clf.meta.tta = "none"
    raw = clf.logits(x)
    assert np.allclose(clf(x), corrected(softmax(raw / clf.meta.temperature), clf.meta), atol=1e-6)
    from mobilefer.runtime import resolve_model

    torch_clf = load_classifier(resolve_model("ferplus-small", torch_weights=True).path)  # made from the ONNX
    torch_clf.meta.tta = "none"
    assert torch_clf.meta.temperature == clf.meta.temperature
    assert np.allclose(torch_clf(x), clf(x), atol=1e-5)


def test_a_run_fits_its_best_epochs_temperature_on_validation(tiny_run):
    """The best epoch's file carries the temperature fitted on the validation images (kept in its
    metrics with the calibration error it leaves), and the last epoch's file is left alone."""
    _, run, _ = tiny_run
    best, last = read_meta(run / "best.safetensors"), read_meta(run / "last.safetensors")
    assert best.metrics["temperature"] == best.temperature > 0 and 0 <= best.metrics["ece"] <= 1
    assert last.temperature == 1.0
