"""The ``mobilefer predict`` job: recognise a source and write what was asked for.

Outputs: annotated images / mp4 (``out``), JSON Lines (one object per frame or image),
CSV (one row per face per frame), a per-face emotion summary and a timeline plot for videos.
Every file is written to a temporary name and renamed when complete.
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from mobilefer import cores
from mobilefer.atomic import atomic_path, check_output_dir, check_output_file
from mobilefer.cores import THREADS_RULE
from mobilefer.errors import ConfigError, OutputError, SourceError, check_fields
from mobilefer.inference.detectors import DEFAULT_MIN_FACE
from mobilefer.inference.draw import draw_faces
from mobilefer.inference.recognizer import (LANDMARK_COLUMNS, POSE_COLUMNS, RECOGNITION_RULES, Cadence,
                                            EmotionRecognizer, FrameResult)
from mobilefer.inference.sources import expand_sources, frame_count, source_kind
from mobilefer.inference.tracking import Smoother
from mobilefer.inference.video_out import AnnotatedVideo
from mobilefer.runtime.devices import check_device

log = logging.getLogger(__name__)

TIMELINE_FACES = 6  # panels in one timeline plot


@dataclass
class PredictConfig:
    # one or several: images, folders (searched recursively, videos included), globs, .txt lists
    # of paths, videos; or one webcam index or stream URL
    source: str | list[str] = ""
    model: str | None = None  # bundled name or path; None: the bundled default
    detector: str = "auto"
    out: str | None = None
    json: str | None = None
    csv: str | None = None
    show: bool = False
    smooth: str | None = None  # ema[:ALPHA] or window[:N]
    every: str | None = None  # e.g. 2s or 5f
    detect_every: int | None = None  # None: every frame for images, DEFAULT_VIDEO_DETECT_EVERY for videos
    min_face: int = DEFAULT_MIN_FACE
    max_faces: int | None = None
    margin: float | None = None  # default: the model's own
    classes: list[str] | None = None  # for .pth models
    threads: int | None = None  # ONNX Runtime intra-op threads (None: up to 4; 1 where every source is a video file)
    explain: bool = False  # with out: a picture of why, for each face of each photo
    uncertain: float = 0.0  # a face whose top probability is under this is labelled "uncertain"
    device: str = "auto"  # auto, cpu, cuda or cuda:N (runtime.devices)
    progress: bool = False

    def __post_init__(self) -> None:
        if not [s for s in self.sources if s.strip()]:
            raise ConfigError("predict needs a SOURCE: an image, folder, glob, video, webcam index or URL")
        live = [s for s in self.sources if source_kind(s) in ("webcam", "stream")]
        if live and len(self.sources) > 1:
            raise ConfigError(f"{live[0]}: a webcam or stream is predicted on its own, not with other sources")
        check_fields(self, {
            **RECOGNITION_RULES,
            "margin": (lambda v: 0 <= v <= 1, "0 to 1 (a fraction of the face side)"),
            "threads": THREADS_RULE,
        })
        check_device(self.device)
        Cadence.parse(self.every)
        Smoother.parse(self.smooth)
        check_output_file(self.json, "--json")
        check_output_file(self.csv, "--csv")
        check_output_dir(self.out, "--out")
        if self.explain and not self.out:
            raise ConfigError("--explain draws each face's explanation into --out: give --out DIR")
        if self.show:
            check_display()

    @property
    def sources(self) -> list[str]:
        return [str(self.source)] if isinstance(self.source, (str, int)) else [str(s) for s in self.source]


@dataclass
class PredictSummary:
    frames: int = 0
    faces: int = 0
    failed: list[str] = field(default_factory=list)
    per_face: dict[tuple[str, int], Counter] = field(default_factory=lambda: defaultdict(Counter))  # (video, id)
    images: list[FrameResult] = field(default_factory=list)  # results of still images (no pixels kept)
    # images without a face that are the size and shape of a face crop (looks_like_a_crop)
    crops_without_face: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    kind: str = "image"


def looks_like_a_crop(image: np.ndarray | None, base_size: int) -> bool:
    """Whether an image is the size and shape of a face crop (at most twice the model's faces,
    sides within 20 %), which a detector may not find a face in: the face is the whole of it."""
    if image is None:
        return False
    short, long = sorted(image.shape[:2])
    return short <= 2 * base_size and long <= 1.2 * short


class _TextOutput:
    """A text file written under a temporary name beside its target, renamed by ``close(keep=True)``:
    an earlier file at the path survives a run that failed or produced nothing."""

    def __init__(self, path: str, flag: str) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle: IO[str] = open(self.tmp, "w", newline="")
        except OSError as exc:  # named as the user named it, not by its temporary name
            raise OutputError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None

    def close(self, keep: bool) -> None:
        self.handle.close()
        if keep:
            self.tmp.replace(self.path)
        self.tmp.unlink(missing_ok=True)


def _csv_rows(result: FrameResult, classes: list[str]) -> list[list[Any]]:
    return [
        [result.source, result.frame, result.time_s, f.id, *f.box, f.label, round(f.score, 4),
         *(round(f.probs[c], 4) for c in classes), *f.columns().values()]
        for f in result.faces
    ]


def output_names(sources: list[str]) -> dict[str, str]:
    """A file-name stem for each source's outputs, never the same for two sources: the file's
    stem where that is unique, else its path below the sources' common folder, joined by _
    (photos/a/x.jpg and photos/b/x.png -> a_x_jpg, b_x_png), and where two still meet
    (a_b/x.jpg and a/b/x.jpg), _2, _3 ... after the later ones."""
    stems = Counter(Path(s).stem for s in sources)
    paths = [Path(os.path.abspath(s)) for s in sources]  # as named: a link is not followed
    common = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path(".")
    names: dict[str, str] = {}
    taken: set[str] = set()
    for source, path in zip(sources, paths):
        if stems[Path(source).stem] == 1:
            name = Path(source).stem
        else:
            relative = path.relative_to(common) if path.is_relative_to(common) else Path(path.name)
            name = re.sub(r"[^\w.-]+", "_", "_".join(relative.parts)).replace(".", "_")
        unique, n = name, 1
        while unique.lower() in taken:  # lower: a case-insensitive disk holds X and x as one file
            n += 1
            unique = f"{name}_{n}"
        taken.add(unique.lower())
        names[source] = unique
    return names


def predict(config: PredictConfig, on_result: Callable[[FrameResult], None] | None = None) -> PredictSummary:
    """Run recognition over ``config``'s sources, one after the other, and write the requested
    outputs (JSON Lines and CSV for all of them together; annotated files and a timeline per source)."""
    sources, unusable = expand_sources(config.sources)
    videos_only = all(source_kind(s) == "video" for s in sources)
    threads = cores.video_budget(config.threads) if videos_only else config.threads
    rec = EmotionRecognizer.load(config.model, detector=config.detector, margin=config.margin,
                                 min_face=config.min_face, max_faces=config.max_faces, classes=config.classes,
                                 threads=threads, device=config.device, uncertain=config.uncertain)
    # OpenCV's loops within the same budget: one thread for video files alone (cores.VIDEO_FILE_THREADS)
    with cores.opencv_threads(cores.budget(threads)):
        return _predict(rec, config, sources, unusable, on_result)


def _predict(rec: EmotionRecognizer, config: PredictConfig, sources: list[str], unusable: list[tuple[str, str]],
             on_result: Callable[[FrameResult], None] | None) -> PredictSummary:
    """:func:`predict` with its recognizer loaded and its sources expanded."""
    summary = PredictSummary(kind=source_kind(sources[0]) if len(sources) == 1 else "many",
                             failed=[reason for _, reason in unusable])
    names = output_names(sources)
    out = Path(config.out) if config.out else None
    completed = False
    jsonl = table = None
    try:
        jsonl = _TextOutput(config.json, "--json") if config.json else None
        table = _TextOutput(config.csv, "--csv") if config.csv else None
        writer = csv.writer(table.handle) if table else None
        if writer:
            writer.writerow(["source", "frame", "time_s", "id", "x", "y", "w", "h", "label", "score",
                             *(f"p_{c}" for c in rec.classes), *LANDMARK_COLUMNS, *POSE_COLUMNS])
        for path, reason in unusable:  # a line each, as a source that fails to open gets
            if jsonl:
                jsonl.handle.write(json.dumps({"source": path, "frame": 0, "error": reason}) + "\n")
        for source in sources:
            try:
                stopped = _one_source(rec, config, source, names[source], out, summary, jsonl, writer, on_result)
            except SourceError as exc:
                if len(sources) == 1:
                    raise
                summary.failed.append(str(exc))  # the others go on
                if jsonl:
                    jsonl.handle.write(json.dumps({"source": source, "frame": 0, "error": str(exc)}) + "\n")
                continue
            if stopped:
                break
        completed = True
    finally:
        keep = completed and summary.frames > 0  # a run that read nothing leaves earlier outputs alone
        for output in (jsonl, table):
            if output:
                output.close(keep=keep)
        if config.show:
            with contextlib.suppress(cv2.error):
                cv2.destroyAllWindows()
    return summary


def _one_source(rec: EmotionRecognizer, config: PredictConfig, source: str, name: str, out: Path | None,
                summary: PredictSummary, jsonl: "_TextOutput | None", writer, on_result) -> bool:
    """Recognise one source into the shared outputs and its own annotated files; True when the
    user asked to stop (q in the --show window)."""
    kind = source_kind(source)
    live = kind in ("video", "webcam", "stream")
    video = AnnotatedVideo(out / f"{name if kind == 'video' else 'capture'}.mp4",
                           audio_from=source if kind == "video" else None) if out and live else None
    # The timeline feeds the plot written with --out; without it nothing is kept per frame.
    timeline: list[tuple[float, int, dict[str, float], float | None]] | None = [] if out and live else None
    bar = None
    if config.progress and live:
        from tqdm import tqdm

        bar = tqdm(total=frame_count(source) if kind == "video" else None, unit="frame", desc=Path(source).name,
                   leave=False)
    results = rec.stream(source, every=config.every, smooth=config.smooth, detect_every=config.detect_every)
    frames_before, stopped, completed = summary.frames, False, False
    try:
        try:
            for result in results:
                if result.error:  # listed once, at the end, and as its own line in the JSON Lines
                    summary.failed.append(result.error)
                    if jsonl:
                        jsonl.handle.write(json.dumps({"source": result.source, "frame": result.frame,
                                                       "error": result.error}) + "\n")
                    continue
                summary.frames += 1
                summary.faces += len(result.faces)
                if jsonl:
                    jsonl.handle.write(json.dumps(result.to_dict()) + "\n")
                if writer:
                    writer.writerows(_csv_rows(result, rec.classes))
                for face in result.faces:
                    if live:
                        summary.per_face[(source, face.id)][face.label] += 1
                    if timeline is not None:
                        timeline.append((result.time_s, face.id, face.probs, face.pose.yaw if face.pose else None))
                # a photo's explanations come from its pixels before anything is drawn on them
                pictures = _explanations(rec, result) if out and config.explain and not live else []
                if out or config.show:
                    draw_faces(result.image, result.faces)
                if video:
                    video.write(result.image, result.fps)
                elif out:
                    target = out / f"{name}.jpg"
                    with atomic_path(target) as tmp:
                        tmp.write_bytes(cv2.imencode(".jpg", result.image)[1].tobytes())
                    summary.written.append(str(target))
                    for face_id, picture in pictures:
                        target = out / f"{name}_face{face_id}_explain.jpg"
                        with atomic_path(target) as tmp:
                            tmp.write_bytes(cv2.imencode(".jpg", picture)[1].tobytes())
                        summary.written.append(str(target))
                if config.show and _show(result.image):
                    stopped = True
                    break
                if not live:
                    summary.images.append(FrameResult(result.source, result.frame, result.time_s, result.faces))
                    if not result.faces and looks_like_a_crop(result.image, rec.meta.base_size):
                        summary.crops_without_face.append(result.source)
                if on_result:
                    on_result(result)
                if bar is not None:  # a tqdm without a total has no truth value
                    bar.update()
        except KeyboardInterrupt:
            if kind not in ("webcam", "stream"):
                raise
            # Ctrl-C is how a live session ends: keep what it recorded.
        completed = True
    finally:
        keep = completed and summary.frames > frames_before
        if video:
            video.close(keep=keep)
            if video.path.exists() and keep:
                summary.written.append(str(video.path))
        if bar is not None:
            bar.close()
    if timeline:
        written = plot_timeline(timeline, rec.classes, out / f"{name}_timeline.png")
        if written:
            summary.written.append(written)
    return stopped


def _explanations(rec: EmotionRecognizer, result: FrameResult) -> list[tuple[int, Any]]:
    """(face id, picture of the face with its explanation over it) for each face of a photo's
    result, from its frame as decoded (:meth:`EmotionRecognizer.explain`)."""
    from mobilefer.inference.draw import explanation_overlay

    return [(face.id, explanation_overlay(result.image, face, rec.explain(result.image, face)))
            for face in result.faces]


def check_display() -> None:
    """ConfigError, before any work, when OpenCV cannot open a window here."""
    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.M)
    if gui is None or gui.group(1).upper() == "NONE":
        raise ConfigError("--show needs a desktop OpenCV, and this one is headless (opencv-python-headless): "
                          "pip install 'opencv-python<5' in its place, or write the annotated frames with --out")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ConfigError("--show needs a display, and DISPLAY is not set; write the annotated frames with --out")


def _show(frame) -> bool:
    """Show a frame; True when the user pressed q."""
    cv2.imshow("mobilefer", frame)
    return (cv2.waitKey(1) & 0xFF) == ord("q")


def plot_timeline(timeline: list[tuple[float, int, dict[str, float], float | None]], classes: list[str],
                  path: Path) -> str | None:
    """Emotion probabilities over time, one panel per tracked face, with its yaw (degrees, on the
    panel's right axis) where the detector gives landmarks; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("timeline plot skipped: pip install 'mobilefer[plot]' for matplotlib")
        return None
    from mobilefer.inference.draw import colour

    seen = Counter(face_id for _, face_id, _, _ in timeline)
    ids = sorted(face_id for face_id, _ in seen.most_common(TIMELINE_FACES))  # a readable plot
    left_out = sorted(set(seen) - set(ids))
    if left_out:
        log.warning("timeline %s: plots the %d faces seen longest; left out face(s) %s", path.name, len(ids),
                    ", ".join(f"#{i}" for i in left_out))
    fig, axes = plt.subplots(len(ids), 1, figsize=(9, 2.2 * len(ids)), squeeze=False, sharex=True, dpi=100)
    for ax, face_id in zip(axes[:, 0], ids):
        points = [(t, p, yaw) for t, i, p, yaw in timeline if i == face_id]
        times = [t for t, _, _ in points]
        for c in classes:
            b, g, r = colour(c)
            ax.plot(times, [p[c] for _, p, _ in points], label=c, color=(r / 255, g / 255, b / 255))
        ax.set_ylabel(f"face #{face_id}")
        ax.set_ylim(0, 1)
        turns = [(t, yaw) for t, _, yaw in points if yaw is not None]
        if turns:  # where the face looks: a turned face's emotion is read less surely
            side = ax.twinx()
            side.plot([t for t, _ in turns], [yaw for _, yaw in turns], color="0.45", linestyle="--", linewidth=1,
                      label="yaw")
            side.set_ylim(-90, 90)
            side.set_ylabel("yaw (°)", fontsize=7)
            side.tick_params(labelsize=7)
    axes[0, 0].legend(loc="upper right", ncol=len(classes), fontsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return str(path)
