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

import contextlib
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mobilefer.errors import ConfigError, OutputError, check_fields, require, whole
from mobilefer.inference.detectors import DEFAULT_MIN_FACE
from mobilefer.inference.recognizer import LANDMARK_COLUMNS, POSE_COLUMNS, RECOGNITION_RULES
from mobilefer.inference.sources import list_sources
from mobilefer.runtime.devices import parse_device

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
    uncertain: float = 0.0  # a face whose top probability is under this is labelled "uncertain"
    address: str | None = None  # None: a local Ray with this machine's cores; "auto" or ray://host:port
    workers: int | None = None  # recognizer actors per pool; default: one per CPU of the cluster
    batch_size: int = 16  # photos per actor call
    gpus_per_worker: float = 0.0  # > 0: each actor takes this share of a GPU and runs on CUDA
    device: str = "auto"  # with gpus_per_worker: auto or cuda (the GPU Ray gives an actor); without: the CPU
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
        kind, _ = parse_device(self.device)
        if kind == "cuda" and not self.gpus_per_worker:
            raise ConfigError(f"--device {self.device}: batch runs on a GPU through Ray; give --gpus-per-worker "
                              "(each actor's share of one)")
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


# ------------------------------------------------------------------ rows
def _schema(classes: list[str]):
    import pyarrow as pa

    return pa.schema([
        ("row", pa.string()), ("source", pa.string()), ("kind", pa.string()), ("frame", pa.int64()),
        ("time_s", pa.float64()), ("id", pa.int64()), ("x", pa.int64()), ("y", pa.int64()), ("w", pa.int64()),
        ("h", pa.int64()), ("label", pa.string()), ("score", pa.float64()),
        *((f"p_{c}", pa.float64()) for c in classes),
        *((c, pa.float64()) for c in LANDMARK_COLUMNS + POSE_COLUMNS),
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
                              "score": round(f.score, 4), **{f"p_{c}": round(f.probs[c], 4) for c in self.classes},
                              **f.columns()})

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
                                          threads=settings["threads"], device=settings["device"],
                                          uncertain=settings["uncertain"])
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
def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """ConfigError unless something listens at a HOST:PORT (or ray://HOST:PORT) address: Ray
    itself would keep retrying an address where nothing listens for minutes."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not sep:
        return
    if not port.isdigit():
        raise ConfigError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"--address {address}: nothing answers there ({exc.strerror or exc}); is the "
                          "Ray cluster running?") from None


def _quiet_ray(local: bool) -> None:
    """A local cluster keeps Ray's token authentication, asked for explicitly (which silences
    Ray's note about it on every run); a remote one is joined on its own terms."""
    if local:
        os.environ.setdefault("RAY_AUTH_MODE", "token")


# Ray's C++ core writes its own log lines to the driver's stderr ("[2026-01-01 10:00:00,000 E 12 12]
# core_worker.cc:2465: Actor ... has constructor arguments in the object store"), whatever Python's
# logging says; Ray Data's actors always trip that one.
_RAY_LOG_LINE = re.compile(rb"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\] ")


@contextlib.contextmanager
def _without_ray_log_lines(active: bool = True) -> Iterator[TextIO]:
    """While the job runs, stderr (fd 2) passes through a filter that drops Ray's C++ log lines
    and forwards everything else; yields a stream to the real stderr for the progress bar."""
    if not active:
        yield sys.stderr
        return
    sys.stderr.flush()
    real = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)

    def pump() -> None:  # Ray's own processes may hold the pipe after the job: a daemon, never joined
        with os.fdopen(read, "rb") as lines:
            for line in lines:
                if not _RAY_LOG_LINE.match(line):
                    os.write(real, line)

    threading.Thread(target=pump, daemon=True, name="stderr-filter").start()
    stream = os.fdopen(os.dup(real), "w", buffering=1)
    try:
        yield stream
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)
        stream.close()


def _connect(config: BatchConfig):
    require("ray", "ray", "batch")
    _quiet_ray(local=not config.address)
    import ray

    if not ray.is_initialized():
        if config.address:
            _check_reachable(config.address)
            try:
                ray.init(address=config.address, logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"--address {config.address}: cannot join the Ray cluster "
                                  f"({str(exc).splitlines()[0][:200]})") from None
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False, configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts sources; Ray's count blocks of each operator
    context.print_on_execution_start = False
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
                "max_faces": config.max_faces, "detect_every": config.detect_every, "uncertain": config.uncertain,
                "device": config.device if config.gpus_per_worker else "cpu"}  # Ray gives an actor its GPU
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
    """The face rows (FACE_COLUMNS, probabilities, landmarks and pose) or the source rows
    (SOURCE_COLUMNS) of a batch."""
    import pyarrow.compute as pc

    kept = table.filter(pc.equal(table["row"], row))
    if row == "face":
        return kept.select(FACE_COLUMNS + [c for c in table.column_names if c.startswith("p_")] + LANDMARK_COLUMNS
                           + POSE_COLUMNS)
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
    import pyarrow as pa
    import pyarrow.parquet as pq

    done: set[str] = set()
    for f in sorted((out / "sources").glob("*.parquet")):
        try:
            done.update(pq.read_table(f, columns=["source"]).column("source").to_pylist())
        except (pa.ArrowException, OSError, KeyError) as exc:
            raise OutputError(f"--resume: {f} is damaged ({str(exc).splitlines()[0][:120]}); remove it to redo "
                              "its sources, or start again with --overwrite") from None
    return done


@contextlib.contextmanager
def _only_writer(out: Path) -> Iterator[None]:
    """Hold a lock on the folder ``out`` itself for the run (nothing is left behind): a second
    batch into the same folder is refused at once (both would write every row)."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    lock = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"--out {out}: another mobilefer batch is writing into it; wait for it to end, "
                              "or choose another folder") from None
        yield
    finally:
        os.close(lock)  # closing releases the lock


class _Writer:
    """Face and source rows into one Parquet file each in ``folder``, with fixed columns (also
    when no face was found), row group by row group as results arrive."""

    def __init__(self, folder: Path, classes: list[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.classes = classes
        full = _schema(classes)
        face_columns = FACE_COLUMNS + [f"p_{c}" for c in classes] + LANDMARK_COLUMNS + POSE_COLUMNS
        self.schemas = {"face": pa.schema([full.field(c) for c in face_columns]),
                        "source": pa.schema([full.field(c) for c in SOURCE_COLUMNS])}
        self.writers = {row: pq.ParquetWriter(folder / f"{row}s" / "part.parquet", schema)
                        for row, schema in self.schemas.items()}

    def write(self, table) -> int:
        """Write one result table (column ``row``); returns how many sources it finished."""
        sources = 0
        for row, writer in self.writers.items():
            part = _select(table, row).cast(self.schemas[row])
            if part.num_rows:
                writer.write_table(part)
            sources += part.num_rows if row == "source" else 0
        return sources

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


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
    with _only_writer(out):
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
            _recognize_into(staging, config, images, videos, bad)
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


def _recognize_into(staging: Path, config: BatchConfig, images: list[str], videos: list[str],
                    bad: list[tuple[str, str]]) -> None:
    """Run the job and write its rows into ``staging``: results stream back to the driver (rows
    only, no pixels) as the actors finish them, which also drives the progress bar."""
    from tqdm import tqdm

    from mobilefer.runtime import read_meta

    writer = _Writer(staging, read_meta(config.model).classes)
    try:
        if bad:
            import pyarrow as pa

            writer.write(pa.Table.from_pylist(
                [{"row": "source", "source": src, "kind": "unknown", "frames": 0, "faces": 0, "error": why}
                 for src, why in bad], schema=_schema(writer.classes)))
        if images or videos:
            quiet = logging.getLogger().getEffectiveLevel() > logging.DEBUG
            with _without_ray_log_lines(quiet) as stderr, \
                    tqdm(total=len(images) + len(videos), unit="source", desc="batch", file=stderr,
                         disable=not config.progress) as bar:
                for table in recognize_dataset(config, images, videos).iter_batches(batch_size=None,
                                                                                     batch_format="pyarrow"):
                    bar.update(writer.write(table))
    finally:
        writer.close()
