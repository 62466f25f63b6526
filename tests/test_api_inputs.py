"""The Python API takes an image as the same file would be read, or says what it expected."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mobilefer.data.images import as_bgr_frame
from mobilefer.errors import MobileferError
from mobilefer.inference.recognizer import EmotionRecognizer


@pytest.fixture(scope="module")
def recognizer(bundled_model):
    return EmotionRecognizer.load(bundled_model, detector="haar", max_faces=1)


def _key(faces):
    return [(f.box, f.label, round(f.score, 3)) for f in faces]


def test_every_form_of_the_same_picture_gives_the_same_faces(recognizer, astronaut_bgr):
    expected = _key(recognizer.recognize(astronaut_bgr))
    assert expected and expected[0][1] == "happy"
    png = io.BytesIO()
    Image.fromarray(astronaut_bgr[:, :, ::-1]).save(png, format="PNG")
    forms = {
        "float in [0, 1]": astronaut_bgr.astype(np.float32) / 255,
        "float 0-255": astronaut_bgr.astype(np.float64),
        "uint16": astronaut_bgr.astype(np.uint16) * 257,
        "BGRA": np.dstack([astronaut_bgr, np.full(astronaut_bgr.shape[:2], 255, np.uint8)]),
        "bytes": png.getvalue(),
        "PIL": Image.open(io.BytesIO(png.getvalue())),
    }
    for name, image in forms.items():
        assert _key(recognizer.recognize(image)) == expected, name


def test_a_pil_image_is_turned_upright_by_its_exif_as_its_file_is(recognizer, astronaut_bgr, tmp_path):
    rotated = Image.fromarray(np.rot90(astronaut_bgr[:, :, ::-1]).copy())  # stored lying on its side
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 CW to view": the viewer shows her upright
    path = tmp_path / "phone.jpg"
    rotated.save(path, exif=exif, quality=95)
    from_path = recognizer.recognize(path)
    from_pil = recognizer.recognize(Image.open(path))
    assert from_path and _key(from_pil) == _key(from_path)
    assert as_bgr_frame(Image.open(path)).shape == astronaut_bgr.shape


@pytest.mark.parametrize("bad, says", [
    (None, "got NoneType"), (3, "got int"), ([[0, 1]], "got list"),
    (b"", "empty"), (b"not an image", "not an image"),
    (np.zeros((0, 0, 3), np.uint8), "empty"), (np.zeros((8,), np.uint8), "expected (H, W)"),
    (np.zeros((8, 8, 2), np.uint8), "expected (H, W)"), (np.full((8, 8), -0.5), "negative"),
    (np.full((8, 8), np.nan), "NaN"), (np.full((8, 8), 300.0), "float pixels up to 300"),
    (np.full((8, 8), 70000, np.int32), "8 or 16-bit"), (np.zeros((8, 8), bool), "bool"),
])
def test_what_is_not_an_image_is_one_clear_error(recognizer, bad, says):
    with pytest.raises(MobileferError, match=None) as caught:
        recognizer.recognize(bad)
    assert says in str(caught.value)
