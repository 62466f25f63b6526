"""scripts/average_weights.py: the weighted mean of checkpoints of one network, as the bundled
Small is made (MODEL_CARD.md)."""
import subprocess
import sys
from pathlib import Path

import pytest

from mobilefer.checkpoint import read_meta, read_weights, save_model
from mobilefer.meta import ModelMeta
from mobilefer.models import create_model

SCRIPT = Path(__file__).parents[1] / "scripts" / "average_weights.py"


def _checkpoint(path: Path, seed: int, classes=("happy", "sad", "surprise")) -> Path:
    import torch

    torch.manual_seed(seed)
    model = create_model("mobilenet_v3_small", len(classes), 1).eval()
    for module in model.modules():  # BatchNorm statistics that differ between the two
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.num_batches_tracked.fill_(seed)
    meta = ModelMeta(arch="mobilenet_v3_small", classes=list(classes), input_size=64, channels=1, base_size=24,
                     mean=[0.5], std=[0.25], config={"seed": seed})
    return save_model(model, meta, path)


def _average(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_each_tensor_is_the_weighted_mean_and_the_metadata_names_it(tmp_path):
    paths = [_checkpoint(tmp_path / f"{seed}.safetensors", seed) for seed in (1, 2, 3)]
    out = tmp_path / "avg.safetensors"
    done = _average(*map(str, paths), "--weights", "0.5,0.3,0.2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    (wa, wb, wc), avg = [read_weights(p) for p in paths], read_weights(out)
    assert avg.keys() == wa.keys()
    floats = [k for k in wa if wa[k].is_floating_point()]
    assert any(k.endswith("running_mean") for k in floats)  # BatchNorm statistics are averaged too
    for k in floats:
        assert avg[k].allclose(0.5 * wa[k] + 0.3 * wb[k] + 0.2 * wc[k], atol=1e-6), k
    for k in set(wa) - set(floats):  # whole-number buffers: the first model's
        assert avg[k].equal(wa[k]), k
    meta = read_meta(out)
    assert meta.config["seed"] == 1
    assert meta.config["averaged"] == {"models": list(map(str, paths)), "weights": [0.5, 0.3, 0.2]}


def test_the_shares_are_equal_unless_given(tmp_path):
    a, b = _checkpoint(tmp_path / "a.safetensors", 1), _checkpoint(tmp_path / "b.safetensors", 2)
    out = tmp_path / "avg.safetensors"
    assert _average(str(a), str(b), "--out", str(out)).returncode == 0
    wa, wb, avg = read_weights(a), read_weights(b), read_weights(out)
    key = next(k for k in wa if k.endswith("running_mean"))
    assert avg[key].allclose((wa[key] + wb[key]) / 2, atol=1e-6)
    assert read_meta(out).config["averaged"]["weights"] == [0.5, 0.5]


@pytest.mark.parametrize("weights, b_classes, message", [
    ("1.5,-0.5", ("happy", "sad", "surprise"), "--weights 1.5,-0.5: expected shares of at least 0 that sum to 1"),
    ("0.3,0.3", ("happy", "sad", "surprise"), "--weights 0.3,0.3: expected shares of at least 0 that sum to 1"),
    ("1", ("happy", "sad", "surprise"), "--weights 1: expected 2 shares, one per model"),
    ("a,b", ("happy", "sad", "surprise"), "--weights a,b: expected numbers separated by commas"),
    ("0.5,0.5", ("happy", "sad", "fear"), "not the same network with the same classes"),
])
def test_bad_shares_or_another_network_are_one_line(tmp_path, weights, b_classes, message):
    a = _checkpoint(tmp_path / "a.safetensors", 1)
    b = _checkpoint(tmp_path / "b.safetensors", 2, b_classes)
    out = tmp_path / "avg.safetensors"
    done = _average(str(a), str(b), "--weights", weights, "--out", str(out))
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_one_model_is_refused(tmp_path):
    a = _checkpoint(tmp_path / "a.safetensors", 1)
    done = _average(str(a), "--out", str(tmp_path / "avg.safetensors"))
    assert done.returncode == 2 and "expected at least two models to average" in done.stderr
