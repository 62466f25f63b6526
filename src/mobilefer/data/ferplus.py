"""FER+ (Barsoum et al., ICMI 2016): the FER2013 faces with ten annotators' votes each.

Two forms, as users get them:

- the FERPlus folder layout (``FER2013Train/`` with ``label.csv`` and ``fer0000000.png`` ...),
  as a folder or zipped; ``label.csv`` has no header: image name, face box, then vote counts
  for neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF;
- the official pair ``fer2013new.csv`` (header ``Usage,Image name,neutral,...,NF``, one row per
  row of ``fer2013.csv``, in the same order; an empty image name marks a face FER+ dropped)
  plus Kaggle's ``fer2013.csv`` for the pixels.

Votes become labels by :func:`vote_labels`, as the paper does: single votes are dropped as
outliers; ``majority`` keeps an image when one emotion holds more than half of the remaining
votes; ``soft`` trains on the distribution over the eight emotions and keeps an image when the
emotions hold more than half of the votes. Images whose votes say "not a face" (NF) or
"unknown" are dropped and counted by reason.
"""
from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from mobilefer.classes import canonical_name
from mobilefer.errors import DatasetError, ImageDecodeError

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")
EMOTIONS = [canonical_name(c) for c in VOTE_COLUMNS[:8]]  # neutral, happy, surprise, sad, angry, disgust, fear, contempt
UNKNOWN, NOT_FACE = 8, 9
LABEL_FILE = "label.csv"


@dataclass
class VoteLabels:
    """Labels from vote counts: which images stay, their class index into EMOTIONS, and why others left."""

    keep: np.ndarray  # bool (N,)
    labels: np.ndarray  # int64 (N,): majority emotion, or the top of the distribution (soft)
    soft: np.ndarray | None  # float32 (N, 8) vote distribution over EMOTIONS (soft mode), rows sum to 1
    dropped: Counter = field(default_factory=Counter)


def vote_labels(votes: np.ndarray, mode: str = "majority") -> VoteLabels:
    """Labels for int vote counts (N, 10) in VOTE_COLUMNS order; see the module doc for the rules."""
    if mode not in ("majority", "soft"):
        raise ValueError(f"label mode must be majority or soft, got {mode!r}")
    v = np.asarray(votes, dtype=np.float64).copy()
    v[v <= 1] = 0  # a single annotator's vote is an outlier
    total = v.sum(1)
    top = v.argmax(1)
    clear = v.max(1) > 0.5 * total  # one column (emotion, unknown or NF) holds over half
    emotion = v[:, :8]
    if mode == "majority":
        keep = clear & (top < 8)
        labels, soft = top, None
    else:
        esum = emotion.sum(1)
        keep = esum > 0.5 * total
        with np.errstate(invalid="ignore", divide="ignore"):
            soft = np.where(keep[:, None], emotion / np.maximum(esum, 1)[:, None], 0).astype(np.float32)
        labels = emotion.argmax(1)
    dropped: Counter = Counter()
    for i in np.flatnonzero(~keep):
        if total[i] == 0:
            dropped["no two annotators agreed on anything"] += 1
        elif clear[i] and top[i] == NOT_FACE:
            dropped["not a face"] += 1
        elif clear[i] and top[i] == UNKNOWN:
            dropped["unknown emotion"] += 1
        else:
            dropped["no majority" if mode == "majority" else "unknown / not-a-face votes outweigh emotions"] += 1
    return VoteLabels(keep, labels.astype(np.int64), soft, dropped)


# FER+ has ten annotators an image; allow re-labelled sets with more, never absurd counts.
MAX_VOTES = 1000


def _votes(row: list[str], where: str) -> np.ndarray:
    try:
        values = [float(x) for x in row]
        if not all(v == int(v) for v in values):  # inf and nan fail here too (OverflowError, ValueError)
            raise ValueError
        counts = np.array([int(v) for v in values], dtype=np.int64)
    except (ValueError, OverflowError):
        raise DatasetError(f"{where}: vote counts must be whole numbers, got {row}") from None
    if len(counts) != 10 or counts.min() < 0 or counts.max() > MAX_VOTES:
        raise DatasetError(f"{where}: expected 10 vote counts from 0 to {MAX_VOTES} ({', '.join(VOTE_COLUMNS)}), "
                           f"got {row}")
    return counts


def unique_rows(rows: list[Row], where: str) -> tuple[list[Row], int]:
    """Each image once: a repeat with the same votes is dropped (and counted), a repeat with other
    votes is a DatasetError naming it (which label would be right is not ours to guess)."""
    seen: dict[str, np.ndarray] = {}
    kept: list[Row] = []
    for row in rows:
        before = seen.get(row[0])
        if before is None:
            seen[row[0]] = row[1]
            kept.append(row)
        elif not np.array_equal(before, row[1]):
            raise DatasetError(f"{where}: {row[0]} is listed twice with different votes ({before.tolist()} and "
                               f"{row[1].tolist()}); keep one of the rows")
    return kept, len(rows) - len(kept)


# Rows of a listing: (name, votes (10,), loader of encoded bytes or pixels)
Row = tuple[str, np.ndarray, Callable[[], "bytes | np.ndarray"]]


def _label_rows(text: str, where: str, load: Callable[[str], Callable[[], bytes]]) -> list[Row]:
    rows: list[Row] = []
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 12:
            raise DatasetError(f"{where}:{line}: expected 12 columns (name, box, 10 vote counts), got {len(row)}")
        name = row[0].strip()
        rows.append((name, _votes(row[2:], f"{where}:{line}"), load(name)))
    if not rows:
        raise DatasetError(f"{where}: no rows")
    return rows


def ferplus_folder(root: Path) -> list[Row] | None:
    """Rows of a FERPlus folder (``label.csv`` beside the PNGs); None when ``root`` is not one."""
    labels = root / LABEL_FILE
    if not labels.is_file():
        return None
    return _label_rows(labels.read_text(), str(labels), lambda name: (root / name).read_bytes)


def ferplus_zip(archive: zipfile.ZipFile, path: Path) -> list[Row] | None:
    """Rows of a zipped FERPlus folder; None when the zip holds no ``label.csv``."""
    found = [n for n in archive.namelist() if PurePosixPath(n).name == LABEL_FILE and "__MACOSX" not in n]
    if not found:
        return None
    if len(found) > 1:
        raise DatasetError(f"{path}: holds several FER+ splits ({', '.join(sorted(found))}); "
                           "zip one split (e.g. FER2013Train/) per file")
    folder = str(PurePosixPath(found[0]).parent)
    prefix = "" if folder == "." else folder + "/"

    def load(name: str) -> Callable[[], bytes]:
        return lambda: archive.read(prefix + name)

    return _label_rows(archive.read(found[0]).decode("utf-8-sig"), f"{path}:{found[0]}", load)


def is_ferplus_csv(path: Path) -> bool:
    """True for FER+'s ``fer2013new.csv`` (header with 'Image name' and the vote columns)."""
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = [h.strip().lower() for h in next(csv.reader(handle), [])]
    return "image name" in header and "neutral" in header


def ferplus_csv(path: Path, pixels: str | Path | None, usage: str | None) -> tuple[list[Row], int]:
    """Rows of ``fer2013new.csv`` + ``fer2013.csv`` with Usage ``usage`` (all when None), and the
    number of rows FER+ dropped (empty image name: not a face)."""
    pixels_path = Path(pixels) if pixels else path.with_name("fer2013.csv")
    if not pixels_path.is_file():
        raise DatasetError(f"{path}: FER+ votes need the FER2013 pixels: no {pixels_path}; "
                           "pass --pixels PATH/fer2013.csv")
    with open(path, newline="", encoding="utf-8-sig") as votes_file, \
            open(pixels_path, newline="", encoding="utf-8-sig") as pixel_file:
        votes_rows, pixel_rows = csv.reader(votes_file), csv.reader(pixel_file)
        header = [h.strip().lower() for h in next(votes_rows)]
        pixel_header = [h.strip().lower() for h in next(pixel_rows, [])]
        if "pixels" not in pixel_header:
            raise DatasetError(f"{pixels_path}: line 1: expected the FER2013 header with a 'pixels' column")
        missing = [c for c in ("usage", "image name", *(c.lower() for c in VOTE_COLUMNS)) if c not in header]
        if missing:
            raise DatasetError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
        col = {name: header.index(name) for name in header}
        vote_cols = [col[c.lower()] for c in VOTE_COLUMNS]
        col_pixels = pixel_header.index("pixels")
        col_pixel_usage = pixel_header.index("usage") if "usage" in pixel_header else None
        rows: list[Row] = []
        not_faces = 0
        for line, (row, pixel_row) in enumerate(zip(votes_rows, pixel_rows), start=2):
            if len(row) < len(header):
                raise DatasetError(f"{path}: line {line}: {len(row)} of the {len(header)} columns"
                                   + (" (a blank line)" if not any(c.strip() for c in row) else ""))
            if len(pixel_row) < len(pixel_header):
                raise DatasetError(f"{pixels_path}: line {line}: {len(pixel_row)} of the {len(pixel_header)} columns"
                                   + (" (a blank line)" if not any(c.strip() for c in pixel_row) else ""))
            row_usage = row[col["usage"]].strip()
            if col_pixel_usage is not None and pixel_row[col_pixel_usage].strip() != row_usage:
                raise DatasetError(f"{path}: line {line}: Usage {row_usage!r} but {pixels_path} line {line} says "
                                   f"{pixel_row[col_pixel_usage].strip()!r}; the two files must be in the same order")
            if usage is not None and row_usage.lower() != usage.lower():
                continue
            name = row[col["image name"]].strip()
            if not name:
                not_faces += 1
                continue
            values = pixel_row[col_pixels]
            rows.append((name, _votes([row[i] for i in vote_cols], f"{path}: line {line}"),
                         lambda values=values, line=line: _pixels(values, pixels_path, line)))
        if next(votes_rows, None) is not None or next(pixel_rows, None) is not None:
            raise DatasetError(f"{path} and {pixels_path} have different numbers of rows; "
                               "fer2013new.csv must match fer2013.csv row for row")
    if not rows:
        raise DatasetError(f"{path}: no rows" + (f" with Usage {usage}" if usage else ""))
    return rows, not_faces


def _pixels(values: str, path: Path, line: int) -> np.ndarray:
    try:
        pixels = np.array(values.split(), dtype=np.int64)
    except ValueError:
        raise ImageDecodeError(f"{path}: line {line}: pixels must be space-separated integers") from None
    side = int(np.sqrt(pixels.size))
    if pixels.size == 0 or side * side != pixels.size or pixels.min() < 0 or pixels.max() > 255:
        raise ImageDecodeError(f"{path}: line {line}: expected a square image of 0-255 values, got {pixels.size} values")
    return pixels.astype(np.uint8).reshape(side, side)
