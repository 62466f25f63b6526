"""Average the weights of two models of one network that were fine-tuned from the same start
(a "model soup"), as the bundled Small is made (MODEL_CARD.md):

    python scripts/average_weights.py runs/small_balanced/best.safetensors ferplus-small \
        --weight 0.3 --out runs/small_averaged.safetensors

Each floating-point tensor, BatchNorm statistics included, becomes WEIGHT * A + (1 - WEIGHT) * B;
whole-number buffers are A's. The result carries A's metadata, its config naming the average
(``averaged``); score it on validation data (`mobilefer evaluate`) before exporting it. A and B
are .safetensors checkpoints or bundled model names (their PyTorch weights, made once from the
ONNX file).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def average(a: dict, b: dict, weight: float) -> dict:
    """weight * a + (1 - weight) * b, tensor by tensor (a's whole-number buffers kept)."""
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise SystemExit("the two models are not the same network: their tensors differ in names or shapes")
    return {k: (weight * a[k] + (1 - weight) * b[k]).to(a[k].dtype) if a[k].is_floating_point() else a[k]
            for k in a}


def main() -> None:
    from mobilefer.checkpoint import read_weights
    from mobilefer.errors import ModelFileError
    from mobilefer.meta import METADATA_KEY
    from mobilefer.runtime.files import read_meta
    from mobilefer.runtime.refs import resolve_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="a .safetensors checkpoint or a bundled model name")
    parser.add_argument("b", help="the same network, from the same start")
    parser.add_argument("--weight", type=float, required=True, help="A's share, 0 to 1")
    parser.add_argument("--out", type=Path, required=True, help="the averaged .safetensors")
    args = parser.parse_args()
    if not 0.0 <= args.weight <= 1.0:
        parser.error(f"--weight {args.weight}: expected a share from 0 to 1")
    try:
        files = [resolve_model(ref, torch_weights=True) for ref in (args.a, args.b)]
        metas = [read_meta(f.path) for f in files]
        if metas[0].arch != metas[1].arch or metas[0].classes != metas[1].classes:
            raise SystemExit(f"{args.a} and {args.b} are not the same network with the same classes")
        state = average(read_weights(files[0].path), read_weights(files[1].path), args.weight)
    except ModelFileError as exc:
        raise SystemExit(str(exc)) from None

    from safetensors.torch import save_file

    from mobilefer.atomic import atomic_path

    meta = metas[0]
    meta.config = {**meta.config, "averaged": {"with": args.b, "weight": args.weight}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        save_file(state, str(tmp), metadata={METADATA_KEY: meta.to_json()})
    print(f"wrote {args.out}: {args.weight:g} x {args.a} + {1 - args.weight:g} x {args.b}")


if __name__ == "__main__":
    main()
