"""CPU training throughput (images/s) for both archs at several sizes, against the origin
notebook's loop (PIL transforms, Resize 256, batch 32, per-batch PNG decode), same run.

    python benchmarks/bench_train.py --data ../shared/data/fer2013/train.zip
"""
from __future__ import annotations

import argparse
import io
import statistics
import time
import zipfile

import torch
from PIL import Image
from torchvision import transforms

from mobilefer.data.augment import Augment, train_transform
from mobilefer.data.readers import load_images
from mobilefer.meta import ModelMeta
from mobilefer.models import create_model


def ours(data, arch: str, size: int, batch: int, steps: int) -> float:
    model = create_model(arch, len(data.classes), 1)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    meta = ModelMeta(arch=arch, classes=data.classes, input_size=size, channels=1, base_size=48, mean=[0.5], std=[0.25])
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(data.labels)
    gen = torch.Generator().manual_seed(0)
    times = []
    for step in range(steps + 1):
        idx = torch.randint(0, len(labels), (batch,), generator=gen)
        t = time.perf_counter()
        x = train_transform(images[idx], meta, Augment(), gen)
        loss = torch.nn.functional.cross_entropy(model(x), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step:  # the first step warms up
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def origin(zip_path: str, steps: int) -> float:
    """The notebook: torchvision ImageNet-style Large, 3-channel PIL pipeline at 256 px, batch 32."""
    archive = zipfile.ZipFile(zip_path)
    names = [n for n in archive.namelist() if n.endswith(".png")][: 32 * (steps + 1)]
    tf = transforms.Compose([transforms.Resize(256), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    model = create_model("mobilenet_v3_large", 9, 3)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    times = []
    for step in range(steps + 1):
        t = time.perf_counter()
        batch = torch.stack([tf(Image.open(io.BytesIO(archive.read(n))).convert("RGB"))
                             for n in names[step * 32: (step + 1) * 32]])
        loss = torch.nn.functional.cross_entropy(model(batch), torch.zeros(32, dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step:
            times.append(time.perf_counter() - t)
    return 32 / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data/fer2013/train.zip")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    data = load_images(args.data, limit=2000)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.steps} steps, batch {args.batch}")
    base = origin(args.data, args.steps)
    print(f"{'loop':<34}{'px':>5}{'img/s':>9}{'x origin':>10}")
    print(f"{'origin notebook (Large, PIL, 256)':<34}{256:>5}{base:>9.1f}{1.0:>10.2f}")
    for arch in ("mobilenet_v3_large", "mobilenet_v3_small"):
        for size in (48, 96, 112, 160):
            ips = ours(data, arch, size, args.batch, args.steps)
            print(f"{arch:<34}{size:>5}{ips:>9.1f}{ips / base:>10.2f}")


if __name__ == "__main__":
    main()
