"""Shared test helpers: a fast training config on the synthetic data, a free loopback port."""
from __future__ import annotations

from mobilefer.engine.config import TrainConfig


def tiny_config(data, out, **overrides) -> TrainConfig:
    settings = dict(
        data=str(data), out=str(out), arch="mobilenet_v3_small", img_size=32, epochs=12, batch_size=8,
        lr=3e-3, warmup_epochs=0.5, val_split=0.25, seed=0, progress=False, device="cpu",
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
