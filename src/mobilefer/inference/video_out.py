"""The annotated video predict writes: H.264 that browsers play, with the source's sound.

With the ``video`` extra (``pip install 'mobilefer[video]'``: imageio-ffmpeg, a self-contained
FFmpeg build with libx264) frames are piped to FFmpeg and encoded as H.264 (yuv420p, fast-start
MP4), and a video file's audio track is copied in beside them (AAC). Without it, OpenCV writes
MPEG-4 Part 2 ("mp4v"): players such as VLC and ffplay show it, browsers do not, and there is no
sound; a note says so once. Either way the file is written under a temporary name and renamed
when complete, so an interrupted run leaves no half-written video.
"""
from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)


def ffmpeg_exe() -> str | None:
    """The FFmpeg that imageio-ffmpeg ships, if that is installed."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # installed without its binary (a platform it has no build for)
        return None


class AnnotatedVideo:
    """An MP4 at ``path``; ``audio_from``: a video file whose sound to keep (None: no sound)."""

    _noted = False

    def __init__(self, path: Path, audio_from: str | None = None) -> None:
        self.path, self.audio_from = path, audio_from
        self.tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        self.exe = ffmpeg_exe()
        self._pipe: subprocess.Popen | None = None
        self._cv: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray, fps: float) -> None:
        """Append one uint8 (H, W, 3) BGR frame; ``fps`` (the source's rate) is read on the first."""
        if self._pipe is None and self._cv is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open(frame.shape[1], frame.shape[0], fps or 30.0)
        if self._pipe is not None:
            try:
                self._pipe.stdin.write(np.ascontiguousarray(frame).tobytes())
            except BrokenPipeError:
                raise OSError(f"{self.path}: the video encoder stopped: {self._error()}") from None
        else:
            self._cv.write(frame)

    def close(self, keep: bool) -> None:
        """Finish the file and give it its name (``keep``), or remove it."""
        ok = True
        if self._pipe is not None:
            try:
                self._pipe.stdin.close()
            except BrokenPipeError:
                pass
            ok = self._pipe.wait() == 0
            self._log.close()
            if not ok and keep:
                log.warning("%s: not written, the video encoder failed: %s", self.path, self._error())
            self._stderr.unlink(missing_ok=True)
        elif self._cv is not None:
            self._cv.release()
        if keep and ok and (self._pipe is not None or self._cv is not None):
            self.tmp.replace(self.path)
        self.tmp.unlink(missing_ok=True)

    def _open(self, width: int, height: int, fps: float) -> None:
        if self.exe is None:
            if not AnnotatedVideo._noted:
                log.warning("annotated videos are MPEG-4 Part 2, which browsers do not play, and have no sound: "
                            "pip install 'mobilefer[video]' for H.264 with the source's audio")
                AnnotatedVideo._noted = True
            self._cv = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
            return
        command = [self.exe, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
                   "-r", f"{fps:.6g}", "-i", "-"]
        if self.audio_from:
            command += ["-i", self.audio_from, "-map", "0:v:0", "-map", "1:a:0?", "-c:a", "aac", "-b:a", "128k",
                        "-shortest"]
        # yuv420p (what browsers decode) needs even sides: pad an odd one by a pixel
        command += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
                    "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(self.tmp)]
        self._stderr = self.tmp.with_suffix(".log")
        self._log = open(self._stderr, "wb")
        self._pipe = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def _error(self) -> str:
        self._log.flush()
        lines = self._stderr.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no message"
