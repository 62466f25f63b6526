"""CPU training throughput (images/s) of the trainer's step, one change at a time, against the
step as it was (NCHW tensors, PyTorch's default threads) and the origin notebook's loop, all
in the same run on real faces (FER+ Train).

    python benchmarks/bench_train.py --data ../shared/data/ferplus/ferplus_train.zip

Each row: the median of --steps timed steps (after one warm-up step) of augment + forward +
backward + AdamW, batch --batch, at the bundled models' input sizes (Small 128 px, Large 160 px).
The machine may be shared: compare rows with the baseline printed beside them, not across runs.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import time
import zipfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it, before torch starts OpenMP

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402

from mobilefer.data.augment import Augment, train_transform  # noqa: E402
from mobilefer.data.readers import load_images  # noqa: E402
from mobilefer.meta import ModelMeta  # noqa: E402
from mobilefer.models import create_model  # noqa: E402

SIZES = {"mobilenet_v3_small": 128, "mobilenet_v3_large": 160}


def step_rate(data, arch: str, size: int, batch: int, steps: int, *, threads: int, channels_last: bool,
              frozen_blocks: int = 0) -> float:
    """Images/s of the trainer's step with the given settings."""
    torch.set_num_threads(threads)
    model = create_model(arch, len(data.classes), 1)
    for block in model.features[:frozen_blocks]:
        for p in block.parameters():
            p.requires_grad_(False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-3)
    meta = ModelMeta(arch=arch, classes=data.classes, input_size=size, channels=1, base_size=48, mean=[0.5], std=[0.25])
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(data.labels)
    gen = torch.Generator().manual_seed(0)
    model.train()
    times = []
    for step in range(steps + 1):
        idx = torch.randint(0, len(labels), (batch,), generator=gen)
        started = time.perf_counter()
        x = train_transform(images[idx], meta, Augment(), gen)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = torch.nn.functional.cross_entropy(model(x), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step:  # the first step warms up
            times.append(time.perf_counter() - started)
    return batch / statistics.median(times)


def origin(zip_path: str, steps: int, threads: int) -> float:
    """The notebook: ImageNet-style Large, 3-channel PIL pipeline at 256 px, decoding each batch, batch 32."""
    torch.set_num_threads(threads)
    archive = zipfile.ZipFile(zip_path)
    names = [n for n in archive.namelist() if n.endswith(".png")][: 32 * (steps + 1)]
    tf = transforms.Compose([transforms.Resize(256), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    model = create_model("mobilenet_v3_large", 9, 3)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    times = []
    for step in range(steps + 1):
        started = time.perf_counter()
        batch = torch.stack([tf(Image.open(io.BytesIO(archive.read(n))).convert("RGB"))
                             for n in names[step * 32: (step + 1) * 32]])
        loss = torch.nn.functional.cross_entropy(model(batch), torch.zeros(32, dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step:
            times.append(time.perf_counter() - started)
    return 32 / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data/ferplus/ferplus_train.zip")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--archs", default="mobilenet_v3_small,mobilenet_v3_large")
    parser.add_argument("--no-origin", action="store_true", help="skip the notebook's loop (slow)")
    args = parser.parse_args()
    data = load_images(args.data, limit=2048)
    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}; {cores} cores, load average {load:.1f} at start; median of {args.steps} "
          f"steps, batch {args.batch}; {len(data)} FER+ Train faces")
    if not args.no_origin:
        print(f"origin notebook (Large, PIL, 256 px, batch 32, {cores} threads): "
              f"{origin(args.data, args.steps, cores):.1f} img/s")
    variants = [
        ("NCHW, default threads (the step before)", dict(threads=cores, channels_last=False)),
        ("channels_last", dict(threads=cores, channels_last=True)),
        ("channels_last, 1 thread", dict(threads=1, channels_last=True)),
        ("channels_last, first 4 blocks frozen", dict(threads=cores, channels_last=True, frozen_blocks=4)),
    ]
    print(f"{'arch':<20}{'px':>5}  {'step':<42}{'img/s':>8}{'x before':>10}")
    for arch in args.archs.split(","):
        size = SIZES[arch]
        base = None
        for name, settings in variants:
            rate = step_rate(data, arch, size, args.batch, args.steps, **settings)
            base = base or rate
            print(f"{arch:<20}{size:>5}  {name:<42}{rate:>8.1f}{rate / base:>10.2f}", flush=True)
        for smaller in (96,):
            rate = step_rate(data, arch, smaller, args.batch, args.steps, threads=cores, channels_last=True)
            print(f"{arch:<20}{smaller:>5}  {'channels_last, smaller input':<42}{rate:>8.1f}{rate / base:>10.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
