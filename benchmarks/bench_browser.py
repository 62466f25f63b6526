"""The page in headless Chromium: recognition in the browser against the server-side page, on a
real clip played by Chromium's fake camera, in the same run.

    python benchmarks/bench_browser.py [--clip ../shared/data/videos/openmpf_handheld_selfie_rot90meta.mp4]
                                       [--sizes 640x480,1280x720] [--seconds 20] [--static-only]
                                       [--screenshots docs]

Modes: the static site from `mobilefer export --format web`, served with the headers its
_headers file asks for (cross-origin isolated, as Netlify or Cloudflare Pages serve it; no
inference on any server), and the page of `mobilefer serve` in browser mode and in server mode
(each frame sent as a JPEG, up to 30 a second). Beside the static site, the same site with the
INT8 detector on two WebAssembly threads (the page told the machine has 3 cores; on 2 cores the
page runs two as well): the other detector file, measured in the same run. Per mode: what the page downloads until its first result on
the sample photo (#sample) and how long that takes from a cold start; then the webcam on the
clip at each of ``--sizes``: results per second over ``--seconds`` after a 5 s warm-up, and the
median time per frame (browser: detect + classify in the page; server: the round trip). The
server and Chromium share this machine's cores, as they would on a laptop; its load average is
printed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import CHROMIUM, camera_browser, clip_frames, serve_in_child, site_headers, static_host, write_y4m  # noqa: E402

DEFAULT_CLIP = ROOT.parent / "shared/data/videos/openmpf_handheld_selfie_rot90meta.mp4"


def cold_load(browser, url: str, shot: Path | None) -> tuple[float, float, str]:
    """MB downloaded and seconds until the sample's result is on the page; its text."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sizes: list[int] = []
    page.on("response", lambda r: sizes.append(len(r.body())) if r.ok and r.request.method == "GET" else None)
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_function("() => document.body.dataset.sample === 'done'", timeout=180_000)
    seconds = time.perf_counter() - started
    text = page.locator("#result").inner_text() or page.locator("#status").inner_text()
    if shot:
        page.screenshot(path=str(shot), full_page=True, quality=80)
    context.close()
    return sum(sizes) / 1e6, seconds, text


def webcam_rate(p, url: str, clip: Path, seconds: float, cores: int | None = None) -> tuple[float, float, str]:
    """Results per second and median ms per frame with the fake camera playing ``clip``
    (``cores``: the logical cores the page is told the machine has, which sets its threads)."""
    browser = camera_browser(p, clip)
    page = browser.new_page()
    if cores is not None:
        page.add_init_script(f"Object.defineProperty(navigator, 'hardwareConcurrency', {{get: () => {cores}}})")
    page.goto(url)
    page.wait_for_function("() => window.mobilefer.site && (window.mobilefer.mode === 'server' || window.mobilefer.engine)",
                           timeout=180_000)
    if "server" in url.split("#", 1)[-1]:
        page.fill("#rate", "30")
    page.click("#camera")
    time.sleep(5)
    start_n, start_t = page.evaluate("window.mobilefer.results"), time.perf_counter()
    medians, work = [], []
    end = start_t + seconds
    while time.perf_counter() < end:
        time.sleep(2)
        rtts = page.evaluate("window.mobilefer.rtts")
        if rtts:
            medians.append(statistics.median(rtts))
        work.append(page.locator("#server-ms").inner_text())
    rate = (page.evaluate("window.mobilefer.results") - start_n) / (time.perf_counter() - start_t)
    browser.close()
    return rate, statistics.median(medians) if medians else float("nan"), work[-1] if work else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=300, help="frames of the clip the camera loops")
    parser.add_argument("--sizes", default="640x480", help="camera sizes, comma-separated WxH")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--static-only", action="store_true", help="the static site and its baseline only")
    parser.add_argument("--screenshots", type=Path,
                        help="write page_in_browser.jpg and page_on_server.jpg (the sample photo in each mode) here")
    args = parser.parse_args()
    if not CHROMIUM:
        sys.exit("needs Chromium (apt-get install chromium, or `make browser`)")
    if not args.clip.is_file():
        sys.exit(f"{args.clip}: no such clip (../shared/data/videos/)")
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    from playwright.sync_api import sync_playwright

    from mobilefer.export.web import SiteConfig, write_site
    from mobilefer.inference.centerface_choice import INT8

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {size: write_y4m(clip_frames(args.clip, args.frames, size), tmp / f"camera{size[0]}.y4m") for size in sizes}
        site = write_site(SiteConfig(out=str(tmp / "site"))).path
        os.environ["MOBILEFER_CENTERFACE"] = str(INT8)
        baseline = write_site(SiteConfig(out=str(tmp / "baseline"))).path
        del os.environ["MOBILEFER_CENTERFACE"]
        rows = []
        with (serve_in_child() as (server, _), static_host(site, site_headers(site)) as static,
              static_host(baseline, site_headers(baseline)) as old, sync_playwright() as p):
            modes = [("static site, in the browser", f"{static}/", None, "page_in_browser.jpg"),
                     ("static site, INT8 detector on two threads", f"{old}/", 3, None)]
            if not args.static_only:
                modes += [("served page, in the browser", f"{server}/#browser", None, None),
                          ("served page, on the server", f"{server}/#server", None, "page_on_server.jpg")]
            for name, url, cores, shot in modes:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
                mb, load_s, text = cold_load(browser, url + "#sample",
                                             args.screenshots / shot if args.screenshots and shot else None)
                browser.close()
                for size in sizes:
                    rate, per_frame, work = webcam_rate(p, url, clips[size], args.seconds, cores)
                    rows.append((name, f"{size[0]}x{size[1]}", mb, load_s, rate, per_frame, work, text.splitlines()[-1]))
                    print(f"{name}, {size[0]}x{size[1]} camera: {mb:.1f} MB, first result {load_s:.1f} s, webcam "
                          f"{rate:.1f} results/s, {per_frame:.0f} ms/frame ({work}); load {os.getloadavg()[0]:.1f}",
                          flush=True)
    print(f"\nclip: {args.clip.name}, first {args.frames} frames on Chromium's fake camera; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| page | camera | downloads to first result | cold start to first result | webcam results/s "
          "| per frame (median) | one late frame |")
    print("|---|---|---|---|---|---|---|")
    for name, size, mb, load_s, rate, per_frame, work, _ in rows:
        print(f"| {name} | {size} | {mb:.1f} MB | {load_s:.1f} s | {rate:.1f} | {per_frame:.0f} ms | {work} |")
    print("\nsample photo:", "; ".join(f"{r[0]}: {r[7]}" for r in rows[::len(sizes)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
