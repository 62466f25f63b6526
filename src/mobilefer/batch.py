"""``mobilefer batch``: recognition over large collections of photos and videos with Ray Data.

The driver lists the sources (paths only: no pixels and no model pass through it) and hands
them to pools of Ray actors, each of which loads the recognizer once: photos go in batches of
``batch_size`` files per call, their faces classified together; each video is one task, read
frame by frame with the same tracking and detection schedule as ``mobilefer predict``. The
recognizer, its defaults and its results are those of ``predict``.

Output, in ``out``:

- ``faces/*.parquet``: one row per face: source, kind, frame, time_s, id, x, y, w, h, label,
  score, and ``p_<class>`` per class of the model;
- ``sources/*.parquet``: one row per source: source, kind, frames, faces, error (a file
  that could not be read is a row with its reason, never a failed job).

Each run writes into a hidden staging folder and moves its files into place only when the
whole job has finished, so an interrupted run leaves no partial results. A second run into
the same folder refuses, or with ``mode="resume"`` adds only the sources not yet done, or with
``mode="overwrite"`` replaces everything.
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobilefer.data.images import is_image_name
from mobilefer.errors import ConfigError, OutputError, check_fields, require, whole
from mobilefer.inference.detectors import DEFAULT_MIN_FACE
from mobilefer.inference.recognizer import RECOGNITION_RULES
from mobilefer.inference.sources import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

MODES = ("refuse", "resume", "overwrite")
# Ray Data's own read and write tasks need a little CPU beside the recognizer actors: with every
# CPU held by an actor (2 actors of 1 CPU on 2 cores), a job never finished.
RESERVED_CPU = 0.5


@dataclass
class BatchConfig:
    sources: list[str] = field(default_factory=list)  # files, folders (searched recursively), globs, .txt lists
    out: str = ""
    model: str | None = None  # bundled name or path; None: the default model
    detector: str = "auto"
    min_face: int = DEFAULT_MIN_FACE
    max_faces: int | None = None
    detect_every: int | None = None  # videos; None: as predict
    address: str | None = None  # None: a local Ray with this machine's cores; "auto" or ray://host:port
    workers: int | None = None  # recognizer actors per pool; default: one per CPU of the cluster
    batch_size: int = 16  # photos per actor call
    gpus_per_worker: float = 0.0  # > 0: each actor takes this share of a GPU and runs on CUDA
    mode: str = "refuse"  # when out holds results: refuse, resume or overwrite
    progress: bool = False

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("batch needs at least one SOURCE: files, folders, globs or .txt lists of paths")
        if not self.out:
            raise ConfigError("batch needs --out DIR for the Parquet results")
        check_fields(self, {
            **RECOGNITION_RULES,
            "workers": (whole(1), "at least 1 worker"),
            "batch_size": (whole(1), "at least 1 image"),
            "gpus_per_worker": (lambda v: 0 <= v <= 8, "0 (CPU) to 8"),
            "mode": (lambda v: v in MODES, " or ".join(MODES)),
        })
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise OutputError(f"--out {out}: is a file; expected a folder")


@dataclass
class BatchSummary:
    sources: int = 0
    images: int = 0
    videos: int = 0
    frames: int = 0
    faces: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped_done: int = 0
    seconds: float = 0.0
    out: str = ""


# ------------------------------------------------------------------ sources
def list_sources(specs: list[str]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(images, videos, [(spec, reason)] for what names no usable file); paths only, nothing read."""
    images: list[str] = []
    videos: list[str] = []
    bad: list[tuple[str, str]] = []

    def add(path: Path, spec: str) -> None:
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            videos.append(str(path))
        elif is_image_name(path.name):
            images.append(str(path))
        else:
            bad.append((str(path), f"{spec}: not an image or video file ({suffix or 'no suffix'})"))

    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            media = [p for p in found if p.suffix.lower() in VIDEO_SUFFIXES or is_image_name(p.name)]
            if not media:
                bad.append((spec, f"{spec}: no images or videos in the folder"))
            for p in media:
                add(p, spec)
        elif path.suffix.lower() == ".txt" and path.is_file():
            for line in path.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    listed = Path(line) if Path(line).is_absolute() else path.parent / line
                    if listed.is_file():
                        add(listed, f"{spec}")
                    else:
                        bad.append((str(listed), f"{listed}: no such file (listed in {spec})"))
        elif any(ch in spec for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            if not matches:
                bad.append((spec, f"{spec}: matches no file"))
            for p in matches:
                add(p, spec)
        elif path.is_file():
            add(path, spec)
        else:
            bad.append((spec, f"{spec}: no such file or folder"))
    unique = lambda items: list(dict.fromkeys(items))  # noqa: E731
    return unique(images), unique(videos), bad


# ------------------------------------------------------------------ rows
def _schema(classes: list[str]):
    import pyarrow as pa

    return pa.schema([
        ("row", pa.string()), ("source", pa.string()), ("kind", pa.string()), ("frame", pa.int64()),
        ("time_s", pa.float64()), ("id", pa.int64()), ("x", pa.int64()), ("y", pa.int64()), ("w", pa.int64()),
        ("h", pa.int64()), ("label", pa.string()), ("score", pa.float64()),
        *((f"p_{c}", pa.float64()) for c in classes),
        ("frames", pa.int64()), ("faces", pa.int64()), ("error", pa.string()),
    ])


FACE_COLUMNS = ["source", "kind", "frame", "time_s", "id", "x", "y", "w", "h", "label", "score"]
SOURCE_COLUMNS = ["source", "kind", "frames", "faces", "error"]


class _Rows:
    """Face rows and per-source rows of one actor call, as one Arrow table (row = face | source)."""

    def __init__(self, classes: list[str]) -> None:
        self.classes, self.rows = classes, []

    def faces(self, source: str, kind: str, frame: int, time_s: float, faces) -> None:
        for f in faces:
            x, y, w, h = f.box
            self.rows.append({"row": "face", "source": source, "kind": kind, "frame": frame, "time_s": time_s,
                              "id": f.id, "x": x, "y": y, "w": w, "h": h, "label": f.label,
                              "score": round(f.score, 4), **{f"p_{c}": round(f.probs[c], 4) for c in self.classes}})

    def source(self, source: str, kind: str, frames: int, faces: int, error: str | None = None) -> None:
        self.rows.append({"row": "source", "source": source, "kind": kind, "frames": frames, "faces": faces,
                          "error": error})

    def table(self):
        import pyarrow as pa

        return pa.Table.from_pylist(self.rows, schema=_schema(self.classes))


# ------------------------------------------------------------------ actors
class _Worker:
    """A Ray actor: loads the recognizer once, then recognises whatever batches it is given.

    Its settings travel inside the class (``SETTINGS``, see :func:`_worker_class`), not as
    constructor arguments in Ray's object store: Ray cannot restart a killed actor whose
    arguments it no longer holds."""

    SETTINGS: dict[str, Any] = {}

    def __init__(self) -> None:
        from mobilefer.inference.recognizer import EmotionRecognizer

        settings = self.settings = self.SETTINGS
        self.rec = EmotionRecognizer.load(settings["model"], detector=settings["detector"],
                                          min_face=settings["min_face"], max_faces=settings["max_faces"],
                                          threads=settings["threads"], providers=settings["providers"])
        self.classes = self.rec.classes


class ImageWorker(_Worker):
    def __call__(self, batch):
        from mobilefer.data.images import read_image, rgb_to_bgr
        from mobilefer.errors import MobileferError

        rows = _Rows(self.classes)
        paths, frames = [], []
        for path in batch["path"].to_pylist():
            try:
                frames.append(rgb_to_bgr(read_image(path)))
                paths.append(path)
            except MobileferError as exc:
                rows.source(path, "image", 0, 0, str(exc))
        try:
            found = self.rec.recognize_many(frames)
        except Exception:  # noqa: BLE001 - one odd image must not fail the batch: take them one by one
            found = []
            for path, frame in zip(paths, frames):
                try:
                    found.append(self.rec.recognize_many([frame])[0])
                except Exception as exc:  # noqa: BLE001 - it becomes that image's error row
                    found.append(f"{path}: recognition failed ({type(exc).__name__}: {exc})")
        for path, faces in zip(paths, found):
            if isinstance(faces, str):
                rows.source(path, "image", 0, 0, faces)
                continue
            rows.faces(path, "image", 0, 0.0, faces)
            rows.source(path, "image", 1, len(faces))
        return rows.table()


class VideoWorker(_Worker):
    def __call__(self, batch):
        from mobilefer.errors import MobileferError

        rows = _Rows(self.classes)
        for path in batch["path"].to_pylist():
            frames = faces = 0
            try:
                for result in self.rec.stream(path, detect_every=self.settings["detect_every"]):
                    if result.error:
                        raise ValueError(result.error)
                    rows.faces(path, "video", result.frame, result.time_s, result.faces)
                    frames += 1
                    faces += len(result.faces)
                error = None if frames else f"{path}: no frame could be decoded"
            except (MobileferError, ValueError, OSError) as exc:
                error = str(exc)
                rows.rows = [r for r in rows.rows if r["source"] != path]  # all of a video, or nothing of it
                frames = faces = 0
            rows.source(path, "video", frames, faces, error)
        return rows.table()


# ------------------------------------------------------------------ the job
def _connect(config: BatchConfig):
    require("ray", "ray", "batch")
    import ray

    if not ray.is_initialized():
        if config.address:
            try:
                ray.init(address=config.address, logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"--address {config.address}: cannot join the Ray cluster "
                                  f"({str(exc).splitlines()[0][:200]})") from None
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False, configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = config.progress
    context.print_on_execution_start = False
    if not config.progress:
        logging.getLogger("ray").setLevel(logging.WARNING)  # its per-dataset INFO lines
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # and the note that progress bars are off
    return ray


def _pool(ray, config: BatchConfig, count: int) -> tuple[int, dict[str, Any], int]:
    """(actors, their Ray resources, ONNX Runtime threads each), sized from the cluster."""
    resources = ray.cluster_resources()
    cpus = resources.get("CPU", 1.0)
    actors = min(count, config.workers or max(1, int(cpus)))
    remote: dict[str, Any] = {"num_cpus": max(0.1, (cpus - RESERVED_CPU) / actors),
                              # a killed worker is restarted and its batch run again
                              "max_restarts": -1, "max_task_retries": -1}
    if config.gpus_per_worker:
        if resources.get("GPU", 0) <= 0:
            raise ConfigError("--gpus-per-worker: the Ray cluster has no GPU")
        remote["num_gpus"] = config.gpus_per_worker
    return actors, remote, max(1, int(cpus // actors))


def recognize_dataset(config: BatchConfig, images: list[str] | None = None, videos: list[str] | None = None):
    """A Ray Dataset of face and source rows (column ``row``) for the sources of ``config``
    (or the given lists); lazy: nothing runs until it is consumed."""
    ray = _connect(config)
    if images is None or videos is None:
        images, videos, _ = list_sources(config.sources)
    settings = {"model": config.model, "detector": config.detector, "min_face": config.min_face,
                "max_faces": config.max_faces, "detect_every": config.detect_every,
                "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"] if config.gpus_per_worker else None}
    parts = []
    for paths, worker, batch in ((images, ImageWorker, config.batch_size), (videos, VideoWorker, 1)):
        if not paths:
            continue
        actors, remote, threads = _pool(ray, config, len(paths) if worker is VideoWorker else
                                        -(-len(paths) // batch))
        data = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=max(1, -(-len(paths) // batch)))
        worker = type(worker.__name__, (worker,), {"SETTINGS": {**settings, "threads": threads}})
        with warnings.catch_warnings():  # max_restarts and max_task_retries have no named parameter yet
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            parts.append(data.map_batches(worker, batch_size=batch, batch_format="pyarrow",
                                          compute=ray.data.ActorPoolStrategy(size=actors), **remote))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])


def _select(table, row: str):
    """The face rows (FACE_COLUMNS + probabilities) or the source rows (SOURCE_COLUMNS) of a batch."""
    import pyarrow.compute as pc

    kept = table.filter(pc.equal(table["row"], row))
    if row == "face":
        return kept.select(FACE_COLUMNS + [c for c in table.column_names if c.startswith("p_")])
    return kept.select(SOURCE_COLUMNS)


def _count(folder: Path, summary: BatchSummary) -> None:
    import pyarrow.parquet as pq

    for f in sorted(folder.glob("*.parquet")):
        for r in pq.read_table(f, columns=SOURCE_COLUMNS).to_pylist():
            summary.sources += 1
            if r["error"]:
                summary.failed.append((r["source"], r["error"]))
                continue
            summary.images += r["kind"] == "image"
            summary.videos += r["kind"] == "video"
            summary.frames += r["frames"] if r["kind"] == "video" else 0
            summary.faces += r["faces"]


def _done_sources(out: Path) -> set[str]:
    import pyarrow.parquet as pq

    files = sorted((out / "sources").glob("*.parquet"))
    return {s for f in files for s in pq.read_table(f, columns=["source"]).column("source").to_pylist()}


def batch(config: BatchConfig) -> BatchSummary:
    """What ``mobilefer batch`` runs: recognise every source, write Parquet into ``config.out``."""
    require("ray", "ray", "batch")
    require("pyarrow", "ray", "batch")
    started = time.perf_counter()
    out = Path(config.out)
    has_results = (out / "sources").is_dir() and any((out / "sources").glob("*.parquet"))
    if has_results and config.mode == "refuse":
        raise OutputError(f"--out {out}: holds results of an earlier run; --resume adds only the sources not "
                          "done yet, --overwrite replaces them")
    images, videos, bad = list_sources(config.sources)
    summary = BatchSummary(out=str(out))
    if has_results and config.mode == "resume":
        done = _done_sources(out)
        summary.skipped_done = sum(p in done for p in images + videos)
        images, videos = [p for p in images if p not in done], [p for p in videos if p not in done]
    if not images and not videos and not bad:
        summary.seconds = time.perf_counter() - started
        return summary
    run = uuid.uuid4().hex[:8]
    staging = out / f".staging-{run}"
    try:
        (staging / "faces").mkdir(parents=True)
        (staging / "sources").mkdir()
        if images or videos:
            # Kept in Ray's object store (not the driver) so the two writes do not run the job twice;
            # the workers write the files.
            rows = recognize_dataset(config, images, videos).materialize()
            rows.map_batches(_select, fn_kwargs={"row": "face"}, batch_format="pyarrow") \
                .write_parquet(str(staging / "faces"))
            rows.map_batches(_select, fn_kwargs={"row": "source"}, batch_format="pyarrow") \
                .write_parquet(str(staging / "sources"))
        if bad:
            import pyarrow as pa
            import pyarrow.parquet as pq

            listing = [{"source": src, "kind": "unknown", "frames": 0, "faces": 0, "error": why} for src, why in bad]
            pq.write_table(pa.Table.from_pylist(listing, schema=pa.schema([_schema([]).field(c) for c in SOURCE_COLUMNS])),
                           staging / "sources" / f"listing-{run}.parquet")
        _count(staging / "sources", summary)
        if config.mode == "overwrite":
            for name in ("faces", "sources"):
                shutil.rmtree(out / name, ignore_errors=True)
        for name in ("faces", "sources"):  # the run is complete: its files become results
            (out / name).mkdir(parents=True, exist_ok=True)
            for i, f in enumerate(sorted((staging / name).glob("*.parquet"))):
                os.replace(f, out / name / f"run-{run}-{i:05d}.parquet")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    return summary
