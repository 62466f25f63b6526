"""``mobilefer`` command line: one verb per job, each a thin layer over the Python API.

Each subcommand builds a config dataclass, calls one public function and prints the result.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from collections.abc import Sequence

from mobilefer import __version__

log = logging.getLogger("mobilefer")


class UserError(Exception):
    """Bad input a user can act on: printed as one message, never a traceback."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from mobilefer.checkpoint import CheckpointError
    from mobilefer.data.images import ImageDecodeError
    from mobilefer.data.readers import DatasetError
    from mobilefer.export.runtime import OnnxModelError
    from mobilefer.inference.classifier import MissingExtraError
    from mobilefer.inference.detectors import DetectorUnavailable
    from mobilefer.inference.sources import SourceError

    found: list[type[BaseException]] = [
        UserError, CheckpointError, DatasetError, ImageDecodeError, MissingExtraError, FileNotFoundError,
        OnnxModelError, SourceError, DetectorUnavailable,
    ]
    try:
        from mobilefer.models import PretrainedWeightsError

        found.append(PretrainedWeightsError)
    except ImportError:
        pass
    return tuple(found)


def _csv_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


# ---------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    from mobilefer.engine.config import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train or fine-tune a MobileNetV3 emotion classifier",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", help="ImageFolder tree, .zip of one, or FER2013 .csv")
    p.add_argument("--val-data", help="validation set (same forms); default: CSV PublicTest rows or a split")
    p.add_argument("--usage", help="CSV rows to train on (Training, PublicTest, PrivateTest)")
    p.add_argument("--val-usage", help="CSV rows to validate on (default PublicTest)")
    p.add_argument("--val-split", type=float, default=d.val_split, help="stratified validation fraction when no val data")
    p.add_argument("--limit", type=int, help="train on a stratified sample of this many images")
    p.add_argument("--val-limit", type=int, help="validate on a stratified sample of this many images")
    p.add_argument("--arch", default=d.arch, help="mobilenet_v3_large or mobilenet_v3_small")
    p.add_argument("--pretrained", help="'imagenet' (torchvision download) or PATH to a torchvision state_dict")
    p.add_argument("--img-size", type=int, default=d.img_size, help="network input size")
    p.add_argument("--base-size", type=int, help="size images are stored at (default: the data's own, up to --img-size)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="default: 1 for gray data, else 3")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--bn-momentum", type=float, default=d.bn_momentum, help="BatchNorm running-stat momentum")
    p.add_argument("--balance", choices=("none", "sqrt", "inverse"), default=d.balance, help="class weights in the loss")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips in augmentation")
    p.add_argument("--erase", type=float, default=d.erase, help="random-erasing probability")
    p.add_argument("--select", choices=("macro_f1", "accuracy"), default=d.select, help="val metric that picks best")
    p.add_argument("--tta", choices=("none", "flip"), default=d.tta, help="test-time augmentation, kept in the model")
    p.add_argument("--patience", type=int, default=d.patience, help="early stop after N epochs without gain (0: off)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--workers", type=int, help="image decoding threads")
    p.add_argument("--out", default=d.out, help="run folder")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR")
    p.set_defaults(run=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from mobilefer.engine.config import TrainConfig
    from mobilefer.engine.train import train

    if not args.data and not args.resume:
        raise UserError("train needs --data PATH (or --resume DIR)")
    try:
        config = TrainConfig(
            data=args.data or "", val_data=args.val_data, usage=args.usage, val_usage=args.val_usage,
            val_split=args.val_split, limit=args.limit, val_limit=args.val_limit, arch=args.arch,
            pretrained=args.pretrained, img_size=args.img_size, base_size=args.base_size, channels=args.channels,
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
            warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing, bn_momentum=args.bn_momentum, balance=args.balance,
            flip=not args.no_flip, erase=args.erase, select=args.select, tta=args.tta, patience=args.patience,
            seed=args.seed, device=args.device, amp=not args.no_amp, workers=args.workers, out=args.out,
            resume=args.resume, progress=sys.stderr.isatty(),
        )
        from mobilefer.models import resolve_arch

        resolve_arch(config.arch)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    result = train(config)
    best = result.best_metrics
    if best:
        print(f"best: epoch {best['epoch']}  val accuracy {best['accuracy']:.4f}  macro-F1 {best['macro_f1']:.4f}")
    print(f"model: {result.best}")
    return 0


# ---------------------------------------------------------------- evaluate
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="per-class metrics and confusion matrix of a model on labelled data")
    p.add_argument("--model", required=True, help=".safetensors, .onnx, or a .pth state_dict with --classes")
    p.add_argument("--data", required=True, help="ImageFolder tree, .zip of one, or FER2013 .csv")
    p.add_argument("--usage", help="CSV rows to score (default PublicTest)")
    p.add_argument("--classes", help="class names in output order, for .pth state_dicts")
    p.add_argument("--tta", choices=("none", "flip"), help="override the model's test-time augmentation")
    p.add_argument("--limit", type=int, help="score a stratified sample of this many images")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", help="write the report as JSON here")
    p.add_argument("--plot", help="write a confusion-matrix heat-map PNG here")
    p.set_defaults(run=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from mobilefer.engine.config import EvalConfig
    from mobilefer.engine.evaluate import evaluate
    from mobilefer.engine.metrics import format_report

    config = EvalConfig(
        model=args.model, data=args.data, usage=args.usage, classes=_csv_list(args.classes),
        batch_size=args.batch_size, tta=args.tta, limit=args.limit, json=args.json, plot=args.plot,
    )
    result = evaluate(config)
    print(f"model: {result['model']}")
    print(format_report(result))
    if result["skipped"]:
        print(f"skipped {len(result['skipped'])} unreadable file(s); first: {result['skipped'][0]}")
    return 0


# ---------------------------------------------------------------- predict
def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="recognise emotions on images, folders, videos, webcams and streams")
    p.add_argument("source", help="image, folder, glob, video file, webcam index (0) or rtsp/http URL")
    p.add_argument("--model", help="model file or bundled name (fer2013-small, fer2013-large); default: bundled")
    p.add_argument("--detector", default="auto", choices=("auto", "haar", "centerface", "none"),
                   help="face detector; none: each image is already one face crop")
    p.add_argument("--out", help="folder for annotated images / mp4 and the timeline plot")
    p.add_argument("--json", help="JSON Lines file: one object per frame or image")
    p.add_argument("--csv", help="CSV file: one row per face per frame")
    p.add_argument("--show", action="store_true", help="show a window (q quits)")
    p.add_argument("--smooth", nargs="?", const="ema", help="smooth tracked faces over time: ema[:ALPHA] or window[:N]")
    p.add_argument("--every", help="classify every N frames (5f) or seconds (2s); default every frame")
    p.add_argument("--detect-every", type=int, default=1, help="run the detector every k frames, track between")
    p.add_argument("--min-face", type=int, default=32, help="smallest face side in pixels")
    p.add_argument("--max-faces", type=int, help="at most this many faces per frame")
    p.add_argument("--margin", type=float, help="crop margin around a face box (default: the model's)")
    p.add_argument("--classes", help="class names in output order, for .pth state_dicts")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads (default: up to 4; 1 is often best for a few faces)")
    p.set_defaults(run=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from mobilefer.inference.predict import PredictConfig, predict
    from mobilefer.inference.recognizer import Cadence
    from mobilefer.inference.tracking import Smoother
    from mobilefer.weights import resolve

    try:
        Cadence.parse(args.every)
        Smoother.parse(args.smooth)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    config = PredictConfig(
        source=args.source, model=str(resolve(args.model)) if args.model else None, detector=args.detector,
        out=args.out, json=args.json, csv=args.csv, show=args.show, smooth=args.smooth, every=args.every,
        detect_every=args.detect_every, min_face=args.min_face, max_faces=args.max_faces, margin=args.margin,
        classes=_csv_list(args.classes), threads=args.threads, progress=sys.stderr.isatty(),
    )
    summary = predict(config)
    if summary.kind in ("image", "images"):
        for result in summary.images:
            print(f"{result.source}: {len(result.faces)} face(s)")
            for f in result.faces:
                top = sorted(f.probs.items(), key=lambda kv: -kv[1])[:3]
                x, y, w, h = f.box
                print(f"  #{f.id}  box ({x}, {y}, {w}, {h})  {f.label:<9} {f.score:.2f}   "
                      + "  ".join(f"{k} {v:.2f}" for k, v in top))
    else:
        print(f"{summary.frames} frames, {summary.faces} face detections")
        for face_id, counts in sorted(summary.per_face.items()):
            total = sum(counts.values())
            shares = ", ".join(f"{k} {v / total:.0%}" for k, v in counts.most_common())
            print(f"  face #{face_id}: {total} frames: {shares}")
    for path in summary.written:
        print(f"wrote {path}")
    if args.json:
        print(f"wrote {args.json}")
    if args.csv:
        print(f"wrote {args.csv}")
    if summary.failed:
        print(f"{len(summary.failed)} input(s) failed:", file=sys.stderr)
        for reason in summary.failed:
            print(f"  {reason}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- export
def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to a self-contained ONNX file (fp32 or INT8)")
    p.add_argument("--model", required=True, help=".safetensors checkpoint (or .pth with --classes)")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--int8", action="store_true", help="static INT8 quantisation (QDQ), needs --calib-data")
    p.add_argument("--calib-data", help="images to calibrate (and verify) on: folder, zip or CSV")
    p.add_argument("--calib-count", type=int, default=512, help="calibration images to use")
    p.add_argument("--classes", help="class names in output order, for .pth state_dicts")
    p.set_defaults(run=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from mobilefer.export.onnx import export_onnx

    if not args.out.endswith(".onnx"):
        raise UserError(f"--out {args.out}: expected a .onnx file name")
    try:
        report = export_onnx(
            args.model, args.out, opset=args.opset, int8=args.int8, calib_data=args.calib_data,
            calib_count=args.calib_count, classes=_csv_list(args.classes),
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    kind = "INT8" if report.int8 else "fp32"
    print(f"wrote {report.path} ({kind}, {report.bytes / 1e6:.2f} MB)")
    print(f"check on {report.num_checked} inputs: max |p_onnx - p_torch| = {report.max_abs_diff:.2e}, "
          f"same top class {report.label_agreement:.1%}")
    return 0


# ---------------------------------------------------------------- serve
def _add_serve(sub: argparse._SubParsersAction) -> None:
    from mobilefer.serve.config import ServeConfig

    d = ServeConfig()
    p = sub.add_parser("serve", help="HTTP API and browser page (needs mobilefer[serve])",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", help="bundled model name (fer2013-small, fer2013-large) or .onnx/.safetensors path "
                                   "(default: the bundled fer2013-small)")
    p.add_argument("--host", default=d.host, help="address to listen on; 0.0.0.0 exposes it to the network")
    p.add_argument("--port", type=int, default=d.port)
    p.add_argument("--workers", type=int, default=d.workers, help="processes, each with its own copy of the model")
    p.add_argument("--detector", default=d.detector, choices=("auto", "haar", "centerface", "none"),
                   help="default face detector (requests may choose another)")
    p.add_argument("--slots", type=int, default=d.slots, help="inferences running at once per worker")
    p.add_argument("--queue", type=int, default=d.queue, help="requests per worker waiting for a slot before 503")
    p.add_argument("--queue-timeout", type=float, default=d.queue_timeout_s, help="seconds a request may wait")
    p.add_argument("--read-timeout", type=float, default=d.read_timeout_s, help="seconds an upload may take to arrive")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_mb, help="larger uploads get 413")
    p.add_argument("--max-megapixels", type=float, default=d.max_megapixels, help="larger images get 413")
    p.add_argument("--max-faces", type=int, default=d.max_faces, help="faces per image at most")
    p.add_argument("--min-face", type=int, default=d.min_face, help="default smallest face side, pixels")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads per inference (default: up to 4)")
    p.set_defaults(run=_cmd_serve)


def _check_can_listen(host: str, port: int) -> None:
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _cmd_serve(args: argparse.Namespace) -> int:
    from mobilefer.serve.config import ServeConfig

    missing = [name for name in ("fastapi", "uvicorn", "python_multipart") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"serving needs {', '.join(missing)}: pip install 'mobilefer[serve]'")
    from mobilefer.serve.server import serve

    try:
        config = ServeConfig(
            model=args.model, host=args.host, port=args.port, workers=args.workers, detector=args.detector,
            slots=args.slots, queue=args.queue, queue_timeout_s=args.queue_timeout, read_timeout_s=args.read_timeout,
            max_upload_mb=args.max_upload_mb, max_megapixels=args.max_megapixels, max_faces=args.max_faces,
            min_face=args.min_face, threads=args.threads, log_level="debug" if args.verbose else "info",
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    _check_can_listen(config.host, config.port)
    print(f"mobilefer serving on http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/ "
          f"(API docs at /docs); Ctrl-C stops", file=sys.stderr)
    serve(config)
    return 0


# ---------------------------------------------------------------- info
def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a saved model's metadata")
    p.add_argument("model", help=".safetensors or .onnx")
    p.set_defaults(run=_cmd_info)


def _cmd_info(args: argparse.Namespace) -> int:
    from mobilefer.checkpoint import read_meta

    meta = read_meta(args.model)
    print(json.dumps(json.loads(meta.to_json()), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobilefer", description="Facial emotion recognition with MobileNetV3")
    parser.add_argument("--version", action="version", version=f"mobilefer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_evaluate, _add_predict, _add_export, _add_serve, _add_info):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    try:
        return int(args.run(args) or 0)
    except _user_errors() as exc:
        print(f"mobilefer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
