"""The static site against the same site with some of site.json's live rules changed, taking turns
on Chromium's fake camera: results a second, medians.

    python benchmarks/page_ab.py --set video_views=false
        [--clip ../shared/data/videos/openmpf_hikers_group_walking.mp4] [--size 1280x720]
        [--seconds 12] [--rounds 4]

Both sites come from `mobilefer export --format web`; the second has each ``--set NAME=VALUE``
(a JSON value) written into its site.json's ``follow`` (the live plan's rules, the
classification rate, VIDEO_VIEWS: `web.follow_settings`). Each round opens each site in a fresh
headless Chromium with the camera playing the clip's first ``--frames`` frames at ``--size``,
starts the webcam, waits 4 s and counts the results of the next ``--seconds``; the sites take
turns, so a machine busy with other work slows each alike. Each site is served with the headers
its _headers file asks for (cross-origin isolated: WebAssembly threads).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import CHROMIUM, camera_browser, clip_frames, site_headers, static_host, write_y4m  # noqa: E402

DEFAULT_CLIP = ROOT.parent / "shared/data/videos/openmpf_hikers_group_walking.mp4"


def results_per_second(p, url: str, camera: Path, seconds: float) -> float:
    """The page at ``url`` reading Chromium's fake camera (``camera``, a Y4M file): results a second."""
    browser = camera_browser(p, camera)
    try:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("() => window.mobilefer.site && window.mobilefer.engine", timeout=180_000)
        page.click("#camera")
        time.sleep(4)
        count, start = page.evaluate("window.mobilefer.results"), time.perf_counter()
        time.sleep(seconds)
        return (page.evaluate("window.mobilefer.results") - count) / (time.perf_counter() - start)
    finally:
        browser.close()


def changes(pairs: list[str]) -> dict[str, object]:
    """--set NAME=VALUE pairs -> {name: JSON value}."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"--set {pair!r}: expected NAME=VALUE")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            sys.exit(f"--set {pair!r}: the value is not JSON (true, 3, 0.5, \"text\")")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", required=True, metavar="NAME=VALUE",
                        help="a rule of site.json's follow for the second site (repeatable)")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=300, help="frames of the clip the camera loops")
    parser.add_argument("--size", default="1280x720", help="the camera's size, WxH")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if not CHROMIUM:
        sys.exit("needs Chromium (apt-get install chromium, or `make browser`)")
    if not args.clip.is_file():
        sys.exit(f"{args.clip}: no such clip (../shared/data/videos/)")
    changed = changes(args.set)
    size = tuple(int(v) for v in args.size.split("x"))
    from playwright.sync_api import sync_playwright

    from mobilefer.export.web import SiteConfig, write_site

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        camera = write_y4m(clip_frames(args.clip, args.frames, size), tmp / "camera.y4m")
        sites = {"as built": write_site(SiteConfig(out=str(tmp / "built"))).path,
                 "changed": write_site(SiteConfig(out=str(tmp / "changed"))).path}
        settings = json.loads((sites["changed"] / "site.json").read_text())
        unknown = sorted(set(changed) - set(settings["follow"]))
        if unknown:
            sys.exit(f"--set: site.json's follow has no {', '.join(unknown)} (it has {', '.join(sorted(settings['follow']))})")
        settings["follow"].update(changed)
        (sites["changed"] / "site.json").write_text(json.dumps(settings))
        rates: dict[str, list[float]] = {name: [] for name in sites}
        with sync_playwright() as p:
            for _ in range(args.rounds):
                for name, site in sites.items():
                    with static_host(site, site_headers(site)) as url:
                        rates[name].append(results_per_second(p, f"{url}/", camera, args.seconds))
                    print(f"{name}: {rates[name][-1]:.1f} results/s, load {os.getloadavg()[0]:.1f}", flush=True)
    built, other = (statistics.median(rates[name]) for name in sites)
    print(f"\n{args.clip.name}, first {args.frames} frames at {args.size}, {args.rounds} rounds of {args.seconds:g} s, "
          f"taking turns; changed: {', '.join(args.set)}")
    for name in sites:
        print(f"- {name}: median {statistics.median(rates[name]):.2f} results/s ({', '.join(f'{r:.1f}' for r in rates[name])})")
    print(f"- as built / changed: {built / other:.2f}x; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
