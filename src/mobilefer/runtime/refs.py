"""Model references: the one place that turns what a user typed into a model file.

A reference is a bundled model's name (``fer2013-small``), a path to an ``.onnx``,
``.safetensors`` or ``.pth``/``.pt`` file, or None for the default model. Every entry point
(each CLI verb, the Python API, the server, the benchmarks) resolves through
:func:`resolve_model`, so each wrong kind of reference gets the same message everywhere.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from mobilefer.errors import ModelFileError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


@dataclass(frozen=True)
class Bundled:
    """A model shipped inside the package: ONNX for the runtime, safetensors to fine-tune or export."""

    onnx: str
    safetensors: str | None = None

    def path(self, kind: str) -> Path | None:
        name = self.onnx if kind == "onnx" else self.safetensors
        return WEIGHTS_DIR / name if name else None


BUNDLED: dict[str, Bundled] = {
    # eight emotions, ten annotators' labels (FER+): fine-tuned from the FER2013 models below
    "ferplus-small": Bundled("ferplus_mobilenet_v3_small.onnx", "ferplus_mobilenet_v3_small.safetensors"),
    "ferplus-large": Bundled("ferplus_mobilenet_v3_large.onnx", "ferplus_mobilenet_v3_large.safetensors"),
    # seven emotions (FER2013's labels): the FER+ models' start, for users of that label set
    "fer2013-small": Bundled("fer2013_mobilenet_v3_small.onnx", "fer2013_mobilenet_v3_small.safetensors"),
    "fer2013-large": Bundled("fer2013_mobilenet_v3_large.onnx", "fer2013_mobilenet_v3_large.safetensors"),
}
DEFAULT_MODEL = "ferplus-small"

KINDS = {".onnx": "onnx", ".tflite": "tflite", ".safetensors": "safetensors", ".pth": "pth", ".pt": "pth"}


@dataclass(frozen=True)
class ModelFile:
    """A resolved model: its file, its format (onnx, safetensors, pth) and how the user named it."""

    path: Path
    kind: str
    ref: str

    @property
    def trainable(self) -> bool:
        """PyTorch weights: can be fine-tuned or exported (ONNX and LiteRT files cannot)."""
        return self.kind in ("safetensors", "pth")


def bundled_names() -> list[str]:
    return sorted(BUNDLED)


def _unknown_name(text: str) -> ModelFileError:
    close = difflib.get_close_matches(text, bundled_names(), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return ModelFileError(f"model {text!r}: no such file, and not a bundled model "
                          f"(bundled: {', '.join(bundled_names())}){hint}")


def _bundled(name: str, torch_weights: bool) -> ModelFile:
    entry = BUNDLED[name]
    kind = "safetensors" if torch_weights else "onnx"
    path = entry.path(kind)
    if path is None:
        raise ModelFileError(f"bundled model {name} ships no PyTorch weights, only ONNX; "
                             "it can be used for inference but not fine-tuned or exported")
    if not path.is_file():
        raise ModelFileError(f"bundled model {name} is missing its file {path}; reinstall mobilefer")
    return ModelFile(path, kind, name)


def resolve_model(ref: str | Path | None = None, *, torch_weights: bool = False) -> ModelFile:
    """The model file ``ref`` names; None: the default bundled model.

    ``torch_weights``: the caller needs PyTorch weights (fine-tuning, export): a bundled name
    gives its ``.safetensors``, and an ``.onnx`` file is refused with a message saying why.
    """
    if ref is None or str(ref).strip() == "":
        return _bundled(DEFAULT_MODEL, torch_weights)
    text = str(ref)
    if text in BUNDLED:
        return _bundled(text, torch_weights)
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if path.is_dir():
        inside = [p.name for p in (path / "best.safetensors", path / "last.safetensors") if p.is_file()]
        hint = f"; this looks like a training run: pass {path / inside[0]}" if inside else ""
        raise ModelFileError(f"{path}: is a folder; expected a model file (.onnx, .tflite, .safetensors, .pth){hint}")
    if not path.exists():
        if suffix not in KINDS and "/" not in text and "\\" not in text:
            raise _unknown_name(text)
        raise ModelFileError(f"{path}: no such model file")
    if suffix not in KINDS:
        raise ModelFileError(f"{path}: unsupported model file {suffix or '(no suffix)'}; "
                             f"expected .onnx, .tflite, .safetensors or .pth/.pt, or a bundled name ({', '.join(bundled_names())})")
    kind = KINDS[suffix]
    if torch_weights and kind in ("onnx", "tflite"):
        raise ModelFileError(f"{path}: an {'ONNX' if kind == 'onnx' else 'LiteRT'} export holds no trainable "
                             f"PyTorch weights; start from a "
                             f".safetensors checkpoint (mobilefer train writes them; bundled models ship one: "
                             f"{', '.join(bundled_names())})")
    return ModelFile(path, kind, text)
