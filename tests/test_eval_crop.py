"""evaluate (and a fine-tune) read labelled photos and loose face crops as predict reads them:
each image larger than the model's own faces is cut to its largest face as predict cuts it; face
crops of the model's size are scored as they are. predict says where it found no face in an
image the size of a face crop."""
import numpy as np
import pytest
from PIL import Image

from conftest import LEVELS, make_image
from helpers import write_photos_of


@pytest.fixture
def mixed_folder(tmp_path, astronaut_bgr):
    """happy/: the astronaut on four larger canvases, a loose crop of her, two 48 px face-sized
    images; sad/: a photo without a face and two 48 px images."""
    from skimage import data as skdata

    rgb = np.ascontiguousarray(astronaut_bgr[:, :, ::-1])
    root = tmp_path / "labelled"
    for name in ("happy", "sad"):
        (root / name).mkdir(parents=True)
    write_photos_of(rgb, root / "happy", 4, stem="photo")
    Image.fromarray(rgb[0:300, 80:380]).save(root / "happy" / "loose.png")
    Image.fromarray(skdata.coffee()).save(root / "sad" / "no_face.png")
    rng = np.random.default_rng(0)
    for name in ("happy", "sad"):
        for i in range(2):
            Image.fromarray(make_image(LEVELS[name], rng, 48)).save(root / name / f"crop{i}.png")
    return root


def test_larger_images_are_cut_to_their_face_as_predict_cuts_it(mixed_folder, bundled_model):
    from mobilefer.data.preprocess import to_base
    from mobilefer.data.readers import load_images
    from mobilefer.inference.detectors import LargestFaceCrop, create_detector, face_crop
    from mobilefer.runtime import read_meta

    meta = read_meta(bundled_model)
    crop = LargestFaceCrop.for_model(meta)
    common = dict(channels=meta.channels, base_size=meta.base_size, classes=meta.classes)
    cut, plain = load_images(mixed_folder, crop=crop, **common), load_images(mixed_folder, **common)
    assert cut.files == plain.files and len(cut) == 10 and not cut.skipped
    assert crop.searched == 6 and crop.faceless == 1  # the 48 px images are never searched
    for name in cut.files:
        one = cut.images[cut.files.index(name)]
        if name.startswith(("happy/crop", "sad/crop")) or name == "sad/no_face.png":
            np.testing.assert_array_equal(one, plain.images[plain.files.index(name)])  # as they are
    photo = np.asarray(Image.open(mixed_folder / "happy" / "photo0.png"))
    box = max(create_detector("auto").detect(photo[:, :, ::-1].copy()), key=lambda b: b.w * b.h)
    np.testing.assert_array_equal(cut.images[cut.files.index("happy/photo0.png")],
                                  to_base(face_crop(photo, box, meta.face_margin), meta.channels, meta.base_size))


def test_evaluate_reads_the_photos_faces_and_says_so(mixed_folder, capsys):
    from mobilefer.cli import main
    from mobilefer.engine.config import EvalConfig
    from mobilefer.engine.evaluate import evaluate

    def happy_read(report):
        row = report["confusion_matrix"]["labels"].index("happy")
        return report["confusion_matrix"]["matrix"][row][row]

    default = evaluate(EvalConfig(data=str(mixed_folder)))
    as_they_are = evaluate(EvalConfig(data=str(mixed_folder), crop_faces=False))
    assert default["num_samples"] == as_they_are["num_samples"] == 10  # the faceless photo scored whole
    assert default["faces"] == ("6 image(s) over 48 px on their short side searched for their largest face and "
                                "cropped as predict crops it; no face in 1, kept whole")
    assert "faces" not in as_they_are
    assert happy_read(default) >= 5 > happy_read(as_they_are)  # all five photos of her read as happy

    assert main(["evaluate", "--data", str(mixed_folder)]) == 0
    assert "6 image(s) over 48 px on their short side searched" in capsys.readouterr().out


def test_a_fine_tune_cuts_its_photos_to_their_faces_as_evaluate_does(mixed_folder, tmp_path, caplog):
    import logging

    from mobilefer.engine.config import TrainConfig
    from mobilefer.engine.train import train

    common = dict(data=str(mixed_folder), epochs=1, batch_size=4, val_split=0.3, device="cpu", progress=False,
                  seed=0)
    with caplog.at_level(logging.INFO, logger="mobilefer"):
        train(TrainConfig(out=str(tmp_path / "tuned"), **common))
    assert ("training and validation faces: 6 image(s) over 48 px on their short side searched for their largest "
            "face and cropped as predict crops it; no face in 1, kept whole") in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mobilefer"):
        train(TrainConfig(out=str(tmp_path / "plain"), crop_faces=False, **common))
    assert "searched for their largest face" not in caplog.text


def test_predict_points_to_detector_none_where_a_face_crop_has_no_face_found(mixed_folder, capsys):
    from mobilefer.cli import main

    blank = mixed_folder / "sad" / "crop0.png"  # 48 px of noise: no face a detector finds, crop-sized
    photo = mixed_folder / "sad" / "no_face.png"  # a large photo without a face: no hint
    assert main(["predict", str(blank), str(photo)]) == 0
    err = capsys.readouterr().err
    assert f"no face found in 1 image(s) the size of a face crop (the first: {blank})" in err
    assert "--detector none reads it so" in err
    assert main(["predict", str(blank), "--detector", "none"]) == 0
    assert "no face found" not in capsys.readouterr().err
