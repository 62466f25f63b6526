"""`mobilefer serve` from the command line: clear errors, and several worker processes."""
from __future__ import annotations

import socket
import time

import cv2
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


@pytest.mark.slow
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


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_large_photos_leave_the_server_near_its_idle_size(astronaut_bgr):
    """Valid photos of ~24 megapixels and of another shape among small ones: the detector's work
    is capped and what the requests took is handed back, so the worker does not stay at its peak.
    The first large photo is searched as sent (whole, then in tiles: ~10 s of CPU); the others
    ask for faces of 90 px and up, which the detector looks for in one pass at its input cap (a
    pass about the size of each tile: the same kind of peak for a tenth of the time)."""
    big = cv2.resize(astronaut_bgr, (6000, 4000), interpolation=cv2.INTER_LINEAR)
    tall = cv2.resize(astronaut_bgr, (3000, 5000), interpolation=cv2.INTER_LINEAR)
    with serve_in_child() as (url, proc):
        idle = _rss_mb(proc.pid)  # started and warmed up, nothing served yet
        for image, query in ((astronaut_bgr, ""), (big, ""), (tall, "?min_face=90"), (big, "?min_face=90"),
                             (astronaut_bgr, "")):
            data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
            r = httpx.post(f"{url}/v1/recognize{query}", content=data, headers={"content-type": "image/jpeg"},
                           timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()["image"]["width"] == image.shape[1]
        time.sleep(2.0)  # the worker trims once it has been idle a moment
        after = _rss_mb(proc.pid)
    assert after < idle + 100, f"idle {idle:.0f} MB, after three large photos {after:.0f} MB"


def test_ray_flags_are_checked_before_anything_starts(capsys):
    from mobilefer.cli import main
    from mobilefer.errors import ConfigError
    from mobilefer.serve.ray_serve import RayPlan

    assert RayPlan.parse_autoscale(" 1, 4 ") == (1, 4) and RayPlan.parse_autoscale(None) is None
    for bad in ("4", "a,b", "1;4"):
        with pytest.raises(ConfigError, match="expected MIN,MAX"):
            RayPlan.parse_autoscale(bad)
    with pytest.raises(ConfigError, match="MIN <= MAX"):
        RayPlan(autoscale=(3, 1))
    with pytest.raises(ConfigError, match="--replicas 0"):
        RayPlan(replicas=0)
    assert main(["serve", "--replicas", "3"]) == 2  # Ray's flags without --ray
    assert "go with --ray" in capsys.readouterr().err


@pytest.mark.slow  # a local Ray cluster starts (~20 s)
def test_serve_on_ray_answers_as_serve_does_through_each_replica(astronaut_bgr, tmp_path):
    """Two replicas of the same app behind Ray Serve's proxy: the same faces as the one-process
    service, the page with its headers, the limits (a non-image is 415), each replica's own pid."""
    import cv2

    from mobilefer.inference.recognizer import EmotionRecognizer

    jpeg = cv2.imencode(".jpg", astronaut_bgr)[1].tobytes()
    (tmp_path / "photo.jpg").write_bytes(jpeg)
    want = [f.to_dict() for f in EmotionRecognizer.load().recognize(tmp_path / "photo.jpg")]
    with serve_in_child("--ray", "--replicas", "2", timeout_s=180) as (url, proc):
        pids = set()
        with httpx.Client(base_url=url, timeout=30) as c:
            for i in range(40):  # the proxy spreads requests: both replicas answer within a few
                r = c.post("/v1/recognize", content=jpeg, headers={"content-type": "image/jpeg"})
                assert r.status_code == 200 and r.json()["faces"] == want
                pids.add(c.get("/healthz").json()["pid"])
                if len(pids) == 2 and i >= 5:
                    break
            assert len(pids) == 2  # both replicas answered
            page = c.get("/")
            assert page.status_code == 200 and page.headers["cross-origin-opener-policy"] == "same-origin"
            assert c.post("/v1/recognize", content=b"not an image").status_code == 415
        proc.send_signal(__import__("signal").SIGINT)  # shuts the local cluster down
        proc.wait(60)
