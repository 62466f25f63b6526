"""Run configurations as dataclasses; the defaults live here and only here."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved resolved as ``OUT/config.json``."""

    data: str = ""
    val_data: str | None = None
    usage: str | None = None  # FER2013 CSV rows to train on (default Training when the CSV has Usage)
    val_usage: str | None = None  # CSV rows to validate on (default PublicTest)
    val_split: float = 0.1  # used when there is no val data: stratified, seeded
    limit: int | None = None  # train on at most this many images (stratified, seeded)
    val_limit: int | None = None
    arch: str = "mobilenet_v3_large"
    pretrained: str | None = None  # None, "imagenet" or a path to a torchvision state_dict
    img_size: int = 112
    base_size: int | None = None  # resolution images are stored at; default: the data's own, capped at img_size
    channels: int | None = None  # 1 or 3; default: 1 for gray data
    face_margin: float = 0.15
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    # torchvision's MobileNetV3 uses 0.01, which leaves eval-mode statistics unsettled in
    # short runs on small data; PyTorch's default 0.1 settles within tens of steps.
    bn_momentum: float = 0.1
    balance: str = "none"  # class weights in the loss: none, sqrt or inverse frequency
    # face-friendly augmentation, applied on the training device
    scale: tuple[float, float] = (0.85, 1.1)  # side of the sampled view relative to the image
    rotate: float = 12.0  # degrees
    translate: float = 0.08  # fraction of the side
    flip: bool = True
    jitter: float = 0.25  # brightness/contrast strength
    erase: float = 0.25  # probability of random erasing
    select: str = "macro_f1"  # val metric that picks best: macro_f1 or accuracy
    tta: str = "none"  # "flip": validate (and later predict) with horizontal-flip averaging
    patience: int = 0  # stop after this many epochs without improvement; 0 = never
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA
    workers: int | None = None  # decode threads
    out: str = "runs/train"
    resume: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.scale = tuple(self.scale)  # JSON round trip turns tuples into lists
        if self.select not in ("macro_f1", "accuracy"):
            raise ValueError(f"select must be macro_f1 or accuracy, got {self.select!r}")
        if self.balance not in ("none", "sqrt", "inverse"):
            raise ValueError(f"balance must be none, sqrt or inverse, got {self.balance!r}")
        if self.tta not in ("none", "flip"):
            raise ValueError(f"tta must be none or flip, got {self.tta!r}")
        for name in ("epochs", "batch_size", "img_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class EvalConfig:
    model: str = ""
    data: str = ""
    usage: str | None = None  # CSV rows to score (default PublicTest when the CSV has Usage)
    classes: list[str] | None = None  # for plain .pth state_dicts
    batch_size: int = 256
    tta: str | None = None  # None: the model's own; "none" or "flip" override
    limit: int | None = None
    json: str | None = None
    plot: str | None = None
    workers: int | None = None
