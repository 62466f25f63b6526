"""What training says about its data and settings: refusals before work, warnings that matter."""
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import LEVELS, make_image, write_folder
from helpers import tiny_config
from mobilefer.data.readers import describe_skipped, load_images
from mobilefer.engine.train import train
from mobilefer.errors import ConfigError, DatasetError, NoFaceError
from mobilefer.runtime import read_meta


def test_a_split_without_validation_images_is_refused_not_scored_zero(tmp_path):
    data = write_folder(tmp_path / "one_each", per_class=1)
    with pytest.raises(DatasetError, match="no validation images"):
        train(tiny_config(data, tmp_path / "run", epochs=1))
    assert not (tmp_path / "run").exists()


def test_more_frozen_epochs_than_epochs_is_refused():
    with pytest.raises(ConfigError, match="--freeze-epochs 3: more than the 2 epochs"):
        tiny_config("x", "y", epochs=2, freeze_epochs=3).resolved()


def test_a_small_validation_split_and_photos_without_crop_faces_are_warned_about(tmp_path, caplog):
    rng = np.random.default_rng(0)
    for name, level in LEVELS.items():
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(6):
            face = Image.fromarray(make_image(level, rng, size=24)).resize((300, 200))
            face.save(tmp_path / "photos" / name / f"{i}.png")
    with caplog.at_level(logging.WARNING):
        train(tiny_config(tmp_path / "photos", tmp_path / "run", epochs=1))
    text = caplog.text
    assert "validation has only 6 images" in text
    assert "100% of the images" in text and "--crop-faces" in text


def test_photos_without_a_face_are_named_as_such_not_called_unreadable(folder_data, caplog):
    def no_face_in_sad(image):
        if image.mean() < 80:
            raise NoFaceError("no face found by haar")
        return image

    data = load_images(folder_data, crop=no_face_in_sad)
    assert len(data.skipped) == 24
    name, reason = data.skipped[0]
    assert reason == f"{name}: no face found by haar" and name.startswith("sad")
    assert describe_skipped(data.skipped).startswith("skipped 24 file(s) (24 without a face):")

    def never(image):
        raise NoFaceError("no face found by haar")

    with pytest.raises(DatasetError, match="no face was found in any of its 72 images"):
        load_images(folder_data, crop=never)


def test_resuming_on_changed_data_is_refused(folder_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(folder_data, data)
    train(tiny_config(data, tmp_path / "run", epochs=1))
    write_folder(tmp_path / "extra", per_class=4)
    shutil.copytree(tmp_path / "extra" / "happy", data / "angry")
    with pytest.raises(DatasetError, match="is not the data this run started on"):
        train(tiny_config("", "", epochs=1, resume=str(tmp_path / "run")))


def test_outputs_get_the_users_umask_and_a_fine_tune_keeps_flip_averaging(folder_data, tmp_path):
    old = os.umask(0o022)
    try:
        start = train(tiny_config(folder_data, tmp_path / "start", epochs=1, tta="flip")).best
        tuned = train(tiny_config(folder_data, tmp_path / "tuned", epochs=1, arch=None, img_size=None,
                                  pretrained=str(start)))
    finally:
        os.umask(old)
    for path in Path(tmp_path / "tuned").iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path.name
    assert read_meta(tuned.best).tta == "flip"


def test_the_face_margin_is_the_fer_crop_by_default_and_may_change_on_resume(folder_data, tmp_path, monkeypatch):
    import mobilefer.engine.train as train_module
    from mobilefer.engine.config import FACE_MARGIN

    real_write = train_module._write_metrics

    def stop_after_epoch_1(path, history):
        real_write(path, history)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_write_metrics", stop_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(folder_data, tmp_path / "run", epochs=2))
    monkeypatch.setattr(train_module, "_write_metrics", real_write)
    assert read_meta(tmp_path / "run" / "last.safetensors").face_margin == FACE_MARGIN == 0.0
    # the crop at inference does not change what a run on face crops learns: a resume may set it
    resumed = train(tiny_config("", "", epochs=2, resume=str(tmp_path / "run"), face_margin=0.05))
    assert read_meta(resumed.last).face_margin == 0.05
    tuned = train(tiny_config(folder_data, tmp_path / "tuned", epochs=1, arch=None, img_size=None,
                              pretrained=str(resumed.last), face_margin=0.1))
    assert read_meta(tuned.best).face_margin == 0.1  # said explicitly: not the start model's


def test_a_teacher_blends_its_probabilities_into_the_target_in_the_runs_class_order(folder_data, tmp_path):
    import torch

    from mobilefer.checkpoint import load_model
    from mobilefer.engine.distill import load_teacher, mix, teacher_probs
    from mobilefer.engine.train import load_data, predict_tensors

    teacher = train(tiny_config(folder_data, tmp_path / "teacher", epochs=1)).best
    config = tiny_config(folder_data, tmp_path / "student", epochs=1).resolved()
    data, _, _ = load_data(config)
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()
    model, meta = load_model(teacher)
    order = ["sad", "happy", "surprise"]  # the run's classes in another order than the teacher's
    probs = teacher_probs(load_teacher(str(teacher), order, meta.channels), images)
    own = predict_tensors(model, images, meta)
    assert torch.allclose(probs, own[:, [meta.classes.index(c) for c in order]], atol=1e-5)
    target = mix(torch.tensor([1, 0]), probs[:2], 0.25)
    assert torch.allclose(target.sum(1), torch.ones(2)) and target[0, 1] == pytest.approx(0.75 + 0.25 * probs[0, 1].item())
    student = train(tiny_config(folder_data, tmp_path / "student", epochs=1, teacher=str(teacher), distill=0.5))
    assert student.best_metrics and json.loads((tmp_path / "student" / "config.json").read_text())["teacher"] == str(teacher)
    with pytest.raises(ConfigError, match="no class angry"):
        load_teacher(str(teacher), ["happy", "angry"], meta.channels)
    import shutil

    other = tmp_path / "other"  # a teacher of other classes: happy and angry
    shutil.copytree(folder_data / "happy", other / "happy")
    shutil.copytree(folder_data / "sad", other / "angry")
    stranger = train(tiny_config(other, tmp_path / "stranger", epochs=1)).best
    for wrong, message in ((tmp_path / "missing.safetensors", "no such model file"),
                           (stranger, "no class sad, surprise")):  # no run folder left behind either way
        with pytest.raises(ConfigError, match=message):
            train(tiny_config(folder_data, tmp_path / "wrong", epochs=1, teacher=str(wrong)))
        assert not (tmp_path / "wrong").exists()
    with pytest.raises(ConfigError, match="--distill 1.5"):
        tiny_config(folder_data, tmp_path / "x", teacher=str(teacher), distill=1.5)
