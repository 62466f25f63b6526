"""`mobilefer serve` from the command line: clear errors, and several worker processes."""
from __future__ import annotations

import socket
import time

import pytest
from helpers import serve_in_child

pytest.importorskip("fastapi")
import httpx  # noqa: E402

from mobilefer.cli import build_parser, main  # noqa: E402


def test_defaults_bind_to_loopback():
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.workers == 1


def test_bad_model_and_busy_port_are_one_line_errors(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "missing.onnx"), "--port", "0"]) == 2
    assert "missing.onnx" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["serve", "--slots", "0"]) == 2
    assert "--slots 0" in capsys.readouterr().err


def test_two_workers_each_load_the_model_and_share_the_port(astronaut_bgr):
    import cv2

    with serve_in_child("--workers", "2", "--model", "fer2013-small") as (url, proc):
        pids: set[int] = set()
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:
            try:
                with httpx.Client(base_url=url, timeout=2) as c:  # a new connection may reach either worker
                    pids.add(c.get("/healthz").json()["pid"])
            except httpx.TransportError:
                time.sleep(0.2)
            assert proc.poll() is None, proc.communicate()[0]
        assert len(pids) == 2 and proc.pid not in pids
        jpeg = cv2.imencode(".jpg", astronaut_bgr)[1].tobytes()
        r = httpx.post(f"{url}/v1/recognize", content=jpeg, headers={"content-type": "image/jpeg"}, timeout=10)
        assert r.status_code == 200 and len(r.json()["faces"]) == 1
