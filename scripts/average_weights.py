"""Average the weights of models of one network that were fine-tuned from the same start
(a "model soup"), as the bundled Small is made (MODEL_CARD.md):

    python scripts/average_weights.py runs/small160/best.safetensors \
        runs/small160bal/best.safetensors runs/small160deg/best.safetensors \
        --out runs/small_averaged.safetensors

Each floating-point tensor, BatchNorm statistics included, becomes the weighted mean of the
models' (``--weights``, one share per model summing to 1; equal shares by default); whole-number
buffers are the first model's. The result carries the first model's metadata, its config naming
the average (``averaged``); score it on validation data (`mobilefer evaluate`) before exporting
it. The models are .safetensors checkpoints or bundled model names (their PyTorch weights, made
once from the ONNX file).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def average(states: list[dict], weights: list[float]) -> dict:
    """sum(w * state) tensor by tensor (the first state's whole-number buffers kept)."""
    first = states[0]
    if any(s.keys() != first.keys() or any(s[k].shape != first[k].shape for k in first) for s in states[1:]):
        raise SystemExit("the models are not the same network: their tensors differ in names or shapes")
    return {k: sum(w * s[k] for w, s in zip(weights, states)).to(first[k].dtype) if first[k].is_floating_point()
            else first[k] for k in first}


def shares(text: str | None, count: int) -> list[float]:
    """The models' shares from ``--weights`` (equal where None); SystemExit naming what is wrong."""
    if text is None:
        return [1.0 / count] * count
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise SystemExit(f"--weights {text}: expected numbers separated by commas") from None
    if len(weights) != count:
        raise SystemExit(f"--weights {text}: expected {count} shares, one per model")
    if min(weights) < 0 or abs(sum(weights) - 1) > 1e-6:
        raise SystemExit(f"--weights {text}: expected shares of at least 0 that sum to 1")
    return weights


def main() -> None:
    from mobilefer.checkpoint import read_weights
    from mobilefer.errors import ModelFileError
    from mobilefer.meta import METADATA_KEY
    from mobilefer.runtime.files import read_meta
    from mobilefer.runtime.refs import resolve_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help=".safetensors checkpoints or bundled model names, "
                                                  "one network from one start")
    parser.add_argument("--weights", help="each model's share, comma-separated, summing to 1 (default: equal)")
    parser.add_argument("--out", type=Path, required=True, help="the averaged .safetensors")
    args = parser.parse_args()
    if len(args.models) < 2:
        parser.error("expected at least two models to average")
    try:
        weights = shares(args.weights, len(args.models))
        files = [resolve_model(ref, torch_weights=True) for ref in args.models]
        metas = [read_meta(f.path) for f in files]
        for ref, meta in zip(args.models[1:], metas[1:]):
            if meta.arch != metas[0].arch or meta.classes != metas[0].classes:
                raise SystemExit(f"{args.models[0]} and {ref} are not the same network with the same classes")
        state = average([read_weights(f.path) for f in files], weights)
    except ModelFileError as exc:
        raise SystemExit(str(exc)) from None

    from safetensors.torch import save_file

    from mobilefer.atomic import atomic_path

    meta = metas[0]
    meta.config = {**meta.config, "averaged": {"models": args.models, "weights": weights}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        save_file(state, str(tmp), metadata={METADATA_KEY: meta.to_json()})
    print(f"wrote {args.out}: " + " + ".join(f"{w:.3g} x {ref}" for w, ref in zip(weights, args.models)))


if __name__ == "__main__":
    main()
