"""Why a face got its label: a map over its box from covered copies of the face, in the runtime,
held honest by the deletion test (covering what it weighs most costs the label more than
covering as much at random)."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import run_without_torch
from mobilefer.data.images import bgr_to_rgb
from mobilefer.data.preprocess import normalize_batch
from mobilefer.inference.explain import deletion_drops, deletion_map, face_base, over_box
from mobilefer.inference.faces import Box
from mobilefer.inference.recognizer import EmotionRecognizer
from mobilefer.inference.sources import iter_frames

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


@pytest.fixture(scope="module")
def rec(bundled_model):
    return EmotionRecognizer.load(bundled_model)


def deletion_holds(rec, frame, face) -> bool:
    base, _ = face_base(bgr_to_rgb(frame), Box(*face.box), rec.margin, rec.meta.channels, rec.meta.base_size)

    def classify(batch):
        return rec.classifier(normalize_batch(batch, rec.meta))

    label = rec.classes.index(face.label)
    top, chance = deletion_drops(base, deletion_map(base, classify, label), classify, label)
    return top > chance


def test_a_faces_map_covers_its_box_is_reproducible_and_passes_the_deletion_test(rec, astronaut_bgr):
    face = rec.recognize(astronaut_bgr)[0]
    heat = rec.explain(astronaut_bgr, face)
    x, y, w, h = face.box
    assert heat.shape == (h, w) and heat.dtype == np.float32 and np.isfinite(heat).all()
    assert np.array_equal(heat, rec.explain(bgr_to_rgb(astronaut_bgr)[:, :, ::-1].copy(), face))  # the same every time
    assert heat.max() > 0
    assert deletion_holds(rec, astronaut_bgr, face)
    # a box rather than a face: the label the model gives it is explained
    assert np.array_equal(rec.explain(astronaut_bgr, Box(*face.box)), heat)


def test_a_map_is_laid_over_the_box_where_the_crop_square_is():
    heat = np.arange(16, dtype=np.float32).reshape(4, 4)
    out = over_box(heat, (10, 20, 40), Box(20, 30, 20, 20))  # the box is the middle of the 40 px square
    assert out.shape == (20, 20) and out[0, 0] < out[-1, -1]
    edge = over_box(heat, (0, 0, 40), Box(30, 30, 20, 20))  # half outside the square: zero there
    assert (edge[10:, :] == 0).all() and (edge[:, 10:] == 0).all()


@pytest.mark.slow
@pytest.mark.skipif(not VIDEOS.is_dir(), reason="needs ../shared/data/videos")
def test_the_deletion_test_holds_on_most_real_faces(rec):
    """Every 200th frame of the shared clips (webcam montage, handheld selfie, hikers)."""
    results = []
    for clip in sorted(VIDEOS.glob("*.mp4")):
        for frame in (f.image for f in iter_frames(str(clip)) if f.index % 200 == 0):
            results += [deletion_holds(rec, frame, face) for face in rec.recognize(frame)]
    assert len(results) >= 8 and np.mean(results) >= 0.75, results


def test_predict_explain_writes_a_picture_a_face_without_pytorch(tmp_path):
    done = run_without_torch("predict", str(ASTRONAUT), "--out", str(tmp_path / "out"), "--explain")
    assert done.returncode == 0, done.stderr
    picture = cv2.imread(str(tmp_path / "out" / "astronaut_face0_explain.jpg"))
    assert picture is not None and max(picture.shape[:2]) >= 256  # a small face is drawn enlarged
    assert "astronaut_face0_explain.jpg" in done.stdout
    again = run_without_torch("predict", str(ASTRONAUT), "--explain")
    assert again.returncode == 2 and "--explain draws each face's explanation into --out" in again.stderr
