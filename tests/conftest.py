"""Tiny synthetic face-like data made on the fly: nothing downloaded, nothing from FER2013."""
from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# The suite runs beside other work: one thread per process, and OpenMP workers that sleep
# when idle (before anything imports torch), so a loaded machine slows it but cannot stall it.
os.environ.setdefault("MOBILEFER_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Every machine runs the same detector file in the suite (the bundled INT8 one), whichever it
# runs faster; tests/test_centerface_choice.py covers the choice, in a cache of its own.
os.environ.setdefault("MOBILEFER_CENTERFACE", str(Path(__file__).resolve().parents[1] / "src" / "mobilefer"
                                                  / "weights" / "centerface_int8.onnx"))

# The suite's own cache (the PyTorch weights made from the bundled ONNX files, CenterFace's
# timing), shared by its processes and never the user's.
os.environ.setdefault("XDG_CACHE_HOME", str(Path(tempfile.gettempdir()) / f"mobilefer-tests-{os.getuid()}"))

# Three trivially separable "emotions": mean brightness tells them apart.
LEVELS = {"happy": 215, "sad": 40, "Surprised": 128}


def make_image(level: int, rng: np.random.Generator, size: int = 24) -> np.ndarray:
    """uint8 (size, size) gray: a blob-and-noise pattern around ``level``."""
    yy, xx = np.mgrid[:size, :size]
    blob = 30 * np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (2 * (size / 4) ** 2))
    img = level + blob - 15 + rng.normal(0, 8, (size, size))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_folder(root: Path, per_class: int = 24, seed: int = 0, size: int = 24) -> Path:
    rng = np.random.default_rng(seed)
    for name, level in LEVELS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(make_image(level, rng, size)).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture
def folder_data(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "faces")


@pytest.fixture
def zip_data(tmp_path: Path) -> Path:
    """A zip laid out like ../shared/data/fer2013: train/<class>/<file>.png."""
    rng = np.random.default_rng(1)
    path = tmp_path / "faces.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, level in LEVELS.items():
            for i in range(12):
                buffer = io.BytesIO()
                Image.fromarray(make_image(level, rng)).save(buffer, format="PNG")
                archive.writestr(f"train/{name.lower()}/img_{i}.png", buffer.getvalue())
        archive.writestr("train/readme.txt", "not an image")
    return path


@pytest.fixture
def fer_csv(tmp_path: Path) -> Path:
    """A tiny FER2013-format CSV: ids 3=happy, 4=sad, 5=surprise; 48x48 pixels."""
    rng = np.random.default_rng(2)
    rows = ["emotion,pixels,Usage"]
    for usage, count in (("Training", 10), ("PublicTest", 4), ("PrivateTest", 2)):
        for emotion_id, level in ((3, 215), (4, 40), (5, 128)):
            for _ in range(count):
                pixels = make_image(level, rng, 48).ravel()
                rows.append(f"{emotion_id},{' '.join(map(str, pixels))},{usage}")
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A small model trained once for the session on the synthetic happy / sad / surprise faces
    (24 a class, helpers.tiny_config): (data folder, run folder, TrainResult). Tests read the run
    and never write into it."""
    from helpers import tiny_config
    from mobilefer.engine.train import train

    root = tmp_path_factory.mktemp("tiny_run")
    data = write_folder(root / "faces", per_class=24)
    return data, root / "run", train(tiny_config(data, root / "run"))


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """scikit-image's public-domain NASA portrait (Eileen Collins), uint8 BGR 512x512."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="session")
def blurred_astronaut(astronaut_bgr) -> np.ndarray:
    """The portrait out of focus (a Gaussian blur of 6 px), which the default model reads less
    surely (0.6-0.8): the face the "uncertain" threshold is shown and tested on."""
    import cv2

    return cv2.GaussianBlur(astronaut_bgr, (0, 0), 6)


# Where her face is, measured once by eye and by both detectors.
ASTRONAUT_FACE = (180, 62, 90, 110)


def box_iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    from mobilefer.runtime import resolve_model

    return resolve_model().path
