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
    """A model shipped as one ONNX file: in this package, or in the optional package ``package``
    (the FER2013 models, ``pip install 'mobilefer[fer2013]'``). Its PyTorch weights, for
    fine-tuning and export, are made from it the first time they are needed (:mod:`.derive`)."""

    onnx: str
    package: str | None = None  # the distribution's import name, where it is not this package

    def path(self) -> Path | None:
        """Where its ONNX file is, or None where its package is not installed."""
        if self.package is None:
            return WEIGHTS_DIR / self.onnx
        import importlib.util

        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            return None
        return Path(spec.origin).parent / "weights" / self.onnx


BUNDLED: dict[str, Bundled] = {
    # eight emotions, ten annotators' labels (FER+): fine-tuned from the FER2013 models below
    "ferplus-small": Bundled("ferplus_mobilenet_v3_small.onnx"),
    "ferplus-large": Bundled("ferplus_mobilenet_v3_large.onnx"),
    # seven emotions (FER2013's labels): the FER+ models' start, for users of that label set, in
    # a package of their own (mobilefer-fer2013) so that every install does not carry them
    "fer2013-small": Bundled("fer2013_mobilenet_v3_small.onnx", "mobilefer_fer2013"),
    "fer2013-large": Bundled("fer2013_mobilenet_v3_large.onnx", "mobilefer_fer2013"),
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
    path = entry.path()
    if path is None:
        raise ModelFileError(f"bundled model {name} ships in the package {entry.package.replace('_', '-')}, which "
                             f"is not installed: pip install 'mobilefer[fer2013]' (from a clone: pip install "
                             f"./packages/fer2013)")
    if not path.is_file():
        raise ModelFileError(f"bundled model {name} is missing its file {path}; reinstall mobilefer")
    if torch_weights:  # made from the ONNX file once, kept in the user's cache
        from mobilefer.runtime.derive import checkpoint_of

        return ModelFile(checkpoint_of(path), "safetensors", name)
    return ModelFile(path, "onnx", name)


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
                             f".safetensors checkpoint (mobilefer train writes them) or a bundled name "
                             f"({', '.join(bundled_names())})")
    return ModelFile(path, kind, text)
