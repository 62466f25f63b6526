"""Every door gives the same answer to the same mistake: one line naming the flag or file,
exit code 2, no traceback, nothing damaged. Inputs are generated here, by class of mistake."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import run_without_torch
from mobilefer.cli import main

ROOT = Path(__file__).parents[1]
ASTRONAUT = str(ROOT / "examples" / "astronaut.jpg")


def fails_cleanly(capsys, argv, *needles):
    """Run the CLI; assert exit 2 with one error line that holds every needle."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert "Traceback" not in err, err
    line = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(line) == 1, err
    for needle in needles:
        assert needle in line[0], (argv, line[0])
    return line[0]


# ------------------------------------------------------------------ out-of-range values
BAD_VALUES = {
    "train": {"--lr": ["-1", "0"], "--val-split": ["0", "1.5"], "--limit": ["0", "1"], "--batch-size": ["1"],
              "--epochs": ["0"], "--img-size": ["4"], "--label-smoothing": ["1"], "--erase": ["2"],
              "--face-margin": ["-1"], "--freeze-epochs": ["-1"], "--workers": ["0"], "--val-limit": ["0"],
              "--warmup-epochs": ["-1"], "--bn-momentum": ["0"], "--patience": ["-2"]},
    "predict": {"--margin": ["-1", "3"], "--max-faces": ["-1", "0"], "--detect-every": ["0"],
                "--min-face": ["-5", "0"], "--threads": ["-1", "0"], "--every": ["0f", "often", "-2s"],
                "--smooth": ["window:0", "ema:2", "median"]},
    "evaluate": {"--batch-size": ["0"], "--limit": ["0"]},
    "export": {"--opset": ["5", "99"], "--calib-count": ["0"]},
    "serve": {"--port": ["70000"], "--threads": ["0"], "--slots": ["0"], "--queue-timeout": ["0"]},
}
BASE = {"train": ["train", "--data", "unused"], "predict": ["predict", ASTRONAUT],
        "evaluate": ["evaluate", "--data", "unused"], "export": ["export", "--out", "m.onnx"], "serve": ["serve"]}
CASES = [(verb, flag, value) for verb, flags in BAD_VALUES.items() for flag, values in flags.items() for value in values]


@pytest.mark.parametrize("verb,flag,value", CASES, ids=[f"{v} {f} {x}" for v, f, x in CASES])
def test_a_bad_value_names_its_flag(verb, flag, value, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written by mistake lands here
    fails_cleanly(capsys, [*BASE[verb], f"{flag}={value}"], flag)
    assert not list(tmp_path.iterdir())  # refused before any work


# ------------------------------------------------------------------ wrong model references
@pytest.fixture
def wrong_models(tmp_path):
    folder = tmp_path / "a_folder"
    folder.mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    return {
        "typo": ("fer2013-smal", "did you mean fer2013-small"),
        "folder": (str(folder), "is a folder"),
        "text": (str(text), "unsupported model file .txt"),
        "missing": (str(tmp_path / "gone.onnx"), "no such model file"),
    }


VERBS = {
    "predict": lambda m: ["predict", ASTRONAUT, "--model", m],
    "evaluate": lambda m: ["evaluate", "--model", m, "--data", "unused"],
    "info": lambda m: ["info", m],
    "export": lambda m: ["export", "--model", m, "--out", "x.onnx"],
    "serve": lambda m: ["serve", "--model", m, "--port", "0"],
    "train": lambda m: ["train", "--data", "unused", "--pretrained", m],
}


@pytest.mark.parametrize("verb", sorted(VERBS))
@pytest.mark.parametrize("kind", ["typo", "folder", "text", "missing"])
def test_every_verb_names_a_wrong_model_the_same_way(verb, kind, wrong_models, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref, message = wrong_models[kind]
    if verb == "train" and kind == "missing":
        ref = ref.replace(".onnx", ".safetensors")
    fails_cleanly(capsys, VERBS[verb](ref), message)


def test_bundled_names_work_through_every_door(capsys, folder_data, tmp_path):
    from mobilefer import EmotionRecognizer
    from mobilefer.engine.config import EvalConfig
    from mobilefer.engine.evaluate import evaluate
    from mobilefer.inference.predict import PredictConfig, predict

    assert main(["info", "fer2013-large"]) == 0
    assert json.loads(capsys.readouterr().out)["arch"] == "mobilenet_v3_large"
    assert main(["info"]) == 0 and json.loads(capsys.readouterr().out)["arch"] == "mobilenet_v3_small"
    faces = EmotionRecognizer.load("fer2013-large", detector="haar").recognize(ASTRONAUT)
    assert [f.label for f in faces] == ["happy"]
    summary = predict(PredictConfig(source=ASTRONAUT, model="fer2013-large", detector="haar"))
    assert summary.images[0].faces[0].label == "happy"
    report = evaluate(EvalConfig(data=str(folder_data)))  # the default model, on a subset of its classes
    assert report["num_samples"] == 72 and "mobilenet_v3_small" in report["model"]


def test_the_onnx_start_of_a_fine_tune_is_refused_with_the_reason(capsys, folder_data, bundled_model, tmp_path):
    fails_cleanly(capsys, ["train", "--data", str(folder_data), "--pretrained", str(bundled_model),
                           "--out", str(tmp_path / "r")], "holds no trainable PyTorch weights")


# ------------------------------------------------------------------ damaged files
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from conftest import write_folder
    from helpers import tiny_config
    from mobilefer.engine.train import train

    root = tmp_path_factory.mktemp("run")
    data = write_folder(root / "faces", per_class=8)
    train(tiny_config(data, root / "run", epochs=1))
    return data, root / "run"


def _cut(path: Path, to: Path, keep: float = 0.5) -> Path:
    to.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])
    return to


def test_truncated_safetensors_are_named_wherever_they_are_used(tiny_run, capsys, tmp_path):
    data, run = tiny_run
    cut = _cut(run / "best.safetensors", tmp_path / "cut.safetensors")
    for argv in (["predict", ASTRONAUT, "--model", str(cut)], ["evaluate", "--model", str(cut), "--data", str(data)],
                 ["info", str(cut)], ["export", "--model", str(cut), "--out", str(tmp_path / "x.onnx")],
                 ["train", "--data", str(data), "--pretrained", str(cut), "--out", str(tmp_path / "r")]):
        fails_cleanly(capsys, argv, "cut.safetensors", "truncated")
    header_only = _cut(run / "best.safetensors", tmp_path / "tiny.safetensors", keep=0.0001)
    fails_cleanly(capsys, ["info", str(header_only)], "tiny.safetensors: not a safetensors file")


@pytest.mark.parametrize("damage", ["state", "config", "config-list"])
def test_a_damaged_run_cannot_be_resumed_and_says_why(damage, tiny_run, capsys, tmp_path):
    import shutil

    _, run = tiny_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    if damage == "state":
        _cut(run / "last.state.safetensors", copy / "last.state.safetensors")
        needle = "last.state.safetensors"
    elif damage == "config":
        (copy / "config.json").write_text((run / "config.json").read_text()[:40])
        needle = "config.json is damaged"
    else:
        (copy / "config.json").write_text("[1, 2]")
        needle = "config.json is damaged"
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    fails_cleanly(capsys, ["train", "--resume", str(copy)], needle)
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_a_state_file_of_another_run_is_refused_before_any_step(tiny_run, capsys, tmp_path):
    import shutil

    from conftest import write_folder
    from helpers import tiny_config
    from mobilefer.engine.train import train

    _, run = tiny_run
    other = tmp_path / "other"  # the same model on other faces
    train(tiny_config(write_folder(tmp_path / "faces", per_class=6, seed=5), other, epochs=1))
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    shutil.copy(other / "last.state.safetensors", copy / "last.state.safetensors")
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    fails_cleanly(capsys, ["train", "--resume", str(copy)], "the training state of another run")
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_a_resumed_run_refuses_any_setting_typed_that_differs_from_its_own_even_the_default(tiny_run, capsys,
                                                                                              tmp_path):
    import shutil

    _, run = tiny_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    for typed in (["--batch-size", "128"], ["--batch-size=128"], ["--weight-decay", "0.05", "--batch-size", "16"]):
        fails_cleanly(capsys, ["train", "--resume", str(copy), *typed], "leave out --batch-size")
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_a_state_whose_moments_fit_other_weights_is_refused(tmp_path):
    import torch

    from mobilefer.engine.state import load_state, save_state
    from mobilefer.errors import ModelFileError

    def stepped(inputs):
        layer = torch.nn.Linear(inputs, 3)
        optimizer = torch.optim.AdamW(layer.parameters())
        layer(torch.ones(2, inputs)).sum().backward()
        optimizer.step()
        return optimizer

    save_state(tmp_path / "s.safetensors", stepped(4), {"epoch": 1})
    with pytest.raises(ModelFileError, match="another run"):
        load_state(tmp_path / "s.safetensors", stepped(5))
    assert load_state(tmp_path / "s.safetensors", stepped(4)) == {"epoch": 1}


def _onnx_with(tmp_path, name, input_shape, outputs, classes):
    import onnx
    from onnx import TensorProto, helper

    from mobilefer.meta import METADATA_KEY, ModelMeta

    channels = input_shape[1]
    weight = helper.make_tensor("w", TensorProto.FLOAT, [outputs, channels], np.ones(outputs * channels, np.float32))
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", outputs])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = ModelMeta(arch="mobilenet_v3_small", classes=classes, input_size=64, channels=1, base_size=48,
                     mean=[0.5], std=[0.25])
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_onnx_files_that_disagree_with_their_metadata(capsys, tmp_path):
    seven = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    shape = _onnx_with(tmp_path, "shape.onnx", ["N", 1, 96, 96], 7, seven)
    fails_cleanly(capsys, ["predict", ASTRONAUT, "--model", str(shape)], "shape.onnx", "input size 64")
    outputs = _onnx_with(tmp_path, "five.onnx", ["N", 1, 64, 64], 5, seven)
    fails_cleanly(capsys, ["predict", ASTRONAUT, "--model", str(outputs)], "five.onnx", "7 classes")
    channels = _onnx_with(tmp_path, "rgb.onnx", ["N", 3, 64, 64], 7, seven)
    fails_cleanly(capsys, ["predict", ASTRONAUT, "--model", str(channels)], "rgb.onnx", "1 x H x W")


# ------------------------------------------------------------------ outputs
@pytest.mark.parametrize("argv_of,flag", [
    (lambda d, f: ["predict", ASTRONAUT, "--json", str(d)], "--json"),
    (lambda d, f: ["predict", ASTRONAUT, "--csv", str(d)], "--csv"),
    (lambda d, f: ["predict", ASTRONAUT, "--out", str(f)], "--out"),
    (lambda d, f: ["predict", ASTRONAUT, "--json", str(f / "x.jsonl")], "--json"),
    (lambda d, f: ["evaluate", "--data", "x", "--json", str(d)], "--json"),
    (lambda d, f: ["evaluate", "--data", "x", "--plot", str(d)], "--plot"),
    (lambda d, f: ["train", "--data", "x", "--out", str(f)], "--out"),
    (lambda d, f: ["export", "--out", str(d)], "--out"),
])
def test_outputs_that_cannot_be_written_are_refused_first(argv_of, flag, capsys, tmp_path):
    folder = tmp_path / "existing.onnx"  # a folder with a file's name
    folder.mkdir()
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me")
    fails_cleanly(capsys, argv_of(folder, existing), flag)
    assert existing.read_text() == "keep me" and not list(folder.iterdir())


@pytest.mark.parametrize("argv_of", [
    lambda d: ["export", "--model", "ferplus-small", "--out", str(d / "m.onnx")],
    lambda d: ["export", "--model", "ferplus-small", "--format", "tflite", "--out", str(d / "m.tflite")],
    lambda d: ["export", "--format", "web", "--out", str(d / "site")],
    lambda d: ["predict", ASTRONAUT, "--json", str(d / "faces.jsonl")],
    lambda d: ["predict", ASTRONAUT, "--out", str(d / "annotated")],
    lambda d: ["evaluate", "--data", "x", "--json", str(d / "r.json")],
])
def test_a_folder_that_cannot_be_written_is_refused_before_any_work(argv_of, capsys, tmp_path, monkeypatch):
    """A read-only folder (or disk): one line naming it, before a conversion or a video runs. The
    tests run as root, whom permissions never stop, so the folder is made unwritable to os.access."""
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: access(p, mode) and Path(p) != locked)
    fails_cleanly(capsys, argv_of(locked), "cannot write in")
    assert not list(locked.iterdir())


def test_a_batch_of_only_bad_images_leaves_earlier_outputs_alone(capsys, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.jpg").write_bytes(b"not a jpeg")
    earlier = tmp_path / "faces.jsonl"
    earlier.write_text('{"earlier": true}\n')
    code = main(["predict", str(bad), "--json", str(earlier), "--csv", str(tmp_path / "faces.csv")])
    err = capsys.readouterr().err
    assert code == 1 and "3 input(s) failed" in err and "Traceback" not in err
    assert earlier.read_text() == '{"earlier": true}\n' and not (tmp_path / "faces.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "faces.jsonl"]  # no temp files


def test_a_new_run_never_overwrites_an_old_one(tiny_run, capsys, tmp_path):
    import shutil

    data, run = tiny_run
    copy = tmp_path / "old"
    shutil.copytree(run, copy)
    before = (copy / "config.json").read_text()
    fails_cleanly(capsys, ["train", "--data", str(data), "--out", str(copy), "--lr", "0.5"], "holds a training run",
                  "--resume")
    assert (copy / "config.json").read_text() == before


def test_no_gpu_is_named_when_cuda_is_asked_for(capsys, folder_data, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    fails_cleanly(capsys, ["train", "--data", str(folder_data), "--device", "cuda", "--out", str(tmp_path / "r")],
                  "--device cuda", "CUDA is not available")
    assert not (tmp_path / "r").exists()


def test_show_on_headless_opencv_is_one_line_before_any_work(capsys, tmp_path, monkeypatch):
    import cv2

    if "NONE" not in cv2.getBuildInformation().split("GUI:")[1].splitlines()[0]:
        monkeypatch.delenv("DISPLAY", raising=False)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    fails_cleanly(capsys, ["predict", "0", "--show", "--json", str(tmp_path / "x.jsonl")], "--show needs")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ missing extras, pipes
@pytest.mark.parametrize("argv,extra", [
    (["train", "--data", "x"], "mobilefer[train]"),
    (["export", "--out", "x.onnx"], "mobilefer[export]"),
    (["predict", ASTRONAUT, "--model", "fer2013-small.safetensors"], "no such model file"),
])
def test_without_torch_each_verb_names_what_to_install(argv, extra, tmp_path):
    done = run_without_torch(*argv)
    assert done.returncode == 2 and extra in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_without_torch_a_checkpoint_needs_the_train_extra(tiny_run):
    _, run = tiny_run
    done = run_without_torch("predict", ASTRONAUT, "--model", str(run / "best.safetensors"))
    assert done.returncode == 2 and "mobilefer[train]" in done.stderr and "Traceback" not in done.stderr


def test_info_into_a_closed_pipe_is_quiet():
    done = subprocess.run(f"{sys.executable} -m mobilefer.cli info | head -c 10", shell=True, capture_output=True,
                          text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert done.stdout == "{\n  \"arch\"" and done.stderr == ""


# ------------------------------------------------------------------ structure
def _module_imports(path: Path, package_root: Path) -> set[str]:
    """mobilefer modules ``path`` imports, at its top level or inside a function alike (an import
    in a function only puts a circle off until the call). ``from mobilefer import cores`` is an
    import of mobilefer.cores: the package itself imports nothing until asked (__getattr__)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mobilefer"):
            if node.module != "mobilefer":
                found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mobilefer"))
    return found


def test_no_import_circles_and_a_torch_free_runtime():
    src = ROOT / "src"
    modules = {".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (src / "mobilefer").rglob("*.py")}
    graph = {name: {m for m in _module_imports(path, src) if m in modules and m != name}
             for name, path in modules.items()}

    def visit(node, stack):
        for nxt in graph[node]:
            assert nxt not in stack, f"import circle: {' -> '.join([*stack, nxt])}"
            visit(nxt, [*stack, nxt])

    for name in graph:
        visit(name, [name])
    code = "import sys, mobilefer.runtime, mobilefer.cli, mobilefer.inference.predict; " \
           "print([m for m in ('torch', 'torchvision', 'safetensors') if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stderr


def test_every_user_error_is_one_family():
    import mobilefer.errors as errors
    from mobilefer.data.images import ImageTooLargeError, UnsupportedImageError
    from mobilefer.models import PretrainedWeightsError
    from mobilefer.serve.uploads import UploadError

    classes = [getattr(errors, n) for n in dir(errors) if isinstance(getattr(errors, n), type)]
    classes += [ImageTooLargeError, UnsupportedImageError, PretrainedWeightsError, UploadError]
    assert all(issubclass(c, errors.MobileferError) for c in classes if c.__module__.startswith("mobilefer"))


def test_min_face_default_is_declared_once():
    hits = [p for p in (ROOT / "src" / "mobilefer").rglob("*.py") if "min_face: int = 32" in p.read_text()
            or "min_face=32" in p.read_text()]
    assert hits == []


def test_a_tflite_model_without_the_interpreter_names_the_extra(tmp_path, capsys):
    from mobilefer.errors import importable

    model = tmp_path / "small.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))  # a flatbuffer's start, no metadata
    needle = ("without mobilefer metadata" if importable("ai_edge_litert")
              else "needs ai_edge_litert: pip install 'mobilefer[litert]'")
    fails_cleanly(capsys, ["predict", ASTRONAUT, "--model", str(model)], "small.tflite", needle)
    fails_cleanly(capsys, ["info", str(model)], "small.tflite", "without mobilefer metadata")


def test_no_module_is_long_and_no_caller_probes_a_detector():
    """A detector declares what it can do (faces.FaceDetector); nobody asks getattr. No Python
    module and no script of the page is over 550 lines."""
    import re

    for path in (ROOT / "src" / "mobilefer").rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 550, path
        assert not re.search(r"getattr\([^,)]*detector", text), path
    for path in (ROOT / "src" / "mobilefer" / "web" / "page").glob("*.js"):
        assert len(path.read_text().splitlines()) <= 550, path


def test_a_library_setting_up_logging_in_a_quiet_block_leaves_no_handler_on_its_closed_stream(monkeypatch, capfd):
    """absl and TensorFlow call logging.basicConfig() while LiteRT converts: the handler it adds
    writes to the stream the block closes, and a warning after the block must not fail in it."""
    import logging

    from mobilefer.quiet import others_quiet

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # a Python API user's process: nothing set up yet
    monkeypatch.setattr(logging.getLogger("mobilefer"), "level", logging.WARNING)
    with others_quiet():
        logging.basicConfig()
        logging.getLogger("mobilefer.test").warning("kept quiet")
    assert root.handlers == []
    logging.getLogger("mobilefer.test").warning("after the block")
    err = capfd.readouterr().err
    assert "Logging error" not in err and "kept quiet" not in err
