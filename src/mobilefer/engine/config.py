"""Run configurations as dataclasses; the defaults live here and only here."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobilefer.atomic import check_output_file
from mobilefer.cores import THREADS_RULE
from mobilefer.errors import ConfigError, check_fields, require, whole

if TYPE_CHECKING:
    from mobilefer.meta import ModelMeta


# From-scratch and fine-tuning defaults: a run that starts from a trained mobilefer model
# (--pretrained NAME|PATH) needs a lower learning rate and fewer epochs, and keeps the
# start model's architecture and input size unless told otherwise.
DEFAULT_ARCH = "mobilenet_v3_large"
DEFAULT_IMG_SIZE = 112
SCRATCH = {"epochs": 30, "lr": 2e-3, "freeze_epochs": 0}
# --pretrained's default: the bundled FER+ model of the run's --arch (without --arch, the default
# model), so a small folder of faces is a fine-tune of a model that reads emotions already; a
# run of 3-channel images, which no bundled model reads, starts from random weights.
AUTO_START = "auto"
START_FOR_ARCH = {"mobilenet_v3_small": "ferplus-small", "mobilenet_v3_large": "ferplus-large"}
SCRATCH_NAMES = ("none", "scratch")
FINE_TUNE = {"epochs": 10, "lr": 5e-4, "freeze_epochs": 1}
LABEL_MODES = ("majority", "soft")
# The square crop around a detector's box that matches FER-style face crops: on FER+ faces both
# detectors' boxes span the crop edge to edge (CenterFace: 0.995 of its side high, Haar: 0.98;
# benchmarks/bench_face_crop.py), so no margin. Models trained on FER-like crops predict on these.
FACE_MARGIN = 0.0


def _is_model(start: str | None) -> bool:
    """Whether ``start`` names a trained mobilefer model (a fine-tune), not ImageNet, a plain
    state_dict or random weights."""
    return (bool(start) and start not in ("imagenet", AUTO_START, *SCRATCH_NAMES)
            and not str(start).endswith((".pth", ".pt")))


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved resolved as ``OUT/config.json``.

    Fields left None are resolved by :meth:`resolved`: from the start model when
    fine-tuning (arch, img_size), else from SCRATCH / FINE_TUNE and the defaults above.
    """

    data: str = ""
    val_data: str | None = None
    usage: str | None = None  # FER2013 CSV rows to train on (default Training when the CSV has Usage)
    val_usage: str | None = None  # CSV rows to validate on (default PublicTest)
    pixels: str | None = None  # fer2013.csv beside a FER+ fer2013new.csv (default: found in its folder)
    labels: str = "majority"  # vote-count data (FER+): majority label, or soft = the vote distribution
    val_split: float = 0.1  # used when there is no val data: stratified, seeded
    limit: int | None = None  # train on at most this many images (stratified, seeded)
    val_limit: int | None = None
    arch: str | None = None  # default: the start model's, else DEFAULT_ARCH
    # auto (see AUTO_START), none (random weights), imagenet, a bundled model name, a .safetensors,
    # or a torchvision state_dict .pth; None: none
    pretrained: str | None = AUTO_START
    # a fine-tune keeps the start model's classes its data lacks (taught by the start model)
    keep_classes: bool = False
    img_size: int | None = None  # default: the start model's, else DEFAULT_IMG_SIZE
    base_size: int | None = None  # resolution images are stored at; default: the data's own, capped at img_size
    channels: int | None = None  # 1 or 3; default: the start model's, else 1 for gray data
    face_margin: float | None = None  # crop margin around a detected face; default: the start model's, else FACE_MARGIN
    # True: photos, not face crops: train on each one's largest face, cropped as predict does (an image
    # without one left out); None: so for images larger than the start model's faces (its base size, or
    # --base-size), whole where none is found; False: every image as it is
    crop_faces: bool | None = None
    epochs: int | None = None  # default: SCRATCH or FINE_TUNE
    freeze_epochs: int | None = None  # epochs training only the head (backbone frozen); default as epochs
    batch_size: int = 128
    lr: float | None = None  # peak AdamW learning rate; default: SCRATCH or FINE_TUNE
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    # torchvision's MobileNetV3 uses 0.01, which leaves eval-mode statistics unsettled in
    # short runs on small data; PyTorch's default 0.1 settles within tens of steps.
    bn_momentum: float = 0.1
    balance: str = "none"  # class weights in the loss: none, sqrt or inverse frequency
    # how far reported probabilities lean from the training prior toward equal classes, 0 to 1
    # (ModelMeta.prior_correction): stored in the model, used by validation, calibration and every runtime
    prior_correction: float = 0.0
    # face-friendly augmentation, applied on the training device
    scale: tuple[float, float] = (0.85, 1.1)  # side of the sampled view relative to the image
    rotate: float = 12.0  # degrees
    translate: float = 0.08  # fraction of the side
    flip: bool = True
    jitter: float = 0.25  # brightness/contrast strength
    erase: float = 0.25  # probability of random erasing
    degrade: float = 0.0  # share of faces blurred, noised or lit badly (data.augment)
    select: str = "macro_f1"  # val metric that picks best: macro_f1, accuracy or balanced_accuracy
    tta: str | None = None  # "flip": validate (and later predict) with flip averaging; default: the start model's, else none
    patience: int = 0  # stop after this many epochs without improvement; 0 = never
    # exponential moving average of the weights (0 = off): validated, selected and saved
    # instead of the raw weights; ~0.999 smooths the last few hundred steps of a short fine-tune
    ema: float = 0.0
    # distillation: a teacher model's probabilities on the training images, blended into the
    # target with this weight (see engine/distill.py)
    teacher: str | None = None
    distill: float = 0.5
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA
    workers: int | None = None  # decode threads
    threads: int | None = None  # PyTorch CPU threads; default: the cores this process may use, up to 4
    out: str = "runs/train"
    resume: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.scale = tuple(self.scale)  # JSON round trip turns tuples into lists
        choices = {"select": ("macro_f1", "accuracy", "balanced_accuracy"), "balance": ("none", "sqrt", "inverse"),
                   "tta": ("none", "flip"), "labels": LABEL_MODES}
        positive_int = (whole(1), "a whole number of at least 1")
        check_fields(self, {
            **{name: (lambda v, c=c: v in c, " or ".join(c)) for name, c in choices.items()},
            "val_split": (lambda v: 0 < v < 1, "a fraction between 0 and 1, e.g. 0.1"),
            "limit": (whole(2), "at least 2 images"),
            "val_limit": (whole(1), "at least 1 image"),
            "epochs": positive_int, "workers": positive_int, "threads": THREADS_RULE,
            "ema": (lambda v: v == 0 or 0.5 <= v < 1, "0 (off) or a decay from 0.5 to below 1, e.g. 0.999"),
            "distill": (lambda v: 0 < v <= 1, "a weight above 0, at most 1 (1: the teacher alone)"),
            "freeze_epochs": (whole(0), "0 or more epochs"),
            "batch_size": (whole(2), "at least 2 (BatchNorm needs 2 images a batch)"),
            "img_size": (whole(16, 1024), "16 to 1024 pixels"),
            "base_size": (whole(8, 1024), "8 to 1024 pixels"),
            "channels": (lambda v: v in (1, 3), "1 or 3"),
            "lr": (lambda v: 0 < v < 1, "a learning rate above 0 and below 1"),
            "weight_decay": (lambda v: 0 <= v < 1, "0 or more, below 1"),
            "warmup_epochs": (lambda v: v >= 0, "0 or more"),
            "label_smoothing": (lambda v: 0 <= v < 1, "0 or more, below 1"),
            "bn_momentum": (lambda v: 0 < v <= 1, "above 0, at most 1"),
            "face_margin": (lambda v: 0 <= v <= 1, "0 to 1 (a fraction of the face side)"),
            "erase": (lambda v: 0 <= v <= 1, "a probability from 0 to 1"),
            "degrade": (lambda v: 0 <= v <= 1, "a share from 0 to 1"),
            "prior_correction": (lambda v: 0 <= v <= 1, "0 (none) to 1 (classes as if all equally common)"),
            "jitter": (lambda v: 0 <= v <= 1, "0 to 1"),
            "patience": (whole(0), "0 (off) or more epochs"),
        })
        if self.keep_classes and not _is_model(self.start_name()):
            raise ConfigError(f"--keep-classes keeps the classes of the model a fine-tune starts from, and "
                              f"--pretrained {self.pretrained} starts from no trained model (give a bundled name "
                              "or a .safetensors, or leave --keep-classes out)")

    @property
    def fine_tune(self) -> bool:
        """Starting from a trained mobilefer model (not ImageNet, not a plain state_dict, not scratch)."""
        return _is_model(self.pretrained)

    def start_name(self) -> str | None:
        """What ``pretrained`` starts from: auto -> the bundled model of --arch (or None where the
        run's --channels 3 fit none), none/scratch -> None, anything else as it is."""
        from mobilefer.models import resolve_arch
        from mobilefer.runtime.refs import DEFAULT_MODEL

        if self.pretrained in SCRATCH_NAMES:
            return None
        if self.pretrained == AUTO_START:
            return None if self.channels == 3 else START_FOR_ARCH[resolve_arch(self.arch)] if self.arch else DEFAULT_MODEL
        return self.pretrained

    def with_start(self) -> "TrainConfig":
        """A copy whose ``pretrained`` names the start itself (:meth:`start_name`)."""
        return dataclasses.replace(self, pretrained=self.start_name())

    def resolved(self, start: "ModelMeta | None" = None) -> "TrainConfig":
        """A copy with every None default filled in; ``start`` is the fine-tuning start model's metadata."""
        defaults = FINE_TUNE if self.fine_tune else SCRATCH
        filled = {name: value for name, value in defaults.items() if getattr(self, name) is None}
        if start is not None:
            from mobilefer.models import resolve_arch

            if self.arch is not None and resolve_arch(self.arch) != start.arch:
                raise ConfigError(f"--arch {self.arch}: the start model {self.pretrained} is a {start.arch}; "
                                  "fine-tuning keeps its architecture (leave --arch out)")
            if self.channels is not None and self.channels != start.channels:
                raise ConfigError(f"--channels {self.channels}: the start model {self.pretrained} takes "
                                  f"{start.channels} channel(s)")
            filled.update(arch=start.arch, channels=start.channels, img_size=self.img_size or start.input_size,
                          base_size=self.base_size or start.base_size, tta=self.tta or start.tta,
                          face_margin=start.face_margin if self.face_margin is None else self.face_margin)
        filled.setdefault("arch", self.arch or DEFAULT_ARCH)
        filled.setdefault("img_size", self.img_size or DEFAULT_IMG_SIZE)
        filled.setdefault("tta", self.tta or "none")
        filled.setdefault("face_margin", FACE_MARGIN if self.face_margin is None else self.face_margin)
        resolved = dataclasses.replace(self, **filled)
        if resolved.freeze_epochs > resolved.epochs:
            raise ConfigError(f"--freeze-epochs {resolved.freeze_epochs}: more than the {resolved.epochs} epochs "
                              "of the run; expected at most --epochs")
        return resolved

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
    model: str | None = None  # bundled name or path; None: the default bundled model
    data: str = ""
    usage: str | None = None  # CSV rows to score (default PublicTest when the CSV has Usage)
    pixels: str | None = None  # fer2013.csv beside a FER+ fer2013new.csv
    classes: list[str] | None = None  # for plain .pth state_dicts
    batch_size: int = 256
    tta: str | None = None  # None: the model's own; "none" or "flip" override
    limit: int | None = None
    json: str | None = None
    plot: str | None = None
    workers: int | None = None
    threads: int | None = None  # inference threads (PyTorch or ONNX Runtime); default: the idle cores, up to 4
    crop_faces: bool | None = None  # None: as the model was trained, photos cut to their face (LargestFaceCrop.for_model)
    device: str = "auto"  # auto, cpu, cuda or cuda:N (runtime.devices)
    shift: int | None = None  # score the shifted copy of the data made from this seed (data.shift)

    def __post_init__(self) -> None:
        from mobilefer.runtime.devices import check_device

        check_device(self.device)
        if not self.data:
            raise ConfigError("evaluate needs --data: labelled images (folder, zip, CSV or FER+ data)")
        check_fields(self, {
            "batch_size": (whole(1), "a whole number of at least 1"),
            "limit": (whole(1), "at least 1 image"),
            "workers": (whole(1), "a whole number of at least 1"),
            "threads": THREADS_RULE,
            "tta": (lambda v: v in ("none", "flip"), "none or flip"),
            "shift": (whole(0), "a seed: a whole number of at least 0"),
        })
        check_output_file(self.json, "--json")
        check_output_file(self.plot, "--plot")
        if self.plot:
            require("matplotlib", "plot", "--plot")
