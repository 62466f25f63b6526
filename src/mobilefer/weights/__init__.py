"""Models bundled with the package: FER2013-trained MobileNetV3s as self-describing ONNX files.

See MODEL_CARD.md in the repository for data, recipe, accuracy and limits.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
BUNDLED = {
    "fer2013-small": HERE / "fer2013_mobilenet_v3_small.onnx",
    "fer2013-large": HERE / "fer2013_mobilenet_v3_large.onnx",
}
DEFAULT = "fer2013-small"


def resolve(name_or_path: str | Path | None) -> Path:
    """A bundled model's name (fer2013-small, fer2013-large) or a path, as a path; None: the default."""
    if name_or_path is None:
        return default_model()
    return BUNDLED.get(str(name_or_path), Path(name_or_path))


def default_model() -> Path:
    path = BUNDLED[DEFAULT]
    if not path.is_file():
        raise FileNotFoundError(f"bundled model missing at {path}; reinstall mobilefer or pass --model PATH")
    return path
