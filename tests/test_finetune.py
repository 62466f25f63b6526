"""Fine-tuning from a trained mobilefer model: start weights, head rows by class name, defaults."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_image
from helpers import write_photos_of
from mobilefer.checkpoint import load_model, start_from
from mobilefer.engine.config import FINE_TUNE, TrainConfig
from mobilefer.engine.train import train
from mobilefer.errors import ConfigError, ModelFileError
from mobilefer.models import create_model
from mobilefer.runtime import read_meta, resolve_model


@pytest.fixture(scope="module")
def start(tiny_run) -> Path:
    """A small model trained on the synthetic happy / sad / surprise faces."""
    return tiny_run[2].best


def user_folder(root: Path, names: dict[str, int], per_class: int = 16, seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    for name, level in names.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(make_image(level, rng)).save(root / name / f"{i}.png")
    return root


def test_head_rows_are_reused_by_class_name(start):
    meta = read_meta(start)
    trained, _ = load_model(start)
    classes = ["boring", "happy", "sadd"]  # a new class, a known one, a typo of a known one
    model = create_model(meta.arch, 3, meta.channels)
    fresh_boring = model.classifier[-1].weight[0].detach().clone()
    rows = start_from(model, start, meta, classes)
    assert rows == {"boring": None, "happy": "happy", "sadd": "sad"}
    head, old = model.classifier[-1], trained.classifier[-1]
    torch.testing.assert_close(head.weight[1], old.weight[meta.classes.index("happy")])
    torch.testing.assert_close(head.bias[2], old.bias[meta.classes.index("sad")])
    torch.testing.assert_close(head.weight[0], fresh_boring)  # no row to take: stays fresh
    body = {k: v for k, v in trained.state_dict().items() if not k.startswith("classifier.3")}
    for key, value in body.items():
        torch.testing.assert_close(model.state_dict()[key], value, msg=key)


def test_fine_tuning_starts_from_what_the_model_knows(start, tmp_path):
    data = user_folder(tmp_path / "mine", {"Happy": 215, "sad": 40, "boring": 128})
    common = dict(epochs=2, batch_size=8, val_split=0.25, seed=0, progress=False, device="cpu")
    tuned = train(TrainConfig(data=str(data), out=str(tmp_path / "tuned"), pretrained=str(start), **common))
    scratch = train(TrainConfig(data=str(data), out=str(tmp_path / "scratch"), arch="mobilenet_v3_small",
                                img_size=32, pretrained="none", **common))
    # An epoch on the head alone, then one on all: the start model's features already tell the faces apart.
    assert tuned.best_metrics["accuracy"] >= 0.9 > scratch.best_metrics["accuracy"]
    meta = read_meta(tuned.best)
    start_meta = read_meta(start)
    assert (meta.arch, meta.input_size, meta.mean, meta.std) == (start_meta.arch, 32, start_meta.mean, start_meta.std)
    assert meta.classes == ["boring", "happy", "sad"]
    assert meta.data["start"]["rows"] == {"boring": None, "happy": "happy", "sad": "sad"}
    saved = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert saved["lr"] == FINE_TUNE["lr"] and saved["freeze_epochs"] == FINE_TUNE["freeze_epochs"]


def test_a_fine_tune_keeps_the_start_architecture(start, folder_data, tmp_path):
    config = TrainConfig(data=str(folder_data), out=str(tmp_path / "r"), pretrained=str(start),
                         arch="mobilenet_v3_large", device="cpu")
    with pytest.raises(ConfigError, match="is a mobilenet_v3_small; fine-tuning keeps its architecture"):
        train(config)
    assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.parametrize("name,message", [
    ("m.onnx", "ONNX export holds no trainable PyTorch weights"),
    ("m.txt", "unsupported model file .txt"),
    ("fer2013-smal", "did you mean fer2013-small"),
    ("missing.safetensors", "no such model file"),
])
def test_wrong_start_files_get_clear_errors(name, message, folder_data, tmp_path, bundled_model):
    if name.endswith((".onnx", ".txt")):
        (tmp_path / name).write_bytes(bundled_model.read_bytes() if name.endswith(".onnx") else b"hello")
        name = str(tmp_path / name)
    elif name.endswith(".safetensors"):
        name = str(tmp_path / name)
    config = TrainConfig(data=str(folder_data), out=str(tmp_path / "r"), pretrained=name, device="cpu")
    with pytest.raises(ConfigError, match=message):
        train(config)


def test_a_truncated_start_checkpoint_names_the_file(start, folder_data, tmp_path):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(start.read_bytes()[: start.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="cut.safetensors: truncated safetensors file"):
        train(TrainConfig(data=str(folder_data), out=str(tmp_path / "r"), pretrained=str(cut), device="cpu"))


@pytest.mark.parametrize("name", ["fer2013-small", "fer2013-large"])
def test_bundled_models_ship_weights_that_match_their_onnx(name):
    from mobilefer.runtime import OnnxClassifier

    weights = resolve_model(name, torch_weights=True)
    assert weights.kind == "safetensors" and weights.path.is_file()
    model, meta = load_model(weights.path)
    onnx = OnnxClassifier(resolve_model(name).path)
    assert meta.classes == onnx.meta.classes and meta.input_size == onnx.meta.input_size
    onnx.meta.tta = "none"
    from mobilefer.data.preprocess import preprocess

    rng = np.random.default_rng(0)
    x = preprocess([make_image(level, rng, 48) for level in (40, 128, 215)], meta)
    with torch.no_grad():
        np.testing.assert_allclose((model(torch.from_numpy(x)) / meta.temperature).softmax(1).numpy(), onnx(x), atol=1e-4)


@pytest.mark.slow
def test_photos_that_are_not_face_crops_train_on_their_faces(astronaut_bgr, bundled_model, tmp_path):
    """--crop-faces: each photo becomes its largest face, cropped as predict crops it; a photo
    without a face is skipped and listed; evaluate crops the same way by default."""
    from skimage import data as skdata

    from mobilefer.data.preprocess import to_base
    from mobilefer.data.readers import load_images
    from mobilefer.engine.config import EvalConfig
    from mobilefer.engine.evaluate import evaluate
    from mobilefer.inference.detectors import LargestFaceCrop, create_detector, face_crop

    rgb = np.ascontiguousarray(astronaut_bgr[:, :, ::-1])
    root = tmp_path / "photos"
    for name, flip in (("Happy", False), ("sad", True)):
        (root / name).mkdir(parents=True)
        write_photos_of(rgb, root / name, 6, mirrored=flip)
    Image.fromarray(skdata.coffee()).save(root / "sad" / "no_face.png")

    crop = LargestFaceCrop(margin=0.15)
    loaded = load_images(root, channels=1, base_size=48, crop=crop)
    assert len(loaded) == 12 and [n for n, _ in loaded.skipped] == ["sad/no_face.png"]
    assert "no face found" in loaded.skipped[0][1]
    first = np.asarray(Image.open(root / "Happy" / "0.png"))
    box = max(create_detector("auto").detect(first[:, :, ::-1].copy()), key=lambda b: b.w * b.h)
    np.testing.assert_array_equal(loaded.images[loaded.files.index("Happy/0.png")],
                                  to_base(face_crop(first, box, 0.15), 1, 48))

    result = train(TrainConfig(data=str(root), out=str(tmp_path / "run"), pretrained="fer2013-small", epochs=1,
                               batch_size=4, val_split=0.25, crop_faces=True, device="cpu", progress=False))
    assert read_meta(result.best).config["crop_faces"] is True
    report = evaluate(EvalConfig(model=str(result.best), data=str(root)))  # crops as the model was trained
    assert report["num_samples"] == 12 and len(report["skipped"]) == 1
    assert evaluate(EvalConfig(model=str(result.best), data=str(root), crop_faces=False))["num_samples"] == 13


def test_a_run_starts_from_the_bundled_model_of_its_arch_unless_told_otherwise(folder_data, tmp_path, caplog):
    common = dict(data=str(folder_data), epochs=1, img_size=32, batch_size=8, val_split=0.25, progress=False,
                  device="cpu", limit=24)
    with caplog.at_level("INFO", logger="mobilefer"):
        auto = train(TrainConfig(out=str(tmp_path / "auto"), **common))
    assert read_meta(auto.best).data["start"]["model"] == "ferplus-small"
    assert "starting from ferplus-small, the bundled emotion model" in caplog.text
    large = TrainConfig(arch="large", **common).with_start()
    assert large.pretrained == "ferplus-large" and large.fine_tune
    assert TrainConfig(channels=3, **common).with_start().pretrained is None  # no bundled model reads colour
    for scratch in ("none", "scratch", None):
        assert TrainConfig(pretrained=scratch, **common).with_start().pretrained is None
    plain = train(TrainConfig(out=str(tmp_path / "plain"), pretrained="none", arch="small", **common))
    assert "start" not in read_meta(plain.best).data


def test_a_fine_tune_names_the_classes_it_drops_and_keeps_them_when_asked(folder_data, tmp_path, caplog):
    from mobilefer.engine.train import load_data, predict_tensors

    common = dict(data=str(folder_data), epochs=1, img_size=32, batch_size=8, val_split=0.25, progress=False,
                  device="cpu", pretrained="ferplus-small")
    with caplog.at_level("INFO", logger="mobilefer"):
        dropped = train(TrainConfig(out=str(tmp_path / "dropped"), **common))
    assert read_meta(dropped.best).classes == ["happy", "sad", "surprise"]
    assert "the data has no neutral, angry, disgust, fear, contempt" in caplog.text and "--keep-classes" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="mobilefer"):
        kept = train(TrainConfig(out=str(tmp_path / "kept"), keep_classes=True, **common))
    meta = read_meta(kept.best)
    assert meta.classes == ["happy", "sad", "surprise", "neutral", "angry", "disgust", "fear", "contempt"]
    assert "ferplus-small teaches them" in caplog.text
    for none in ("none", "imagenet"):
        with pytest.raises(ConfigError, match="--keep-classes keeps the classes of the model a fine-tune starts from"):
            TrainConfig(**{**common, "pretrained": none, "out": ""}, keep_classes=True)
    model, _ = load_model(kept.best)
    data, _, _ = load_data(TrainConfig(**{**common, "out": ""}).with_start().resolved(meta))
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()
    probs = predict_tensors(model, images, meta)
    assert probs[:, 3:].sum(1).mean() > 0.05  # what the start model says of the kept classes survives
