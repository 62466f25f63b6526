"""Settings of the HTTP service; the CLI and the tests build one of these."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from mobilefer.cores import THREADS_RULE
from mobilefer.errors import check_fields, whole
from mobilefer.runtime.devices import check_device
from mobilefer.inference.detectors import DEFAULT_MIN_FACE
from mobilefer.inference.recognizer import RECOGNITION_RULES


@dataclass
class ServeConfig:
    model: str | None = None  # None: the bundled default
    host: str = "127.0.0.1"  # loopback unless asked: the service has no authentication
    port: int = 8000
    workers: int = 1  # processes, each with its own model
    detector: str = "auto"  # default when a request names none
    slots: int = 1  # inferences running at once per worker (each uses `threads` cores)
    queue: int = 64  # requests per worker waiting for a slot before 503
    queue_timeout_s: float = 30.0  # a request waiting longer gets 503
    read_timeout_s: float = 30.0  # a body still arriving after this gets 408 (slow clients hold a place)
    max_upload_mb: float = 10.0  # larger bodies get 413
    max_megapixels: float = 40.0  # larger images get 413, checked before decoding
    max_faces: int = 100  # a request may ask for fewer
    min_face: int = DEFAULT_MIN_FACE
    uncertain: float = 0.0  # default when a request names none: a face under it is labelled "uncertain"
    threads: int | None = None  # ONNX Runtime threads per inference (None: up to 4)
    device: str = "auto"  # auto, cpu, cuda or cuda:N (runtime.devices)
    log_level: str = "info"

    def __post_init__(self) -> None:
        check_device(self.device)
        positive = (lambda v: v > 0, "a number above 0")
        check_fields(self, {
            **{k: RECOGNITION_RULES[k] for k in ("detector", "min_face", "max_faces", "uncertain")},
            "port": (whole(0, 65535), "a port from 0 to 65535"), "workers": (whole(1, 64), "1 to 64 processes"),
            "slots": (whole(1, 64), "1 to 64"), "queue": (whole(0), "0 or more requests"),
            "queue_timeout_s": positive, "read_timeout_s": positive, "max_upload_mb": positive,
            "max_megapixels": positive, "threads": THREADS_RULE,
        }, flags={"queue_timeout_s": "--queue-timeout", "read_timeout_s": "--read-timeout"})

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ServeConfig":
        return cls(**json.loads(text))
