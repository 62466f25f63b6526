"""A model's prior correction (ModelMeta.prior, prior_correction): kept in its metadata, applied
by every runtime after the temperature and the flip averaging, fitted into the temperature and
chosen at training."""
from __future__ import annotations

import numpy as np
import pytest

from mobilefer.meta import ModelMeta


def _meta(**fields) -> ModelMeta:
    return ModelMeta(arch="mobilenet_v3_small", classes=["neutral", "sad", "fear"], input_size=32, channels=1,
                     base_size=24, mean=[0.5], std=[0.25], **fields)


def test_the_correction_moves_probability_from_common_classes_to_rare_ones():
    from mobilefer.runtime.probs import corrected

    meta = _meta(prior=[0.8, 0.15, 0.05], prior_correction=0.5)
    weights = meta.class_weights()
    assert weights == pytest.approx([0.8 ** -0.5, 0.15 ** -0.5, 0.05 ** -0.5])
    probs = np.array([[0.6, 0.3, 0.1], [1 / 3, 1 / 3, 1 / 3]], dtype=np.float32)
    out = corrected(probs, meta)
    assert np.allclose(out.sum(1), 1) and out.dtype == np.float32
    assert out[0].argmax() == 1  # a face the model leans to call neutral, with sadness close behind
    assert out[1][2] > out[1][1] > out[1][0]  # an even answer ends up on the rare class
    assert corrected(probs, _meta(prior=[0.8, 0.15, 0.05])) is probs  # a prior alone changes nothing
    full = corrected(probs, _meta(prior=[0.8, 0.15, 0.05], prior_correction=1.0))
    assert np.allclose(full[0], np.array([0.6 / 0.8, 0.3 / 0.15, 0.1 / 0.05]) / (0.75 + 2 + 2))


@pytest.mark.parametrize("fields, wrong", [
    ({"prior": [0.5, 0.5]}, "prior"),
    ({"prior": [0.9, 0.1, 0.0]}, "prior"),
    ({"prior_correction": 0.3}, "prior_correction"),
    ({"prior": [0.8, 0.15, 0.05], "prior_correction": 1.5}, "prior_correction"),
])
def test_metadata_with_a_bad_prior_is_refused_by_name(fields, wrong):
    with pytest.raises(ValueError, match=wrong):
        _meta(**fields)


def test_onnx_runtime_applies_the_bundled_models_correction():
    """ONNX Runtime gives the network's softmax at the model's temperature, multiplied by the
    correction's class weights and summed to 1 again: not the softmax alone. The Large carries a
    correction; the Small (the default) carries the prior with a correction of 0."""
    from mobilefer.runtime import load_classifier, read_meta, resolve_model
    from mobilefer.runtime.probs import softmax

    large = resolve_model("ferplus-large").path
    meta = read_meta(large)
    assert meta.prior_correction > 0 and len(meta.prior) == meta.num_classes
    small = read_meta(resolve_model("ferplus-small").path)
    assert small.prior_correction == 0 and small.class_weights() is None and len(small.prior) == small.num_classes
    clf = load_classifier(large)
    x = np.random.default_rng(1).normal(0, 1, (4, meta.channels, meta.input_size, meta.input_size)).astype(np.float32)
    clf.meta.tta = "none"
    plain = softmax(clf.logits(x) / meta.temperature)
    weighted = plain * np.array(meta.class_weights(), dtype=np.float32)
    assert np.allclose(clf(x), weighted / weighted.sum(1, keepdims=True), atol=1e-6)
    assert not np.allclose(clf(x), plain, atol=1e-3)


def test_two_views_read_apart_pair_as_both_read_at_once():
    """probs.paired (a video's known face, recognizer.VIDEO_VIEWS): the Large's two views, each
    read alone with its correction, give what its flip averaging gives reading both at once;
    without a correction the plain mean."""
    from mobilefer.runtime import load_classifier, resolve_model
    from mobilefer.runtime.probs import paired

    clf = load_classifier(resolve_model("ferplus-large").path)
    meta = clf.meta
    assert meta.tta == "flip" and meta.class_weights() is not None
    x = np.random.default_rng(2).normal(0, 1, (4, meta.channels, meta.input_size, meta.input_size)).astype(np.float32)
    plain, mirrored = clf(x, flip=False), clf(x[..., ::-1], flip=False)
    assert np.allclose(paired(plain, mirrored, meta), clf(x), atol=1e-6)
    assert not np.allclose((plain + mirrored) / 2, clf(x), atol=1e-4)  # the mean alone is not it
    a, b = np.array([[0.6, 0.3, 0.1]], np.float32), np.array([[0.2, 0.2, 0.6]], np.float32)
    assert np.allclose(paired(a, b, _meta(prior=[0.8, 0.15, 0.05])), [[0.4, 0.25, 0.35]])


def test_pytorch_weights_made_from_the_bundled_model_apply_its_correction_too():
    pytest.importorskip("torch", reason="the runtime venv has no PyTorch")
    from mobilefer.runtime import load_classifier, read_meta, resolve_model

    large = resolve_model("ferplus-large").path
    meta = read_meta(large)
    clf = load_classifier(large)
    x = np.random.default_rng(1).normal(0, 1, (4, meta.channels, meta.input_size, meta.input_size)).astype(np.float32)
    clf.meta.tta = "none"
    torch_clf = load_classifier(resolve_model("ferplus-large", torch_weights=True).path)
    torch_clf.meta.tta = "none"
    assert torch_clf.meta.class_weights() == meta.class_weights()
    assert np.allclose(torch_clf(x), clf(x), atol=1e-5)


def test_validation_scores_the_corrected_probabilities():
    """engine.scoring (how training validates and picks its epoch) applies the correction as
    the runtimes do."""
    torch = pytest.importorskip("torch", reason="the runtime venv has no PyTorch")

    from mobilefer.engine.scoring import predict_tensors

    meta = _meta(prior=[0.8, 0.15, 0.05], prior_correction=0.4, temperature=1.5)
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.5, 0.2]])

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits[: len(x)]

    images = torch.zeros((2, 1, 24, 24), dtype=torch.uint8)
    got = predict_tensors(Fixed(), images, meta).numpy()
    expected = (logits / 1.5).softmax(1).numpy() * np.array(meta.class_weights())
    assert np.allclose(got, expected / expected.sum(1, keepdims=True), atol=1e-6)


def test_the_temperature_is_fitted_with_the_correction_in_place():
    """Probabilities that the correction leaves too sure are given a higher temperature than the
    same logits uncorrected, and the fit brings their calibration error down."""
    from mobilefer.engine.calibrate import fit_temperature, probabilities
    from mobilefer.engine.metrics import calibration

    rng = np.random.default_rng(0)
    labels = rng.choice(3, 6000, p=[0.2, 0.4, 0.4])
    logits = rng.normal(0, 1, (6000, 3))
    logits[np.arange(6000), labels] += 2.0
    weights = _meta(prior=[0.2, 0.4, 0.4], prior_correction=1.0).class_weights()
    fitted = fit_temperature([logits], labels, weights)
    assert calibration(probabilities([logits], fitted, weights), labels)["ece"] <= \
        calibration(probabilities([logits], 1.0, weights), labels)["ece"]
    assert np.allclose(probabilities([logits], 1.0, weights).sum(1), 1)


def test_a_run_keeps_its_datas_prior_and_the_correction_asked_for(tmp_path, request):
    """train --prior-correction: the model carries each class's share of the training faces and
    the correction; a fine-tune whose data lacks a class it keeps is refused by name."""
    pytest.importorskip("torch", reason="the runtime venv has no PyTorch")
    tiny_run = request.getfixturevalue("tiny_run")
    from conftest import write_folder
    from helpers import tiny_config
    from mobilefer.engine.train import train
    from mobilefer.errors import DatasetError
    from mobilefer.runtime import load_classifier, read_meta

    data = write_folder(tmp_path / "faces", per_class=12)
    for extra in sorted((data / "happy").iterdir())[:6]:
        extra.rename(data / "sad" / ("x" + extra.name))
    result = train(tiny_config(data, tmp_path / "run", epochs=1, prior_correction=0.5))
    meta = read_meta(result.best)
    assert meta.prior_correction == 0.5 and sum(meta.prior) == pytest.approx(1, abs=1e-5)
    assert meta.summary().endswith(", prior correction 0.5")  # what evaluate prints of the model
    assert meta.prior[meta.classes.index("sad")] > meta.prior[meta.classes.index("happy")]
    assert load_classifier(result.best).meta.class_weights() == meta.class_weights()

    for face in (data / "Surprised").iterdir():
        face.unlink()
    (data / "Surprised").rmdir()
    with pytest.raises(DatasetError, match="--prior-correction needs faces of every class.*none of: surprise"):
        train(tiny_config(data, tmp_path / "run2", epochs=1, prior_correction=0.5, keep_classes=True,
                          pretrained=str(tiny_run[1] / "best.safetensors")))
