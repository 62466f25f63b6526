"""The page's files without a browser: `export --format web`, the vendored runtime, the server's
site.json and model routes. The page itself runs in tests/test_browser.py."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import onnxruntime as ort
import pytest

from helpers import site_headers
from mobilefer import web
from mobilefer.cli import main
from mobilefer.errors import ConfigError, OutputError
from mobilefer.export.web import SiteConfig, write_site
from mobilefer.inference import detectors
from mobilefer.runtime.refs import resolve_model


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return write_site(SiteConfig(out=str(tmp_path_factory.mktemp("web") / "site"))).path


def test_the_vendored_runtime_is_the_one_its_manifest_names():
    manifest = json.loads((web.runtime_dir() / "MANIFEST.json").read_text())
    assert manifest["package"] == "onnxruntime-web" and manifest["license"] == "MIT"
    assert manifest["npm_integrity"].startswith("sha512-")
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((web.runtime_dir() / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (web.runtime_dir() / "LICENSE").read_text()


def test_a_site_holds_page_models_runtime_and_the_models_description(site):
    files = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert {"index.html", "site.json", "NOTICE.txt", "models/classifier.onnx", "models/detector.onnx",
            "static/app.js", "static/browser.js", "static/camera.js", "static/centerface.js", "static/draw.js", "static/frames.js", "static/plan.js", "static/style.css", "static/sample.jpg",
            "static/ort/ort.wasm.min.js", "static/ort/ort-wasm-simd-threaded.mjs",
            "static/ort/ort-wasm-simd-threaded.wasm", "static/ort/LICENSE"} <= files
    assert (site / "models/classifier.onnx").read_bytes() == resolve_model(None).path.read_bytes()
    info = json.loads((site / "site.json").read_text())
    assert info["server"] is False and info["browser"]["unavailable"] is None
    meta = resolve_model(None)
    assert info["model"]["name"] == meta.ref
    from mobilefer.runtime.files import read_meta

    m = read_meta(None)
    assert (info["model"]["classes"], info["model"]["mean"], info["model"]["std"]) == (m.classes, m.mean, m.std)
    assert (info["model"]["base_size"], info["model"]["input_size"], info["model"]["tta"]) == (m.base_size, m.input_size, m.tta)
    # the page's detector follows Python's: same numbers, read from the same constants
    rules = info["detector"]
    assert rules["threshold"] == detectors.CENTERFACE_THRESHOLD and rules["nms"] == detectors.CENTERFACE_NMS
    assert rules["work_width"] == detectors.WORK_WIDTH and rules["min_face"] == detectors.DEFAULT_MIN_FACE
    assert rules["max_upscale"] == detectors.MAX_UPSCALE["centerface"]
    assert "ferplus-small" in (site / "NOTICE.txt").read_text()
    # a host that reads _headers (Netlify, Cloudflare Pages) sends the page cross-origin isolated, as serve does
    assert site_headers(site) == web.ISOLATED
    assert not list(site.parent.glob(".site.*"))  # nothing half-written left beside it


def test_the_sites_detector_takes_any_image_size(site):
    session = ort.InferenceSession(str(site / "models/detector.onnx"), providers=["CPUExecutionProvider"])
    for h, w in ((256, 320), (480, 640)):
        heat = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, h, w), np.float32)})[0]
        assert heat.shape == (1, 1, h // 4, w // 4)


def test_a_new_site_replaces_an_old_one_and_refuses_other_folders(tmp_path, capsys):
    out = tmp_path / "site"
    write_site(SiteConfig(out=str(out)))
    (out / "static" / "stale.js").write_text("from before")
    assert main(["export", "--format", "web", "--out", str(out)]) == 0
    assert not (out / "static" / "stale.js").exists() and (out / "site.json").is_file()
    assert "ONNX Runtime Web" in capsys.readouterr().out
    assert "non-commercial research use" in (out / "NOTICE.txt").read_text()
    (out / "notes.md").write_text("mine")  # a file of the user's beside the site: nothing is replaced
    busy = tmp_path / "photos"
    busy.mkdir()
    (busy / "me.jpg").write_bytes(b"x")
    (busy / "site.json").write_text("{}")  # somebody else's site.json is no site of ours
    for folder, kept in ((out, "notes.md"), (busy, "me.jpg")):
        with pytest.raises(OutputError, match="other files in it"):
            SiteConfig(out=str(folder))
        assert main(["export", "--format", "web", "--out", str(folder)]) == 2
        assert "other files in it" in capsys.readouterr().err and (folder / kept).exists()
    (busy / "me.jpg").unlink()
    with pytest.raises(OutputError, match="other files in it"):  # site.json alone, no NOTICE of ours
        SiteConfig(out=str(busy))
    with pytest.raises(ConfigError, match="needs --out"):
        SiteConfig()
    assert main(["export", "--format", "web", "--out", str(tmp_path / "s2"), "--classes", "a,b"]) == 2


def test_a_tflite_model_is_refused_with_what_to_give_instead(tmp_path):
    fake = tmp_path / "m.tflite"
    fake.write_bytes(b"\0" * 64)
    with pytest.raises(ConfigError, match="the page runs ONNX models"):
        write_site(SiteConfig(model=str(fake), out=str(tmp_path / "site")))
    assert not (tmp_path / "site").exists()


def test_the_server_gives_the_page_its_description_and_models():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mobilefer.serve.app import PAGE_POLICY, create_app
    from mobilefer.serve.config import ServeConfig

    with TestClient(create_app(ServeConfig())) as client:
        info = client.get("/site.json").json()
        assert info["server"] is True and info["browser"]["unavailable"] is None
        assert info["model"]["classes"] == client.get("/v1/model").json()["classes"]
        assert client.get("/models/classifier.onnx").content == resolve_model(None).path.read_bytes()
        assert client.get("/models/detector.onnx").content == web.detector_model()
        assert client.get("/static/ort/ort.wasm.min.js").status_code == 200
        assert client.get("/static/browser.js").status_code == 200
        policy = client.get("/").headers["content-security-policy"]
        assert policy == PAGE_POLICY and "script-src 'self' 'wasm-unsafe-eval';" in policy


def test_a_server_on_pytorch_weights_says_why_the_browser_mode_is_off():
    pytest.importorskip("fastapi")
    pytest.importorskip("torch")
    from fastapi.testclient import TestClient

    from mobilefer.serve.app import create_app
    from mobilefer.serve.config import ServeConfig

    with TestClient(create_app(ServeConfig(model=str(resolve_model(None, torch_weights=True).path)))) as client:
        why = client.get("/site.json").json()["browser"]["unavailable"]
        assert "ONNX" in why and ".safetensors" in why
        r = client.get("/models/classifier.onnx")
        assert r.status_code == 404 and r.json()["detail"] == why


def test_a_site_from_a_bundled_model_needs_no_pytorch(tmp_path):
    from helpers import run_without_torch

    done = run_without_torch("export", "--format", "web", "--out", str(tmp_path / "site"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "models" / "classifier.onnx").is_file()
    fake = tmp_path / "m.safetensors"
    fake.write_bytes(b"{}")
    done = run_without_torch("export", "--format", "web", "--model", str(fake), "--out", str(tmp_path / "s2"))
    assert done.returncode == 2 and "pip install" in done.stderr and "Traceback" not in done.stderr


def test_a_site_from_pytorch_weights_exports_and_checks_the_classifier(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    weights = resolve_model(None, torch_weights=True).path
    report = write_site(SiteConfig(model=str(weights), out=str(tmp_path / "site")))
    assert report.model == weights.name and report.check.startswith("check on ")
    session = ort.InferenceSession(str(report.path / "models/classifier.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape[1] == len(json.loads((report.path / "site.json").read_text())["model"]["classes"])
