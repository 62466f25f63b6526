"""How many threads a mobilefer process may use: the one place that decides (STYLE rule 16).

The machine is shared. Threads beyond the cores this process may run on, or OpenMP workers
that spin while they wait, turn a busy machine's minutes into hours: on 2 loaded cores a small
training run fell from ~120 img/s with one thread to 1-16 img/s with PyTorch's defaults.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from mobilefer.errors import ConfigError, whole

# Past a few cores, MobileNetV3's small ops gain little and lose to thread wake-ups.
MAX_DEFAULT = 4
MAX_THREADS = 256
# The rule for every --threads flag and $MOBILEFER_THREADS alike.
THREADS_RULE = (whole(1, MAX_THREADS), f"1 to {MAX_THREADS} threads")


def available() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def idle() -> int:
    """Available cores not already busy, by the 1-minute load average (at least 1)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return available()
    return max(1, min(available(), round(available() - load + 0.25)))


def budget(threads: int | None = None, cap: int = MAX_DEFAULT) -> int:
    """Threads to use: ``threads`` if given, else ``$MOBILEFER_THREADS``, else the idle
    cores up to ``cap``. On a loaded machine that is 1: two threads that wait for each other
    on one free core run slower than one thread alone."""
    if threads:
        return threads
    env = env_threads()
    return env if env is not None else min(cap, idle())


# A video file is decoded, searched, glanced at and classified on threads of its own (inference/
# live.py, sources.py, recognizer.py): about two cores' work on two cores. An ONNX Runtime pool
# under each session on top of that oversubscribes them: the whole `predict CLIP --json` command,
# 2 cores with VNNI, 8 rounds alternating, the hikers at 640x480: 3.23 s with one thread a session
# against 3.52 s with two (the budget of a quiet machine), 5.5 against 6.2 s of CPU. So does
# OpenCV's pool under its resizes (opencv_threads): in process, 10 rounds alternating, one
# OpenCV thread against its default two: the hikers 1280x720 4.35 against 4.58 s (CPU 8.04
# against 8.33), at 640x480 3.33 against 3.43 s, the selfie 1.99 against 2.01, the montage 2.29
# against 2.28; the same results.
VIDEO_FILE_THREADS = 1


def video_budget(threads: int | None = None) -> int:
    """Threads a session gets where it serves video files alone: ``threads`` if given, else
    ``$MOBILEFER_THREADS``, else VIDEO_FILE_THREADS."""
    return budget(threads, cap=VIDEO_FILE_THREADS)


@contextmanager
def opencv_threads(threads: int) -> Iterator[None]:
    """OpenCV's own loops (resizes, colour conversions) on ``threads`` threads inside the block,
    its count before restored after (the setting is the process's)."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def env_threads() -> int | None:
    """$MOBILEFER_THREADS as a thread count (None where unset or empty); a ConfigError naming
    the variable where it breaks the rule --threads keeps."""
    text = os.environ.get("MOBILEFER_THREADS", "").strip()
    if not text:
        return None
    ok, expected = THREADS_RULE
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise ConfigError(f"$MOBILEFER_THREADS={text!r}: expected {expected} (or unset it to use the idle cores)")
    return value


def limit_torch(threads: int | None = None) -> int:
    """Set PyTorch's intra-op threads to the budget, one inter-op thread, and passive OpenMP
    waiting (set before torch starts its pool: idle workers sleep instead of spinning).
    Returns the thread count used."""
    n = budget(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process (it may be set only before parallel work)
        pass
    return n
