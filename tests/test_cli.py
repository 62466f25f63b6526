import json

import pytest

from mobilefer.cli import main


@pytest.mark.slow
def test_train_then_evaluate_from_the_command_line(folder_data, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--data", str(folder_data), "--pretrained", "none", "--arch", "small", "--img-size", "32", "--epochs", "12",
                 "--batch-size", "8", "--lr", "3e-3", "--warmup-epochs", "0.5", "--val-split", "0.25",
                 "--device", "cpu", "--out", str(run)])
    out = capsys.readouterr().out
    assert code == 0 and "best: epoch" in out
    code = main(["evaluate", "--model", str(run / "best.safetensors"), "--data", str(folder_data),
                 "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0 and "confusion matrix" in out and "surprise" in out
    assert json.loads((tmp_path / "r.json").read_text())["accuracy"] >= 0.9
    code = main(["info", str(run / "best.safetensors")])
    assert code == 0 and '"classes"' in capsys.readouterr().out


def test_bad_input_is_one_message_not_a_traceback(tmp_path, folder_data, capsys):
    cases = [
        (["train", "--data", str(tmp_path / "nope")], "no such file or folder"),
        (["train", "--data", str(folder_data), "--arch", "resnet50"], "unknown architecture"),
        (["evaluate", "--model", str(tmp_path / "m.safetensors"), "--data", str(folder_data)], "no such model file"),
        (["predict", str(tmp_path / "missing.jpg")], "no such file"),
        (["predict", "x.jpg", "--every", "often"], "--every"),
        (["export", "--model", "m.safetensors", "--out", "m.txt"], "expected a .onnx"),
    ]
    for argv, message in cases:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, argv
        assert message in err and "Traceback" not in err, (argv, err)


def test_a_missing_webcam_is_our_one_line_without_opencvs_own(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}
    env.pop("OPENCV_LOG_LEVEL", None)
    done = subprocess.run([sys.executable, "-m", "mobilefer.cli", "predict", "7"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["mobilefer predict: error: no webcam at index 7 (or it is in use)"]


def test_help_shows_real_defaults_only_and_no_flags_a_verb_lacks():
    import contextlib
    import io

    import pytest

    for verb in ("train", "evaluate", "predict", "batch", "export", "serve", "info"):
        text = io.StringIO()
        with contextlib.redirect_stdout(text), pytest.raises(SystemExit):
            main([verb, "--help"])
        assert "(default: None)" not in text.getvalue(), verb
        assert "(default: True)" not in text.getvalue() and "(default: False)" not in text.getvalue(), verb
    import argparse

    from mobilefer.cli import build_parser

    for verb, sub in build_parser()._subparsers._group_actions[0].choices.items():
        bare = [a.option_strings or a.dest for a in sub._actions if not a.help]
        assert not bare, (verb, bare)  # every option says what it is for
        if verb in ("batch", "serve", "info"):
            assert "--classes" not in text.getvalue(), verb


def test_predict_on_a_folder_writes_failures_into_its_json_lines_once(tmp_path, capsys, astronaut_bgr):
    import cv2

    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "b.jpg"), astronaut_bgr)
    (tmp_path / "in" / "a.jpg").write_bytes(b"not a jpeg")
    code = main(["predict", str(tmp_path / "in"), "--json", str(tmp_path / "out.jsonl"), "--detector", "haar"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("a.jpg") == 1
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(line["source"].endswith("a.jpg"), line["frame"], "error" in line) for line in lines] == [
        (True, 0, True), (False, 0, False)]  # a photo is frame 0 of its own, as in batch
