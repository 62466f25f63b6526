"""Fine-tuning from a bundled model against training from scratch, on a few hundred faces (CPU).

The origin notebook's use case: a folder of a few hundred faces per class, named as the user
likes. Builds such a folder from FER+ Train (majority labels, PER_CLASS faces of each of the
eight emotions, class folders named the way a user might: Happy, Surprised, Afraid, ...),
trains each arm with the same epochs on it (best epoch picked on a 20 % split of the folder),
and scores the picked model on all of FER+ Valid (majority labels).

    python benchmarks/bench_finetune.py --train ../shared/data/ferplus/ferplus_train.zip \
        --valid ../shared/data/ferplus/ferplus_valid.zip [--per-class 50 --epochs 10]
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

# How a user might name the eight FER+ emotions: synonyms and capitals, matched by name.
USER_NAMES = {"neutral": "Neutral", "happy": "Happy", "surprise": "Surprised", "sad": "Sad", "angry": "Angry",
              "disgust": "Disgusted", "fear": "Afraid", "contempt": "contempt"}


def user_folder(train_zip: str, root: Path, per_class: int, seed: int = 0) -> Path:
    from mobilefer.data.readers import load_images

    data = load_images(train_zip)
    rng = np.random.default_rng(seed)
    for k, name in enumerate(data.classes):
        folder = root / USER_NAMES[name]
        folder.mkdir(parents=True)
        for i in rng.permutation(np.flatnonzero(data.labels == k))[:per_class]:
            Image.fromarray(data.images[i, :, :, 0]).save(folder / f"{i}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True)
    parser.add_argument("--valid", required=True)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--start", default="fer2013-small")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    from mobilefer.engine.config import EvalConfig, TrainConfig
    from mobilefer.engine.evaluate import evaluate
    from mobilefer.engine.train import train
    from mobilefer.runtime import read_meta

    start = read_meta(args.start)
    arms = {
        f"from scratch ({start.arch}, {start.input_size} px)":
            dict(arch=start.arch, img_size=start.input_size, pretrained="none"),
        f"fine-tuned from {args.start} (defaults)": dict(pretrained=args.start),
        f"fine-tuned from {args.start}, no frozen epoch": dict(pretrained=args.start, freeze_epochs=0),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.per_class} faces per class x 8, "
          f"{args.epochs} epochs each, best epoch on a 20 % split; scored on FER+ Valid (majority labels)")
    print("| arm | lr | Valid accuracy | macro-F1 | train s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        data = user_folder(args.train, Path(tmp) / "faces", args.per_class)
        for i, (label, options) in enumerate(arms.items()):
            config = TrainConfig(data=str(data), out=f"{tmp}/run{i}", epochs=args.epochs, val_split=0.2,
                                 device="cpu", progress=False, seed=0, **options)
            t = time.perf_counter()
            result = train(config)
            seconds = time.perf_counter() - t
            report = evaluate(EvalConfig(model=str(result.best), data=args.valid))
            lr = read_meta(result.best).config["lr"]
            print(f"| {label} | {lr:g} | {report['accuracy']:.3f} | {report['macro_f1']:.3f} | {seconds:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
