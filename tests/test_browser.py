"""The page as a person uses it: a real headless Chromium, a server started like `mobilefer serve`,
and a static site written by `mobilefer export --format web` served as any static host would.

Needs Debian's chromium (``apt-get install chromium``) and the playwright package (which
drives it; no browser download). `.ci/run` installs both; elsewhere these tests skip.
"""
from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import (CHROMIUM, astronaut_head, clip_frames, serve_in_child, site_headers, static_host, texture,
                     walk_frames, write_y4m)

from mobilefer.data.preprocess import preprocess
from mobilefer.inference.detectors import centerface_fp32
from mobilefer.inference.recognizer import CLASSIFY_RATE

REQUIRED = os.environ.get("MOBILEFER_REQUIRE_BROWSER") == "1"  # CI sets it: fail, never skip
if not REQUIRED:
    pytest.importorskip("fastapi")
    pytest.importorskip("playwright.sync_api")
from playwright import sync_api  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM and not REQUIRED, reason="needs Chromium: apt-get install chromium")]


@pytest.fixture(scope="module", autouse=True)
def same_detector_arithmetic():
    """The page's arithmetic is compared with Python's on CenterFace's fp32 original, the file the
    page runs: Python itself would run the INT8 file where this CPU runs that faster."""
    fp32 = centerface_fp32()
    missing = "needs the bundled fp32 centerface.onnx (reinstall mobilefer)"
    if fp32 is None and REQUIRED:
        pytest.fail(missing)
    if fp32 is None:
        pytest.skip(missing)
    with pytest.MonkeyPatch.context() as patch:  # the server and the site are made in this module, after it
        patch.setenv("MOBILEFER_CENTERFACE", str(fp32))
        yield


@pytest.fixture(scope="module")
def server():
    """`mobilefer serve` in a child process on a free loopback port, until the module ends."""
    with serve_in_child() as (url, _):
        yield url


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    from mobilefer.export.web import SiteConfig, write_site

    return write_site(SiteConfig(out=str(tmp_path_factory.mktemp("web") / "site"))).path


@pytest.fixture(scope="module")
def site(site_dir):
    """The static site from `export --format web`, served with no mobilefer behind it."""
    with static_host(site_dir) as url:
        yield url


def rgb_b64(frame: np.ndarray) -> str:
    """A BGR frame's pixels as the page takes them: RGB rows, base64."""
    return base64.b64encode(np.ascontiguousarray(frame[:, :, ::-1]).tobytes()).decode()


def fake_webcam(astronaut_bgr: np.ndarray, path: Path, frames: int = 20) -> Path:
    """A 640x480 Y4M clip of the astronaut drifting sideways, for Chromium's fake camera."""
    head = cv2.resize(astronaut_bgr, (420, 420))

    def frame(i: int) -> np.ndarray:
        out = np.full((480, 640, 3), 90, np.uint8)
        out[30:450, 60 + 4 * i:480 + 4 * i] = head
        return out

    return write_y4m((frame(i) for i in range(frames)), path, fps=10)


def camera_on(open_page, site: str, clip: Path, init: str | None = None):
    """The static site with Chromium's fake camera playing ``clip``, its webcam started (``init``:
    a script run before the page's own)."""
    page, problems = open_page("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                               f"--use-file-for-fake-video-capture={clip}")
    if init:
        page.add_init_script(init)
    page.goto(site)
    page.wait_for_function(ENGINE_READY, timeout=90_000)
    page.click("#camera")
    return page, problems


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium launched once per set of extra arguments for the module's tests (a launch
    costs a second or two); each test gets pages in a context of its own."""
    p = sync_api.sync_playwright().start()
    launched: dict[tuple[str, ...], object] = {}

    def launch(args: tuple[str, ...]):
        if args not in launched:
            launched[args] = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", *args])
        return launched[args]

    yield launch
    for browser in launched.values():
        browser.close()
    p.stop()


@pytest.fixture()
def open_page(chromium):
    """Opens pages in headless Chromium launched with extra arguments, each in a fresh context (no
    storage, permissions or cache shared with other tests); errors on the page are collected."""
    contexts = []

    def open_page(*args: str):
        context = chromium(tuple(args)).new_context()
        contexts.append(context)
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        return page, problems

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def static_page(site, chromium):
    """One page on the static site with its engine loaded, shared by the tests that only hand it
    photos or call its engine (a page load costs about 2 s, most of the page's tests' time); each
    test gets it with the error list emptied."""
    context = chromium(()).new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(site)
    page.wait_for_function(ENGINE_READY, timeout=90_000)

    def fresh():
        problems.clear()
        return page, problems

    yield fresh
    context.close()


# Reads the stage canvas where the last answer's first box has its top and left edges.
EDGE_PIXELS = """() => {
  const s = window.mobilefer, f = s.last.faces[0], c = document.getElementById('stage');
  const sx = c.width / s.last.image.width, sy = c.height / s.last.image.height;
  const g = c.getContext('2d');
  const top = g.getImageData(Math.round((f.box[0] + f.box[2] / 2) * sx), Math.round(f.box[1] * sy), 1, 1).data;
  const left = g.getImageData(Math.round(f.box[0] * sx), Math.round((f.box[1] + f.box[3] / 2) * sy), 1, 1).data;
  return {top: Array.from(top), left: Array.from(left), color: s.colorOf(f.label), label: f.label};
}"""


def assert_box_drawn(page) -> None:
    found = page.evaluate(EDGE_PIXELS)
    want = [int(found["color"][i:i + 2], 16) for i in (1, 3, 5)]
    for edge in ("top", "left"):
        got = found[edge][:3]
        assert max(abs(a - b) for a, b in zip(got, want)) < 40, (edge, got, want, found["label"])


def test_upload_a_photo_draws_boxes_labels_and_bars(server, open_page, astronaut_bgr, tmp_path):
    page, problems = open_page()
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    page.goto(server)
    page.wait_for_function("() => document.getElementById('model').textContent.includes('mobilenet_v3')")
    page.set_input_files("#file", str(photo))
    page.wait_for_function("() => document.getElementById('faces').dataset.count === '1'", timeout=20_000)
    item = page.locator("#faces li").first
    classes = page.evaluate("window.mobilefer.classes")
    assert item.get_attribute("data-label") in classes
    assert item.locator(".bar").count() == len(classes)  # one bar per class
    assert page.evaluate("[document.getElementById('stage').width, document.getElementById('stage').height]") == [512, 512]
    assert_box_drawn(page)
    assert page.locator("#rtt").inner_text().endswith("ms")
    assert "1 face" in page.locator("#status").inner_text()
    # the same photo dropped onto the drop zone, as from a file manager
    page.evaluate("""(b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'dropped.jpg', {type: 'image/jpeg'}));
      document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", base64.b64encode(photo.read_bytes()).decode())
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('dropped.jpg: 1 face')")
    assert page.evaluate("window.mobilefer.results") == 2
    assert_box_drawn(page)
    assert problems == []  # no script errors, no blocked resources (the page's CSP holds)


def test_a_bad_file_shows_the_servers_message(server, open_page):
    page, problems = open_page()
    page.goto(server)
    page.set_input_files("#file", {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a picture"})
    page.wait_for_function("() => document.getElementById('status').classList.contains('error')", timeout=20_000)
    status = page.locator("#status").inner_text()
    assert "415" in status and "not an image" in status
    assert page.locator("#faces li").count() == 0


def test_webcam_sends_frames_and_live_labels_appear(server, open_page, astronaut_bgr, tmp_path):
    clip = fake_webcam(astronaut_bgr, tmp_path / "webcam.y4m")
    page, problems = open_page("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                               f"--use-file-for-fake-video-capture={clip}")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/v1/recognize" in r.url else None)
    page.goto(server)
    page.click("#camera")
    page.wait_for_function("() => Number(document.getElementById('faces').dataset.results) >= 5 && "
                           "document.getElementById('faces').dataset.count === '1'", timeout=30_000)
    assert sent and all(url.endswith("/v1/recognize?video=true") for url in sent)  # looked at as video frames
    assert page.evaluate("document.getElementById('video').videoWidth") == 640
    assert_box_drawn(page)
    label = page.locator("#faces li").first.get_attribute("data-label")
    assert label in page.evaluate("window.mobilefer.classes")
    assert float(page.locator("#rate-out").inner_text()) > 1  # several answers a second
    page.click("#camera")
    assert page.locator("#camera").inner_text() == "Start webcam"
    assert problems == []


# ------------------------------------------------------------------ the browser mode
SAMPLE_DONE = "() => document.body.dataset.sample === 'done'"
ENGINE_READY = "() => window.mobilefer.engine !== null && window.mobilefer.engine !== undefined"


@pytest.fixture(scope="module")
def recognizer():
    from mobilefer.inference.recognizer import EmotionRecognizer

    return EmotionRecognizer.load()


def faces_agree(got: list[dict], want: list, tolerance: float = 1e-3) -> None:
    """The page's faces against Python's (Face objects or dicts): same boxes within a pixel, same
    labels, probabilities within ``tolerance``."""
    as_dict = lambda f: f if isinstance(f, dict) else {"box": list(f.box), "label": f.label, "probs": f.probs}  # noqa: E731
    want = [as_dict(f) for f in want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert max(abs(a - b) for a, b in zip(g["box"], w["box"])) <= 1, (g["box"], w["box"])
        assert g["label"] == w["label"]
        assert max(abs(g["probs"][c] - w["probs"][c]) for c in w["probs"]) <= tolerance


def test_the_static_site_recognises_the_sample_photo_as_predict_does(site, site_dir, open_page, recognizer):
    page, problems = open_page()
    page.goto(f"{site}/#sample")
    page.wait_for_function(SAMPLE_DONE, timeout=90_000)
    assert "Mode: in this browser" in page.locator("#mode-note").inner_text()
    assert page.locator("#mode option").all_inner_texts() == ["in this browser"]  # no server behind it
    assert not page.locator("#detector").is_visible()
    want = recognizer.recognize(site_dir / "static" / "sample.jpg")
    faces_agree(page.evaluate("window.mobilefer.last.faces"), want)
    text = page.locator("#result").inner_text()
    assert text.startswith("sample.jpg (browser): 1 face(s)") and f"face 1: {want[0].label} " in text
    assert_box_drawn(page)
    assert problems == []


@pytest.mark.slow
def test_the_page_runs_the_bundled_fp32_detector_on_its_share_of_the_cores(open_page, tmp_path, monkeypatch):
    """WebAssembly has no 8-bit dot product: the page gets CenterFace's fp32 file whichever file
    this machine's Python runs, and finds the sample's face where Python does on that file."""
    from mobilefer.export.web import SiteConfig, write_site
    from mobilefer.inference.onnx_shapes import free_dimensions
    from mobilefer.inference.recognizer import EmotionRecognizer

    fp32 = centerface_fp32()
    monkeypatch.delenv("MOBILEFER_CENTERFACE")
    folder = write_site(SiteConfig(out=str(tmp_path / "site"))).path
    assert (folder / "models" / "detector.onnx").read_bytes() == free_dimensions(fp32.read_bytes())
    monkeypatch.setenv("MOBILEFER_CENTERFACE", str(fp32))
    want = EmotionRecognizer.load().recognize(folder / "static" / "sample.jpg")
    page, problems = open_page()
    with static_host(folder, site_headers(folder)) as url:  # a host that reads _headers: threads
        page.goto(f"{url}/#sample")
        page.wait_for_function(SAMPLE_DONE, timeout=90_000)
        got = page.evaluate("window.mobilefer.last.faces")
        threads = page.evaluate("[self.crossOriginIsolated, ort.env.wasm.numThreads, navigator.hardwareConcurrency]")
        rule = page.evaluate("[1, 2, 3, 8, 16].map(MobileferBrowser.wasmThreads)")
    assert threads[0] and threads[1] == (1 if threads[2] <= 1 else max(2, min(4, threads[2] - 1)))
    assert rule == [1, 2, 2, 4, 4]
    assert len(got) == len(want) == 1 and got[0]["label"] == want[0].label
    assert max(abs(a - b) for a, b in zip(got[0]["box"], want[0].box)) <= 1, (got[0]["box"], want[0].box)
    assert problems == []


def crops_for_parity(astronaut_bgr: np.ndarray) -> list[np.ndarray]:
    """RGB face crops of every size class the preprocessing treats differently: enlarged (< 48 px),
    exactly 48, halved (96), non-integer shrink factors, not square, and a crop with no face."""
    rgb = np.ascontiguousarray(astronaut_bgr[:, :, ::-1])
    face = rgb[40:200, 150:310]
    crops = [cv2.resize(face, (s, s), interpolation=cv2.INTER_AREA) for s in (24, 37, 48, 61, 96, 137)]
    return crops + [face, rgb[30:150, 160:250], rgb[380:500, 20:140]]


@pytest.mark.slow
@pytest.mark.parametrize("correction", [None, 0.3])
def test_browser_probabilities_equal_pythons_on_the_same_crops(static_page, astronaut_bgr, recognizer, correction):
    """The model's own metadata, then the same model with the Large's prior correction (0.3): the
    page applies it as runtime/probs.py does."""
    crops = crops_for_parity(astronaut_bgr)
    page, problems = static_page()
    payload = [{"b64": base64.b64encode(c.tobytes()).decode(), "w": c.shape[1], "h": c.shape[0]} for c in crops]
    own = recognizer.meta.prior_correction
    tau = own if correction is None else correction
    assert recognizer.meta.prior is not None
    set_page_tau = "(tau) => { window.mobilefer.engine.model.prior_correction = tau; }"
    page.evaluate(set_page_tau, tau)
    recognizer.meta.prior_correction = tau
    try:
        got = np.array(page.evaluate("""async (crops) => window.mobilefer.engine.classify(crops.map((c) => ({
            data: Uint8Array.from(atob(c.b64), (ch) => ch.charCodeAt(0)), width: c.w, height: c.h, channels: 3})))""",
            payload))
        want = recognizer.classify_crops(crops)
    finally:
        page.evaluate(set_page_tau, own)
        recognizer.meta.prior_correction = own
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-3
    assert (got.argmax(1) == want.argmax(1)).all()
    if correction is not None:  # it moved the probabilities; the network's inputs are checked once
        assert np.abs(got - recognizer.classify_crops(crops)).max() > 0.01
        return
    # the network's inputs themselves: OpenCV's area and bilinear resizes, luma and rounding, redone in JS
    inputs = np.array(page.evaluate("""(crops) => crops.map((c) => Array.from(MobileferBrowser.preprocess({
        data: Uint8Array.from(atob(c.b64), (ch) => ch.charCodeAt(0)), width: c.w, height: c.h, channels: 3},
        window.mobilefer.site.model)))""", payload))
    x = preprocess(crops, recognizer.meta)
    assert np.abs(inputs.reshape(x.shape) - x).max() < 1e-5
    assert problems == []


def test_the_page_pairs_two_views_as_python_does(static_page, recognizer):
    """Engine.paired is probs.paired: with the model's own metadata and with the Large's prior
    correction (0.3), two views' probabilities give Python's pair."""
    from mobilefer.runtime.probs import paired

    page, problems = static_page()
    rng = np.random.default_rng(3)
    a, b = rng.dirichlet(np.ones(recognizer.meta.num_classes), 2)
    own = recognizer.meta.prior_correction
    try:
        for tau in (own, 0.3):
            recognizer.meta.prior_correction = tau
            got = page.evaluate("""([a, b, tau]) => { const e = window.mobilefer.engine, own = e.model.prior_correction;
                e.model.prior_correction = tau; try { return e.paired(a, b); } finally { e.model.prior_correction = own; } }""",
                                [a.tolist(), b.tolist(), tau])
            want = paired(a[None], b[None], recognizer.meta)[0]
            assert np.allclose(got, want, atol=1e-12)
            assert tau == own or not np.allclose(got, (a + b) / 2, atol=1e-3)
    finally:
        recognizer.meta.prior_correction = own
    assert problems == []


def test_the_pages_bilinear_resize_is_opencvs_byte_for_byte(static_page, astronaut_bgr):
    """The detector's input in the page is OpenCV's INTER_LINEAR resize redone in JS, byte for byte
    where a camera's frames go: a 640x360 frame stretched to 640x384 (rows only), an HD frame
    halved, a window of a pass (a followed face's square); elsewhere (a photo enlarged more in one
    direction than the other) OpenCV's SIMD rounding moves a value in a few hundred by one."""
    page, problems = static_page()
    rgb = np.ascontiguousarray(astronaut_bgr[:, :, ::-1])
    cases = [(cv2.resize(rgb, (640, 360)), (640, 384), None, 0), (cv2.resize(rgb, (1280, 720)), (640, 384), None, 0),
             (cv2.resize(rgb, (640, 360)), (640, 384), (96, 64, 192, 160), 0), (rgb, (128, 128), None, 0),
             (cv2.resize(rgb, (100, 80)), (97, 130), None, 1), (cv2.cvtColor(rgb[:48, :48], cv2.COLOR_RGB2GRAY), (160, 160), None, 1)]
    for image, (w, h), window, most in cases:
        channels = 1 if image.ndim == 2 else 3
        got = page.evaluate("""([b64, w0, h0, c, w, h, win]) => Array.from(MobileferBrowser.util.resizeLinear(
            {data: Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)), width: w0, height: h0, channels: c},
            w, h, false, win).data)""",
                            [base64.b64encode(image.tobytes()).decode(), image.shape[1], image.shape[0], channels, w, h, window])
        want = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        if window is not None:
            x0, y0, x1, y1 = window
            want = want[y0:y1, x0:x1]
        differ = np.abs(np.array(got, dtype=int).reshape(want.shape) - want)
        assert differ.max() <= most and (differ > 0).mean() < 0.01, (image.shape, (w, h), window)
    assert problems == []


CAMERA_FRAMES = """async ([b64, rates]) => {
    const engine = window.mobilefer.engine, follow = engine.site.follow, rate = follow.classify_rate;
    const img = {data: Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)), width: 640, height: 480, channels: 3};
    engine.camera.resetVideo();
    const answers = [];
    try {
        for (const r of rates) {
            follow.classify_rate = r;
            answers.push(await engine.recognize(img, {video: true}));
        }
    } finally {
        follow.classify_rate = rate;
        engine.camera.resetVideo();
    }
    return answers;
}"""


def test_a_camera_face_keeps_its_id_and_is_classified_at_the_rate_python_uses(static_page, astronaut_bgr, recognizer):
    """recognizer.py's rule in the page: a new face is classified at once; a known one again once
    1/classify_rate s has passed (a rate of 1e-6 a second: not yet; 1e9: due), and its label is
    carried over between; the id stays with the face."""
    page, problems = static_page()
    assert page.evaluate("window.mobilefer.site.follow.classify_rate") == CLASSIFY_RATE
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[30:450, 110:530] = cv2.resize(astronaut_bgr, (420, 420))
    first, carried, due = page.evaluate(CAMERA_FRAMES, [rgb_b64(frame), [1e-6, 1e-6, 1e9]])
    assert [a["classified"] for a in (first, carried, due)] == [1, 0, 1]
    assert [[f["id"] for f in a["faces"]] for a in (first, carried, due)] == [[0], [0], [0]]
    assert carried["faces"][0]["probs"] == first["faces"][0]["probs"]
    want = recognizer.classify_crops(recognizer.crops(frame, [recognizer.detector.detect(frame)[0]]))[0]
    got = np.array(list(first["faces"][0]["probs"].values()))
    assert int(got.argmax()) == int(want.argmax())
    assert problems == []


SMOOTHED_FRAMES = """async ([frames, smooth, views]) => {
    const engine = window.mobilefer.engine, follow = engine.site.follow;
    const was = [follow.classify_rate, follow.smooth, follow.video_views];
    engine.camera.resetVideo();
    const answers = [];
    try {
        follow.classify_rate = 1e9;  // every frame due
        if (smooth !== null) follow.smooth = smooth;
        follow.video_views = views;
        for (const b64 of frames) {
            const img = {data: Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)), width: 640, height: 480,
                         channels: 3};
            const face = (await engine.recognize(img, {video: true})).faces[0];
            answers.push([Object.values(face.probs), face.box]);
        }
    } finally {
        [follow.classify_rate, follow.smooth, follow.video_views] = was;
        engine.camera.resetVideo();
    }
    return answers;
}"""


def test_a_camera_faces_probabilities_are_averaged_as_pythons_video_smoothing_does(static_page, astronaut_bgr,
                                                                                   recognizer):
    """recognizer.VIDEO_SMOOTH and VIDEO_VIEWS in the page: a known face's probabilities are ALPHA
    of its newest classification and the rest of those before (follow.smooth 1: each
    classification as it is, in both views); its second classification reads it as it is and
    pairs that with the first's mirrored view, as Python's does (follow.video_views false: both
    views of each frame)."""
    from mobilefer.inference.faces import Box
    from mobilefer.inference.recognizer import VIDEO_SMOOTH, VIDEO_VIEWS
    from mobilefer.inference.tracking import Smoother

    page, problems = static_page()
    alpha = Smoother.parse(VIDEO_SMOOTH).value
    assert page.evaluate("[window.mobilefer.site.follow.smooth, window.mobilefer.site.follow.video_views]") == [
        alpha, VIDEO_VIEWS]
    frames, b64 = [], []
    for covered in (False, True):  # the same face, then with its smile covered: another reading of it
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[30:450, 110:530] = cv2.resize(astronaut_bgr, (420, 420))
        if covered:
            frame[145:180, 265:325] = 120
        frames.append(frame)
        b64.append(rgb_b64(frame))
    run = lambda smooth, views: [np.array(p) for p, _ in page.evaluate(SMOOTHED_FRAMES, [b64, smooth, views])]  # noqa: E731
    smoothed, both, raw = run(None, True), run(None, False), run(1, True)
    assert np.abs(raw[1] - raw[0]).max() > 0.002  # two readings that differ (far beyond the 1e-5 below)
    assert np.allclose(smoothed[0], raw[0], atol=1e-6) and np.allclose(both[0], raw[0], atol=1e-6)
    assert np.allclose(both[1], alpha * raw[1] + (1 - alpha) * raw[0], atol=1e-5)
    boxes = [box for _, box in page.evaluate(SMOOTHED_FRAMES, [b64, None, True])]
    view = lambda k, mirrored: recognizer.classify_crops(  # noqa: E731
        recognizer.crops(frames[k], [Box(*boxes[k])]), [mirrored])[0]
    paired = (view(1, False) + view(0, True)) / 2  # the second classification, as Python reads it
    assert np.abs(smoothed[1] - (alpha * paired + (1 - alpha) * raw[0])).max() < 1e-4
    assert np.abs(smoothed[1] - both[1]).max() > 1e-3  # not both views of the second frame
    assert problems == []


def test_the_browser_looks_at_a_followed_face_in_the_search_pixels_as_python_does(static_page, astronaut_bgr,
                                                                                recognizer):
    """A small face on a 640x360 frame (looked at as 640x384): follow.py's window of the whole-frame
    search's pixels (OpenCV's warp there, the resize's own arithmetic in JS), first and retry look;
    and a large face, looked at in a smooth copy of its square."""
    from mobilefer.inference.follow import FaceFollower
    from mobilefer.inference.plan import RULES

    INPUT, RETRY_INPUT = RULES.input, RULES.retry_input

    frame = np.full((360, 640, 3), 90, np.uint8)
    x, y, w, h = 150, 40, 180, 200
    head = cv2.resize(astronaut_bgr[y:y + h, x:x + w], (36, 40), interpolation=cv2.INTER_AREA)
    frame[153:193, 301:337] = head
    follower = FaceFollower(recognizer.detector)
    last = follower.detector.detect(frame, upscale=False, min_face=20)[0]
    page, problems = static_page()
    rgb = np.ascontiguousarray(frame[:, :, ::-1])
    pixels, box = base64.b64encode(rgb.tobytes()).decode(), [*last.as_list(), last.score]
    for side in (INPUT, RETRY_INPUT):
        want, = follower._look(frame, [last], 4, side)
        got = page.evaluate(LOOK_NEAR, [pixels, 640, 360, box, side])
        assert want is not None and got is not None
        assert np.abs(np.array(got[:4]) - want.as_list()).max() <= 1, (side, got, want)
    # a large face is looked at in a smooth copy of its square (follow._smooth): the same box
    large = np.full((480, 640, 3), 90, np.uint8)
    large[100:400, 200:470] = cv2.resize(astronaut_bgr[y:y + h, x:x + w], (270, 300), interpolation=cv2.INTER_AREA)
    last = follower.detector.detect(large, upscale=False, min_face=20)[0]
    want, = follower._look(large, [last], 4, INPUT)
    got = page.evaluate(LOOK_NEAR, [rgb_b64(large), 640, 480, [*last.as_list(), last.score], INPUT])
    assert want is not None and got is not None
    assert np.abs(np.array(got[:4]) - want.as_list()).max() <= 1, (got, want)
    assert problems == []


@pytest.mark.slow
def test_the_page_brings_the_next_search_nearer_when_a_face_arrives_as_python_does(site, open_page, astronaut_bgr,
                                                                                    recognizer):
    """tracking.py DetectionSchedule.found in the page: a face walking, a second one standing
    still from frame 4 (helpers.walk_frames); with a search every 6 frames, the one on frame 6 finds it, so the next
    comes on frame 9, then every 6th again: the frames Python's VideoFaces searches."""
    from mobilefer.inference.live import VideoFaces
    from mobilefer.inference.tracking import IoUTracker

    frames = walk_frames(astronaut_bgr)
    video = VideoFaces(recognizer.detector, IoUTracker(), every=6, min_face=20)
    want = [i for i, frame in enumerate(frames) if video(frame)[1]]
    page, problems = open_page()
    page.goto(site)
    page.wait_for_function(ENGINE_READY, timeout=90_000)
    page.evaluate("() => { window.mobilefer.engine.site.follow.detect_every = 6; window.mobilefer.engine.camera.resetVideo(); }")
    got = [i for i, f in enumerate(frames) if page.evaluate(VIDEO_FRAME, [rgb_b64(f)])]
    assert want == [0, 6, 9, 15] and got == want
    assert problems == []


VIDEO_FRAME = """async (b64) => {
    const engine = window.mobilefer.engine;
    await engine.camera.videoTracks({data: Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)), width: 640, height: 480,
                             channels: 3});
    return engine.camera.searched;
}"""


def test_the_page_looks_for_a_frames_faces_in_one_batch_with_the_boxes_of_one_look_each(static_page, astronaut_bgr,
                                                                                        recognizer):
    """camera.js lookNearMany (follow.py _look: all squares of one size in one detector call) gives
    each face the box it gets looked for alone, and Python's: three small faces in a frame's search
    pixels and a large one in a smooth copy of its square."""
    from mobilefer.inference.follow import FaceFollower
    from mobilefer.inference.plan import RULES

    frame = texture(3)
    for (left, top), side in zip([(60, 60), (300, 50), (500, 200), (150, 220)], [26, 30, 34, 120]):
        head = astronaut_head(astronaut_bgr, side)
        frame[top:top + head.shape[0], left:left + head.shape[1]] = head
    follower = FaceFollower(recognizer.detector)
    last = sorted(follower.detector.detect(frame, upscale=False, min_face=20), key=lambda b: b.x)
    assert len(last) == 4
    want = follower._look(frame, last, 4, RULES.input)
    page, problems = static_page()
    boxes = [[*b.as_list(), b.score] for b in last]
    together, alone = page.evaluate("""async ([b64, boxes, side]) => {
        const img = {data: Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)), width: 640, height: 480, channels: 3};
        const camera = window.mobilefer.engine.camera, alone = [];
        for (const box of boxes) alone.push((await camera.lookNearMany(img, [box], 4, side))[0]);
        return [await camera.lookNearMany(img, boxes, 4, side), alone];
    }""", [rgb_b64(frame), boxes, RULES.input])
    assert together == alone
    for got, one in zip(together, want):
        assert one is not None and got is not None
        assert np.abs(np.array(got[:4]) - one.as_list()).max() <= 1, (got, one)
    assert problems == []


LOOK_NEAR = """async ([b64, width, height, box, side]) => (await window.mobilefer.engine.camera.lookNearMany({
    data: Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)), width, height, channels: 3}, [box], 4, side))[0]"""


@pytest.mark.slow  # a page load of its own (~2 s) and more
def test_the_served_page_gives_the_same_faces_in_both_modes(server, open_page):
    results = {}
    for mode in ("server", "browser"):
        page, problems = open_page()
        page.goto(f"{server}/#{mode}#sample")
        page.wait_for_function(SAMPLE_DONE, timeout=90_000)
        assert page.evaluate("document.body.dataset.mode") == mode
        assert page.evaluate("self.crossOriginIsolated")  # so ONNX Runtime Web may run threads
        assert page.locator("#result").inner_text().startswith(f"sample.jpg ({mode}): 1 face(s)")
        results[mode] = page.evaluate("window.mobilefer.last.faces")
        assert problems == []
    faces_agree(results["browser"], results["server"])
    # switching modes on the page loads the models once and clears the last answer
    page.select_option("#mode", "server")
    page.wait_for_function("() => document.body.dataset.mode === 'server'")
    assert page.locator("#faces li").count() == 0 and page.locator("#result").inner_text() == ""


@pytest.mark.slow  # a page load of its own (~2 s) and more
def test_the_static_site_reads_the_webcam_in_the_browser(site, open_page, astronaut_bgr, tmp_path):
    clip = fake_webcam(astronaut_bgr, tmp_path / "webcam.y4m")
    page, problems = camera_on(open_page, site, clip)
    page.wait_for_function("() => Number(document.getElementById('faces').dataset.results) >= 5 && "
                           "document.getElementById('faces').dataset.count === '1'", timeout=60_000)
    assert_box_drawn(page)
    assert page.locator("#faces li").first.get_attribute("data-label") in page.evaluate("window.mobilefer.classes")
    assert page.locator("#server-ms").inner_text().endswith(" ms")  # detect + classify, measured here
    assert float(page.locator("#rate-out").inner_text()) > 0
    page.click("#camera")
    assert problems == []


# Counts the camera frames the page reads from their planes (window.readFromPlanes).
READ_FROM_PLANES = """() => {
  window.readFromPlanes = 0;
  const read = MobileferFrames.fromVideoFrame;
  MobileferFrames.fromVideoFrame = async (...args) => {
    const img = await read(...args);
    window.readFromPlanes += img !== null;
    return img;
  };
}"""


@pytest.mark.parametrize("reader", ["planes", "canvas"])
def test_a_wide_camera_is_read_whole_with_the_faces_at_its_sides(site, open_page, astronaut_bgr, tmp_path, reader):
    """A 1280x720 camera with a face beyond where a 4:3 crop of it would end: the page takes the
    camera's whole picture (scaled to 640 wide) and finds the face there, reading the frame's
    planes (WebCodecs) or, in a browser without VideoFrame, drawing it on a canvas."""
    head = astronaut_head(astronaut_bgr, 110)  # a face 110 px wide, 55 in the page's 640 px
    hh, hw = head.shape[:2]

    def frame(i: int) -> np.ndarray:
        out = np.full((720, 1280, 3), 90, np.uint8)
        out[250:250 + hh, 1270 - hw - i:1270 - i] = head  # right of x = 1120, where a 4:3 crop ends
        return out

    clip = write_y4m((frame(i) for i in range(20)), tmp_path / "wide.y4m", fps=10)
    page, problems = camera_on(open_page, site, clip, "delete window.VideoFrame" if reader == "canvas" else None)
    page.evaluate(READ_FROM_PLANES)
    page.wait_for_function("n => window.mobilefer.results >= n + 3 && window.mobilefer.last.faces.length === 1",
                           arg=page.evaluate("window.mobilefer.results"), timeout=60_000)
    assert (page.evaluate("window.readFromPlanes") > 0) == (reader == "planes")
    assert page.evaluate("[document.getElementById('video').videoWidth, document.getElementById('video').videoHeight]") \
        == [640, 360]
    x, _, w, _ = page.evaluate("window.mobilefer.last.faces[0].box")
    assert x + w / 2 > 560  # the face's middle in the last eighth of the width
    page.click("#camera")
    assert problems == []


# A VideoFrame made from I420 planes (base64), in the layout asked for (NV12: the chroma planes
# interleaved) and the colour matrix named (TV range): its pixels at outW x outH as the page reads them (null where it does not read
# them) and as Chromium draws it on a canvas.
FRAME_PIXELS = """async ([b64, w, h, format, outW, outH, matrix]) => {
  let bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  if (format === 'NV12') {
    const y = w * h, q = y / 4, uv = new Uint8Array(2 * q);
    for (let i = 0; i < q; i++) [uv[2 * i], uv[2 * i + 1]] = [bytes[y + i], bytes[y + q + i]];
    const nv12 = new Uint8Array(y + 2 * q);
    nv12.set(bytes.subarray(0, y));
    nv12.set(uv, y);
    bytes = nv12;
  }
  const frame = new VideoFrame(bytes, {format, codedWidth: w, codedHeight: h, timestamp: 0,
                                       colorSpace: {matrix, fullRange: false}});
  const img = await MobileferFrames.fromVideoFrame(frame, outW, outH);
  const canvas = new OffscreenCanvas(outW, outH), g = canvas.getContext('2d');
  g.drawImage(frame, 0, 0, outW, outH);
  const drawn = Array.from(g.getImageData(0, 0, outW, outH).data).filter((_, i) => i % 4 !== 3);
  frame.close();
  return img && [img.width, img.height, Array.from(img.data), drawn];
}"""


@pytest.mark.parametrize("layout", ["I420", "NV12"])
def test_a_camera_frame_is_read_from_its_planes_as_opencv_converts_it(static_page, astronaut_bgr, layout):
    """A camera frame's YUV planes read in the page without a canvas: at its own size, the pixels
    Chromium draws; at half its size, each pixel the mean of four, in BT.601's TV range (a camera
    that names no colour space is drawn so), as OpenCV converts the same planes and reduces them
    (INTER_AREA), and within a grey level or two of Chromium's drawing. Another size is left to
    the canvas."""
    page, problems = static_page()
    bgr = np.ascontiguousarray(astronaut_bgr[40:232, 128:384])  # 256x192: the face and the suit's colours
    planes = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    rgb = cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420)
    b64 = base64.b64encode(planes.tobytes()).decode()
    halves = {}
    for matrix in ("smpte170m", "bt709"):  # BT.601 (OpenCV's) and BT.709
        w, h, data, drawn = page.evaluate(FRAME_PIXELS, [b64, 256, 192, layout, 256, 192, matrix])
        assert (w, h) == (256, 192) and data == drawn
        w, h, data, drawn = page.evaluate(FRAME_PIXELS, [b64, 256, 192, layout, 128, 96, matrix])
        halves[matrix] = np.array(data, np.uint8).reshape(h, w, 3).astype(int)
        assert np.abs(halves[matrix] - np.array(drawn).reshape(h, w, 3)).mean() < 2, matrix
    # BT.601 in TV range on each 2 x 2 block's mean luma and its chroma sample
    luma = planes[:192].reshape(96, 2, 128, 2).mean((1, 3))
    u, v = (planes[192:].reshape(2, 96, 128).astype(float) - 128) * 255 / 224
    y = (luma - 16) * 255 / 219
    want = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], -1)
    assert np.abs(halves["smpte170m"] - np.clip(np.rint(want), 0, 255)).max() <= 1
    # OpenCV converts each pixel first: the same but where a colour clips
    assert np.abs(halves["smpte170m"] - cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)).mean() < 0.3
    assert page.evaluate(FRAME_PIXELS, [b64, 256, 192, layout, 64, 48, "smpte170m"]) is None  # 4x: drawn instead
    assert page.evaluate(FRAME_PIXELS, [b64, 256, 192, layout, 128, 96, "bt2020-ncl"]) is None  # another matrix
    turned = page.evaluate("""async (b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const frame = new VideoFrame(bytes, {format: 'I420', codedWidth: 256, codedHeight: 192, timestamp: 0, rotation: 90});
      const img = await MobileferFrames.fromVideoFrame(frame, 128, 96);  // its planes at half size
      frame.close();
      return img;
    }""", b64)
    assert turned is None  # a phone's turned camera: drawn, as it is shown
    assert problems == []


def test_a_camera_frame_its_planes_do_not_give_is_drawn_and_every_frame_is_closed(static_page, astronaut_bgr):
    """app.js framePixels: a 384x288 frame read 128 px wide (three times its size, which the planes
    are not read at) gets the pixels Chromium draws at 128x96; one read 192 px wide gets the
    planes' pixels; both frames are closed (a camera's frames are held until closed)."""
    page, problems = static_page()
    bgr = cv2.resize(np.ascontiguousarray(astronaut_bgr[:384, 64:448]), (384, 288))
    b64 = base64.b64encode(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes()).decode()
    found = page.evaluate("""async ([b64, maxWidth]) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const make = () => new VideoFrame(bytes, {format: 'I420', codedWidth: 384, codedHeight: 288, timestamp: 0});
      const frame = make(), img = await framePixels(frame, maxWidth);
      const other = make(), planes = await MobileferFrames.fromVideoFrame(other, img.width, img.height);
      other.close();
      const canvas = new OffscreenCanvas(img.width, img.height), g = canvas.getContext('2d'), again = make();
      g.drawImage(again, 0, 0, img.width, img.height);
      again.close();
      const drawn = Array.from(g.getImageData(0, 0, img.width, img.height).data).filter((_, i) => i % 4 !== 3);
      return {size: [img.width, img.height], data: Array.from(img.data), drawn, planes: planes && Array.from(planes.data),
              closed: frame.format === null};
    }""", [b64, 128])
    assert found["size"] == [128, 96] and found["planes"] is None and found["closed"]
    assert found["data"] == found["drawn"]
    found = page.evaluate("""async ([b64, maxWidth]) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const make = () => new VideoFrame(bytes, {format: 'I420', codedWidth: 384, codedHeight: 288, timestamp: 0});
      const frame = make(), img = await framePixels(frame, maxWidth);
      const other = make(), planes = await MobileferFrames.fromVideoFrame(other, 192, 144);
      other.close();
      return {size: [img.width, img.height], same: img.data.every((v, i) => v === planes.data[i]), closed: frame.format === null};
    }""", [b64, 192])
    assert found == {"size": [192, 144], "same": True, "closed": True}
    assert problems == []


@pytest.mark.slow  # a page load of its own (~2 s) and more
def test_a_denied_camera_gets_one_clear_line(site, open_page):
    page, _ = open_page("--use-fake-device-for-media-stream", "--deny-permission-prompts")
    page.goto(site)
    page.wait_for_function(ENGINE_READY, timeout=90_000)
    page.click("#camera")
    page.wait_for_function("() => document.getElementById('status').classList.contains('error')", timeout=20_000)
    assert "camera access was denied" in page.locator("#status").inner_text()
    assert page.locator("#camera").inner_text() == "Start webcam"


@pytest.mark.slow  # a page load of its own (~2 s) and more
def test_a_model_the_browser_cannot_load_is_named_in_the_page(site_dir, open_page, tmp_path):
    broken = tmp_path / "site"
    shutil.copytree(site_dir, broken)
    (broken / "models/classifier.onnx").write_bytes((site_dir / "models/classifier.onnx").read_bytes()[:50_000])
    with static_host(broken) as url:
        page, _ = open_page()
        page.goto(f"{url}/#sample")
        page.wait_for_function(SAMPLE_DONE, timeout=90_000)
        status = page.locator("#status").inner_text()
        assert "cannot run the models in this browser" in status and "models/classifier.onnx" in status
        assert page.locator("#faces li").count() == 0
    (broken / "models/classifier.onnx").unlink()
    with static_host(broken) as url:
        page, _ = open_page()
        page.goto(url)
        page.wait_for_function("() => document.getElementById('status').classList.contains('error')", timeout=60_000)
        assert "models/classifier.onnx" in page.locator("#status").inner_text()
        assert "HTTP 404" in page.locator("#status").inner_text()


def test_the_page_matches_a_faces_patch_as_python_does(static_page):
    """follow.py match_patch in the page: a picture moved 5 px right and 3 down, the box found
    where Python finds it; another picture, no match; a flat one, none."""
    from mobilefer.inference.detectors import Box
    from mobilefer.inference.follow import match_patch

    page, problems = static_page()
    before, box = texture(), Box(200, 150, 80, 90, 0.9)
    for after in (np.roll(before, (3, 5), axis=(0, 1)), texture(1), np.full_like(before, 128)):
        want = match_patch(before, after, box)
        got = page.evaluate("""([a, b, box]) => {
            const img = (b64) => ({data: Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)), width: 640,
                                   height: 480, channels: 3});
            return MobileferCamera.matchPatch(img(a), img(b), box, window.mobilefer.site.follow);
        }""", [rgb_b64(before), rgb_b64(after), [box.x, box.y, box.w, box.h, box.score]])
        assert got == (None if want is None else [want.x, want.y, want.w, want.h, want.score])
    assert problems == []


FOLLOWED = """async (frames) => {
    const engine = window.mobilefer.engine, follow = engine.site.follow, every = follow.detect_every, seen = [];
    const look = engine.camera.followMany.bind(engine.camera);
    let looks = 0;
    engine.camera.followMany = async (img, boxes, minBox) => { looks += boxes.length; return look(img, boxes, minBox); };
    follow.detect_every = 100;
    engine.camera.resetVideo();
    try {
        for (const b64 of frames) {
            looks = 0;
            const tracks = await engine.camera.videoTracks({data: Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)),
                                                   width: 640, height: 480, channels: 3});
            seen.push({boxes: tracks.map((t) => [t.id, ...t.box.slice(0, 4)]), looks,
                       landmarks: tracks.map((t) => t.box.landmarks)});
        }
    } finally {
        follow.detect_every = every;
        engine.camera.followMany = look;
        engine.camera.resetVideo();
    }
    return seen;
}"""


def test_the_page_follows_a_face_as_python_does_matching_its_patch_between_looks(static_page, astronaut_bgr,
                                                                                  recognizer):
    """live.py's following in the page: a face walking 9 px a frame, searched whole on the first
    frame only; looked for with the detector on every other frame (its id's turn), matched from
    its patch on the frames between, and found where Python's VideoFaces finds it on each frame."""
    from mobilefer.inference.live import VideoFaces
    from mobilefer.inference.plan import RULES
    from mobilefer.inference.tracking import IoUTracker

    frames = walk_frames(astronaut_bgr)[:6]
    video = VideoFaces(recognizer.detector, IoUTracker(), every=100, min_face=20)
    found = [[(t.id, *t.box.as_list()[:4], t.box.landmarks) for t in video(frame)[0]] for frame in frames]
    want = [[one[:5] for one in tracks] for tracks in found]  # (a track's box changes as it goes: read now)
    page, problems = static_page()
    got = page.evaluate(FOLLOWED, [rgb_b64(f) for f in frames])
    assert [len(one["boxes"]) for one in got] == [len(w) for w in want] == [1] * len(frames)
    for one, boxes, tracks in zip(got, want, found):
        assert one["boxes"][0][0] == boxes[0][0] == 0
        assert np.abs(np.array(one["boxes"][0][1:]) - boxes[0][1:]).max() <= 1, (one, boxes)
        # its landmarks too, looked at or carried along with a patch match, as Python's
        assert np.abs(np.array(one["landmarks"][0]) - np.array(tracks[0][5])).max() <= 1.5
    # frame 0 is searched whole; then the face (id 0) is looked at on even frames, matched on odd ones
    assert [one["looks"] for one in got[1:]] == [int(i % RULES.check_every == 0) for i in range(1, len(frames))]
    assert problems == []


@pytest.mark.slow  # ten frames in Python and in the page
def test_a_face_covered_for_two_frames_keeps_its_id_in_the_page_as_in_python(static_page, astronaut_bgr, recognizer):
    """live.py's lost faces in the page: a face on a panning background is covered on frames 4
    and 5; both Python's VideoFaces and the page lose it there and find it again on frame 6 (a
    second look where it was, or the glance) as the same face, id 0, where Python puts it."""
    from mobilefer.inference.live import VideoFaces
    from mobilefer.inference.tracking import IoUTracker

    head, frames = astronaut_head(astronaut_bgr, 90), []
    for i in range(10):
        frame = np.roll(texture(2), 4 * i, axis=1)
        if i not in (4, 5):
            frame[150: 150 + head.shape[0], 250 + 2 * i: 250 + 2 * i + head.shape[1]] = head
        frames.append(frame)
    video = VideoFaces(recognizer.detector, IoUTracker(), every=100, min_face=20)
    want = [[(t.id, *t.box.as_list()[:4]) for t in video(frame)[0]] for frame in frames]
    page, problems = static_page()
    got = [one["boxes"] for one in page.evaluate(FOLLOWED, [rgb_b64(f) for f in frames])]
    assert [[b[0] for b in one] for one in got] == [[b[0] for b in one] for one in want] == [[0]] * 4 + [[]] * 2 + [[0]] * 4
    for one, boxes in zip(got, want):
        assert all(np.abs(np.array(a[1:]) - b[1:]).max() <= 1 for a, b in zip(one, boxes)), (one, boxes)
    assert problems == []


SELFIE = Path(__file__).resolve().parents[2] / "shared/data/videos/openmpf_handheld_selfie_rot90meta.mp4"


@pytest.mark.slow
@pytest.mark.skipif(not SELFIE.is_file(), reason="needs ../shared/data/videos")
def test_the_static_site_reads_a_real_clip_on_the_fake_camera(site, open_page, tmp_path):
    """Chromium's fake camera plays 4 s of the handheld selfie (640x480, faces of ~230 px)."""
    clip = write_y4m(clip_frames(SELFIE, 120), tmp_path / "selfie.y4m")
    page, problems = camera_on(open_page, site, clip)
    page.wait_for_function("() => window.mobilefer.results >= 10 && window.mobilefer.last.faces.length >= 1",
                           timeout=60_000)
    assert page.evaluate("document.getElementById('video').videoWidth") == 640
    print(f"in-browser webcam on the selfie clip: {page.locator('#rate-out').inner_text()} results/s, "
          f"{page.locator('#rtt-median').inner_text()} per frame")
    assert problems == []


def open_a_photo_in_the_browser(static_page, photo: Path):
    """The static site with ``photo`` chosen, once its result (or error) is on the page."""
    page, problems = static_page()
    page.set_input_files("#file", str(photo))
    page.wait_for_function(f"() => document.getElementById('status').textContent.startsWith('{photo.name}: ')",
                           timeout=30_000)
    return page, problems


def test_the_static_site_takes_a_photo_and_names_a_bad_file(static_page, astronaut_bgr, tmp_path):
    photo = tmp_path / "me.png"
    cv2.imwrite(str(photo), np.ascontiguousarray(astronaut_bgr[::2, ::2]))  # 256x256, another size and format
    page, problems = open_a_photo_in_the_browser(static_page, photo)
    assert page.locator("#status").inner_text().startswith("me.png: 1 face")
    assert page.evaluate("[document.getElementById('stage').width, document.getElementById('stage').height]") == [256, 256]
    assert_box_drawn(page)
    assert page.locator("#face-count").inner_text() == "1" and page.locator("#rtt").inner_text().endswith("ms")
    page.set_input_files("#file", {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a picture"})
    page.wait_for_function("() => document.getElementById('status').classList.contains('error')", timeout=20_000)
    assert "notes.jpg: not an image this browser can decode" in page.locator("#status").inner_text()
    assert page.locator("#faces li").count() == 0
    # no figure of the photo before stands beside the error
    assert [page.locator(f"#{k}").inner_text() for k in ("rtt", "rtt-median", "server-ms", "face-count")] == ["–"] * 4
    assert problems == []


RECORD_DRAWING = """() => {
  const g = document.getElementById('stage').getContext('2d'), status = document.getElementById('status');
  window.drawn = [];
  window.statuses = [];
  const text = g.fillText, rect = g.fillRect;
  g.fillText = function (t, x, y) { window.drawn.push({kind: 'text', t, font: this.font}); return text.call(this, t, x, y); };
  g.fillRect = function (x, y, w, h) {
    window.drawn.push({kind: 'rect', style: this.fillStyle, r: [x, y, w, h]});
    return rect.call(this, x, y, w, h);
  };
  window.statusWatch = new MutationObserver(() => window.statuses.push(status.textContent));
  window.statusWatch.observe(status, {childList: true, characterData: true, subtree: true});
}"""
STOP_RECORDING = """() => {
  const g = document.getElementById('stage').getContext('2d');
  delete g.fillText;
  delete g.fillRect;
  window.statusWatch.disconnect();
  return {drawn: window.drawn, statuses: window.statuses};
}"""


def test_a_group_photo_is_numbered_as_the_list_and_bars_cover_no_other_face(static_page, astronaut_bgr, tmp_path):
    """Each face's label carries its number in the list, every label in the same font; per-class
    bars are drawn only where they cover no other face or label; the class rows keep the model's
    order; the steps of the search show while it runs."""
    photo = tmp_path / "group.png"
    group = np.full((400, 800, 3), 70, np.uint8)
    head = astronaut_head(astronaut_bgr, 100)
    for left in (20, 190, 560):  # two neighbours close together, one with room beside it
        group[100: 100 + head.shape[0], left: left + head.shape[1]] = head
    cv2.imwrite(str(photo), group)
    page, problems = static_page()
    page.evaluate(RECORD_DRAWING)
    try:
        page.set_input_files("#file", str(photo))
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('group.png: 3 face')",
                               timeout=30_000)
    finally:
        record = page.evaluate(STOP_RECORDING)
    labels = [d for d in record["drawn"] if d["kind"] == "text" and d["t"][:2] in ("1 ", "2 ", "3 ")]
    assert [d["t"][0] for d in labels] == ["1", "2", "3"] and len({d["font"] for d in labels}) == 1
    last = page.evaluate("window.mobilefer.last")
    scale = page.evaluate("document.getElementById('stage').width") / last["image"]["width"]
    boxes = [[v * scale for v in f["box"]] for f in last["faces"]]
    bars = [d["r"] for d in record["drawn"] if d["kind"] == "rect" and d["style"] == "rgba(0, 0, 0, 0.55)"]
    assert bars  # the face with room beside it has its bars
    overlap = lambda a, b: a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]  # noqa: E731
    for bar in bars:
        assert sum(overlap(bar, box) for box in boxes) == 0, (bar, boxes)
    rows = page.locator("#faces li").first.locator(".bar > span:first-child").all_inner_texts()
    assert rows == page.evaluate("window.mobilefer.classes")
    assert any(s.startswith("group.png (looking for faces: pass 1 of") for s in record["statuses"])
    assert any(s.startswith("group.png (classifying 3 face(s))") for s in record["statuses"])
    assert problems == []


def test_a_photo_can_be_chosen_with_the_keyboard_alone(static_page, astronaut_bgr, tmp_path):
    photo = tmp_path / "keys.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    page, problems = static_page()
    page.bring_to_front()  # the tab a user types in is the one in front (other tests opened pages since)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Tab")  # the first stop on the page: the file chooser
    assert page.evaluate("document.activeElement.id") == "file"
    with page.expect_file_chooser(timeout=10_000) as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(photo))
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('keys.jpg: 1 face')",
                           timeout=30_000)
    assert problems == []


def test_a_transparent_png_reads_as_python_reads_it(static_page, astronaut_bgr, recognizer, tmp_path):
    """Transparency lies on black in both (PIL's decode, the page's canvas)."""
    from PIL import Image

    rgba = np.dstack([astronaut_bgr[:, :, ::-1], np.tile(np.linspace(255, 64, 512).astype(np.uint8), (512, 1))])
    photo = tmp_path / "faded.png"
    Image.fromarray(rgba, "RGBA").save(photo)
    page, problems = open_a_photo_in_the_browser(static_page, photo)
    faces_agree(page.evaluate("window.mobilefer.last.faces"), recognizer.recognize(photo), tolerance=2e-3)
    assert problems == []


def test_the_page_shows_landmarks_pose_and_why_in_both_modes(server, open_page, astronaut_bgr, recognizer, tmp_path):
    """A photo's faces carry their five points and pose in both modes (the page's head_pose equal
    to Python's); "Why?" draws the explanation, and the browser's own map passes the deletion
    test on the model as Python runs it."""
    from mobilefer.data.images import bgr_to_rgb
    from mobilefer.data.preprocess import normalize_batch
    from mobilefer.inference.explain import deletion_drops, face_base
    from mobilefer.inference.faces import Box
    from mobilefer.inference.pose import head_pose

    photo = tmp_path / "portrait.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    page, problems = open_page()
    page.goto(server)
    page.wait_for_function("() => document.getElementById('model').textContent.includes('mobilenet_v3')")
    for mode in ("server", "browser"):
        page.select_option("#mode", mode)
        if mode == "browser":
            page.wait_for_function(ENGINE_READY, timeout=90_000)
        page.set_input_files("#file", str(photo))
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('portrait.jpg: 1 face')",
                               timeout=30_000)
        face = page.evaluate("window.mobilefer.last.faces[0]")
        assert len(face["landmarks"]) == 5, mode
        want = head_pose(face["landmarks"])
        assert [face["pose"][k] for k in ("yaw", "pitch", "roll")] == pytest.approx(
            [want.yaw, want.pitch, want.roll], abs=0.051), mode
        assert page.locator("#faces li .pose").first.inner_text().startswith("yaw ")
        page.locator("#faces li .why").first.click()
        page.wait_for_function("() => document.body.dataset.explained === '0'", timeout=60_000)
        assert "rests on most" in page.locator("#status").inner_text()
        explanation = page.evaluate("window.mobilefer.explanation")
        page.evaluate("delete document.body.dataset.explained")
    # the browser's map, judged on the model as Python runs it
    base, _ = face_base(bgr_to_rgb(astronaut_bgr), Box(*face["box"]), recognizer.margin, recognizer.meta.channels,
                        recognizer.meta.base_size)
    heat = np.array(explanation["weights"], np.float32).reshape(explanation["rows"], explanation["cols"])
    label = recognizer.classes.index(face["label"])
    top, chance = deletion_drops(base, heat, lambda b: recognizer.classifier(normalize_batch(b, recognizer.meta)),
                                 label)
    assert top > chance
    assert problems == []


def test_a_face_under_the_pages_threshold_is_labelled_uncertain(static_page, blurred_astronaut, tmp_path):
    photo = tmp_path / "blurred.png"
    cv2.imwrite(str(photo), blurred_astronaut)
    page, problems = static_page()
    page.set_input_files("#file", str(photo))
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('blurred.png: 1 face')",
                           timeout=30_000)
    top, score = page.evaluate("""() => { const f = window.mobilefer.last.faces[0];
      return [Object.keys(f.probs).reduce((a, b) => (f.probs[b] > f.probs[a] ? b : a)), f.score]; }""")
    assert page.locator("#faces li").first.get_attribute("data-label") == top and score < 0.94
    page.locator("#uncertain").focus()  # typed, as a person would
    page.keyboard.press("Control+A")
    page.keyboard.type(str(int(100 * score) + 5))
    page.keyboard.press("Tab")  # a number input reports its change when it loses focus
    page.wait_for_function("() => document.querySelector('#faces li').dataset.label === 'uncertain'")
    assert page.evaluate("window.mobilefer.last.faces[0].score") == score  # the probabilities stay
    page.locator("#uncertain").fill("0")
    page.locator("#uncertain").dispatch_event("change")
    page.wait_for_function(f"() => document.querySelector('#faces li').dataset.label === '{top}'")
    assert problems == []


def test_server_mode_camera_faces_keep_ids_and_are_averaged_as_python_tracks_them(static_page):
    """Server answers replayed through the page's ServerTracks against tracking.IoUTracker and
    Track.update_probs with VIDEO_SMOOTH: two faces listed in changing order, one gone for two
    frames, a third arriving; the same ids, labels and averaged probabilities."""
    from mobilefer.inference.faces import Box
    from mobilefer.inference.recognizer import VIDEO_SMOOTH
    from mobilefer.inference.tracking import IoUTracker, Smoother

    rng = np.random.default_rng(0)
    classes = ["neutral", "happy", "sad"]
    boxes = {"a": [100, 100, 80, 80], "b": [400, 120, 70, 70], "c": [250, 300, 60, 60]}
    frames = []
    for i in range(8):
        names = ["b", "a"] if i % 2 else ["a", "b"]
        if i in (3, 4):
            names = ["a"]
        if i >= 6:
            names.append("c")
        faces = []
        for name in names:
            x, y, w, h = boxes[name]
            p = rng.dirichlet(np.ones(3))
            faces.append({"id": len(faces), "box": [x + 4 * i, y + 2 * i, w, h], "label": "", "score": 0.0,
                          "probs": dict(zip(classes, p.tolist()))})
        frames.append({"faces": faces})
    page, problems = static_page()
    got = page.evaluate("""(frames) => {
      const tracks = new MobileferCamera.ServerTracks(window.mobilefer.site.follow);
      return frames.map((r) => tracks.update(r).faces.map((f) => [f.id, f.label, f.probs]));
    }""", frames)
    tracker, smoother = IoUTracker(), Smoother.parse(VIDEO_SMOOTH)
    for result, answer in zip(frames, got):
        tracks = tracker.update([Box(*f["box"]) for f in result["faces"]])
        for track, face, (id_, label, probs) in zip(tracks, result["faces"], answer):
            want = track.update_probs(np.array([face["probs"][c] for c in classes]), smoother)
            assert id_ == track.id and label == classes[int(np.argmax(want))]
            assert np.allclose([probs[c] for c in classes], want, atol=1e-9)
    assert [[i for i, _, _ in frame] for frame in got][:3] == [[0, 1], [1, 0], [0, 1]]
    assert got[6][-1][0] == 2 and problems == []  # the third face: a new id; "b" came back as 1
