"""The shifted test set (data.shift), evaluate --shift, and train's --degrade augmentation."""
import json

import numpy as np
import pytest
import torch

from mobilefer.data.augment import Augment, _blur, _degrade, train_transform
from mobilefer.data.shift import CHANGES, shift_faces
from mobilefer.engine.config import EvalConfig, TrainConfig
from mobilefer.engine.evaluate import evaluate
from mobilefer.errors import ConfigError
from mobilefer.meta import ModelMeta


def faces(n=40, size=48, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    face = 120 + 60 * np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (2 * (size / 3) ** 2))
    batch = face[None, ..., None] + rng.normal(0, 10, (n, size, size, channels))
    return np.clip(batch, 0, 255).astype(np.uint8)


def test_each_change_covers_a_tenth_and_the_seed_gives_the_same_set():
    images = faces(50)
    a, changes = shift_faces(images, seed=3)
    b, again = shift_faces(images, seed=3)
    c, other = shift_faces(images, seed=4)
    assert a.dtype == np.uint8 and a.shape == images.shape
    assert np.array_equal(a, b) and changes == again
    assert not np.array_equal(a, c) and changes != other
    assert {name: changes.count(name) for name in CHANGES} == {name: 5 for name in CHANGES}
    for name in CHANGES:  # every change changes its faces
        pick = [i for i, ch in enumerate(changes) if ch == name]
        assert np.abs(a[pick].astype(int) - images[pick]).mean() > 1.0, name


@pytest.mark.parametrize("size,channels", [(48, 1), (64, 3)])
def test_the_changes_do_what_they_say(size, channels):
    images = faces(30, size, channels)
    out, changes = shift_faces(images, seed=0)
    by = {name: [i for i, ch in enumerate(changes) if ch == name] for name in CHANGES}
    grad = lambda x: np.abs(np.diff(x.astype(float), axis=2)).mean()  # noqa: E731
    assert grad(out[by["blur"]]) < grad(images[by["blur"]])  # softer edges
    assert out[by["dim"]].mean() < 0.6 * images[by["dim"]].mean()
    glasses = out[by["glasses"]][:, int(size * 0.35):int(size * 0.45)]  # the eye band holds dark frames
    assert glasses.min() < 45 and images[by["glasses"]][:, int(size * 0.35):int(size * 0.45)].min() > 45


def test_shift_refuses_what_is_not_a_set_of_square_faces():
    with pytest.raises(ValueError, match="square faces"):
        shift_faces(np.zeros((2, 48, 40, 1), np.uint8))


def test_evaluate_scores_the_shifted_copy_by_change(tiny_run, tmp_path):
    data, run, _ = tiny_run
    clean = evaluate(EvalConfig(model=str(run / "best.safetensors"), data=str(data)))
    report = evaluate(EvalConfig(model=str(run / "best.safetensors"), data=str(data), shift=0,
                                 json=str(tmp_path / "r.json")))
    by_change = report["shift"]["by_change"]
    assert report["shift"]["seed"] == 0 and list(by_change) == list(CHANGES)
    assert sum(c["faces"] for c in by_change.values()) == report["num_samples"] == clean["num_samples"]
    assert report["confusion_matrix"] != clean["confusion_matrix"]  # other faces, other answers
    total = sum(c["faces"] * c["accuracy"] for c in by_change.values()) / report["num_samples"]
    assert total == pytest.approx(report["accuracy"])
    assert json.loads((tmp_path / "r.json").read_text())["shift"] == json.loads(json.dumps(report["shift"]))
    with pytest.raises(ConfigError, match="--shift -1"):
        EvalConfig(data=str(data), shift=-1)


def test_degrade_blurs_noises_and_dims_a_share_of_the_faces():
    x = torch.rand(64, 1, 48, 48) * 0.5 + 0.25
    out = _degrade(x, 0.5, torch.Generator().manual_seed(0))
    changed = (out - x).abs().flatten(1).amax(1) > 1e-6
    assert 16 <= int(changed.sum()) <= 48 and out.min() >= 0 and out.max() <= 1
    flat = torch.full((2, 1, 16, 16), 0.5)
    assert torch.allclose(_blur(flat, torch.tensor([0.5, 2.0])), flat, atol=1e-6)  # a blur keeps the level
    assert torch.equal(_degrade(x, 0.0, torch.Generator().manual_seed(0)), x)
    m = ModelMeta(arch="mobilenet_v3_small", classes=["a", "b"], input_size=48, channels=1, base_size=48,
                  mean=[0.5], std=[0.25])
    images = (torch.rand(8, 1, 48, 48) * 255).to(torch.uint8)
    run = lambda d: train_transform(images, m, Augment(degrade=d), torch.Generator().manual_seed(1))  # noqa: E731
    assert torch.equal(run(0.5), run(0.5)) and not torch.equal(run(0.5), run(0.0))


def test_degrade_is_a_share():
    with pytest.raises(ConfigError, match="--degrade 1.5"):
        TrainConfig(data="x", degrade=1.5)
