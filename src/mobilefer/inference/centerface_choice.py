"""Which bundled CenterFace file this machine runs faster: the INT8 one or its fp32 original.

INT8 is faster where the CPU's 8-bit arithmetic is fast (VNNI, most likely: a whole-frame pass
at ~0.55 of fp32's CPU) and slower where it is not (an AMD EPYC of the Zen 1 generation, AVX2:
~1.2x fp32's; the whole `predict` command on the hikers 56 against 63 frames/s). A CPU's flags
do not say which portably, so the first detector on a machine times both (~0.5 s, once) and
the answer is kept in the user's cache (``$XDG_CACHE_HOME/mobilefer``, else ``~/.cache``),
keyed by CPU, core count and ONNX Runtime version. $MOBILEFER_CENTERFACE names a file and
skips all of this.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from mobilefer.runtime.derive import cache_dir
from mobilefer.runtime.refs import WEIGHTS_DIR

INT8 = WEIGHTS_DIR / "centerface_int8.onnx"
FP32 = WEIGHTS_DIR / "centerface.onnx"
# The fp32 file is chosen only where it is clearly faster: a probe on a busy machine is noisy,
# and the two differ by 1.2x or more either way where they differ at all.
FP32_BELOW = 0.9
PROBE_SIZE = (320, 192)  # (width, height): a small whole-frame search, between a follow square and a 640x384 pass
PROBE_RUNS = 5


def cache_file() -> Path:
    return cache_dir() / "centerface.json"


def machine_key() -> str:
    """What the answer depends on: the CPU, its cores and ONNX Runtime's kernels."""
    import onnxruntime as ort

    return f"{_cpu_name()} | {os.cpu_count()} cores | onnxruntime {ort.__version__}"


def _cpu_name() -> str:
    """The CPU's name with its family and model numbers (a virtual machine may call every
    generation "AMD EPYC"), where /proc/cpuinfo says them; else what Python knows."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        first = ""
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if "model name" in fields:
        return f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def faster_centerface() -> Path:
    """The bundled file this machine runs faster (INT8 where only it is bundled)."""
    if not FP32.is_file() or not INT8.is_file():
        return INT8
    key, path = machine_key(), cache_file()
    known = _read(path)
    if known.get(key) in (INT8.name, FP32.name):
        return WEIGHTS_DIR / known[key]
    try:
        ms = probe([INT8, FP32])
    except Exception:  # ONNX Runtime's own error types: a file it cannot run is the detector's to report
        return INT8
    chosen = FP32 if ms[FP32] < FP32_BELOW * ms[INT8] else INT8
    _write(path, {**known, key: chosen.name})
    return chosen


def centerface_session(path: Path, threads: int | None = None, providers: list | None = None):
    """The ONNX Runtime session a CenterFace file runs in: its input dimensions freed (any image
    size), at most 2 threads, no per-shape memory plans; on ``providers`` (runtime.devices;
    None: the CPU). Raises ONNX Runtime's own errors."""
    import onnxruntime as ort

    from mobilefer import cores
    from mobilefer.inference.onnx_shapes import free_dimensions
    from mobilefer.runtime.onnx import session_options

    options = session_options(cores.budget(threads, cap=2))
    # Inputs change size from image to image: no per-shape memory plans. The arena keeps the
    # buffers of a video's passes from one frame to the next (without it each pass maps and
    # faults in fresh memory: hikers 1280x720, 27-28 against 22-26 ms of CPU a frame); a pass
    # larger than a video's whole-frame search (a photo) hands its share back (centerface._Pass).
    options.enable_mem_pattern = False
    return ort.InferenceSession(free_dimensions(path.read_bytes()), options,
                                providers=providers or ["CPUExecutionProvider"])


def probe(files: list[Path], runs: int = PROBE_RUNS) -> dict[Path, float]:
    """Median ms of one pass over a PROBE_SIZE image for each of ``files``, taking turns (so a
    machine busy with other work slows each alike), each in the session a detector runs it in."""
    sessions = {f: centerface_session(f) for f in files}
    width, height = PROBE_SIZE
    image = np.random.default_rng(0).uniform(0, 255, (1, 3, height, width)).astype(np.float32)
    times: dict[Path, list[float]] = {f: [] for f in files}
    for turn in range(runs + 1):  # the first turn warms each session up
        for f, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: image})
            if turn:
                times[f].append(1000 * (time.perf_counter() - start))
    return {f: float(np.median(t)) for f, t in times.items()}


def _read(path: Path) -> dict:
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _write(path: Path, known: dict) -> None:
    """Whole or not at all (another process may read it meanwhile); a cache that cannot be
    written (read-only home) only means the next process times the files again."""
    part = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, part = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
        with os.fdopen(handle, "w") as out:
            json.dump(known, out, indent=1)
        os.replace(part, path)
    except OSError:
        if part:
            Path(part).unlink(missing_ok=True)
