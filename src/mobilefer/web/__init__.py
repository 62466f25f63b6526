"""The browser page, and what it needs to read emotions without a server.

One page (``page/``) serves two ways:

- ``mobilefer serve`` publishes it at ``/`` beside the HTTP API; the page can send each image or
  webcam frame to the server, or run the models itself ("in this browser").
- ``mobilefer export --format web --out site/`` (:mod:`mobilefer.export.web`) writes it as a
  static folder: the page runs the models itself, and any static host serves it.

In both, the page reads ``site.json`` (:func:`site_info`) for the model's self-description and
the detector's settings, both taken from Python's own (one source), and loads
``models/classifier.onnx`` and ``models/detector.onnx`` (CenterFace with its input size freed)
with ONNX Runtime Web (``ort/``, vendored: see ``scripts/vendor_onnxruntime_web.sh``).
``page/browser.js`` writes mobilefer's preprocessing out again in JavaScript (and
``page/centerface.js`` CenterFace's passes, ``page/camera.js`` its following of a video's faces;
``page/frames.js`` reads a camera's frames without a canvas); the browser tests
compare its probabilities with the Python runtime's on the same crops.
"""
from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any

from mobilefer import __version__
from mobilefer.meta import ModelMeta

if TYPE_CHECKING:
    from mobilefer.runtime.refs import ModelFile

CLASSIFIER_PATH = "models/classifier.onnx"
DETECTOR_PATH = "models/detector.onnx"
SAMPLE = "static/sample.jpg"  # the page opened with #sample recognises this photo on load
# Headers that make the page cross-origin isolated, so ONNX Runtime Web may run WebAssembly
# threads (SharedArrayBuffer): the page loads nothing from another origin. `serve` sends them;
# an exported site carries them in _headers, which Netlify and Cloudflare Pages read.
ISOLATED = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


def page_dir() -> Traversable:
    """index.html, the scripts, style and the sample photo."""
    return resources.files("mobilefer.web") / "page"


def runtime_dir() -> Traversable:
    """ONNX Runtime Web: its WebAssembly build, loader, licence and MANIFEST.json."""
    return resources.files("mobilefer.web") / "ort"


def display_name(model: "ModelFile") -> str:
    """What the page calls a model: its bundled name, else its file's name."""
    from mobilefer.runtime.refs import BUNDLED

    return model.ref if model.ref in BUNDLED else model.path.name


def model_info(meta: ModelMeta, name: str) -> dict[str, Any]:
    """What a page (and GET /v1/model) says about a model: everything its preprocessing needs."""
    return {"name": name, "arch": meta.arch, "classes": meta.classes, "input_size": meta.input_size,
            "channels": meta.channels, "base_size": meta.base_size, "mean": meta.mean, "std": meta.std,
            "face_margin": meta.face_margin, "tta": meta.tta, "temperature": meta.temperature,
            "prior": meta.prior, "prior_correction": meta.prior_correction, "metrics": meta.metrics, "data": meta.data,
            "created": meta.created}


def detector_settings() -> dict[str, Any]:
    """CenterFace's rules for a photo and a video frame, as :class:`CenterFaceDetector` keeps them."""
    from mobilefer.inference import detectors as d

    return {"name": "centerface", "work_width": d.WORK_WIDTH, "threshold": d.CENTERFACE_THRESHOLD,
            "nms": d.CENTERFACE_NMS, "min_face": d.DEFAULT_MIN_FACE, "smallest_seen": d.SMALLEST_SEEN["centerface"],
            "max_upscale": d.MAX_UPSCALE["centerface"], "max_detect_pixels": d.MAX_DETECT_PIXELS,
            "max_tiles": d.MAX_TILES, "large_face_pass": d.LARGE_FACE_PASS, "box_tolerance": d.BOX_TOLERANCE,
            "video_detect_pixels": d.VIDEO_DETECT_PIXELS}


def pose_settings() -> dict[str, Any]:
    """inference/pose.py's proportions and limits, for the page's head_pose."""
    from mobilefer.inference import pose

    return {"nose_depth": pose.NOSE_DEPTH, "nose_height": pose.NOSE_HEIGHT, "turned_yaw": pose.TURNED_YAW,
            "turned_pitch": pose.TURNED_PITCH}


def explain_settings() -> dict[str, Any]:
    """inference/explain.py's masks, for the page's explain."""
    from mobilefer.inference import explain

    return {"masks": explain.MASKS, "share": explain.SHARE, "seed": explain.SEED}


def follow_settings() -> dict[str, Any]:
    """How a video's faces are followed between whole-frame detections: the live plan's rules and
    its looks' (inference/plan.py LiveRules, every one), and how often each face is classified
    (recognizer.py)."""
    from dataclasses import asdict

    from mobilefer.inference import plan, recognizer
    from mobilefer.inference.tracking import IoUTracker, Smoother

    tracker = IoUTracker()
    return {**asdict(plan.RULES), "detect_every": recognizer.DEFAULT_VIDEO_DETECT_EVERY,
            "classify_rate": recognizer.CLASSIFY_RATE, "classify_faces": recognizer.CLASSIFY_FACES,
            "classify_within": recognizer.CLASSIFY_WITHIN, "smooth": Smoother.parse(recognizer.VIDEO_SMOOTH).value,
            "video_views": recognizer.VIDEO_VIEWS, "view_pair_within": recognizer.VIEW_PAIR_WITHIN,
            "max_missed": tracker.max_missed, "iou": tracker.threshold}


def site_info(meta: ModelMeta, name: str, *, server: bool, unavailable: str | None = None,
              uncertain: float = 0.0) -> dict[str, Any]:
    """site.json: the model, the detector, where the browser finds them, and whether a server
    answers /v1/recognize. ``unavailable`` says why the page cannot run the model itself;
    ``uncertain`` is the page's first threshold for labelling a face "uncertain"."""
    return {"mobilefer": __version__, "server": server, "model": model_info(meta, name), "uncertain": uncertain,
            "detector": detector_settings(), "follow": follow_settings(), "pose": pose_settings(),
            "explain": explain_settings(), "sample": SAMPLE,
            "browser": {"classifier": CLASSIFIER_PATH, "detector": DETECTOR_PATH, "runtime": "static/ort/",
                        "unavailable": unavailable}}


def detector_model() -> bytes:
    """CenterFace's ONNX model with free input dimensions (any image size), as the page loads it:
    the bundled fp32 file, which WebAssembly runs faster than the INT8 one on any CPU
    (centerface.BROWSER_CENTERFACE), unless $MOBILEFER_CENTERFACE names another."""
    from mobilefer.inference.centerface import BROWSER_CENTERFACE, centerface_file
    from mobilefer.inference.onnx_shapes import free_dimensions

    found, _ = centerface_file(default=BROWSER_CENTERFACE)
    return free_dimensions(found.read_bytes())
