"""``mobilefer serve --ray``: the same application on Ray Serve, its replicas spread over a Ray
cluster (``pip install 'mobilefer[ray]'``).

Each replica builds the application ``serve`` runs (:func:`~.app.create_app`: its own model,
detector slots, limits, routes and page) and answers the requests Ray Serve's proxy routes to it
through that application, in process (ASGI), so one app serves both ways. A replica that dies
is started again by Ray Serve; the requests it was working on fail, none after them.
"""
from __future__ import annotations

import logging
import re
import signal
import time
from dataclasses import dataclass

from mobilefer.errors import ConfigError, require
from mobilefer.serve.config import ServeConfig

log = logging.getLogger(__name__)

# headers the proxy and the ASGI call set again themselves
_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


@dataclass
class RayPlan:
    """How many replicas: ``replicas`` fixed, or ``autoscale`` (min, max) with Ray Serve's
    autoscaler; ``address``: the cluster (None: a local one started here; auto; ray://...)."""

    replicas: int = 2
    autoscale: tuple[int, int] | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.replicas < 1 or self.replicas > 256:
            raise ConfigError(f"--replicas {self.replicas}: expected 1 to 256")
        if self.autoscale is not None:
            low, high = self.autoscale
            if not 0 <= low <= high or high < 1:
                raise ConfigError(f"--autoscale {low},{high}: expected MIN,MAX with 0 <= MIN <= MAX and MAX >= 1")

    @staticmethod
    def parse_autoscale(text: str | None) -> tuple[int, int] | None:
        if text is None:
            return None
        found = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*", text)
        if not found:
            raise ConfigError(f"--autoscale {text!r}: expected MIN,MAX, e.g. 1,4")
        return int(found.group(1)), int(found.group(2))


class Replica:
    """One replica's application, answering the proxy's requests in process."""

    def __init__(self, config_json: str) -> None:
        import httpx

        from mobilefer.serve.app import create_app

        self.app = create_app(ServeConfig.from_json(config_json))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://replica",
                                        timeout=None)

    async def __call__(self, request):
        from starlette.responses import Response

        answer = await self.client.request(
            request.method, request.url.path, params=request.query_params, content=await request.body(),
            headers=[(k, v) for k, v in request.headers.items() if k.lower() not in _HOP])
        return Response(answer.content, status_code=answer.status_code,
                        headers={k: v for k, v in answer.headers.items() if k.lower() not in _HOP})


def deployment(config: ServeConfig, plan: RayPlan):
    """The Ray Serve application: Replica, as many as ``plan`` says, each taking what one
    ``serve`` worker takes (its slots' threads)."""
    from ray import serve

    options = {"ray_actor_options": {"num_cpus": max(0.25, config.slots * (config.threads or 1) / 2)},
               "max_ongoing_requests": config.slots + config.queue}
    if plan.autoscale is not None:
        low, high = plan.autoscale
        options["autoscaling_config"] = {"min_replicas": low, "max_replicas": high,
                                         "target_ongoing_requests": max(1, config.slots)}
    else:
        options["num_replicas"] = plan.replicas
    return serve.deployment(Replica, name="mobilefer", **options).bind(config.to_json())


def serve_on_ray(config: ServeConfig, plan: RayPlan) -> None:
    """Deploy on Ray Serve and serve until interrupted (Ctrl-C shuts the application down)."""
    require("ray.serve", "ray", "serve --ray")
    import ray
    from ray import serve

    from mobilefer.runtime import resolve_model

    resolve_model(config.model)  # a wrong model reference fails here, before anything starts
    ray.init(address=plan.address, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    serve.start(http_options={"host": config.host, "port": config.port}, logging_config={"log_level": "WARNING"})
    serve.run(deployment(config, plan), name="mobilefer", route_prefix="/")
    shape = f"{plan.autoscale[0]}-{plan.autoscale[1]} replicas (autoscaled)" if plan.autoscale else \
        f"{plan.replicas} replica(s)"
    print(f"serving on Ray Serve: http://{config.host}:{config.port}/ ({shape}); Ctrl-C stops", flush=True)

    def stop(*_args) -> None:  # a service manager's SIGTERM shuts down as Ctrl-C does, the cluster with it
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()
