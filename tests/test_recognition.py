import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ASTRONAUT_FACE, box_iou
from helpers import composite, needs_centerface
from mobilefer.data.augment import eval_transform
from mobilefer.data.preprocess import to_base
from mobilefer.inference.detectors import BOX_TOLERANCE, Box, centerface_fp32, create_detector, face_crop
from mobilefer.inference.recognizer import Cadence, EmotionRecognizer



@pytest.mark.parametrize("name", ["haar", pytest.param("centerface", marks=needs_centerface)])
def test_detectors_find_the_astronaut(astronaut_bgr, name):
    boxes = create_detector(name).detect(astronaut_bgr)
    assert boxes, f"{name} found no face"
    assert box_iou(boxes[0].as_list(), ASTRONAUT_FACE) > 0.5


@pytest.mark.parametrize("name", ["haar", pytest.param("centerface", marks=needs_centerface)])
def test_detectors_find_faces_at_several_scales_on_a_plain_background(astronaut_bgr, name):
    frame, truth = composite(astronaut_bgr)
    found = create_detector(name).detect(frame)
    assert len(found) == 3
    for t in truth:
        assert max(box_iou(b.as_list(), t) for b in found) > 0.4


@pytest.mark.parametrize("name", ["haar", pytest.param("centerface", marks=needs_centerface)])
def test_a_detector_looks_at_the_scale_it_is_told(astronaut_bgr, name):
    """A followed face's square is looked at at the whole-frame search's scale: the boxes still
    come back in the frame's pixels, and a face too small at that scale is not found."""
    detector = create_detector(name)
    half = detector.detect(astronaut_bgr, scale=0.5)
    assert half and box_iou(half[0].as_list(), ASTRONAUT_FACE) > 0.5
    assert detector.detect(astronaut_bgr, scale=0.04) == []  # the face is 4 px across there


@pytest.mark.parametrize("name", ["haar", pytest.param("centerface", marks=needs_centerface)])
def test_no_face_is_an_empty_list(name):
    rng = np.random.default_rng(0)
    blank = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (31, 31), 0)
    assert create_detector(name).detect(blank) == []
    assert create_detector(name).detect(np.zeros((10, 10, 3), np.uint8)) == []


def test_min_and_max_faces_bound_the_work(astronaut_bgr):
    frame, _ = composite(astronaut_bgr)
    detector = create_detector("auto", min_face=100, max_faces=1)
    found = detector.detect(frame)
    assert len(found) <= 1 and all(min(b.w, b.h) >= BOX_TOLERANCE * 100 for b in found)


def test_face_crop_is_square_and_clamped():
    frame = np.zeros((100, 200, 3), np.uint8)
    crop = face_crop(frame, Box(80, 30, 40, 40), margin=0.25)
    assert crop.shape[:2] == (60, 60)
    corner = face_crop(frame, Box(0, 0, 30, 30), margin=0.5)
    assert corner.shape[:2] == (45, 45)  # clamped at the top-left, never negative indices


def test_recognize_accepts_path_pil_bgr_and_gray(astronaut_bgr, bundled_model, tmp_path):
    rec = EmotionRecognizer.load(bundled_model, detector="haar", max_faces=1)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), astronaut_bgr)
    from_array = rec.recognize(astronaut_bgr)
    from_path = rec.recognize(path)
    from_pil = rec.recognize(Image.open(path))
    assert from_array[0].box == from_path[0].box == from_pil[0].box
    assert from_array[0].label == "happy"  # she is smiling
    assert from_array[0].probs == pytest.approx(from_path[0].probs, abs=1e-6)
    assert set(from_array[0].probs) == set(rec.classes) and sum(from_array[0].probs.values()) == pytest.approx(1, abs=1e-4)
    gray = rec.recognize(cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY))
    assert gray and gray[0].label == "happy"


@pytest.mark.parametrize("mode", ["RGBA", "I;16", "L"])
def test_unusual_image_files_work(astronaut_bgr, bundled_model, tmp_path, mode):
    rgb = astronaut_bgr[:, :, ::-1]
    img = Image.fromarray(rgb)
    if mode == "I;16":
        img = Image.fromarray((np.asarray(img.convert("L")).astype(np.uint16) * 257))
    else:
        img = img.convert(mode)
    path = tmp_path / f"x_{mode.replace(';', '')}.png"
    img.save(path)
    faces = EmotionRecognizer.load(bundled_model, detector="haar", max_faces=1).recognize(path)
    assert faces and box_iou(faces[0].box, ASTRONAUT_FACE) > 0.5


def test_face_crop_reaches_the_network_as_in_evaluation(astronaut_bgr, bundled_model):
    rec = EmotionRecognizer.load(bundled_model, detector="haar")
    crop = astronaut_bgr[62:172, 180:290, ::-1]
    seen = []
    real = rec.classifier

    class Spy:
        meta = real.meta

        def __call__(self, x):
            seen.append(x)
            return real(x)

    rec.classifier = Spy()
    rec.classify_crops([crop])
    base = to_base(np.ascontiguousarray(crop), rec.meta.channels, rec.meta.base_size)
    torch_path = eval_transform(torch.from_numpy(base[None]).permute(0, 3, 1, 2), rec.meta).numpy()
    np.testing.assert_allclose(seen[0], torch_path, atol=2e-5)


@needs_centerface
def test_all_faces_of_a_frame_go_through_the_network_in_one_batch(astronaut_bgr, bundled_model):
    rec = EmotionRecognizer.load(bundled_model, detector="centerface")
    frame, _ = composite(astronaut_bgr, scales=(0.8, 1.0, 1.3))
    calls = []
    real = rec.classifier

    class Spy:
        meta = real.meta

        def __call__(self, x):
            calls.append(len(x))
            return real(x)

    rec.classifier = Spy()
    faces = rec.recognize(frame)
    assert len(faces) >= 3 and calls == [len(faces)]


def test_cadence_parsing():
    assert Cadence.parse("2s") == Cadence(seconds=2.0)
    assert Cadence.parse("5f") == Cadence(frames=5)
    for bad in ("2", "0f", "-1s", "xs"):
        with pytest.raises(ValueError, match="--every"):
            Cadence.parse(bad)


@needs_centerface
def test_centerface_answers_do_not_depend_on_earlier_frame_sizes(astronaut_bgr):
    """OpenCV's DNN keeps the first input's shapes; a reused net once returned garbage boxes."""
    fresh = create_detector("centerface").detect(astronaut_bgr)
    detector = create_detector("centerface")
    for size in ((320, 240), (1000, 300), (64, 64)):
        detector.detect(cv2.resize(astronaut_bgr, size))
        assert detector.detect(astronaut_bgr) == fresh


def test_detector_none_takes_each_image_as_one_face(astronaut_bgr, bundled_model, tmp_path):
    """Pre-cropped faces (a FER-style folder) need no detector; the crop itself is classified."""
    crop = astronaut_bgr[62:172, 180:290]
    rec = EmotionRecognizer.load(bundled_model, detector="none")
    faces = rec.recognize(crop)
    assert [f.box for f in faces] == [(0, 0, 110, 110)]
    detected = EmotionRecognizer.load(bundled_model, detector="auto").recognize(astronaut_bgr)
    assert faces[0].label == detected[0].label == "happy"
    small = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
    assert rec.recognize(small)[0].box == (0, 0, 48, 48)  # smaller than min_face: still the face


@pytest.mark.slow
@needs_centerface
def test_a_large_photo_is_searched_in_tiles_for_its_small_faces(astronaut_bgr, monkeypatch):
    """A 12-megapixel photo with 28 px faces: looked at whole (capped at 2 megapixels) they are
    7-8 px and lost; the tiles at full scale find them, and the large face too."""
    import mobilefer.inference.centerface as centerface

    rng = np.random.default_rng(0)
    photo = cv2.resize(rng.integers(70, 130, (30, 40, 3), dtype=np.uint8), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    x, y, w, h = ASTRONAUT_FACE
    head = astronaut_bgr[y - 30: y + h + 30, x - 30: x + w + 30]
    truth = []
    for side, (px, py) in ((28, (400, 500)), (28, (2900, 2400)), (34, (1700, 1200)), (400, (2600, 300))):
        s = side / w
        patch = cv2.resize(head, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        photo[py: py + patch.shape[0], px: px + patch.shape[1]] = patch
        truth.append((px + round(30 * s), py + round(30 * s), round(w * s), round(h * s)))
    found = [b.as_list() for b in create_detector("centerface").detect(photo)]
    assert all(any(box_iou(t, f) > 0.4 for f in found) for t in truth), (truth, found)
    monkeypatch.setattr(centerface, "MAX_TILES", 0)
    coarse = [b.as_list() for b in create_detector("centerface").detect(photo)]
    assert sum(any(box_iou(t, f) > 0.4 for f in coarse) for t in truth) == 1  # only the large face


@needs_centerface
def test_a_whole_image_search_also_looks_at_a_small_copy_for_large_faces(astronaut_bgr):
    """The copy LARGE_FACE_PASS times smaller sees the astronaut's face where the pass at the
    frame's own scale does, its box mapped back to the frame's pixels; a followed face's square
    and a thumbnail too small for a large face get no such pass."""
    from mobilefer.inference.detectors import LARGE_FACE_PASS, CenterFaceDetector

    detector = CenterFaceDetector()
    frame = np.full((480, 640, 3), 110, np.uint8)
    frame[100:612 - 200, 60:572] = astronaut_bgr[:312]
    plan = detector._plan(frame, upscale=False)
    assert [p.size for p in plan.passes] == [(640, 480), CenterFaceDetector.pass_size(640, 480, 1 / LARGE_FACE_PASS)]
    found = []
    for one in plan.passes:
        one.read(*(out[0] for out in detector.session.run(None, {detector.input_name: one.make()})[:3]))
        best = int(np.argmax(one.scores))
        found.append(one.rects[best].tolist())
    assert box_iou(*found) > 0.7, found
    assert len(detector._plan(frame, upscale=False, scale=1.0, window=(0, 0, 96, 96)).passes) == 1
    assert len(detector._plan(cv2.resize(frame, (160, 120)), upscale=False).passes) == 1


@needs_centerface
@pytest.mark.skipif(centerface_fp32() is None, reason="needs the bundled fp32 centerface.onnx")
def test_the_bundled_int8_detector_finds_the_faces_its_fp32_original_finds(astronaut_bgr):
    """The INT8 model against the file it was quantized from: the same faces, boxes within a few
    pixels, scores within a tenth, on the photo and on faces of 24 to 120 px."""
    from mobilefer.inference.detectors import BUNDLED_CENTERFACE, CenterFaceDetector

    int8, fp32 = CenterFaceDetector(BUNDLED_CENTERFACE), CenterFaceDetector(centerface_fp32())
    rng = np.random.default_rng(1)
    scene = cv2.resize(rng.integers(60, 140, (12, 16, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_CUBIC)
    x, y, w, h = ASTRONAUT_FACE
    head = astronaut_bgr[y - 30: y + h + 30, x - 30: x + w + 30]
    for side, (px, py) in ((24, (40, 60)), (40, (200, 300)), (70, (420, 40)), (120, (250, 150))):
        patch = cv2.resize(head, None, fx=side / w, fy=side / w, interpolation=cv2.INTER_AREA)
        scene[py: py + patch.shape[0], px: px + patch.shape[1]] = patch
    for image, faces in ((astronaut_bgr, 1), (scene, 4)):
        want, got = fp32.detect(image), int8.detect(image)
        assert len(want) == len(got) == faces
        for b in want:
            match = max(got, key=lambda g: box_iou(b.as_list(), g.as_list()))
            assert box_iou(b.as_list(), match.as_list()) > 0.8 and abs(match.score - b.score) < 0.1, (b, match)
