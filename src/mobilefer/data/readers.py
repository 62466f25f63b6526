"""Labelled face datasets: an ImageFolder tree, a zip of one, the FER2013 CSV, or FER+
vote counts (the FERPlus folder layout, zipped or not, or fer2013new.csv + fer2013.csv).

Every reader yields the same thing, a :class:`LabeledImages` with the images decoded once
into one uint8 array (N, S, S, C) at the base size, labels indexing canonical class names,
the files that could not be read (skipped, never fatal) and, for vote data, the images
left out by the labelling rule (counted by reason) and the soft targets.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from mobilefer.classes import FER2013_IDS, canonical_name
from mobilefer.data import ferplus
from mobilefer.data.images import ImageDecodeError, decode_image, is_gray, is_image_name
from mobilefer.data.preprocess import to_base
from mobilefer.errors import DatasetError, NoFaceError

NO_FACE = "no face found"  # the words of every skipped-without-a-face reason

log = logging.getLogger(__name__)

CSV_USAGES = ("Training", "PublicTest", "PrivateTest")


@dataclass
class LabeledImages:
    """Decoded images: uint8 (N, S, S, C), int64 labels into ``classes``, one file name each."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    files: list[str]
    source: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    soft: np.ndarray | None = None  # float32 (N, K) target distributions (FER+ --labels soft), rows sum to 1
    dropped: dict[str, int] = field(default_factory=dict)  # images the labelling rule left out, by reason
    sizes: np.ndarray | None = None  # int (N, 2): each image's (height, width) as read, before any crop

    def photo_share(self) -> float:
        """Share of images that look like photos rather than face crops: not square (sides
        differ by 20 %+) and at least 160 px on the short side."""
        if self.sizes is None or not len(self.sizes):
            return 0.0
        short, long = self.sizes.min(axis=1), self.sizes.max(axis=1)
        return float(((short >= 160) & (long >= 1.2 * short)).mean())

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def base_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    def counts(self) -> dict[str, int]:
        found = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, found)}

    def prior(self) -> list[float]:
        """Each class's share of the labels (of the votes, for soft targets), rounded to 6 places;
        empty where some class has none (ModelMeta.prior)."""
        shares = self.soft.mean(0) if self.soft is not None else np.bincount(self.labels, minlength=len(self.classes)) / max(len(self), 1)
        shares = [round(float(v), 6) for v in shares]
        return shares if all(v > 0 for v in shares) else []

    def subset(self, index: Sequence[int] | np.ndarray) -> "LabeledImages":
        index = np.asarray(index, dtype=np.int64)
        return LabeledImages(
            self.images[index], self.labels[index], list(self.classes),
            [self.files[i] for i in index], self.source, [],
            None if self.soft is None else self.soft[index], dict(self.dropped),
            None if self.sizes is None else self.sizes[index],
        )

    def fingerprint(self) -> str:
        """sha256 over pixels and labels: identifies the exact data a model saw."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.images).data)
        digest.update(self.labels.astype(np.int64).tobytes())
        digest.update("\n".join(self.classes).encode())
        if self.soft is not None:
            digest.update(np.ascontiguousarray(self.soft).tobytes())
        return digest.hexdigest()[:16]


# An entry is (name, canonical class, loader); the loader returns encoded bytes or pixels.
_Entry = tuple[str, str, Callable[[], "bytes | np.ndarray"]]


@dataclass
class Listing:
    """What a source holds, before decoding: entries, and for vote data the fixed class
    order, the soft targets (one row per entry, in ``classes`` order) and what was dropped."""

    entries: list[_Entry]
    classes: list[str] | None = None
    soft: np.ndarray | None = None
    dropped: Counter = field(default_factory=Counter)


def _vote_listing(rows: list[ferplus.Row], labels: str, dropped: Counter | None = None,
                  where: str = "") -> Listing:
    rows, repeats = ferplus.unique_rows(rows, where)
    dropped = (dropped or Counter()) + Counter({"listed twice with the same votes": repeats})
    votes = np.stack([v for _, v, _ in rows])
    result = ferplus.vote_labels(votes, labels)
    keep = np.flatnonzero(result.keep)
    entries = [(rows[i][0], ferplus.EMOTIONS[result.labels[i]], rows[i][2]) for i in keep]
    soft = None if result.soft is None else result.soft[keep]
    return Listing(entries, list(ferplus.EMOTIONS), soft, result.dropped + (dropped or Counter()))


def _folder_entries(root: Path) -> list[_Entry]:
    splits = sorted(p.name for p in root.iterdir() if (p / ferplus.LABEL_FILE).is_file())
    if splits:
        raise DatasetError(f"{root}: holds FER+ splits ({', '.join(splits)}); point at one of them, "
                           f"e.g. {root / splits[0]}")
    entries: list[_Entry] = []
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    stray = [p.name for p in root.iterdir() if p.is_file() and is_image_name(p.name)]
    if stray and not class_dirs:
        raise DatasetError(f"{root}: images lie directly in the folder; expected one sub-folder per class")
    for class_dir in class_dirs:
        files = sorted(
            p for p in class_dir.rglob("*")
            if p.is_file() and is_image_name(p.name) and not any(s.startswith(".") for s in p.relative_to(root).parts)
        )
        if not files:
            raise DatasetError(f"{class_dir}: class folder holds no images ({', '.join(sorted(_suffixes(class_dir)))})")
        label = canonical_name(class_dir.name)
        entries += [(str(p.relative_to(root)), label, p.read_bytes) for p in files]
    return entries


def _suffixes(folder: Path) -> set[str]:
    found = {p.suffix.lower() or "no suffix" for p in folder.rglob("*") if p.is_file()}
    return found or {"empty"}


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{path}: not a readable zip file ({exc})") from None


def _zip_entries(path: Path, archive: zipfile.ZipFile) -> list[_Entry]:
    names = [
        n for n in archive.namelist()
        if not n.endswith("/") and is_image_name(n) and not any(
            part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(n).parts
        )
    ]
    if not names:
        raise DatasetError(f"{path}: the zip holds no images")
    parts = [PurePosixPath(n).parts for n in names]
    # Strip the folders every entry shares (e.g. "train/"): what follows is the class folder.
    depth = 0
    while all(len(p) > depth + 2 for p in parts) and len({p[depth] for p in parts}) == 1:
        depth += 1
    if any(len(p) < depth + 2 for p in parts):
        raise DatasetError(f"{path}: images lie at the top of the zip; expected one folder per class")

    def loader(name: str) -> Callable[[], bytes]:
        return lambda: archive.read(name)

    return [(n, canonical_name(p[depth]), loader(n)) for n, p in zip(names, parts)]


def _csv_entries(path: Path, usage: str | None) -> list[_Entry]:
    entries: list[_Entry] = []
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        if "emotion" not in header or "pixels" not in header:
            raise DatasetError(f"{path}: line 1: expected a header with 'emotion' and 'pixels' columns, got {header}")
        col_emotion, col_pixels = header.index("emotion"), header.index("pixels")
        col_usage = header.index("usage") if "usage" in header else None
        if usage is not None and col_usage is None:
            raise DatasetError(f"{path}: --usage {usage} given but the CSV has no 'Usage' column")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < len(header):
                raise DatasetError(f"{path}: line {line}: expected {len(header)} columns, got {len(row)}")
            if usage is not None and row[col_usage].strip().lower() != usage.lower():
                continue
            try:
                emotion = FER2013_IDS[int(row[col_emotion])]
            except (ValueError, KeyError):
                raise DatasetError(
                    f"{path}: line {line}: emotion {row[col_emotion]!r} is not a FER2013 id (0-6)"
                ) from None
            try:
                pixels = np.array(row[col_pixels].split(), dtype=np.int64)
            except ValueError:
                raise DatasetError(f"{path}: line {line}: pixels must be space-separated integers") from None
            side = math.isqrt(pixels.size)
            if pixels.size == 0 or side * side != pixels.size or pixels.min() < 0 or pixels.max() > 255:
                raise DatasetError(
                    f"{path}: line {line}: expected a square image of 0-255 values, got {pixels.size} values"
                )
            img = pixels.astype(np.uint8).reshape(side, side)
            entries.append((f"{path.name}:{line}", emotion, lambda img=img: img))
    if not entries:
        which = f" with Usage {usage}" if usage else ""
        raise DatasetError(f"{path}: no rows{which}")
    return entries


def list_entries(path: str | Path, usage: str | None = None, *, labels: str = "majority",
                 pixels: str | Path | None = None) -> Listing:
    """Every labelled image the source holds, without decoding anything.

    ``labels`` (majority or soft) applies to vote data (FER+); ``pixels`` is the
    fer2013.csv that goes with a fer2013new.csv (default: the one beside it).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    kind = "a folder" if path.is_dir() else f"a {path.suffix.lower() or 'file without suffix'}"
    if usage is not None and not (path.suffix.lower() == ".csv" and path.is_file()):
        raise DatasetError(f"{path}: --usage applies to a FER2013 or FER+ CSV, not to {kind}")
    rows = None
    if path.is_dir():
        rows = ferplus.ferplus_folder(path)
        listing = _vote_listing(rows, labels, where=str(path)) if rows else Listing(_folder_entries(path))
    elif path.suffix.lower() == ".zip":
        archive = _open_zip(path)
        rows = ferplus.ferplus_zip(archive, path)
        listing = _vote_listing(rows, labels, where=str(path)) if rows else Listing(_zip_entries(path, archive))
    elif ferplus.is_ferplus_csv(path):
        rows, not_faces = ferplus.ferplus_csv(path, pixels, usage)
        listing = _vote_listing(rows, labels, Counter({"not a face": not_faces}) if not_faces else None, str(path))
    elif path.suffix.lower() == ".csv":
        listing = Listing(_csv_entries(path, usage))
    else:
        raise DatasetError(f"{path}: expected a folder of class folders, a .zip of one, a FER2013 .csv, "
                           "or FER+ data (a folder or zip with label.csv, or fer2013new.csv)")
    if labels == "soft" and rows is None:
        raise DatasetError(f"{path}: --labels soft needs vote counts (FER+ data); this data has one label per image")
    if pixels is not None and not ferplus.is_ferplus_csv(path):
        raise DatasetError(f"{path}: --pixels goes with FER+'s fer2013new.csv, not with {kind}")
    if not listing.entries:
        raise DatasetError(f"{path}: no images found" + (f" (left out: {_reasons(listing.dropped)})" if listing.dropped else ""))
    return listing


def _reasons(dropped: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items(), key=lambda kv: -kv[1]))


def _decode(entry: _Entry) -> np.ndarray:
    name, _, load = entry
    try:
        data = load()
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise ImageDecodeError(f"{name}: cannot read ({exc})") from None
    return data if isinstance(data, np.ndarray) else decode_image(data, name)


def _probe(entries: Sequence[_Entry], count: int = 64) -> tuple[int, bool]:
    """Typical side (median of min(H, W)) and whether any of a spread sample is colour."""
    step = max(1, len(entries) // count)
    sides, colour = [], False
    for entry in entries[::step][:count]:
        try:
            img = _decode(entry)
        except ImageDecodeError:
            continue
        sides.append(min(img.shape[:2]))
        colour = colour or not is_gray(img)
    if not sides:
        raise DatasetError("none of the sampled images could be decoded")
    return int(np.median(sides)), colour


def load_images(
    path: str | Path,
    *,
    usage: str | None = None,
    channels: int | None = None,
    base_size: int | None = None,
    max_base_size: int = 224,
    classes: Sequence[str] | None = None,
    workers: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    labels: str = "majority",
    pixels: str | Path | None = None,
    crop: Callable[[np.ndarray], np.ndarray] | None = None,
) -> LabeledImages:
    """Read and decode a whole dataset into memory at the base size.

    ``channels``/``base_size`` default to what the data look like (1 for gray data; the
    median image side, capped at ``max_base_size``). ``classes`` fixes the class order
    (e.g. a model's); the data may hold a subset of it, never a class outside it.
    Files that cannot be decoded are skipped and listed in ``skipped``. ``limit`` keeps a
    seeded, stratified sample of that many entries (decoding only those). Vote data
    (FER+) is labelled by ``labels`` (majority or soft); see :mod:`mobilefer.data.ferplus`.
    ``crop`` (e.g. the face crop predict makes) maps each decoded image to the part to keep;
    an ImageDecodeError from it (no face) skips the image like an unreadable one.
    """
    listing = list_entries(path, usage, labels=labels, pixels=pixels)
    entries, soft = listing.entries, listing.soft
    if limit is not None and limit < len(entries):
        names = sorted({label for _, label, _ in entries})
        ids = np.array([names.index(label) for _, label, _ in entries])
        keep_idx = stratified_sample(ids, limit, seed)
        entries = [entries[i] for i in keep_idx]
        soft = None if soft is None else soft[keep_idx]
    found = sorted({label for _, label, _ in entries})
    if classes is None:
        classes = listing.classes or found
    else:
        classes = [canonical_name(c) for c in classes]
        unknown = [c for c in found if c not in classes]
        if unknown:
            raise DatasetError(
                f"{path}: class(es) {', '.join(unknown)} are not among the model's classes: {', '.join(classes)}"
            )
    if channels is None or base_size is None:
        side, colour = _probe(entries)
        channels = channels or (3 if colour else 1)
        base_size = base_size or min(side, max_base_size)
    position = {name: i for i, name in enumerate(classes)}
    if soft is not None and list(classes) != listing.classes:
        missing = [c for c in listing.classes if c not in position]
        if missing:
            raise DatasetError(f"{path}: soft labels need every FER+ emotion among the classes; missing {', '.join(missing)}")
        reordered = np.zeros((len(soft), len(classes)), dtype=np.float32)
        reordered[:, [position[c] for c in listing.classes]] = soft
        soft = reordered

    sizes = np.zeros((len(entries), 2), dtype=np.int32)

    def work(item: tuple[int, _Entry]) -> np.ndarray | str:
        i, entry = item
        try:
            image = _decode(entry)
            sizes[i] = image.shape[:2]
            return to_base(crop(image) if crop else image, channels, base_size)
        except NoFaceError as exc:
            return f"{entry[0]}: {exc}"
        except ImageDecodeError as exc:
            return str(exc)

    images = np.empty((len(entries), base_size, base_size, channels), dtype=np.uint8)
    keep = np.zeros(len(entries), dtype=bool)
    skipped: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for i, result in enumerate(pool.map(work, enumerate(entries), chunksize=64)):
            if isinstance(result, str):
                skipped.append((entries[i][0], result))
            else:
                images[i] = result
                keep[i] = True
    if not keep.any():
        if _faceless(skipped) == len(entries):
            raise DatasetError(f"{path}: no face was found in any of its {len(entries)} images")
        raise DatasetError(f"{path}: none of the {len(entries)} images could be used\n{describe_skipped(skipped)}")
    targets = np.array([position[label] for _, label, _ in entries], dtype=np.int64)
    data = LabeledImages(
        images[keep], targets[keep], list(classes),
        [name for (name, _, _), k in zip(entries, keep) if k], str(path), skipped,
        None if soft is None else soft[keep], dict(listing.dropped), sizes[keep],
    )
    left_out = f", left out by the {labels} vote rule: {_reasons(data.dropped)}" if data.dropped else ""
    log.info("%s: %d images, %dx%d px, %d channel(s), %d skipped%s", path, len(data), base_size, base_size,
             channels, len(skipped), left_out)
    return data


def csv_has_usage(path: str | Path) -> bool:
    """True for a CSV whose header has a Usage column (the original FER2013 file)."""
    path = Path(path)
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    with open(path, newline="") as handle:
        header = next(csv.reader(handle), [])
    return "usage" in [h.strip().lower() for h in header]


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split -> (train index, val index); every class with 2+ images gets val."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_val = 0 if len(idx) < 2 else max(1, round(len(idx) * fraction))
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def stratified_sample(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of exactly ``count`` items (all if fewer), each class in proportion: its
    whole share first, then one more for the classes with the largest remainders."""
    if count >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    share = sizes * count / len(labels)
    take = np.floor(share).astype(int)
    for i in np.argsort(-(share - take), kind="stable")[: count - take.sum()]:
        take[i] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in zip(classes, take)]
    return np.sort(np.concatenate(picked))


def _faceless(skipped: Sequence[tuple[str, str]]) -> int:
    """How many of the skipped files were skipped for holding no face."""
    return sum(NO_FACE in reason for _, reason in skipped)


def describe_skipped(skipped: Sequence[tuple[str, str]], limit: int = 20) -> str:
    """One readable block listing skipped files (first ``limit``) and the total count."""
    if not skipped:
        return ""
    faceless = _faceless(skipped)
    kinds = [f"{n} {what}" for n, what in ((faceless, "without a face"), (len(skipped) - faceless, "unreadable")) if n]
    lines = [f"skipped {len(skipped)} file(s) ({', '.join(kinds)}):"]
    lines += [f"  {reason}" for _, reason in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"  ... and {len(skipped) - limit} more")
    return "\n".join(lines)

