"""``mobilefer`` command line: one verb per job, each a thin layer over the Python API.

Each subcommand builds a config dataclass, calls one public function and prints the result.
"""
from __future__ import annotations

import argparse
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
    from mobilefer.inference.classifier import MissingExtraError

    found: list[type[BaseException]] = [UserError, CheckpointError, DatasetError, ImageDecodeError, MissingExtraError, FileNotFoundError]
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
    for add in (_add_train, _add_evaluate, _add_info):
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
