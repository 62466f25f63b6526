"""Recover a trainable mobilefer checkpoint from one of its fp32 ONNX exports.

The FER2013 checkpoints behind the bundled ONNX files were lost; fine-tuning needs PyTorch
weights. The export folded each BatchNorm into the convolution before it (W' = W * g / s,
b' = beta - g * mean / s), so a BatchNorm is put back that reproduces the folded layer
exactly in eval mode: its running mean and variance are measured on real face images (the
convolution's output statistics), and weight and bias are set so that
    weight * (z - mean) / sqrt(var + eps) + bias == z + b'.
In train mode (fine-tuning) a batch of faces then normalises like those statistics instead of
blowing up. The result is checked against ONNX Runtime before it is written.

    python scripts/onnx_to_safetensors.py MODEL.onnx OUT.safetensors --data train.zip [--count 4096]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn


def _module_name(node_name: str) -> str:
    # "/features/features.1/block/block.0/block.0.0/Conv" -> "features.1.block.0.0"
    parts = node_name.strip("/").split("/")[:-1]
    return ".".join(part.split(".")[-1] for part in parts)


def _bn_after(modules: dict[str, nn.Module], conv_name: str) -> nn.BatchNorm2d | None:
    parent, _, index = conv_name.rpartition(".")
    bn = modules.get(f"{parent}.{int(index) + 1}") if index.isdigit() else None
    return bn if isinstance(bn, nn.BatchNorm2d) else None


def rebuild(onnx_path: str):
    """(model in eval mode with folded BatchNorms restored as identities, meta, folded bn -> bias)."""
    import onnx
    from onnx import numpy_helper

    from mobilefer.models import create_model
    from mobilefer.runtime import read_onnx_meta

    meta = read_onnx_meta(onnx_path)
    graph = onnx.load(onnx_path).graph
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    model = create_model(meta.arch, meta.num_classes, meta.channels).eval()
    modules = dict(model.named_modules())
    folded: dict[str, torch.Tensor] = {}
    done = set()
    with torch.no_grad():
        for node in graph.node:
            if node.op_type not in ("Conv", "Gemm"):
                continue
            name = _module_name(node.name)
            module = modules[name]
            weight, bias = init[node.input[1]], init[node.input[2]]
            if module.weight.shape != weight.shape:
                raise SystemExit(f"{onnx_path}: {node.name} has weight {tuple(weight.shape)}, "
                                 f"{name} expects {tuple(module.weight.shape)}")
            module.weight.copy_(weight)
            if module.bias is not None:
                module.bias.copy_(bias)
            else:
                bn = _bn_after(modules, name)
                if bn is None:
                    raise SystemExit(f"{onnx_path}: {node.name} has a bias but {name} is followed by no BatchNorm")
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)  # sqrt(var + eps) == 1: the layer adds its bias only
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias)
                folded[name] = bias
            done.add(name)
    expected = {n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear))}
    if done != expected:
        raise SystemExit(f"{onnx_path}: layers without weights in the ONNX graph: {sorted(expected - done)}")
    return model, meta, folded


def restore_statistics(model: nn.Module, folded: dict[str, torch.Tensor], inputs: np.ndarray) -> None:
    """Measure each restored BatchNorm's input statistics on ``inputs`` and make them its own."""
    modules = dict(model.named_modules())
    sums: dict[str, list] = {}

    def hook(name):
        def record(module, args):
            z = args[0].double()
            acc = sums.setdefault(name, [0.0, 0.0, 0])
            acc[0] = acc[0] + z.sum((0, 2, 3))
            acc[1] = acc[1] + (z * z).sum((0, 2, 3))
            acc[2] += z.shape[0] * z.shape[2] * z.shape[3]
        return record

    handles = []
    for conv_name in folded:
        parent, _, index = conv_name.rpartition(".")
        bn_name = f"{parent}.{int(index) + 1}"
        handles.append(modules[bn_name].register_forward_pre_hook(hook(bn_name)))
    with torch.no_grad():
        for i in range(0, len(inputs), 256):
            model(torch.from_numpy(inputs[i : i + 256]))
        for handle in handles:
            handle.remove()
        for conv_name, bias in folded.items():
            parent, _, index = conv_name.rpartition(".")
            bn = modules[f"{parent}.{int(index) + 1}"]
            total, squares, n = sums[f"{parent}.{int(index) + 1}"]
            mean = total / n
            var = (squares / n - mean * mean).clamp_min(1e-6)
            bn.running_mean.copy_(mean.float())
            bn.running_var.copy_(var.float())
            bn.weight.copy_((var + bn.eps).sqrt().float())
            bn.bias.copy_((mean + bias.double()).float())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx")
    parser.add_argument("out")
    parser.add_argument("--data", required=True, help="face images whose statistics the BatchNorms take")
    parser.add_argument("--count", type=int, default=4096)
    args = parser.parse_args(argv)

    from mobilefer.checkpoint import load_model, save_model
    from mobilefer.data.preprocess import normalize_batch
    from mobilefer.data.readers import load_images
    from mobilefer.runtime import OnnxClassifier

    model, meta, folded = rebuild(args.onnx)
    data = load_images(args.data, channels=meta.channels, base_size=meta.base_size, limit=args.count, seed=0)
    inputs = normalize_batch(data.images, meta)
    restore_statistics(model, folded, inputs)

    meta.data = {**meta.data, "recovered": {
        "from": Path(args.onnx).name,
        "batchnorm_statistics": f"{len(data)} images of {Path(args.data).name}",
    }}
    save_model(model, meta, args.out)
    # Check the file as written against ONNX Runtime, on faces the statistics did not come from.
    reference = OnnxClassifier(args.onnx)
    reference.meta.tta = "none"
    check = load_images(args.data, channels=meta.channels, base_size=meta.base_size, limit=512, seed=1)
    inputs = normalize_batch(check.images, meta)
    saved, _ = load_model(args.out)
    with torch.no_grad():
        diff = float(np.abs(saved(torch.from_numpy(inputs)).softmax(1).numpy() - reference(inputs)).max())
    print(f"{args.out} vs {args.onnx} on {len(inputs)} faces: max |dp| = {diff:.2e}")
    if diff > 1e-4:
        Path(args.out).unlink()
        print("removed: the rebuilt model differs from the ONNX file", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
