"""One error family. Every error a user can act on is a :class:`MobileferError`; the CLI
prints it as one line (``mobilefer VERB: error: MESSAGE``) and exits with code 2, the
server answers it with a 4xx. Messages name the file, flag or value and what was expected.

Subclasses also derive from the built-in type callers used to catch (ValueError,
ImportError, RuntimeError), so ``except ValueError`` around a reader keeps working.
"""
from __future__ import annotations


class MobileferError(Exception):
    """Bad input, a missing file or extra, an unusable model: something the user can fix."""


class ConfigError(MobileferError, ValueError):
    """A setting is out of range or inconsistent; the message names the setting (flag)."""


class ModelFileError(MobileferError, ValueError):
    """A model reference or file cannot be used; the message names it and says why."""


class DatasetError(MobileferError, ValueError):
    """A dataset cannot be used as given; the message names the file and what was expected."""


class ImageDecodeError(MobileferError, ValueError):
    """An image file could not be read; the message names it."""


class NoFaceError(ImageDecodeError):
    """An image that had to hold a face (a training photo with --crop-faces) holds none."""


class SourceError(MobileferError, ValueError):
    """A video, webcam, stream or image source cannot be opened."""


class DetectorUnavailable(MobileferError, RuntimeError):
    """A named face detector cannot run here; the message says what to install."""


class MissingExtraError(MobileferError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class OutputError(MobileferError, OSError):
    """An output path cannot be written as asked (a folder where a file is expected, ...)."""


def require(module: str, extra: str, what: str) -> None:
    """Raise MissingExtraError unless ``module`` is importable (checked without importing it)."""
    if not importable(module):
        raise MissingExtraError(f"{what} needs {module}: pip install 'mobilefer[{extra}]'")


def importable(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def flag(name: str) -> str:
    """The command-line flag of a config field: ``val_split`` -> ``--val-split``."""
    return "--" + name.replace("_", "-")


def whole(low: int, high: int | None = None):
    """A rule's predicate: a whole number (not a bool) from ``low`` up to ``high``."""
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v <= high)


def check_fields(config: object, rules: dict[str, tuple[object, str]], flags: dict[str, str] | None = None) -> None:
    """ConfigError naming the flag of the first field whose value breaks its rule.

    ``rules`` maps a field name to (predicate, what is expected); None values pass (unset).
    ``flags`` names the flag of a field whose flag is not simply its name (``queue_timeout_s``).
    """
    for name, (ok, expected) in rules.items():
        value = getattr(config, name)
        if value is not None and not ok(value):  # type: ignore[operator]
            raise ConfigError(f"{(flags or {}).get(name) or flag(name)} {value!r}: expected {expected}")
