"""The training loop: data in memory on the device, augmentation there, AdamW + cosine.

A run starts from random weights, ImageNet, or a trained mobilefer model (fine-tuning:
``--pretrained fer2013-small`` or any mobilefer ``.safetensors``): then the architecture,
channels, input size and normalisation come from that model, its last layer's rows are
reused by class name, and the backbone may stay frozen for the first ``freeze_epochs``.

``train(TrainConfig)`` is what ``mobilefer train`` calls. Outputs in ``config.out``:
``best.safetensors`` / ``last.safetensors`` (self-describing models), ``last.state.safetensors``
(optimizer and progress, for ``--resume``), ``metrics.csv``, ``config.json`` and, for a split,
``val_files.txt``.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from mobilefer import cores
from mobilefer.atomic import write_text
from mobilefer.checkpoint import load_model, read_weights, save_model, start_from
from mobilefer.data.augment import Augment, train_transform
from mobilefer.data.readers import LabeledImages, csv_has_usage, describe_skipped, load_images, stratified_split
from mobilefer.engine.config import AUTO_START, TrainConfig
from mobilefer.engine.distill import load_teacher, mix, teacher_probs
from mobilefer.engine.ema import WeightAverage
from mobilefer.engine.metrics import score
from mobilefer.engine.runtime import broadcast_float, pick_device, seed_everything, setup_distributed
from mobilefer.engine.scoring import logit_views, predict_tensors
from mobilefer.engine.state import load_state, save_state
from mobilefer.errors import ConfigError, DatasetError, OutputError, flag
from mobilefer.meta import ModelMeta, library_versions
from mobilefer.models import create_model, imagenet_stats, resolve_arch
from mobilefer.runtime import ModelFile, read_meta, resolve_model

log = logging.getLogger(__name__)

METRIC_FIELDS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "seconds", "images_per_s"]


@dataclass
class TrainResult:
    best: Path
    last: Path
    best_metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _cuts_faces(config: TrainConfig) -> bool:
    """Whether training images are cut to their faces (LargestFaceCrop.cuts): --crop-faces, or by
    default where the face size is known before the data is read (a fine-tune's, or --base-size)."""
    from mobilefer.inference.detectors import LargestFaceCrop

    return LargestFaceCrop.cuts(config.crop_faces, config.base_size)


def load_data(config: TrainConfig) -> tuple[LabeledImages, LabeledImages, str]:
    """Train and validation sets, and where validation came from (``config`` resolved)."""
    is_fer_csv = csv_has_usage(config.data)
    train_usage = config.usage or ("Training" if is_fer_csv else None)
    from mobilefer.inference.detectors import LargestFaceCrop

    # as evaluate and predict read them: every image's face, or (by default, where the face size
    # is the start model's) those of images larger than its faces, whole where none is found
    crop = LargestFaceCrop.by_rule(config.crop_faces, config.face_margin, config.base_size)
    train = load_images(
        config.data, usage=train_usage, channels=config.channels, base_size=config.base_size,
        max_base_size=config.img_size, workers=config.workers, limit=config.limit, seed=config.seed,
        labels=config.labels, pixels=config.pixels, crop=crop,
    )
    if len(train.classes) < 2:
        raise DatasetError(f"{config.data}: found only the class {train.classes[0]!r}; training needs at least two")
    # Validation is always scored on majority labels: soft targets are for training only.
    fixed = dict(channels=train.channels, base_size=train.base_size, classes=train.classes, workers=config.workers,
                 crop=crop)
    if config.val_data:
        val_usage = config.val_usage or ("PublicTest" if csv_has_usage(config.val_data) else None)
        pixels = config.pixels if config.val_data and Path(config.val_data).parent == Path(config.data).parent else None
        val = load_images(config.val_data, usage=val_usage, limit=config.val_limit, seed=config.seed,
                          pixels=pixels, **fixed)
        source = config.val_data
    elif is_fer_csv:
        val = load_images(config.data, usage=config.val_usage or "PublicTest", limit=config.val_limit,
                          seed=config.seed, pixels=config.pixels, **fixed)
        source = f"{config.data} ({config.val_usage or 'PublicTest'} rows)"
    else:
        train_idx, val_idx = stratified_split(train.labels, config.val_split, config.seed)
        skipped = train.skipped
        train, val = train.subset(train_idx), train.subset(val_idx)
        train.skipped, val.dropped = skipped, {}  # what the vote rule left out is reported once, with train
        source = f"{config.val_split:.0%} stratified split of {config.data} (seed {config.seed})"
    if crop is not None and (said := crop.summary()):
        log.info("training and validation faces: %s", said)
    return train, val, source


def build_meta(config: TrainConfig, train: LabeledImages, start: ModelMeta | None = None) -> ModelMeta:
    """The new model's self-description; a fine-tune keeps its start model's normalisation."""
    if start is not None:
        mean, std = start.mean, start.std
    elif config.pretrained:
        mean, std = imagenet_stats(train.channels)
    else:
        mean, std = [0.5] * train.channels, [0.25] * train.channels
    return ModelMeta(
        arch=resolve_arch(config.arch), classes=list(train.classes), input_size=config.img_size,
        channels=train.channels, base_size=train.base_size, mean=mean, std=std,
        face_margin=config.face_margin, tta=config.tta, config=config.to_dict(),
        prior=train.prior(), prior_correction=config.prior_correction,
        versions=library_versions("torch", "torchvision"),
    )


def start_model(config: TrainConfig) -> tuple[ModelFile | None, ModelMeta | None]:
    """The trained mobilefer model a fine-tune starts from (bundled name or .safetensors), if any."""
    if not config.fine_tune:
        return None, None
    try:
        found = resolve_model(config.pretrained, torch_weights=True)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"--pretrained: {exc}") from None
    return found, read_meta(found.path)


def _lacks(wanted: list[str], have: list[str]) -> list[str]:
    """The classes of ``wanted`` that none of ``have`` stands for (close spellings count)."""
    from mobilefer.classes import match_classes

    return [c for c, row in zip(wanted, match_classes(list(wanted), list(have))) if row is None]


def _start_classes(config: TrainConfig, start: ModelMeta | None, train: LabeledImages,
                   val: LabeledImages) -> list[str]:
    """Say which of the start model's classes a fine-tune's data lacks; with --keep-classes add
    them (after the data's own) to ``train`` and ``val`` in place. Returns the classes kept."""
    if start is None:
        return []
    missing = _lacks(start.classes, train.classes)
    if not missing:
        return []
    if not config.keep_classes:
        them = "it" if len(missing) == 1 else "them"
        log.warning("the data has no %s: the model fine-tuned from %s will not answer %s; --keep-classes keeps %s",
                    ", ".join(missing), config.pretrained, them, them)
        return []
    for data in (train, val):
        data.classes = [*data.classes, *missing]
        if data.soft is not None:
            data.soft = np.pad(data.soft, ((0, 0), (0, len(missing))))
    return missing


def _check_out(config: TrainConfig) -> None:
    """Refuse an --out that is a file, or that holds another run (which a new run would overwrite)."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is a file; expected a folder for the run")
    if not config.resume and any((out / name).exists() for name in ("config.json", "last.safetensors")):
        raise OutputError(f"--out {out}: holds a training run already; choose another folder, "
                          f"or continue it with --resume {out}")


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak``, then cosine decay to 1 % of it."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> torch.Tensor | None:
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64).clip(min=1)
    weights = (counts.sum() / counts) ** (0.5 if mode == "sqrt" else 1.0)
    return torch.tensor(weights / (weights * counts).sum() * counts.sum(), dtype=torch.float32)


def _to_device(data: LabeledImages, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # uint8 NCHW decoded once and kept on the device: no per-epoch decoding or copying.
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous().to(device)
    return images, torch.from_numpy(data.labels).to(device)


def _write_metrics(path: Path, history: list[dict[str, float]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    write_text(path, buffer.getvalue())


def train(config: TrainConfig, typed: Collection[str] | None = None) -> TrainResult:
    """Train a MobileNetV3 emotion classifier; see the module docstring for outputs. ``typed``:
    the fields a user set (the CLI's typed flags), which a resumed run checks against its own;
    None: the fields that differ from TrainConfig's defaults."""
    if config.resume:
        config = _resume_config(Path(config.resume), config, typed)
    elif not config.data:
        raise ConfigError("train needs --data PATH (or --resume DIR)")
    _check_out(config)
    auto = config.pretrained == AUTO_START
    config = config.with_start()
    start_file, start_meta = start_model(config)
    config = config.resolved(start_meta)
    device = pick_device(config.device)
    threads = cores.limit_torch(config.threads) if device.type == "cpu" else None
    info = setup_distributed(device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    out = Path(config.out)
    train_set, val_set, val_source = load_data(config)
    kept_classes = _start_classes(config, start_meta, train_set, val_set)
    _check_data(config, train_set, val_set, val_source)
    meta = build_meta(config, train_set, start_meta)
    meta.data = {
        "train": config.data, "val": val_source, "num_train": len(train_set), "num_val": len(val_set),
        "train_counts": train_set.counts(), "fingerprint": train_set.fingerprint(),
        "skipped": len(train_set.skipped) + len(val_set.skipped),
        "threads": threads,  # a --seed rerun matches bit for bit with this many CPU threads
    }
    if train_set.soft is not None:
        meta.data["labels"] = "soft (vote distribution)"
    if train_set.dropped or val_set.dropped:
        meta.data["dropped"] = {"train": train_set.dropped, "val": val_set.dropped}

    # kept classes are taught by the start model where it knows every class of the run
    teacher_ref = config.teacher or (start_file.ref if kept_classes and not _lacks(train_set.classes, start_meta.classes)
                                     else None)
    teacher = load_teacher(teacher_ref, meta.classes, meta.channels) if teacher_ref else None
    seed_everything(config.seed)
    model = create_model(meta.arch, meta.num_classes, meta.channels, None if start_file else config.pretrained)
    if start_file is not None:
        rows = start_from(model, start_file.path, start_meta, meta.classes)
        meta.data["start"] = {"model": start_file.ref, "rows": rows}
    model = model.to(device)
    if info.main:
        # Written only now that data and start model are known good: a failed start leaves nothing.
        out.mkdir(parents=True, exist_ok=True)
        if not config.resume:  # a resumed run keeps the files its first start wrote
            write_text(out / "config.json", json.dumps(config.to_dict(), indent=2))
            if not config.val_data and not csv_has_usage(config.data):
                write_text(out / "val_files.txt", "\n".join(val_set.files) + "\n")
        log.info("train: %d images %s; val: %d from %s", len(train_set), train_set.counts(), len(val_set), val_source)
        for what, data in (("train", train_set), ("val", val_set)):
            if data.dropped:
                log.info("%s: left out by the vote rule: %s", what, data.dropped)
        if auto:
            log.info("starting from %s, the bundled emotion model for %s (--pretrained imagenet or none to "
                     "start elsewhere)", start_file.ref if start_file else "random weights", meta.arch)
        if kept_classes:
            log.info("keeping %s's classes %s, which the data lacks%s", start_file.ref, ", ".join(kept_classes),
                     f": {teacher_ref} teaches them (--distill {config.distill})" if teacher else
                     " (no teacher: the data has classes the start model lacks)")
        if start_file is not None:
            reused = {k: v for k, v in meta.data["start"]["rows"].items() if v is not None}
            fresh = [k for k, v in meta.data["start"]["rows"].items() if v is None]
            log.info("fine-tuning from %s (%s %dpx): head rows reused for %s; new: %s", start_file.ref, meta.arch,
                     meta.input_size, ", ".join(f"{k}<-{v}" if k != v else k for k, v in reused.items()) or "none",
                     ", ".join(fresh) or "none")
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = config.bn_momentum
    cuda = device.type == "cuda"
    # channels_last suits depthwise convolutions on both: 1.8x the images/s of NCHW on 2 CPU cores
    model = model.to(memory_format=torch.channels_last)
    if cuda:
        torch.backends.cudnn.benchmark = True
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, fused=cuda,
    )
    # What the state file must belong to: a state of another run would train these weights on.
    run = {"arch": meta.arch, "classes": meta.classes, "fingerprint": meta.data["fingerprint"],
           "ema": bool(config.ema)}
    state: dict[str, Any] = {"epoch": 0, "best_score": -1.0, "best_epoch": -1, "bad_epochs": 0, "history": [],
                             "best_metrics": {}, "run": run}
    ema = WeightAverage(model, config.ema) if config.ema else None
    if config.resume and (out / "last.state.safetensors").is_file():
        model.load_state_dict(read_weights(out / "last.safetensors", device=str(device)))
        saved = ema.tensors() if ema else None
        state = load_state(out / "last.state.safetensors", optimizer, saved, expect=run)
        if ema:
            ema.load(saved)
        log.info("resuming %s after epoch %d", out, state["epoch"])
    kept = ema.model if ema else model  # what is validated and saved as the run's model
    net = nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if cuda else None, find_unused_parameters=config.freeze_epochs > 0,
    ) if info.enabled else model

    images, labels = _to_device(train_set, device)
    soft = torch.from_numpy(train_set.soft).to(device) if train_set.soft is not None else None
    teacher = teacher_probs(teacher, images) if teacher else None
    val_images, val_labels = _to_device(val_set, device)
    weights = class_weights(train_set.labels, meta.num_classes, config.balance)
    weights = weights.to(device) if weights is not None else None
    aug = Augment(config.scale, config.rotate, config.translate, config.flip, config.jitter, config.erase,
                  config.degrade)
    per_rank = math.ceil(len(train_set) / info.world)
    steps = max(1, per_rank // config.batch_size)  # drop the ragged last batch: BatchNorm needs > 1 image
    total, warmup = steps * config.epochs, round(steps * config.warmup_epochs)
    amp = config.amp and cuda

    for epoch in range(state["epoch"], config.epochs):
        # Every random draw of an epoch derives from (seed, epoch, rank): resuming replays it exactly.
        seed_everything(config.seed * 100_003 + epoch * 101 + info.rank)
        gen = torch.Generator(device=device).manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(len(train_set), generator=gen, device=device)[info.rank :: info.world]
        frozen = epoch < config.freeze_epochs
        for p in model.features.parameters():
            p.requires_grad_(not frozen)
        net.train()
        if frozen:  # the head learns the new classes on the start model's features, BatchNorm stats included
            model.features.eval()
        started, seen = time.perf_counter(), 0
        loss_sum = torch.zeros((), device=device)  # accumulated on the device: no sync per step
        correct = torch.zeros((), device=device, dtype=torch.long)
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not (info.main and config.progress), leave=False)
        for step in bar:
            lr = lr_at(epoch * steps + step, total, warmup, config.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            x = train_transform(images[idx], meta, aug, gen)
            y = labels[idx]
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = net(x)
            target = soft[idx] if soft is not None else y
            if teacher is not None:
                target = mix(target, teacher[idx], config.distill)
            loss = F.cross_entropy(logits.float(), target, weight=weights, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema:
                ema.update()
            seen += len(y)
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            if not bar.disable and (step % 20 == 0 or step == steps - 1):
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{correct.item() / seen:.3f}")
        bar.close()
        loss_sum, correct = loss_sum.item(), correct.item()
        seconds = time.perf_counter() - started

        probs = predict_tensors(kept, val_images, meta, amp=amp)
        val_loss = F.nll_loss(probs.clamp_min(1e-8).log(), val_labels).item() if len(val_labels) else 0.0
        result = score(val_labels.cpu().numpy(), probs.argmax(1).cpu().numpy(), meta.classes)
        row = {
            "epoch": epoch + 1, "lr": round(lr, 8), "train_loss": round(loss_sum / seen, 5),
            "train_acc": round(correct / seen, 5), "val_loss": round(val_loss, 5),
            "val_acc": round(result["accuracy"], 5), "val_macro_f1": round(result["macro_f1"], 5),
            "seconds": round(seconds, 2), "images_per_s": round(seen * info.world / seconds, 1),
        }
        current = broadcast_float(result[config.select], info, device)
        state["history"].append(row)
        state["epoch"] = epoch + 1
        improved = current > state["best_score"]
        if improved:
            state.update(best_score=current, best_epoch=epoch + 1, bad_epochs=0, best_metrics={**result, "epoch": epoch + 1})
        else:
            state["bad_epochs"] += 1
        if info.main:
            meta.metrics = {**result, "epoch": epoch + 1, "selected_by": config.select, "tta": meta.tta}
            meta.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
            if improved:
                save_model(kept, meta, out / "best.safetensors")
            # last.safetensors holds the raw weights that --resume continues from; the average
            # travels in the state file
            save_model(model, meta, out / "last.safetensors")
            save_state(out / "last.state.safetensors", optimizer, state, ema.tensors() if ema else None)
            _write_metrics(out / "metrics.csv", state["history"])
            log.info(
                "epoch %d/%d  loss %.4f  train acc %.4f  val acc %.4f  macro-F1 %.4f  %.0f img/s%s",
                epoch + 1, config.epochs, row["train_loss"], row["train_acc"], row["val_acc"],
                row["val_macro_f1"], row["images_per_s"], "  *best" if improved else "",
            )
        if config.patience and state["bad_epochs"] >= config.patience:
            log.info("no %s gain for %d epochs: stopping early", config.select, config.patience)
            break

    if info.main and (out / "best.safetensors").is_file():
        _calibrate(out / "best.safetensors", val_images, val_labels, device)
    if info.enabled:
        torch.distributed.barrier()
    skipped = train_set.skipped + val_set.skipped
    if skipped and info.main:
        log.warning(describe_skipped(skipped))
    return TrainResult(out / "best.safetensors", out / "last.safetensors", state["best_metrics"], state["history"], skipped)


def _calibrate(best: Path, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> None:
    """Fit the best epoch's temperature on the validation images (engine/calibrate.py) and keep
    it in its metadata, so every runtime gives probabilities that say how often it is right."""
    from mobilefer.engine.calibrate import fit_temperature, probabilities
    from mobilefer.engine.metrics import calibration

    model, meta = load_model(best, device=str(device))
    model = model.to(memory_format=torch.channels_last)
    logits = [v.cpu().numpy() for v in logit_views(model, images, meta)]
    truth = labels.cpu().numpy()
    weights = meta.class_weights()
    meta.temperature = fit_temperature(logits, truth, weights)
    before = calibration(probabilities(logits, 1.0, weights), truth)["ece"]
    after = calibration(probabilities(logits, meta.temperature, weights), truth)["ece"]
    meta.metrics = {**meta.metrics, "temperature": meta.temperature, "ece": round(after, 4)}
    save_model(model, meta, best)
    log.info("temperature %.3f fitted on validation: calibration error %.3f -> %.3f", meta.temperature, before, after)


# Settings a resumed run may take anew: they change how fast it runs, not what it learns. So does
# --face-margin (the crop at inference) when the training images are face crops (no --crop-faces).
RESUME_OVERRIDES = ("threads", "workers", "progress", "device")
# Below this many validation images the best epoch is picked on noise.
MIN_VAL_IMAGES = 100


def _resume_config(run: Path, given: TrainConfig | None = None, typed: Collection[str] | None = None) -> TrainConfig:
    """The saved config of the run in ``run``, set to continue there. ``given``: the settings
    asked for with --resume; one that was ``typed`` (or, without ``typed``, differs from the
    default) and differs from the run's own is refused unless it is in RESUME_OVERRIDES (the
    run keeps what it started with)."""
    saved = run / "config.json"
    if not saved.is_file():
        raise ConfigError(f"--resume {run}: nothing to resume (no config.json in it)")
    try:
        raw = json.loads(saved.read_text())
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        config = TrainConfig.from_dict({**raw, "resume": str(run), "out": str(run)})
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--resume {run}: {saved} is damaged ({exc}); start a new run instead") from None
    if given is None:
        return config
    overrides = RESUME_OVERRIDES if _cuts_faces(config) else (*RESUME_OVERRIDES, "face_margin")
    defaults = TrainConfig()
    ignored = ("resume", "out", *overrides)
    asked = (lambda name: name in typed) if typed is not None else (
        lambda name: getattr(given, name) != getattr(defaults, name))
    asked_for = dataclasses.replace(given, pretrained=given.with_start().pretrained)  # none is None, as saved
    changed = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ignored
               and asked(f.name) and getattr(asked_for, f.name) != getattr(config, f.name)]
    if changed:
        raise ConfigError(f"--resume {run}: a resumed run keeps the settings it started with; leave out "
                          f"{', '.join(flag(name) for name in changed)} (only "
                          f"{', '.join(flag(name) for name in RESUME_OVERRIDES[:2])} may change), or start a new run")
    return dataclasses.replace(config, **{name: getattr(given, name) for name in overrides if asked(name)})


def _check_data(config: TrainConfig, train: LabeledImages, val: LabeledImages, val_source: str) -> None:
    """Refuse data that cannot make a model as asked; warn where the result would mislead."""
    if not len(val):
        raise DatasetError(f"no validation images in {val_source}: each class needs 2 or more images for a "
                           "split; give --val-data, or more images")
    if config.resume and (Path(config.out) / "last.safetensors").is_file():
        before = read_meta(Path(config.out) / "last.safetensors")
        if before.classes != list(train.classes) or before.data.get("fingerprint") != train.fingerprint():
            raise DatasetError(f"--resume {config.out}: {config.data} is not the data this run started on "
                               f"(classes then: {', '.join(before.classes)}; now: {', '.join(train.classes)}); "
                               "start a new run")
    if config.prior_correction and not train.prior():
        raise DatasetError(f"--prior-correction needs faces of every class in {config.data}; it has none of: "
                           + ", ".join(c for c, n in train.counts().items() if not n))
    if len(val) < MIN_VAL_IMAGES:
        log.warning("validation has only %d images (%s): the best epoch is chosen on noise; give --val-data or "
                    "a larger --val-split", len(val), ", ".join(f"{k} {v}" for k, v in val.counts().items()))
    share = train.photo_share()
    if not _cuts_faces(config) and share > 0.5:
        log.warning("%.0f%% of the images in %s are photos, not face crops (large and not square): the model "
                    "would learn whole pictures while predict shows it faces; add --crop-faces to train on "
                    "each photo's face", 100 * share, config.data)
