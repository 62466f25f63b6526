"""Where a model runs for inference: ``--device auto|cpu|cuda[:N]`` of predict, evaluate, batch
and serve, one rule for all (training picks its PyTorch device in engine/runtime.py).

``cuda`` needs ONNX Runtime's CUDA build (``pip install onnxruntime-gpu`` in place of
``onnxruntime``) and a GPU it can open; ``auto`` takes the GPU where that works and the CPU
otherwise, and says which. ONNX Runtime falls back to the CPU in silence where its CUDA
libraries cannot load, so a GPU counts as working only once a session has opened on it.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from mobilefer.errors import ConfigError, MissingExtraError
from mobilefer.runtime.refs import WEIGHTS_DIR

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
EXPECTED = "auto, cpu, cuda or cuda:N"


@dataclass(frozen=True)
class Device:
    name: str  # "cpu" or "cuda:N"

    @property
    def gpu(self) -> int | None:
        """The CUDA device's index, or None on the CPU."""
        return int(self.name.split(":")[1]) if self.name.startswith("cuda") else None

    @property
    def providers(self) -> list:
        """ONNX Runtime's providers for a session on this device, first choice first."""
        return [CPU] if self.gpu is None else [(CUDA, {"device_id": self.gpu}), CPU]


CPU_DEVICE = Device("cpu")


def parse_device(text: str) -> tuple[str, int]:
    """(auto | cpu | cuda, GPU index) from what a user typed; ConfigError otherwise."""
    found = re.fullmatch(r"(auto|cpu|cuda)(?::(\d+))?", str(text).strip().lower())
    if not found or (found.group(2) is not None and found.group(1) != "cuda"):
        raise ConfigError(f"--device {text!r}: expected {EXPECTED}")
    return found.group(1), int(found.group(2) or 0)


def check_device(text: str) -> None:
    """The configs' rule for a device field: ConfigError where it is not one."""
    parse_device(text)


def choose_device(text: str = "auto") -> Device:
    """The device ``text`` names, checked: ``cuda`` without ONNX Runtime's CUDA build or a GPU
    it can open is an error naming what is missing; ``auto`` is the GPU where one works, else
    the CPU (logged either way when it is the GPU)."""
    kind, index = parse_device(text)
    if kind == "cpu":
        return CPU_DEVICE
    import onnxruntime as ort

    has_cuda = CUDA in ort.get_available_providers()
    if kind == "cuda" and not has_cuda:
        raise MissingExtraError(f"--device {text}: this onnxruntime ({ort.__version__}) runs on the CPU only; "
                                "pip install onnxruntime-gpu in place of onnxruntime for an NVIDIA GPU, "
                                "or use --device cpu")
    if has_cuda and gpu_works(index):
        log.info("running on the GPU (CUDA device %d)", index)
        return Device(f"cuda:{index}")
    if kind == "cuda":
        raise ConfigError(f"--device {text}: onnxruntime-gpu is installed but CUDA device {index} did not open "
                          "(no such GPU, or its driver or CUDA libraries are missing); use --device cpu")
    return CPU_DEVICE


@lru_cache(maxsize=8)
def gpu_works(index: int) -> bool:
    """Whether ONNX Runtime opens a session on CUDA device ``index`` (a small bundled model)."""
    import onnxruntime as ort

    probe = WEIGHTS_DIR / "centerface_int8.onnx"
    try:
        session = ort.InferenceSession(str(probe), providers=[(CUDA, {"device_id": index}), CPU])
    except Exception as exc:  # ORT's own error types
        log.debug("CUDA device %d did not open: %s", index, exc)
        return False
    return session.get_providers()[0] == CUDA
