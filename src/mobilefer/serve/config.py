"""Settings of the HTTP service; the CLI and the tests build one of these."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from mobilefer.errors import ConfigError
from mobilefer.inference.detectors import DEFAULT_MIN_FACE


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
    threads: int | None = None  # ONNX Runtime threads per inference (None: up to 4)
    log_level: str = "info"

    def __post_init__(self) -> None:
        checks = {"workers": self.workers >= 1, "slots": self.slots >= 1, "queue": self.queue >= 0,
                  "queue_timeout_s": self.queue_timeout_s > 0, "read_timeout_s": self.read_timeout_s > 0, "max_upload_mb": self.max_upload_mb > 0,
                  "max_megapixels": self.max_megapixels > 0, "max_faces": self.max_faces >= 1,
                  "min_face": self.min_face >= 1, "port": 0 <= self.port <= 65535}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid serve settings: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")

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
