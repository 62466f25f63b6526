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

from mobilefer.atomic import atomic_path, check_output_dir, check_output_file
from mobilefer.errors import ConfigError, check_fields, whole
from mobilefer.inference.detectors import DEFAULT_MIN_FACE
from mobilefer.inference.draw import draw_faces
from mobilefer.inference.recognizer import RECOGNITION_RULES, Cadence, EmotionRecognizer, FrameResult
from mobilefer.inference.tracking import Smoother
from mobilefer.inference.sources import source_kind

log = logging.getLogger(__name__)


@dataclass
class PredictConfig:
    source: str = ""
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
    threads: int | None = None  # ONNX Runtime intra-op threads (None: up to 4)
    progress: bool = False

    def __post_init__(self) -> None:
        if not str(self.source).strip():
            raise ConfigError("predict needs a SOURCE: an image, folder, glob, video, webcam index or URL")
        check_fields(self, {
            **RECOGNITION_RULES,
            "margin": (lambda v: 0 <= v <= 1, "0 to 1 (a fraction of the face side)"),
            "threads": (whole(1, 256), "1 to 256 threads"),
        })
        Cadence.parse(self.every)
        Smoother.parse(self.smooth)
        check_output_file(self.json, "--json")
        check_output_file(self.csv, "--csv")
        check_output_dir(self.out, "--out")
        if self.show:
            check_display()


@dataclass
class PredictSummary:
    frames: int = 0
    faces: int = 0
    failed: list[str] = field(default_factory=list)
    per_face: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    images: list[FrameResult] = field(default_factory=list)  # results of still images (no pixels kept)
    written: list[str] = field(default_factory=list)
    kind: str = "image"


class _TextOutput:
    """A text file written under a temporary name beside its target, renamed by ``close(keep=True)``:
    an earlier file at the path survives a run that failed or produced nothing."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.handle: IO[str] = open(self.tmp, "w", newline="")

    def close(self, keep: bool) -> None:
        self.handle.close()
        if keep:
            self.tmp.replace(self.path)
        self.tmp.unlink(missing_ok=True)


class _VideoWriter:
    """mp4 written under a temporary name, renamed when closed; size and frame rate from the first frame."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        self.writer: cv2.VideoWriter | None = None

    def write(self, frame, fps: float) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps or 30.0, (w, h))
        self.writer.write(frame)

    def close(self, keep: bool) -> None:
        if self.writer is not None:
            self.writer.release()
            if keep:
                self.tmp.replace(self.path)
        self.tmp.unlink(missing_ok=True)


def _csv_rows(result: FrameResult, classes: list[str]) -> list[list[Any]]:
    return [
        [result.source, result.frame, result.time_s, f.id, *f.box, f.label, round(f.score, 4),
         *(round(f.probs[c], 4) for c in classes)]
        for f in result.faces
    ]


def predict(config: PredictConfig, on_result: Callable[[FrameResult], None] | None = None) -> PredictSummary:
    """Run recognition over ``config.source`` and write the requested outputs."""
    rec = EmotionRecognizer.load(config.model, detector=config.detector, margin=config.margin,
                                 min_face=config.min_face, max_faces=config.max_faces, classes=config.classes,
                                 threads=config.threads)
    kind = source_kind(config.source)
    summary = PredictSummary(kind=kind)
    live = kind in ("video", "webcam", "stream")
    out = Path(config.out) if config.out else None
    video = None
    if out and live:
        stem = Path(config.source).stem if kind == "video" else "capture"
        video = _VideoWriter(out / f"{stem}.mp4")
    # The timeline feeds the plot written with --out; without it nothing is kept per frame.
    timeline: list[tuple[float, int, dict[str, float]]] | None = [] if out and live else None
    results = rec.stream(config.source, every=config.every, smooth=config.smooth, detect_every=config.detect_every)
    bar = None
    if config.progress and live:
        from tqdm import tqdm

        bar = tqdm(unit="frame", desc=Path(str(config.source)).name)
    completed = False
    jsonl = _TextOutput(config.json) if config.json else None
    table = _TextOutput(config.csv) if config.csv else None
    try:
        writer = csv.writer(table.handle) if table else None
        if writer:
            writer.writerow(["source", "frame", "time_s", "id", "x", "y", "w", "h", "label", "score",
                             *(f"p_{c}" for c in rec.classes)])
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
                    summary.per_face[face.id][face.label] += 1
                    if timeline is not None:
                        timeline.append((result.time_s, face.id, face.probs))
                if out or config.show:
                    draw_faces(result.image, result.faces)
                if video:
                    video.write(result.image, result.fps)
                elif out:
                    target = out / f"{Path(result.source).stem}.jpg"
                    with atomic_path(target) as tmp:
                        tmp.write_bytes(cv2.imencode(".jpg", result.image)[1].tobytes())
                    summary.written.append(str(target))
                if config.show and _show(result.image):
                    break
                if not live:
                    summary.images.append(FrameResult(result.source, result.frame, result.time_s, result.faces))
                if on_result:
                    on_result(result)
                if bar:
                    bar.update()
        except KeyboardInterrupt:
            if kind not in ("webcam", "stream"):
                raise
            # Ctrl-C is how a live session ends: keep what it recorded.
        completed = True
    finally:
        keep = completed and summary.frames > 0  # a run that read nothing leaves earlier outputs alone
        for output in (jsonl, table, video):
            if output:
                output.close(keep=keep)
        if video and keep:
            summary.written.append(str(video.path))
        if bar:
            bar.close()
        if config.show:
            with contextlib.suppress(cv2.error):
                cv2.destroyAllWindows()
    if out and live and timeline:
        written = plot_timeline(timeline, rec.classes, out / f"{Path(str(config.source)).stem}_timeline.png")
        if written:
            summary.written.append(written)
    return summary


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


def plot_timeline(timeline: list[tuple[float, int, dict[str, float]]], classes: list[str], path: Path) -> str | None:
    """Emotion probabilities over time, one panel per tracked face; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("timeline plot skipped: pip install 'mobilefer[plot]' for matplotlib")
        return None
    from mobilefer.inference.draw import colour

    ids = sorted({face_id for _, face_id, _ in timeline})[:6]  # the first six faces keep it readable
    fig, axes = plt.subplots(len(ids), 1, figsize=(9, 2.2 * len(ids)), squeeze=False, sharex=True, dpi=100)
    for ax, face_id in zip(axes[:, 0], ids):
        points = [(t, p) for t, i, p in timeline if i == face_id]
        times = [t for t, _ in points]
        for c in classes:
            b, g, r = colour(c)
            ax.plot(times, [p[c] for _, p in points], label=c, color=(r / 255, g / 255, b / 255))
        ax.set_ylabel(f"face #{face_id}")
        ax.set_ylim(0, 1)
    axes[0, 0].legend(loc="upper right", ncol=len(classes), fontsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return str(path)
