"""``mobilefer`` command line: one verb per job, each a thin layer over the Python API.

Each subcommand parses its flags into the config dataclass of its job (flag ``--val-split``
is field ``val_split``; defaults come from the dataclass), calls one public function and
prints the result. Every :class:`~mobilefer.errors.MobileferError` becomes one line on
stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mobilefer import __version__, cores
from mobilefer.errors import ConfigError, MobileferError, require

log = logging.getLogger("mobilefer")

DEVICE_HELP = ("where the model runs: auto (the GPU where onnxruntime-gpu opens one, else the CPU), cpu, cuda "
               "or cuda:N")
DETECTOR_HELP = "face detector; auto: centerface (bundled), else haar; none: each image is one face crop"
THREADS_HELP = "CPU threads; default: the cores not already busy, up to 4 (also $MOBILEFER_THREADS)"


def model_help(pth: bool = True, onnx: bool = True) -> str:
    """--model's help from the registry: the bundled names, the file kinds this verb takes, the default."""
    from mobilefer.runtime.refs import DEFAULT_MODEL, bundled_names

    kinds = " / ".join(k for k, ok in ((".onnx", onnx), (".safetensors", True)) if ok)
    pth_note = " (.pth with --classes)" if pth else ""
    return (f"bundled model name ({', '.join(bundled_names())}) or a {kinds} file{pth_note}; "
            f"default: the bundled {DEFAULT_MODEL}")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" only where there is a default to show and the help does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default in (None, "", argparse.SUPPRESS) or isinstance(action.default, bool)
                or "default:" in text.lower()):  # an on/off flag says what it does, not "(default: True)"
            return text
        return super()._get_help_string(action)


def _csv_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _config(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """``cls`` built from the parsed flags whose names are its fields, plus ``extra``."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    return cls(**{**values, **extra})


def _typed(argv: list[str]) -> set[str]:
    """The options a user typed in ``argv`` (by destination), told apart from defaults that
    happen to have the same value: a second parse in which no option has a default."""
    parser = build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command", "run", "verbose"}


def _parser(sub: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter)


# ---------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    from mobilefer.engine.config import DEFAULT_ARCH, DEFAULT_IMG_SIZE, FACE_MARGIN, FINE_TUNE, SCRATCH, TrainConfig

    d = TrainConfig()
    both = lambda key: f"{SCRATCH[key]} from scratch, {FINE_TUNE[key]} fine-tuning"  # noqa: E731
    p = _parser(sub, "train", "train or fine-tune a MobileNetV3 emotion classifier")
    p.add_argument("--data", default=d.data, help="ImageFolder tree, .zip of one, FER2013 .csv, or FER+ data "
                                                  "(folder or zip with label.csv, or fer2013new.csv)")
    p.add_argument("--val-data", help="validation set (same forms); default: CSV PublicTest rows or a split")
    p.add_argument("--usage", help="CSV rows to train on (Training, PublicTest, PrivateTest); default Training")
    p.add_argument("--val-usage", help="CSV rows to validate on; default PublicTest")
    p.add_argument("--pixels", help="fer2013.csv for FER+'s fer2013new.csv; default: the one beside it")
    p.add_argument("--labels", default=d.labels, choices=("majority", "soft"),
                   help="FER+ votes: the majority label, or train on the vote distribution (validation: majority)")
    p.add_argument("--val-split", type=float, default=d.val_split, help="stratified validation fraction when no val data")
    p.add_argument("--limit", type=int, help="train on a stratified sample of this many images")
    p.add_argument("--val-limit", type=int, help="validate on a stratified sample of this many images")
    p.add_argument("--arch", help=f"mobilenet_v3_large or mobilenet_v3_small; default: the start model's, else {DEFAULT_ARCH}")
    p.add_argument("--pretrained", default=d.pretrained,
                   help="start from: auto (the bundled FER+ model of --arch, without --arch ferplus-small: a "
                        "fine-tune), none (random weights), imagenet (torchvision download), a bundled model "
                        "(ferplus-large, fer2013-small, ...), a mobilefer .safetensors, or a torchvision state_dict "
                        ".pth; default: auto")
    p.add_argument("--keep-classes", action="store_true",
                   help="a fine-tune keeps the start model's classes its data lacks (e.g. neutral from a posed "
                        "set), taught by the start model; without it they are dropped, and named")
    p.add_argument("--img-size", type=int, help=f"network input size; default: the start model's, else {DEFAULT_IMG_SIZE}")
    p.add_argument("--base-size", type=int, help="size images are stored at; default: the data's own, up to --img-size")
    p.add_argument("--channels", type=int, choices=(1, 3), help="default: the start model's, else 1 for gray data")
    p.add_argument("--epochs", type=int, help=f"default: {both('epochs')}")
    p.add_argument("--freeze-epochs", type=int, help=f"epochs that train the head only; default: {both('freeze_epochs')}")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images a training step")
    p.add_argument("--lr", type=float, help=f"peak AdamW learning rate; default: {both('lr')}")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay (not on biases "
                                                                           "and BatchNorm)")
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs,
                   help="epochs of linear learning-rate warm-up before the cosine decay")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing,
                   help="share of each target spread over the other classes")
    p.add_argument("--bn-momentum", type=float, default=d.bn_momentum, help="BatchNorm running-stat momentum")
    p.add_argument("--balance", choices=("none", "sqrt", "inverse"), default=d.balance, help="class weights in the loss")
    p.add_argument("--prior-correction", type=float, default=d.prior_correction, metavar="TAU",
                   help="how far the model's probabilities lean from the training data's class shares toward "
                        "equal classes, kept in the model (0: none; 1: as if every class were equally common)")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="no horizontal flips in augmentation")
    p.add_argument("--erase", type=float, default=d.erase, help="random-erasing probability")
    p.add_argument("--degrade", type=float, default=d.degrade,
                   help="share of training faces blurred, noised or lit dimly or from one side, as cameras "
                        "show faces (evaluate --shift measures such faces)")
    p.add_argument("--crop-faces", action=argparse.BooleanOptionalAction,
                   help="the images are photos, not face crops: train on each one's largest face, cropped as "
                        "predict crops faces (an image without a face is skipped and listed); --no-crop-faces: "
                        "every image as it is; default: in a fine-tune (or with --base-size), images larger "
                        "than the faces the model takes searched for their face, as evaluate and predict do")
    p.add_argument("--face-margin", type=float,
                   help=f"crop margin around detected faces, a fraction of the face side (predict, and "
                        f"--crop-faces); default: the start model's, else {FACE_MARGIN} (the crop that matches "
                        "FER-style face crops)")
    p.add_argument("--select", choices=("macro_f1", "accuracy", "balanced_accuracy"), default=d.select,
                   help="val metric that picks the best epoch (balanced_accuracy: the mean of the classes' recalls)")
    p.add_argument("--tta", choices=("none", "flip"),
                   help="test-time augmentation, kept in the model; default: the start model's, else none")
    p.add_argument("--patience", type=int, default=d.patience, help="early stop after N epochs without gain (0: off)")
    p.add_argument("--ema", type=float, default=d.ema,
                   help="keep an exponential moving average of the weights with this decay (e.g. 0.999) and "
                        "validate and save it instead of the raw weights (default: 0, off)")
    p.add_argument("--teacher", help="distil: blend this model's probabilities (a bundled name or .safetensors "
                                     "with the run's classes, usually a larger model) into the training target")
    p.add_argument("--distill", type=float, default=d.distill,
                   help="the teacher's weight in the target; the labels get the rest")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seeds every random draw: a rerun with the same seed, --threads, device and library "
                        "versions gives the same weights (another thread count: slightly different sums)")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA")
    p.add_argument("--workers", type=int, help="image decoding threads")
    p.add_argument("--threads", type=int, help=THREADS_HELP)
    p.add_argument("--out", default=d.out, help="run folder (must not hold another run)")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR (its settings are used)")
    p.set_defaults(run=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from mobilefer.runtime.classifier import require_torch

    require_torch("train")
    from mobilefer.engine.config import TrainConfig
    from mobilefer.engine.train import train

    result = train(_config(TrainConfig, args, progress=sys.stderr.isatty()),
                   typed=_typed(args.argv) if args.resume else None)
    best = result.best_metrics
    if best:
        print(f"best: epoch {best['epoch']}  val accuracy {best['accuracy']:.4f}  macro-F1 {best['macro_f1']:.4f}")
    print(f"model: {result.best}")
    return 0


UNCERTAIN_HELP = ("label a face 'uncertain' when its top probability (calibrated) is under P, e.g. 0.5; its "
                  "probabilities are still reported; default: 0, never")


# ---------------------------------------------------------------- evaluate
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from mobilefer.engine.config import EvalConfig

    d = EvalConfig.__dataclass_fields__
    p = _parser(sub, "evaluate", "per-class metrics and confusion matrix of a model on labelled data")
    p.add_argument("--model", help=model_help())
    p.add_argument("--data", default="", help="ImageFolder tree, .zip of one, FER2013 .csv, or FER+ data "
                                              "(scored on majority labels)")
    p.add_argument("--usage", help="CSV rows to score; default PublicTest")
    p.add_argument("--pixels", help="fer2013.csv for FER+'s fer2013new.csv; default: the one beside it")
    p.add_argument("--classes", type=_csv_list, help="class names in output order, for .pth state_dicts")
    p.add_argument("--tta", choices=("none", "flip"), help="override the model's test-time augmentation")
    p.add_argument("--crop-faces", action=argparse.BooleanOptionalAction,
                   help="score each image's largest face, cropped as predict does (an image without one is "
                        "left out); --no-crop-faces: every image as it is; default: as the model was trained, "
                        "and images larger than its faces (its base size) searched for their face and cropped as "
                        "predict crops it, scored whole where none is found")
    p.add_argument("--limit", type=int, help="score a stratified sample of this many images")
    p.add_argument("--batch-size", type=int, default=d["batch_size"].default, help="images a classifier call")
    p.add_argument("--threads", type=int, help=THREADS_HELP)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--shift", type=int, metavar="SEED",
                   help="score a shifted copy of the data made from this seed: each face gets one real-world "
                        "change (blur, noise, JPEG, dim or uneven light, a turn of up to 20 degrees, a looser or "
                        "tighter crop, a hand or glasses), and each change's accuracy is reported")
    p.add_argument("--json", help="write the report as JSON here")
    p.add_argument("--plot", help="write a confusion-matrix heat-map PNG here")
    p.set_defaults(run=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from mobilefer.engine.config import EvalConfig
    from mobilefer.engine.evaluate import evaluate
    from mobilefer.engine.metrics import format_report

    result = evaluate(_config(EvalConfig, args))
    print(f"model: {result['model']}")
    if result.get("dropped"):
        left = ", ".join(f"{n} {why}" for why, n in result["dropped"].items())
        print(f"scored on majority labels; left out {sum(result['dropped'].values())} image(s): {left}")
    if "faces" in result:
        print(result["faces"])
    if "shift" in result:
        changes = ", ".join(f"{name} {c['accuracy']:.3f}" for name, c in result["shift"]["by_change"].items())
        print(f"shifted copy (seed {result['shift']['seed']}), accuracy by change: {changes}")
    print(format_report(result))  # skipped files were listed, each with its reason, as they were read
    return 0


# ---------------------------------------------------------------- predict
def _add_predict(sub: argparse._SubParsersAction) -> None:
    from mobilefer.inference.detectors import DETECTOR_CHOICES
    from mobilefer.inference.predict import PredictConfig
    from mobilefer.inference.recognizer import DEFAULT_VIDEO_DETECT_EVERY, VIDEO_SMOOTH

    d = PredictConfig.__dataclass_fields__
    p = _parser(sub, "predict", "recognise emotions on images, folders, videos, webcams and streams")
    p.add_argument("source", nargs="+", help="images, folders (searched recursively, videos included), globs, "
                                             ".txt lists of paths, video files; or one webcam index (0) or "
                                             "rtsp/http URL")
    p.add_argument("--model", help=model_help())
    p.add_argument("--detector", default=d["detector"].default, choices=DETECTOR_CHOICES,
                   help=DETECTOR_HELP)
    p.add_argument("--out", help="folder for annotated images / mp4 and the timeline plot")
    p.add_argument("--json", help="JSON Lines file: one object per frame or image")
    p.add_argument("--csv", help="CSV file: one row per face per frame")
    p.add_argument("--show", action="store_true", help="show a window (q quits); needs a desktop OpenCV")
    p.add_argument("--smooth", nargs="?", const="ema",
                   help=f"average a video face's probabilities over time: ema[:ALPHA] (the newest's weight) or "
                        f"window[:N]; none: each classification as it is; default: {VIDEO_SMOOTH} on videos, "
                        "cameras and streams")
    p.add_argument("--every", help="classify every N frames (5f) or seconds (2s); default: every frame")
    p.add_argument("--detect-every", type=int,
                   help=f"look for faces over the whole frame on every k-th frame of a video (and after each "
                        f"cut) and follow each face near its last place between; default: "
                        f"{DEFAULT_VIDEO_DETECT_EVERY} for videos, cameras and streams; 1 detects on every frame")
    p.add_argument("--min-face", type=int, default=d["min_face"].default,
                   help="smallest face side in pixels (video frames over half a megapixel: at least what a "
                        "half-megapixel copy shows, 32 px on 720p, 48 on 1080p)")
    p.add_argument("--max-faces", type=int, help="at most this many faces per frame; default: all")
    p.add_argument("--uncertain", type=float, default=0.0, metavar="P", help=UNCERTAIN_HELP)
    p.add_argument("--margin", type=float, help="crop margin around a face box; default: the model's")
    p.add_argument("--classes", type=_csv_list, help="class names in output order, for .pth state_dicts")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads a model or the face detector takes; default: the "
                                               "idle cores up to 4, or 1 where every source is a video file (its "
                                               "frames are decoded, searched and classified on threads of their own)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--explain", action="store_true",
                   help="with --out: for each face of each photo, a picture of the pixels its emotion rests on "
                        "(NAME_face<id>_explain.jpg; ~0.3 s a face)")
    p.set_defaults(run=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from mobilefer.inference.predict import PredictConfig, predict

    args.source = args.source[0] if len(args.source) == 1 else args.source
    summary = predict(_config(PredictConfig, args, progress=sys.stderr.isatty()))
    for result in summary.images:
        print(f"{result.source}: {len(result.faces)} face(s)")
        for f in result.faces:
            top = sorted(f.probs.items(), key=lambda kv: -kv[1])[:3]
            x, y, w, h = f.box
            pose = (f"   yaw {f.pose.yaw:.0f} pitch {f.pose.pitch:.0f} roll {f.pose.roll:.0f}"
                    + (" (turned away)" if f.pose.turned else "")) if f.pose else ""
            print(f"  #{f.id}  box ({x}, {y}, {w}, {h})  {f.label:<9} {f.score:.2f}   "
                  + "  ".join(f"{k} {v:.2f}" for k, v in top) + pose)
    if summary.per_face or summary.kind in ("video", "webcam", "stream"):
        print(f"{summary.frames - len(summary.images)} video frames, "
              f"{summary.faces - sum(len(r.faces) for r in summary.images)} face detections")
        for (source, face_id), counts in sorted(summary.per_face.items()):
            total = sum(counts.values())
            shares = ", ".join(f"{k} {v / total:.0%}" for k, v in counts.most_common())
            print(f"  {Path(source).name} face #{face_id}: {total} frames: {shares}")
    if summary.crops_without_face and args.detector != "none":
        print(f"no face found in {len(summary.crops_without_face)} image(s) the size of a face crop (the first: "
              f"{summary.crops_without_face[0]}); where the face is the whole image, --detector none reads it so",
              file=sys.stderr)
    for path in summary.written:
        print(f"wrote {path}")
    for path in (args.json, args.csv):
        if path and summary.frames:
            print(f"wrote {path}")
    if summary.failed:
        print(f"{len(summary.failed)} input(s) failed:", file=sys.stderr)
        for reason in summary.failed:
            print(f"  {reason}", file=sys.stderr)
        if not summary.frames and (args.json or args.csv):
            print("nothing was recognised, so no output file was written or replaced", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- export
def _add_export(sub: argparse._SubParsersAction) -> None:
    from mobilefer.export.onnx import ExportConfig

    d = ExportConfig.__dataclass_fields__
    p = _parser(sub, "export", "export a model to a self-contained ONNX or LiteRT (.tflite) file, fp32 or INT8, "
                               "or a static web page that runs it in the browser")
    p.add_argument("--model", help=model_help(onnx=False) + "; --format web also takes an .onnx")
    p.add_argument("--out", default="", help="output .onnx or .tflite file, or the site's folder for --format web")
    p.add_argument("--format", choices=("onnx", "tflite", "web"),
                   help="onnx (ONNX Runtime), tflite (LiteRT, for phones; needs mobilefer[litert]) or web (a "
                        "static folder: page, models, ONNX Runtime Web; serve it anywhere); default: from --out")
    p.add_argument("--opset", type=int, default=d["opset"].default, help="ONNX opset of the exported file")
    p.add_argument("--int8", action="store_true", help="static INT8 quantisation (QDQ), needs --calib-data")
    p.add_argument("--calib-data", help="images to calibrate (and verify) on: folder, zip or CSV")
    p.add_argument("--calib-count", type=int, default=d["calib_count"].default, help="calibration images to use")
    p.add_argument("--classes", type=_csv_list, help="class names in output order, for .pth state_dicts")
    p.add_argument("--threads", type=int, help=THREADS_HELP)
    p.set_defaults(run=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from mobilefer.export.onnx import ExportConfig, export

    if args.format == "web":
        return _export_web(args)
    report = export(_config(ExportConfig, args))
    kind = "INT8" if report.int8 else "fp32"
    print(f"wrote {report.path} ({kind}, {report.bytes / 1e6:.2f} MB)")
    if report.calibration:
        print(f"calibrated on {report.calibration}")
    print(report.check)
    return 0


def _export_web(args: argparse.Namespace) -> int:
    from mobilefer.errors import ConfigError
    from mobilefer.export.web import SiteConfig, write_site

    if args.classes:
        raise ConfigError("--format web: --classes is for .pth state_dicts, which the page cannot run")
    report = write_site(_config(SiteConfig, args))
    print(f"wrote {report.path}/ ({report.files} files, {report.bytes / 1e6:.1f} MB: classifier "
          f"{report.classifier_bytes / 1e6:.1f} MB, detector {report.detector_bytes / 1e6:.1f} MB, "
          f"ONNX Runtime Web {report.runtime_bytes / 1e6:.1f} MB), "
          f"model {report.model}")
    if report.check:
        print(report.check)
    print(f"open it: python -m http.server -d {report.path} 8000, then http://localhost:8000/ "
          "(#sample recognises the sample photo)")
    return 0


# ---------------------------------------------------------------- serve
def _add_serve(sub: argparse._SubParsersAction) -> None:
    from mobilefer.inference.detectors import DETECTOR_CHOICES
    from mobilefer.serve.config import ServeConfig

    d = ServeConfig()
    p = _parser(sub, "serve", "HTTP API and browser page (needs mobilefer[serve])")
    p.add_argument("--model", help=model_help(pth=False))
    p.add_argument("--host", default=d.host, help="address to listen on; 0.0.0.0 exposes it to the network")
    p.add_argument("--port", type=int, default=d.port, help="TCP port to listen on")
    p.add_argument("--workers", type=int, default=d.workers, help="processes, each with its own copy of the model")
    p.add_argument("--detector", default=d.detector, choices=DETECTOR_CHOICES,
                   help="default face detector (requests may choose another)")
    p.add_argument("--slots", type=int, default=d.slots, help="inferences running at once per worker")
    p.add_argument("--queue", type=int, default=d.queue, help="requests per worker waiting for a slot before 503")
    p.add_argument("--queue-timeout", dest="queue_timeout_s", type=float, default=d.queue_timeout_s,
                   help="seconds a request may wait")
    p.add_argument("--read-timeout", dest="read_timeout_s", type=float, default=d.read_timeout_s,
                   help="seconds an upload may take to arrive")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_mb, help="larger uploads get 413")
    p.add_argument("--max-megapixels", type=float, default=d.max_megapixels, help="larger images get 413")
    p.add_argument("--max-faces", type=int, default=d.max_faces, help="faces per image at most")
    p.add_argument("--min-face", type=int, default=d.min_face, help="default smallest face side, pixels")
    p.add_argument("--uncertain", type=float, default=0.0, metavar="P",
                   help=UNCERTAIN_HELP + " (a request's ?uncertain= overrides it)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads per inference; default: up to 4")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--ray", action="store_true",
                   help="serve on Ray Serve: replicas of this app across a Ray cluster (needs mobilefer[ray])")
    p.add_argument("--replicas", type=int, help="with --ray: this many replicas; default: 2")
    p.add_argument("--autoscale", metavar="MIN,MAX", help="with --ray: between MIN and MAX replicas, by load")
    p.add_argument("--address", help="with --ray: the cluster (auto, ray://HOST:10001); default: a local one")
    p.set_defaults(run=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    for module in ("fastapi", "uvicorn", "python_multipart"):
        require(module, "serve", "serve")
    from mobilefer.serve.config import ServeConfig
    from mobilefer.serve.server import check_can_listen, serve

    config = _config(ServeConfig, args, log_level="debug" if args.verbose else "info")
    check_can_listen(config.host, config.port)
    if args.ray:
        from mobilefer.serve.ray_serve import RayPlan, serve_on_ray

        plan = RayPlan(args.replicas or 2, RayPlan.parse_autoscale(args.autoscale), args.address)
        serve_on_ray(config, plan)
        return 0
    if args.autoscale or args.address or args.replicas is not None:
        raise ConfigError("--replicas, --autoscale and --address go with --ray")
    print(f"mobilefer serving on http://{'[' + config.host + ']' if ':' in config.host else config.host}:{config.port}/ "
          f"(API docs at /docs); Ctrl-C stops", file=sys.stderr)
    serve(config)
    return 0


# ---------------------------------------------------------------- batch
def _add_batch(sub: argparse._SubParsersAction) -> None:
    from mobilefer.batch import BatchConfig
    from mobilefer.inference.detectors import DETECTOR_CHOICES

    d = BatchConfig.__dataclass_fields__
    p = _parser(sub, "batch", "recognise large collections of photos and videos on a Ray cluster, "
                              "into Parquet (needs mobilefer[ray])")
    p.add_argument("sources", nargs="+", help="files, folders (searched recursively), globs, or .txt files "
                                              "listing one path a line")
    p.add_argument("--out", default="", help="folder for faces/*.parquet and sources/*.parquet (shared by every "
                                             "node of a cluster)")
    p.add_argument("--model", help=model_help(pth=False))
    p.add_argument("--detector", default=d["detector"].default, choices=DETECTOR_CHOICES,
                   help=DETECTOR_HELP)
    p.add_argument("--min-face", type=int, default=d["min_face"].default, help="smallest face side in pixels")
    p.add_argument("--max-faces", type=int, help="at most this many faces per image or frame; default: all")
    p.add_argument("--uncertain", type=float, default=0.0, metavar="P", help=UNCERTAIN_HELP)
    p.add_argument("--detect-every", type=int, help="videos: as predict --detect-every")
    p.add_argument("--address", help="join a running Ray cluster: auto, or ray://HOST:10001; "
                                     "default: start a local Ray with this machine's cores")
    p.add_argument("--workers", type=int, help="recognizer actors; default: one per CPU of the cluster")
    p.add_argument("--batch-size", type=int, default=d["batch_size"].default, help="photos per actor call")
    p.add_argument("--gpus-per-worker", type=float, default=d["gpus_per_worker"].default,
                   help="share of a GPU per actor (ONNX Runtime CUDA when installed); 0: CPU only")
    p.add_argument("--device", default="auto",
                   help="with --gpus-per-worker: auto (the actor's GPU where it opens, else the CPU) or cuda (an "
                        "error where it does not); without: the CPU")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--resume", dest="mode", action="store_const", const="resume",
                      help="--out holds an earlier run: add only the sources it has not done")
    what.add_argument("--overwrite", dest="mode", action="store_const", const="overwrite",
                      help="--out holds an earlier run: replace its results")
    p.set_defaults(run=_cmd_batch, mode=d["mode"].default)


def _cmd_batch(args: argparse.Namespace) -> int:
    from mobilefer.batch import BatchConfig, batch

    config = _config(BatchConfig, args, progress=sys.stderr.isatty())
    summary = batch(config)
    print(f"{summary.sources} source(s): {summary.images} image(s), {summary.videos} video(s) of {summary.frames} "
          f"frames, {summary.faces} face(s), in {summary.seconds:.1f} s"
          + (f"; {summary.skipped_done} already done, skipped" if summary.skipped_done else ""))
    print(f"wrote {summary.out}/faces and {summary.out}/sources")
    if summary.failed:
        print(f"{len(summary.failed)} source(s) failed (rows with their error in sources):", file=sys.stderr)
        for _, reason in summary.failed[:20]:
            print(f"  {reason}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- info
def _add_info(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "info", "print a model's metadata (classes, input size, metrics, ...) as JSON")
    p.add_argument("model", nargs="?", help=model_help(pth=False))
    p.set_defaults(run=_cmd_info)


def _cmd_info(args: argparse.Namespace) -> int:
    from mobilefer.runtime import read_meta

    print(json.dumps(json.loads(read_meta(args.model).to_json()), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobilefer", description="Facial emotion recognition with MobileNetV3")
    parser.add_argument("--version", action="version", version=f"mobilefer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_evaluate, _add_predict, _add_batch, _add_export, _add_serve, _add_info):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Idle OpenMP workers sleep instead of spinning on cores that other work needs; read by
    # PyTorch's OpenMP when it starts, so set before anything imports torch.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args_given = sys.argv[1:] if argv is None else list(argv)
    if not {"-v", "--verbose"} & set(args_given):
        # OpenCV's and FFmpeg's own lines ("[ WARN:0@0.4] ... can't open camera by index") would
        # stand around our one-line errors; they are read when OpenCV loads and opens a capture.
        os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = args_given
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    try:
        cores.env_threads()  # a bad $MOBILEFER_THREADS stops every verb before any work
        return int(args.run(args) or 0)
    except MobileferError as exc:
        print(f"mobilefer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`mobilefer info | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # a disk full, a permission denied: one line naming the file
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"mobilefer {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
