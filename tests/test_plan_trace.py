"""The page's live plan (web/page/plan.js) against Python's (inference/plan.py), look for look.

Python's VideoFaces follows faces on real pixels with CenterFace; each frame's looks, the boxes
they found, the reported tracks and every track's state are recorded. Node then runs plan.js on
the same frame sizes and is handed the recorded boxes for its looks: it must ask for the same
looks (the same bounds, boxes and checks) and give the same tracks, ids and states, frame by
frame. No pixels in the page's half: the plan alone is compared, exactly.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import astronaut_head, clip_frames, needs_centerface, room_cut_frames, texture, walk_frames
from mobilefer.inference.live import VideoFaces
from mobilefer.inference.plan import Again, Follow, Glance, LivePlan, Whole
from mobilefer.inference.tracking import IoUTracker
from mobilefer.web import detector_settings, follow_settings, page_dir

NODE = shutil.which("node")
REQUIRED = os.environ.get("MOBILEFER_REQUIRE_BROWSER") == "1"  # CI: the page's tests fail, never skip
pytestmark = [needs_centerface,
              pytest.mark.skipif(not NODE and not REQUIRED, reason="needs Node.js: apt-get install nodejs")]
SELFIE = Path(__file__).resolve().parents[2] / "shared/data/videos/openmpf_handheld_selfie_rot90meta.mp4"


def _box(box) -> list | None:
    return None if box is None else [box.x, box.y, box.w, box.h, box.score]


def _look(look) -> dict:
    if isinstance(look, Whole):
        return {"look": "Whole", "min_face": look.min_face, "min_box": look.min_box}
    out = {"look": type(look).__name__, "boxes": [_box(b) for b in look.boxes], "min_box": look.min_box}
    if isinstance(look, Follow):
        out["check"] = list(look.check)
    assert isinstance(look, (Follow, Again, Glance))
    return out


def record(video: VideoFaces, frames: list[np.ndarray]) -> list[dict]:
    """Each frame of ``frames`` through ``video``, with its plan's looks, their boxes and the
    tracks that came of them recorded (and each search its plan asked for early)."""
    plan: LivePlan = video.plan
    trace: list[dict] = []
    frame, upcoming = plan.frame, plan.upcoming

    def recorded_frame(width, height, cut=False):
        step = {"frame": [width, height, cut], "looks": []}
        trace.append(step)
        steps = frame(width, height, cut)
        look = next(steps)
        try:
            while True:
                found = yield look
                step["looks"].append([_look(look), [_box(b) for b in found]])
                look = steps.send(found)
        except StopIteration as done:
            tracks, step["searched"] = done.value
            step["shown"] = [[t.id, *_box(t.box)] for t in tracks]
            step["states"] = [[t.id, plan.state(t), *_box(t.box)] for t in plan.tracker.tracks]
            return done.value

    def recorded_upcoming(width, height):
        frames_on, look = upcoming(width, height)
        trace.append({"upcoming": [width, height], "got": [frames_on, _look(look)]})
        return frames_on, look

    plan.frame, plan.upcoming = recorded_frame, recorded_upcoming
    for image in frames:
        video(image)
    return trace


# Runs plan.js over a trace; prints the first difference as JSON, or null.
REPLAY = r"""
const fs = require("fs");
const [planJs, tracePath, settingsPath] = process.argv.slice(1);
const P = require(planJs), trace = JSON.parse(fs.readFileSync(tracePath)), s = JSON.parse(fs.readFileSync(settingsPath));
const plan = new P.LivePlan(new P.IoUTracker(s.follow.iou, s.follow.max_missed), s.every, s.min_face, s.follow, s.detector);
const box = (b) => (b === null ? null : [b[0], b[1], b[2], b[3], b[4]]);
const look = (l) => (l instanceof P.Whole ? { look: "Whole", min_face: l.minFace, min_box: l.minBox }
  : Object.assign({ look: l.constructor.name, boxes: l.boxes.map(box), min_box: l.minBox }, l instanceof P.Follow ? { check: l.check } : {}));
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
let difference = null;
trace.forEach((step, i) => {
  if (difference) return;
  if (step.upcoming) {
    const [on, l] = plan.upcoming(...step.upcoming);
    if (!same([on, look(l)], step.got)) difference = { step: i, want: step.got, got: [on, look(l)] };
    return;
  }
  const steps = plan.frame(...step.frame);
  let next = steps.next(), k = 0;
  while (!next.done) {
    const want = step.looks[k];
    if (!want || !same(look(next.value), want[0])) {
      difference = { step: i, look: k, want: want && want[0], got: look(next.value) };
      return;
    }
    next = steps.next(want[1].map((b) => (b === null ? null : [...b])));
    k += 1;
  }
  const [tracks, searched] = next.value;
  const got = { looks: k, searched, shown: tracks.map((t) => [t.id, ...box(t.box)]),
                states: plan.tracker.tracks.map((t) => [t.id, plan.state(t), ...box(t.box)]) };
  const want = { looks: step.looks.length, searched: step.searched, shown: step.shown, states: step.states };
  if (!same(got, want)) difference = { step: i, want, got };
});
console.log(JSON.stringify(difference));
"""


def replay(trace: list[dict], every: int, min_face: int, tmp_path: Path) -> dict | None:
    """The first difference between ``trace`` and plan.js run on it, or None."""
    if not NODE:
        pytest.fail("needs Node.js (apt-get install nodejs; `make browser` installs it)")
    (tmp_path / "trace.json").write_text(json.dumps(trace))
    (tmp_path / "settings.json").write_text(json.dumps(
        {"follow": follow_settings(), "detector": detector_settings(), "every": every, "min_face": min_face}))
    plan_js = page_dir() / "plan.js"
    run = subprocess.run([NODE, "-e", REPLAY, str(plan_js), str(tmp_path / "trace.json"), str(tmp_path / "settings.json")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def crowd_frames() -> list[np.ndarray]:
    """14 frames: 12 faces on a textured background, drifting; two covered on frames 5-7."""
    from skimage import data

    head = astronaut_head(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), 56)
    frames = []
    for i in range(14):
        frame = np.roll(texture(3), 2 * i, axis=1)
        for k in range(12):
            if k in (3, 8) and 5 <= i <= 7:
                continue
            x, y = 20 + 150 * (k % 4) + i, 20 + 150 * (k // 4)
            frame[y: y + head.shape[0], x: x + head.shape[1]] = head
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def detector():
    from mobilefer.inference.detectors import create_detector

    return create_detector("centerface")


@pytest.mark.parametrize("scene, every", [("walk", 6), ("cut", 4), ("crowd", 5)])
def test_the_pages_plan_asks_for_pythons_looks_and_gives_its_tracks(detector, astronaut_bgr, tmp_path, scene, every):
    """A face walking and one arriving (the next search brought nearer), a cut to another room
    (every track ends), a crowd of 12 with two covered for three frames (faces checked in turns,
    lost, looked for again): plan.js asks for the same looks and gives the same tracks and states."""
    frames = {"walk": lambda: walk_frames(astronaut_bgr), "cut": lambda: room_cut_frames(astronaut_bgr),
              "crowd": crowd_frames}[scene]()
    video = VideoFaces(detector, IoUTracker(), every=every, min_face=20)
    trace = record(video, frames)
    looks = {one[0]["look"] for step in trace for one in step.get("looks", [])}
    assert {"Whole", "Follow", "Glance"} <= looks  # each kind is compared
    if scene == "crowd":
        assert "Again" in looks and any(row[1] == "lost" for step in trace for row in step.get("states", []))
    if scene == "cut":
        assert any(step["frame"][2] for step in trace if "frame" in step)
    assert replay(trace, every, 20, tmp_path) is None


def test_a_search_asked_for_early_is_the_same_in_the_page(detector, astronaut_bgr, tmp_path):
    """A file read ahead: each scheduled search is asked for on the search before's frame
    (LivePlan.upcoming), its bounds fixed then; the page's plan fixes the same ones."""
    frames = walk_frames(astronaut_bgr)
    video = VideoFaces(detector, IoUTracker(), every=4, min_face=20,
                       ahead=lambda k: frames[min(len(frames) - 1, video.plan.index + k)])
    trace = record(video, frames)
    assert sum("upcoming" in step for step in trace) >= 3
    assert replay(trace, 4, 20, tmp_path) is None


@pytest.mark.skipif(not SELFIE.is_file(), reason="needs ../shared/data/videos")
def test_the_pages_plan_follows_a_real_clip_as_python_does(detector, tmp_path):
    """90 frames of the handheld selfie (640x480; whip pans, a face of ~230 px) at predict's defaults."""
    from mobilefer.inference.recognizer import DEFAULT_VIDEO_DETECT_EVERY

    frames = list(clip_frames(SELFIE, 90))
    video = VideoFaces(detector, IoUTracker(), every=DEFAULT_VIDEO_DETECT_EVERY, min_face=detector.min_face)
    trace = record(video, frames)
    assert sum(len(step.get("shown", [])) for step in trace) > 60
    assert replay(trace, DEFAULT_VIDEO_DETECT_EVERY, detector.min_face, tmp_path) is None
