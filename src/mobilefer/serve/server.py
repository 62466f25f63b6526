"""``mobilefer serve``: run the application under uvicorn, one model per worker process."""
from __future__ import annotations

import logging
import os

from mobilefer.serve.config import ServeConfig

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def check_can_listen(host: str, port: int) -> None:
    """MobileferError unless ``host:port`` can be bound right now (busy port, unknown address)."""
    import socket

    from mobilefer.errors import MobileferError

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:
        raise MobileferError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(config: ServeConfig) -> None:
    """Serve until interrupted. One worker runs in this process; more are uvicorn's child processes."""
    import uvicorn

    from mobilefer.runtime import resolve_model

    resolve_model(config.model)  # a wrong model reference fails here, before anything listens
    from mobilefer.serve.app import CONFIG_ENV, create_app

    if config.host not in LOOPBACK:
        log.warning("listening on %s: anyone who can reach this address can use the service "
                    "(there is no authentication); put it behind a proxy that has some", config.host)
    options = dict(host=config.host, port=config.port, log_level=config.log_level, access_log=False,
                   timeout_graceful_shutdown=5)
    if config.workers == 1:
        uvicorn.run(create_app(config), **options)
        return
    from mobilefer.runtime import load_classifier

    load_classifier(config.model, threads=1)  # fail here, not N times
    os.environ[CONFIG_ENV] = config.to_json()
    uvicorn.run("mobilefer.serve.app:app_from_env", factory=True, workers=config.workers, **options)
