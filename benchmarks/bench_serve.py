"""Load on the HTTP service over loopback: N concurrent clients for T seconds.

Starts `mobilefer serve` in a child process, posts 640x480 JPEGs with 1-3 faces (the
public-domain astronaut portrait, pasted), and reports requests/s, p50/p95/p99 latency,
errors, 503s and the server's memory before, at peak and after. In the same run:
the in-process recognizer on the same images (the cost with no HTTP at all) and
one client alone, so the overhead of the service is a ratio. With --overload M, a second
phase sends M clients at a server whose queue is too short for them, to show that it
answers 503 with Retry-After and stays up.

    python benchmarks/bench_serve.py --clients 32 --duration 60 [--workers 1] [--overload 128]

The load generator shares the machine's cores with the server; say so when quoting.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx

ROOT = Path(__file__).resolve().parents[1]


def sample_jpegs() -> list[bytes]:
    """Three 640x480 JPEGs with 1, 2 and 3 faces: the frames of bench_inference's video."""
    from bench_inference import faces_frame

    return [cv2.imencode(".jpg", faces_frame(count), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
            for count in (1, 2, 3)]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, MB."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found + [g for c in found for g in _children(c)]


def start_server(args: argparse.Namespace, queue: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "mobilefer.cli", "serve", "--port", str(port), "--workers", str(args.workers),
           "--slots", str(args.slots), "--queue", str(queue)]
    if args.model:
        cmd += ["--model", args.model]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


async def send(http: httpx.AsyncClient, image: bytes) -> tuple[str, httpx.Response | None]:
    """One POST /v1/recognize of a JPEG: (its status code, or the transport error's name; the response)."""
    try:
        r = await http.post("/v1/recognize", content=image, headers={"content-type": "image/jpeg"})
    except httpx.HTTPError as exc:
        return type(exc).__name__, None
    return str(r.status_code), r


async def load(url: str, images: list[bytes], clients: int, duration: float, pid: int) -> dict:
    latencies: list[float] = []
    codes: dict[str, int] = {}
    peak = [rss_mb(pid)]
    stop = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(k: int, http: httpx.AsyncClient) -> None:
        i = k
        while time.perf_counter() < stop:
            start = time.perf_counter()
            key, r = await send(http, images[i % len(images)])
            if key == "200":
                latencies.append(time.perf_counter() - start)
            elif key == "503":
                await asyncio.sleep(min(1.0, float(r.headers.get("retry-after", 1))))
            codes[key] = codes.get(key, 0) + 1
            i += 1

    async def watch() -> None:
        while time.perf_counter() < stop:
            peak.append(rss_mb(pid))
            await asyncio.sleep(0.5)

    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        await asyncio.gather(watch(), *[client(k, http) for k in range(clients)])
    elapsed = time.perf_counter() - began
    ms = sorted(1000 * v for v in latencies)
    pct = (lambda q: ms[min(len(ms) - 1, int(q * len(ms)))] if ms else float("nan"))
    return {"clients": clients, "seconds": round(elapsed, 1), "ok": len(ms),
            "rps": round(len(ms) / elapsed, 1), "p50_ms": round(pct(0.50), 1), "p95_ms": round(pct(0.95), 1),
            "p99_ms": round(pct(0.99), 1), "status": codes,
            "errors": sum(v for k, v in codes.items() if k not in ("200", "503")),
            "busy_503": codes.get("503", 0), "rss_peak_mb": round(max(peak), 1)}


def in_process(images: list[bytes], model: str | None, repeats: int = 30) -> float:
    """Median ms per image with no HTTP: decode + detect + classify, one thread of control."""
    from mobilefer.data.images import decode_image
    from mobilefer.inference.recognizer import EmotionRecognizer

    rec = EmotionRecognizer.load(model)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        rec.recognize(decode_image(images[i % len(images)]))
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[3:])


def phase(args: argparse.Namespace, images: list[bytes], clients: int, duration: float, queue: int) -> dict:
    proc, url = start_server(args, queue)
    try:
        before = rss_mb(proc.pid)
        result = asyncio.run(load(url, images, clients, duration, proc.pid))
        time.sleep(1)
        health = httpx.get(f"{url}/healthz", timeout=5)
        result |= {"queue": queue, "rss_before_mb": round(before, 1), "rss_after_mb": round(rss_mb(proc.pid), 1),
                   "alive_after": health.status_code == 200}
        return result
    finally:
        proc.terminate()
        proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--queue", type=int, default=64)
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads per inference (default: the server's)")
    parser.add_argument("--model", help="bundled name or path (default: the bundled default)")
    parser.add_argument("--overload", type=int, default=0, help="clients for a phase beyond capacity (0: skip)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    images = sample_jpegs()
    baseline = in_process(images, args.model)
    rows = [phase(args, images, 1, min(10.0, args.duration), args.queue),
            phase(args, images, args.clients, args.duration, args.queue)]
    if args.overload:
        rows.append(phase(args, images, args.overload, min(20.0, args.duration), queue=max(1, args.overload // 8)))

    print(f"{os.cpu_count()} CPUs; workers {args.workers}, slots {args.slots}; 640x480 JPEG, 1-3 faces; "
          f"load generator on the same machine")
    print(f"in-process recognizer (no HTTP), median per image: {baseline:.1f} ms = {1000 / baseline:.1f} images/s")
    head = f"{'clients':>7} {'queue':>5} {'s':>5} {'ok':>6} {'req/s':>6} {'p50':>7} {'p95':>7} {'p99':>7} " \
           f"{'503s':>5} {'errors':>6} {'RSS MB before/peak/after':>26} {'up':>3}"
    print(head)
    for r in rows:
        mem = f"{r['rss_before_mb']:.0f}/{r['rss_peak_mb']:.0f}/{r['rss_after_mb']:.0f}"
        print(f"{r['clients']:>7} {r['queue']:>5} {r['seconds']:>5.0f} {r['ok']:>6} {r['rps']:>6.1f} "
              f"{r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['busy_503']:>5} {r['errors']:>6} "
              f"{mem:>26} {'yes' if r['alive_after'] else 'NO':>3}")
    one = rows[0]
    print(f"service overhead at 1 client: p50 {one['p50_ms']:.1f} ms / in-process {baseline:.1f} ms = "
          f"{one['p50_ms'] / baseline:.2f}x; throughput at {args.clients} clients: {rows[1]['rps']:.1f} req/s = "
          f"{rows[1]['rps'] * baseline / 1000:.2f}x the in-process rate")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"in_process_ms": baseline, "phases": rows, "args": vars(args) | {
            "out": str(args.out)}}, indent=2))


if __name__ == "__main__":
    main()
