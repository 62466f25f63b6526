"""scripts/average_weights.py: the weighted mean of two checkpoints of one network, as the bundled
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
    a, b = _checkpoint(tmp_path / "a.safetensors", 1), _checkpoint(tmp_path / "b.safetensors", 2)
    out = tmp_path / "avg.safetensors"
    done = _average(str(a), str(b), "--weight", "0.3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    wa, wb, avg = read_weights(a), read_weights(b), read_weights(out)
    assert avg.keys() == wa.keys()
    floats = [k for k in wa if wa[k].is_floating_point()]
    assert any(k.endswith("running_mean") for k in floats)  # BatchNorm statistics are averaged too
    for k in floats:
        assert avg[k].allclose(0.3 * wa[k] + 0.7 * wb[k], atol=1e-6), k
    for k in set(wa) - set(floats):  # whole-number buffers: A's
        assert avg[k].equal(wa[k]), k
    meta = read_meta(out)
    assert meta.config["seed"] == 1 and meta.config["averaged"] == {"with": str(b), "weight": 0.3}


@pytest.mark.parametrize("weight, b_classes, message", [
    ("1.5", ("happy", "sad", "surprise"), "--weight 1.5: expected a share from 0 to 1"),
    ("0.5", ("happy", "sad", "fear"), "not the same network with the same classes"),
])
def test_a_bad_share_or_another_network_is_one_line(tmp_path, weight, b_classes, message):
    a = _checkpoint(tmp_path / "a.safetensors", 1)
    b = _checkpoint(tmp_path / "b.safetensors", 2, b_classes)
    out = tmp_path / "avg.safetensors"
    done = _average(str(a), str(b), "--weight", weight, "--out", str(out))
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
