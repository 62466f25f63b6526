"""scripts/train_ferplus.sh, the recipe of the bundled FER+ models, end to end on a tiny FER+ set:
every cycle of both models one epoch on a few faces, the averages, the two ONNX files; run again,
it keeps the finished cycles and writes the same files."""
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_image

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).parents[1] / "scripts" / "train_ferplus.sh"
CYCLES = ("small", "small160", "small160bal", "small160deg", "small160occ", "large", "large192", "large192deg",
          "large192bal", "large224", "large192occ")


def _ferplus_zip(path: Path, split: str, faces: int, seed: int) -> Path:
    """FER+ as Microsoft ships it: label.csv (ten annotators' votes over 8 emotions, unknown and
    not-a-face) beside 48 px grey PNGs; each face's majority is one emotion, in turn."""
    rng = np.random.default_rng(seed)
    rows = []
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(faces):
            votes = [0] * 10
            votes[i % 8] += 7
            for j in rng.integers(0, 8, 3):
                votes[j] += 1
            name = f"fer{seed:03d}{i:04d}.png"
            rows.append(f'{name},"(0, 0, 48, 48)",{",".join(map(str, votes))}\n')
            buffer = io.BytesIO()
            Image.fromarray(make_image(40 + 20 * (i % 8), rng, 48)).save(buffer, format="PNG")
            archive.writestr(f"{split}/{name}", buffer.getvalue())
        archive.writestr(f"{split}/label.csv", "".join(rows))
    return path


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    pytest.importorskip("torch", reason="training needs PyTorch")
    if shutil.which("bash") is None:
        pytest.skip("the recipe is a bash script")
    from mobilefer.runtime import resolve_model

    resolve_model("fer2013-small"), resolve_model("fer2013-large")  # the starts: mobilefer-fer2013
    root = tmp_path_factory.mktemp("recipe")
    data = root / "data"
    data.mkdir()
    _ferplus_zip(data / "ferplus_train.zip", "FER2013Train", 48, 1)
    _ferplus_zip(data / "ferplus_valid.zip", "FER2013Valid", 24, 2)
    env = {**os.environ, **{f"EPOCHS_{c.upper()}": "1" for c in CYCLES},
           "EXTRA_ARGS": "--batch-size 16 --threads 1", "MOBILEFER": str(Path(sys.executable).parent / "mobilefer"),
           "PYTHON": sys.executable}

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SCRIPT), str(data), str(root / "out")], env=env, capture_output=True,
                              text=True, timeout=900)

    return root / "out", run


def test_the_recipe_trains_every_cycle_and_writes_both_averaged_models(recipe):
    from mobilefer.runtime import read_meta

    out, run = recipe
    done = run()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for cycle in CYCLES:
        assert (out / cycle / "best.safetensors").is_file() and (out / f"{cycle}.done").is_file(), cycle
    small, large = (read_meta(out / f"ferplus_mobilenet_v3_{arch}.onnx") for arch in ("small", "large"))
    assert small.arch == "mobilenet_v3_small" and large.arch == "mobilenet_v3_large"
    assert len(small.classes) == len(large.classes) == 8 and "contempt" in small.classes
    assert small.input_size == 160 and large.input_size == 192  # an average runs at its first model's size
    assert [Path(m).parent.name for m in small.config["averaged"]["models"]] == ["small160bal", "small160deg",
                                                                                "small160occ"]
    assert [Path(m).parent.name for m in large.config["averaged"]["models"]] == ["large192deg", "large192bal",
                                                                                "large224", "large192occ"]
    assert large.config["averaged"]["weights"] == [0.25] * 4

    # run again: the finished cycles are kept as they are, the averages and files made again alike
    kept = {c: (out / c / "best.safetensors").stat().st_mtime_ns for c in CYCLES}
    again = run()
    assert again.returncode == 0, again.stderr[-2000:]
    assert {c: (out / c / "best.safetensors").stat().st_mtime_ns for c in CYCLES} == kept
    assert read_meta(out / "ferplus_mobilenet_v3_large.onnx").config["averaged"] == large.config["averaged"]
