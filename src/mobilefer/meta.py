"""The metadata every saved model carries: what it is and how to feed it.

Torch-free on purpose: the ONNX runtime, the server and the CLI read it without PyTorch.
Inference, evaluation and export take preprocessing only from here.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

FORMAT = "mobilefer/1"
METADATA_KEY = "mobilefer"  # key of the JSON blob in safetensors headers and ONNX metadata_props
# key of an ONNX file's state entries no forward pass reads ({name: int}), so its weights come back whole
BUFFERS_KEY = "mobilefer.buffers"


@dataclass
class ModelMeta:
    """Self-description of a trained classifier.

    ``base_size`` is the resolution images were stored at for training (48 for FER2013):
    every input, training or inference, is first area-resized to ``base_size`` and then
    bilinearly resized to ``input_size``, so a sharp 300 px face and a 48 px training crop
    look alike to the network.
    """

    arch: str
    classes: list[str]
    input_size: int
    channels: int
    base_size: int
    mean: list[float]
    std: list[float]
    face_margin: float = 0.15  # extra border around a detected face box, as a fraction of its side
    tta: str = "none"  # "none" or "flip": test-time augmentation the model was selected with
    # logits are divided by this before the softmax, in every runtime: fitted on validation data
    # so that a face's top probability says how often such a face is right (engine/calibrate.py)
    temperature: float = 1.0
    # each class's share of the training labels (of the votes, for soft labels), and how far the
    # reported probabilities lean from that prior toward classes all equally common: each is
    # multiplied by prior ** -prior_correction and they are summed to 1 again, in every runtime
    # (0: as trained; 1: the balanced posterior, logit adjustment, Menon et al. 2021)
    prior: list[float] = field(default_factory=list)
    prior_correction: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    format: str = FORMAT

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean and std need one value per channel")
        if not self.classes:
            raise ValueError("a model needs at least one class")
        if self.tta not in ("none", "flip"):
            raise ValueError(f"tta must be 'none' or 'flip', got {self.tta!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be above 0, got {self.temperature!r}")
        if self.prior and (len(self.prior) != len(self.classes) or not all(p > 0 for p in self.prior)):
            raise ValueError(f"prior needs a share above 0 for each of the {len(self.classes)} classes")
        if not 0 <= self.prior_correction <= 1 or (self.prior_correction and not self.prior):
            raise ValueError(f"prior_correction must be 0 to 1, with a prior, got {self.prior_correction!r}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_weights(self) -> list[float] | None:
        """What each class's probability is multiplied by before they are summed to 1 again (the
        prior correction); None where the model corrects nothing."""
        if not self.prior_correction:
            return None
        return [p ** -self.prior_correction for p in self.prior]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelMeta":
        raw = json.loads(text)
        fmt = raw.get("format", "")
        if not str(fmt).startswith("mobilefer/"):
            raise ValueError(f"not mobilefer metadata (format {fmt!r})")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def summary(self) -> str:
        acc = self.metrics.get("accuracy")
        scored = f", val accuracy {acc:.3f}" if isinstance(acc, (int, float)) else ""
        corrected = f", prior correction {self.prior_correction:g}" if self.prior_correction else ""
        return (
            f"{self.arch} {self.channels}x{self.input_size}x{self.input_size} "
            f"(from {self.base_size} px), classes: {', '.join(self.classes)}{scored}{corrected}"
        )


def decode_meta(blob: str | None, path: object, error: type[ValueError], missing: str) -> ModelMeta:
    """The ModelMeta in a file's metadata ``blob``; ``error`` names ``path`` when absent or bad."""
    if blob is None:
        raise error(f"{path}: {missing}")
    try:
        return ModelMeta.from_json(blob)
    except (ValueError, TypeError) as exc:
        raise error(f"{path}: bad mobilefer metadata ({exc})") from None


def library_versions(*modules: str) -> dict[str, str]:
    """Versions of mobilefer and the named, already importable modules."""
    import importlib
    import platform

    from mobilefer import __version__

    out = {"mobilefer": __version__, "python": platform.python_version()}
    for name in modules:
        try:
            out[name] = getattr(importlib.import_module(name), "__version__", "?")
        except ImportError:
            pass
    return out
