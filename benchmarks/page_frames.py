"""Where the page's camera time goes, frame by frame: how many camera frames each result took,
and what a frame with a whole-frame search spends its time on.

    python benchmarks/page_frames.py [--clip ../shared/data/videos/openmpf_hikers_group_walking.mp4]
                                     [--size 1280x720] [--seconds 12]

The static site (`mobilefer export --format web`, served with its _headers: cross-origin
isolated, WebAssembly threads) in headless Chromium, its fake camera playing the clip's first
300 frames at ``--size`` (30 frames/s). After a 5 s warm-up the page's own functions are timed
from outside for ``--seconds`` (wrapped in place; nothing of the site changes): each frame's
`CameraFaces.videoTracks` (finding and following the faces), each look of the plan, each
network run and input, and each frame's classification (`labelVideo`).

The page recognises the newest camera frame as soon as the last one is done, and waits for the
camera where none has come. So a frame that takes a little longer than one camera frame costs
two: the table counts, for each number of camera frames between two results, the frames that
took it, their median time in `videoTracks`, and whether they searched the whole frame. Then the
parts of a search frame (the network run over the whole frame, its input, the copy for large
faces, the frame's classification) as medians, and the looks that cost most in all.
"""
from __future__ import annotations

import argparse
import bisect
import os
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import CHROMIUM, camera_browser, clip_frames, site_headers, static_host, write_y4m  # noqa: E402

DEFAULT_CLIP = ROOT.parent / "shared/data/videos/openmpf_hikers_group_walking.mp4"
CAMERA_MS = 1000 / 30

# Wraps the page's functions in place, recording start times and durations (ms) in window.__t.
TIMERS = """
(() => {
  const T = window.__t = {};
  const note = (key, t0) => { (T[key] = T[key] || []).push([t0, performance.now() - t0]); };
  const P = MobileferCamera.CameraFaces.prototype;
  for (const name of ["videoTracks", "labelVideo"]) {
    const inner = P[name];
    P[name] = async function (...args) { const t0 = performance.now(); const r = await inner.apply(this, args); note(name, t0); return r; };
  }
  const look = P.look;
  P.look = async function (step, ...rest) {
    const t0 = performance.now(); const r = await look.call(this, step, ...rest);
    note("look " + step.constructor.name + (step.boxes ? " x" + step.boxes.length : ""), t0); return r;
  };
  const CF = MobileferCenterFace, input = CF.passInput;
  CF.passInput = function (img, ratio, win) {
    const t0 = performance.now(); const r = input(img, ratio, win);
    note("input " + (win ? "window" : r.width + "x" + r.height), t0); return r;
  };
  const session = window.mobilefer.engine.detector, run = session.run.bind(session);
  session.run = async function (feeds) {
    const t0 = performance.now(); const r = await run(feeds);
    note("run " + Object.values(feeds)[0].dims.join("x"), t0); return r;
  };
})();
"""


def record(clip: Path, size: tuple[int, int], seconds: float) -> tuple[dict, float]:
    """The page's timings on the camera playing ``clip`` and its results a second."""
    from playwright.sync_api import sync_playwright

    from mobilefer.export.web import SiteConfig, write_site

    with tempfile.TemporaryDirectory() as tmp:
        camera = write_y4m(clip_frames(clip, 300, size), Path(tmp) / "camera.y4m")
        site = write_site(SiteConfig(out=str(Path(tmp) / "site"))).path
        with static_host(site, site_headers(site)) as url, sync_playwright() as p:
            browser = camera_browser(p, camera)
            try:
                page = browser.new_page()
                page.goto(url + "/")
                page.wait_for_function("() => window.mobilefer.site && window.mobilefer.engine", timeout=180_000)
                page.evaluate(TIMERS)
                page.click("#camera")
                time.sleep(5)
                page.evaluate("(() => { for (const k of Object.keys(window.__t)) delete window.__t[k]; })()")
                count, start = page.evaluate("window.mobilefer.results"), time.perf_counter()
                time.sleep(seconds)
                rate = (page.evaluate("window.mobilefer.results") - count) / (time.perf_counter() - start)
                return page.evaluate("window.__t"), rate
            finally:
                browser.close()


def report(t: dict, rate: float) -> None:
    frames = t.get("videoTracks", [])
    starts = [s for s, _ in frames]
    searched = {bisect.bisect_right(starts, s) - 1 for s, _ in t.get("look Whole", [])}
    classify: dict[int, float] = defaultdict(float)
    for s, ms in t.get("labelVideo", []):
        classify[bisect.bisect_right(starts, s) - 1] += ms
    print(f"{rate:.1f} results/s; {len(frames)} frames timed, {len(searched)} with a whole-frame search\n")
    print("| camera frames to the next result | frames | of them searched | videoTracks, median ms |")
    print("|---|---|---|---|")
    rows = defaultdict(list)
    for i, (a, b) in enumerate(zip(starts, starts[1:])):
        rows[max(1, round((b - a) / CAMERA_MS))].append(i)
    for periods, members in sorted(rows.items()):
        print(f"| {periods} | {len(members)} | {sum(i in searched for i in members)} | "
              f"{statistics.median(frames[i][1] for i in members):.1f} |")
    if searched:
        def median_on_search(key: str) -> str:
            own = [ms for s, ms in t.get(key, []) if bisect.bisect_right(starts, s) - 1 in searched]
            return f"{statistics.median(own):.1f} ms" if own else "-"
        whole = [k for k in t if k.startswith("run 1x3x") and median_on_search(k) != "-"]
        print("\nA search frame, medians: videoTracks " + median_on_search("videoTracks")
              + ", classification " + f"{statistics.median(classify[i] for i in searched):.1f} ms, "
              + ", ".join(f"{k} {median_on_search(k)}" for k in sorted(whole, key=lambda k: -len(t[k]))))
    totals = Counter({k: sum(ms for _, ms in v) for k, v in t.items() if k.startswith(("look", "run", "input"))})
    print("\nMost time in all: " + ", ".join(f"{k} {ms:.0f} ms ({len(t[k])}x)" for k, ms in totals.most_common(8)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default=str(DEFAULT_CLIP))
    parser.add_argument("--size", default="1280x720", help="the camera's WxH")
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    if not CHROMIUM:
        sys.exit("no Chromium: install it (make browser) or set MOBILEFER_CHROMIUM")
    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        assert len(size) == 2 and min(size) > 0
    except (ValueError, AssertionError):
        sys.exit(f"--size {args.size!r}: expected WxH, such as 1280x720")
    print(f"{Path(args.clip).name} at {args.size}; load average {os.getloadavg()[0]:.1f}")
    report(*record(Path(args.clip), size, args.seconds))


if __name__ == "__main__":
    main()
