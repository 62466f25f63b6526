"""`mobilefer serve --ray` under load beside the one-process `mobilefer serve`, with a replica
killed halfway: N clients for T seconds over loopback against each.

    python benchmarks/bench_serve_ray.py --clients 32 --duration 60 [--replicas 2] [--kill-at 0.5]

Both servers run in child processes on this machine, beside the load generator (say so when
quoting). Halfway through the Ray run one replica's process is killed (SIGKILL, found by its
process title); the requests that fail are counted, with how many that replica was serving at
that moment (its /healthz in_progress just before), and Ray Serve starts another.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_serve import sample_jpegs, send  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(extra: list[str], wait_s: float = 180) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "mobilefer.cli", "serve", "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + wait_s
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(f"server did not start: {' '.join(cmd)}")


def replica_pids() -> list[int]:
    """Ray Serve replica processes of this machine (their process title names them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "ServeReplica:mobilefer" in title:
                found.append(int(entry.name))
    return sorted(found)


async def load(url: str, images: list[bytes], clients: int, duration: float, kill_at: float | None) -> dict:
    latencies, failures, codes = [], [], {}
    began = time.perf_counter()
    stop = began + duration
    killed: dict = {}

    async def client(k: int, http: httpx.AsyncClient) -> None:
        i = k
        while time.perf_counter() < stop:
            start = time.perf_counter()
            key, _ = await send(http, images[i % len(images)])
            codes[key] = codes.get(key, 0) + 1
            if key == "200":
                latencies.append(time.perf_counter() - start)
            else:
                failures.append(round(time.perf_counter() - began, 1))
            i += 1

    async def killer(http: httpx.AsyncClient) -> None:
        await asyncio.sleep(kill_at * duration)
        pids = replica_pids()
        if not pids:
            killed["error"] = "no replica process found"
            return
        health = (await http.get("/healthz")).json()  # one replica's view, just before
        os.kill(pids[0], signal.SIGKILL)
        killed.update(pid=pids[0], at_s=round(time.perf_counter() - began, 1), replicas_before=len(pids),
                      in_progress_one_replica=health.get("in_progress"))
        while time.perf_counter() < stop:  # how long until a new replica runs
            await asyncio.sleep(0.5)
            if len(replica_pids()) >= len(pids) and "back_after_s" not in killed:
                killed["back_after_s"] = round(time.perf_counter() - began - killed["at_s"], 1)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        jobs = [client(k, http) for k in range(clients)] + ([killer(http)] if kill_at is not None else [])
        await asyncio.gather(*jobs)
    elapsed = time.perf_counter() - began
    ms = sorted(1000 * v for v in latencies)
    pct = (lambda q: ms[min(len(ms) - 1, int(q * len(ms)))] if ms else float("nan"))
    return {"ok": len(ms), "rps": round(len(ms) / elapsed, 1), "p50_ms": round(pct(0.5), 1),
            "p95_ms": round(pct(0.95), 1), "failed": len(failures), "failed_at_s": failures[:40], "codes": codes,
            "killed": killed}


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of the run at which a replica dies")
    args = parser.parse_args()
    images = sample_jpegs()
    rows = {}
    for label, extra, kill in (("serve (one process)", [], None),
                               (f"serve --ray ({args.replicas} replicas)", ["--ray", "--replicas", str(args.replicas)],
                                args.kill_at)):
        proc, url = start(extra)
        try:
            asyncio.run(load(url, images, 2, 3.0, None))  # warm up
            rows[label] = asyncio.run(load(url, images, args.clients, args.duration, kill))
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.clients} clients, "
          f"{args.duration:.0f} s, 640x480 JPEGs with 1-3 faces; the load generator on the same machine")
    print("| server | ok | req/s | p50 ms | p95 ms | failed |")
    print("|---|---|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['ok']} | {r['rps']} | {r['p50_ms']} | {r['p95_ms']} | {r['failed']} |")
    for label, r in rows.items():
        if r["killed"]:
            print(f"{label}: killed {r['killed']}; failed requests at (s): {r['failed_at_s']}; codes {r['codes']}")


if __name__ == "__main__":
    main()
