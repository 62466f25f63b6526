"""The HTTP service in-process: every endpoint and every error path, through FastAPI's TestClient."""
from __future__ import annotations

import asyncio
import builtins
import io
import struct
import tempfile
import threading
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from conftest import ASTRONAUT_FACE, box_iou  # noqa: E402
from mobilefer.inference.detectors import detector_name  # noqa: E402
from mobilefer.inference.recognizer import EmotionRecognizer  # noqa: E402
from mobilefer.serve import engine as engine_module  # noqa: E402
from mobilefer.serve.app import create_app  # noqa: E402
from mobilefer.serve.config import ServeConfig  # noqa: E402


def encode(bgr: np.ndarray, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ServeConfig())) as c:
        yield c


@pytest.fixture(scope="module")
def jpeg(astronaut_bgr) -> bytes:
    return encode(astronaut_bgr)


def post(client, data: bytes, content_type: str = "image/jpeg", query: str = ""):
    return client.post(f"/v1/recognize{query}", content=data, headers={"content-type": content_type})


# ------------------------------------------------------------------ the happy paths
def test_recognize_returns_predicts_faces_for_a_raw_jpeg(client, jpeg, bundled_model, tmp_path):
    r = post(client, jpeg)
    assert r.status_code == 200
    body = r.json()
    assert body["image"] == {"width": 512, "height": 512}
    assert body["model"] == bundled_model.name and body["detector"] == detector_name("auto")
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    assert box_iou(face["box"], ASTRONAUT_FACE) > 0.6
    assert abs(sum(face["probs"].values()) - 1) < 1e-3 and face["label"] == max(face["probs"], key=face["probs"].get)
    # the same faces `predict --json` writes for the same file
    (tmp_path / "photo.jpg").write_bytes(jpeg)
    expected = EmotionRecognizer.load(detector="auto").recognize(tmp_path / "photo.jpg")
    assert body["faces"] == [f.to_dict() for f in expected]
    assert {"receive", "queue", "decode", "detect", "classify", "total"} <= set(body["timing_ms"])


def test_a_face_is_explained_on_request_as_the_runtime_explains_it(client, jpeg, tmp_path):
    import cv2
    import numpy as np

    plain = post(client, jpeg).json()
    assert plain["explanation"] is None
    r = client.post("/v1/recognize?explain=0", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["faces"] == plain["faces"] and "explain" in body["timing_ms"]
    got = body["explanation"]
    x, y, w, h = body["faces"][0]["box"]
    assert got["face"] == 0 and max(got["rows"], got["cols"]) == 48 and len(got["weights"]) == got["rows"] * got["cols"]
    assert got["rows"] / got["cols"] == pytest.approx(h / w, rel=0.05)
    (tmp_path / "photo.jpg").write_bytes(jpeg)
    rec = EmotionRecognizer.load(detector="auto")
    frame = cv2.imread(str(tmp_path / "photo.jpg"))
    want = cv2.resize(rec.explain(frame, rec.recognize(frame)[0]), (got["cols"], got["rows"]), interpolation=cv2.INTER_AREA)
    assert np.allclose(np.array(got["weights"]).reshape(want.shape), want, atol=1e-4)
    assert client.post("/v1/recognize?explain=5", content=jpeg,
                       headers={"Content-Type": "image/jpeg"}).json()["explanation"] is None  # no such face
    assert client.post("/v1/recognize?explain=-1", content=jpeg).status_code == 422


@pytest.mark.parametrize("fmt,ctype", [("PNG", "image/png"), ("WEBP", "image/webp"), ("JPEG", "application/octet-stream")])
def test_png_webp_and_untyped_bodies_work(client, astronaut_bgr, fmt, ctype):
    r = post(client, encode(astronaut_bgr, fmt), ctype)
    assert r.status_code == 200, r.text
    assert len(r.json()["faces"]) == 1


def test_multipart_upload_equals_raw_body(client, jpeg):
    raw = post(client, jpeg).json()
    form = client.post("/v1/recognize", files={"image": ("photo.jpg", jpeg, "image/jpeg")}).json()
    other_name = client.post("/v1/recognize", files={"upload": ("x.bin", jpeg, "application/octet-stream")}).json()
    assert form["faces"] == raw["faces"] == other_name["faces"]


def test_exif_orientation_is_applied(client, astronaut_bgr):
    """A phone photo stored sideways with Orientation=6 is recognised as it is displayed."""
    rotated = np.ascontiguousarray(np.rot90(astronaut_bgr, 1))  # stored turned left
    img = Image.fromarray(rotated[:, :, ::-1])
    exif = img.getexif()
    exif[0x0112] = 6  # viewers rotate 90 degrees clockwise
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", exif=exif)
    body = post(client, buffer.getvalue()).json()
    assert len(body["faces"]) == 1 and box_iou(body["faces"][0]["box"], ASTRONAUT_FACE) > 0.6


def test_query_options_choose_detector_and_bound_faces(client, astronaut_bgr):
    from helpers import composite

    frame, truth = composite(astronaut_bgr)
    data = encode(frame)
    assert len(post(client, data).json()["faces"]) == len(truth)
    assert len(post(client, data, query="?max_faces=1").json()["faces"]) == 1
    big_only = post(client, data, query="?min_face=120").json()["faces"]
    assert len(big_only) == 1 and box_iou(big_only[0]["box"], truth[-1]) > 0.5
    haar = post(client, encode(astronaut_bgr), query="?detector=haar").json()
    assert haar["detector"] == "haar" and len(haar["faces"]) == 1


def test_model_health_openapi_and_page(client, bundled_model):
    from mobilefer.runtime import read_onnx_meta

    meta = read_onnx_meta(bundled_model)
    info = client.get("/v1/model").json()
    assert info["classes"] == meta.classes and info["arch"] == meta.arch
    assert info["input_size"] == meta.input_size and info["metrics"]["accuracy"] == meta.metrics["accuracy"]
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["capacity"] == 1 + 64
    schema = client.get("/openapi.json").json()
    content = schema["paths"]["/v1/recognize"]["post"]["requestBody"]["content"]
    assert {"image/jpeg", "image/png", "image/webp", "multipart/form-data"} <= set(content)
    page = client.get("/")
    assert page.status_code == 200 and '"static/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from a CDN
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "v1/recognize" in script.text and "getUserMedia" in script.text
    # the page and its files are cross-origin isolated (WebAssembly threads in browser mode); the API is not
    for path in ("/", "/static/app.js", "/static/ort/ort.wasm.min.js"):
        headers = client.get(path).headers
        assert headers["cross-origin-opener-policy"] == "same-origin", path
        assert headers["cross-origin-embedder-policy"] == "require-corp", path
    assert "cross-origin-embedder-policy" not in client.get("/healthz").headers


def test_the_model_is_loaded_once_per_app_not_per_request(monkeypatch, jpeg):
    calls = []
    real = engine_module.load_classifier
    monkeypatch.setattr(engine_module, "load_classifier", lambda *a, **k: calls.append(a) or real(*a, **k))
    with TestClient(create_app(ServeConfig(slots=2))) as c:
        for _ in range(4):
            assert post(c, jpeg).status_code == 200
    assert len(calls) == 1


# ------------------------------------------------------------------ bad input
def test_bodies_over_the_upload_limit_get_413(jpeg):
    with TestClient(create_app(ServeConfig(max_upload_mb=0.01))) as c:  # 10 KiB
        declared = post(c, jpeg)
        assert declared.status_code == 413 and "limit" in declared.json()["detail"]
        chunked = c.post("/v1/recognize", content=iter([jpeg[:8000], jpeg[8000:]]),
                         headers={"content-type": "image/jpeg"})  # no Content-Length: counted as it arrives
        assert chunked.status_code == 413
        assert post(c, jpeg[:9000]).status_code == 422  # under the limit: read, then found truncated


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size in its header, with one tiny IDAT: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_pixel_cap_refuses_bombs_from_the_header(client, astronaut_bgr):
    r = post(client, png_header_only(50_000, 50_000), "image/png")  # 2.5 gigapixels, ~100 bytes
    assert r.status_code == 413 and "2500000000 pixels" in r.json()["detail"]
    with TestClient(create_app(ServeConfig(max_megapixels=0.1))) as c:
        small_limit = post(c, encode(astronaut_bgr))  # 0.26 MP
        assert small_limit.status_code == 413 and "0.1 megapixels" in small_limit.json()["detail"]


@pytest.mark.parametrize("data,ctype,status,words", [
    (b"hello", "text/plain", 415, "Content-Type 'text/plain'"),
    (b'{"image": 1}', "application/json", 415, "Content-Type"),
    (b"GIF89a" + b"\0" * 32, "image/gif", 415, "Content-Type 'image/gif'"),
    (b"definitely not an image", "image/jpeg", 415, "not an image"),
    (b"", "image/jpeg", 422, "empty"),
])
def test_unsupported_or_empty_content(client, data, ctype, status, words):
    r = post(client, data, ctype)
    assert r.status_code == status and words in r.json()["detail"]


def test_gif_bytes_sent_as_octet_stream_are_refused(client, astronaut_bgr):
    r = post(client, encode(astronaut_bgr, "GIF"), "application/octet-stream")
    assert r.status_code == 415 and "JPEG, PNG, WEBP, BMP" in r.json()["detail"]


def test_corrupt_images_get_422(client, jpeg, astronaut_bgr):
    truncated = post(client, jpeg[: len(jpeg) // 2])
    assert truncated.status_code == 422 and "truncated" in truncated.json()["detail"]
    png = bytearray(encode(astronaut_bgr, "PNG"))
    png[200:400] = b"\xff" * 200  # inside the compressed data
    assert post(client, bytes(png), "image/png").status_code == 422


def test_malformed_forms_and_query_values(client, jpeg):
    no_file = client.post("/v1/recognize", data={"note": "hi"}, files={"other": (None, b"text")})
    assert no_file.status_code == 422 and "no file part" in no_file.json()["detail"]
    no_boundary = post(client, b"--x\r\n", "multipart/form-data")
    assert no_boundary.status_code == 400 and "boundary" in no_boundary.json()["detail"]
    for query in ("?min_face=0", "?max_faces=0", "?max_faces=101", "?detector=yolo", "?min_face=big"):
        r = post(client, jpeg, query=query)
        assert r.status_code == 422, query
    bad_length = client.post("/v1/recognize", content=jpeg, headers={"content-type": "image/jpeg",
                                                                      "content-length": "lots"})
    assert bad_length.status_code in (400, 422)


@pytest.mark.slow
def test_no_file_is_written_while_serving(client, monkeypatch, astronaut_bgr):
    """A 2 MiB multipart upload (Starlette would spool one that size to disk) stays in memory."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to write a file: {args[:1]}")

    real_open = builtins.open

    def read_only_open(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    big = cv2.resize(astronaut_bgr, (1400, 1400))
    noise = np.random.default_rng(0).integers(0, 40, big.shape, dtype=np.uint8)
    data = encode(cv2.add(big, noise), "PNG")
    assert len(data) > 2 * 2**20
    for name in ("SpooledTemporaryFile", "NamedTemporaryFile", "TemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    monkeypatch.setattr(builtins, "open", read_only_open)
    r = client.post("/v1/recognize", files={"image": ("big.png", data, "image/png")})
    assert r.status_code == 200
    if r.json()["detector"] == "centerface":  # Haar finds extra faces in the noise; the point is the disk
        assert len(r.json()["faces"]) == 1


# ------------------------------------------------------------------ capacity
class Blocked:
    """Makes Engine.recognize wait until released, to hold the only slot."""

    def __init__(self, engine) -> None:
        self.engine, self.real = engine, engine.recognize
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, *args, **kwargs):
        self.entered.set()
        assert self.release.wait(10)
        return self.real(*args, **kwargs)


async def _concurrent(app, blocked: Blocked, jpeg: bytes, extra: int):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        send = lambda: c.post("/v1/recognize", content=jpeg, headers={"content-type": "image/jpeg"})  # noqa: E731
        first = asyncio.create_task(send())
        while not blocked.entered.is_set():
            await asyncio.sleep(0.01)
        others = await asyncio.gather(*[send() for _ in range(extra)])
        health = (await c.get("/healthz")).json()
        blocked.release.set()
        return await first, others, health


def test_beyond_capacity_requests_get_503_with_retry_after(jpeg):
    app = create_app(ServeConfig(slots=1, queue=0))
    blocked = Blocked(app.state.engine)
    app.state.engine.recognize = blocked
    first, others, health = asyncio.run(_concurrent(app, blocked, jpeg, extra=3))
    assert first.status_code == 200 and len(first.json()["faces"]) == 1
    assert [r.status_code for r in others] == [503, 503, 503]
    assert int(others[0].headers["retry-after"]) >= 1 and "busy" in others[0].json()["detail"]
    assert health["status"] == "ok" and health["in_progress"] == 1  # health answers while busy


def test_queued_requests_wait_then_time_out_with_503(jpeg):
    app = create_app(ServeConfig(slots=1, queue=2, queue_timeout_s=0.3))
    blocked = Blocked(app.state.engine)
    app.state.engine.recognize = blocked
    first, others, _ = asyncio.run(_concurrent(app, blocked, jpeg, extra=3))
    assert first.status_code == 200
    codes = sorted(r.status_code for r in others)
    assert codes == [503, 503, 503]  # two waited 0.3 s, one found the queue full
    assert sum("waited" in r.json()["detail"] for r in others) == 2


def test_queued_requests_are_served_when_a_slot_frees(jpeg):
    app = create_app(ServeConfig(slots=1, queue=4))
    engine = app.state.engine
    real = engine.recognize
    engine.recognize = lambda *a, **k: (threading.Event().wait(0.05), real(*a, **k))[1]

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await asyncio.gather(*[c.post("/v1/recognize", content=jpeg) for _ in range(5)])

    assert [r.status_code for r in asyncio.run(burst())] == [200] * 5


def test_settings_are_checked(bundled_model):
    assert ServeConfig().host == "127.0.0.1"  # loopback unless asked
    with pytest.raises(ValueError, match="--slots 0"):
        ServeConfig(slots=0)
    assert ServeConfig.from_json(ServeConfig(model=str(bundled_model), workers=3).to_json()).workers == 3


def test_a_client_that_leaves_while_queued_costs_no_inference(jpeg):
    """Under overload, clients time out; their queued requests must not use a slot afterwards."""
    app = create_app(ServeConfig(slots=1, queue=4))
    blocked = Blocked(app.state.engine)
    calls = []
    app.state.engine.recognize = lambda *a, **k: (calls.append(1), blocked(*a, **k))[1]

    async def leaving_client(sent: list) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/recognize", "raw_path": b"/v1/recognize", "query_string": b"",
                 "root_path": "", "headers": [(b"content-type", b"image/jpeg"),
                                              (b"content-length", str(len(jpeg)).encode())],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        messages = [{"type": "http.request", "body": jpeg, "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            return {"type": "http.disconnect"}  # the client has gone

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            first = asyncio.create_task(c.post("/v1/recognize", content=jpeg))
            while not blocked.entered.is_set():
                await asyncio.sleep(0.01)
            sent: list = []
            leaving = asyncio.create_task(leaving_client(sent))
            await asyncio.sleep(0.1)
            blocked.release.set()
            await leaving
            return await first, sent

    first, sent = asyncio.run(run())
    assert first.status_code == 200
    assert len(calls) == 1  # only the first request reached the model
    assert sent[0]["status"] == 499


@pytest.mark.parametrize("make", [
    lambda rgb: Image.fromarray(rgb).convert("CMYK"),                       # print-shop JPEG
    lambda rgb: Image.fromarray(rgb).convert("RGBA"),                       # PNG with alpha
    lambda rgb: Image.fromarray((rgb[:, :, 1].astype(np.uint16) * 257)),     # 16-bit gray PNG
    lambda rgb: Image.fromarray(np.zeros((1, 4000, 3), np.uint8)),           # a 1-pixel strip
    lambda rgb: Image.fromarray(np.zeros((4000, 1, 3), np.uint8)),
], ids=["cmyk-jpeg", "rgba-png", "gray16-png", "wide-strip", "tall-strip"])
def test_odd_but_valid_images_are_answered(client, astronaut_bgr, make):
    img = make(np.ascontiguousarray(astronaut_bgr[:, :, ::-1]))
    buffer = io.BytesIO()
    fmt = "JPEG" if img.mode == "CMYK" else "PNG"
    img.save(buffer, fmt)
    r = post(client, buffer.getvalue(), f"image/{fmt.lower()}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": img.width, "height": img.height}
    assert len(body["faces"]) == (0 if min(img.size) == 1 else 1)


def test_a_body_that_arrives_too_slowly_gets_408_and_frees_its_place(jpeg):
    app = create_app(ServeConfig(slots=1, queue=0, read_timeout_s=0.3))

    async def run():
        async def dribble():
            yield jpeg[:100]
            await asyncio.sleep(5)  # a slow (or malicious) client
            yield jpeg[100:]

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            slow = await c.post("/v1/recognize", content=dribble(), headers={"content-type": "image/jpeg"})
            after = await c.post("/v1/recognize", content=jpeg, headers={"content-type": "image/jpeg"})
            return slow, after

    slow, after = asyncio.run(run())
    assert slow.status_code == 408 and "0.3 s" in slow.json()["detail"]
    assert after.status_code == 200  # the only place was given back


def test_detector_none_classifies_an_uploaded_face_crop(client, astronaut_bgr):
    crop = encode(astronaut_bgr[62:172, 180:290])
    body = post(client, crop, query="?detector=none").json()
    assert body["detector"] == "none"
    assert [f["box"] for f in body["faces"]] == [[0, 0, 110, 110]] and body["faces"][0]["label"] == "happy"


# ------------------------------------------------------------------ what a user's habits send
def test_curl_without_a_content_type_and_bmp_are_recognised_as_by_the_cli(client, jpeg, astronaut_bgr):
    # curl --data-binary @photo.jpg says application/x-www-form-urlencoded: the bytes say JPEG
    as_curl = post(client, jpeg, "application/x-www-form-urlencoded")
    assert as_curl.status_code == 200 and as_curl.json()["faces"]
    bmp = post(client, encode(astronaut_bgr, "BMP"), "image/bmp")
    assert bmp.status_code == 200 and len(bmp.json()["faces"]) == len(as_curl.json()["faces"])
    assert post(client, b"hello=world", "application/x-www-form-urlencoded").status_code == 415


def test_a_jpeg_whose_header_claims_more_than_its_data_is_refused(client, astronaut_bgr):
    data = bytearray(encode(astronaut_bgr[:64, :64]))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (1200).to_bytes(2, "big") + (1600).to_bytes(2, "big")  # claims 1600x1200
    r = post(client, bytes(data))
    assert r.status_code == 422 and "1600x1200 pixels in only" in r.json()["detail"]


def test_two_files_in_one_form_are_refused_not_half_read(client, jpeg):
    files = [("file", ("a.jpg", jpeg, "image/jpeg")), ("file2", ("b.jpg", jpeg, "image/jpeg"))]
    r = client.post("/v1/recognize", files=files)
    assert r.status_code == 422 and "2 files" in r.json()["detail"]


def test_health_has_no_mean_inference_time_before_an_inference():
    with TestClient(create_app(ServeConfig())) as fresh:
        assert fresh.get("/healthz").json()["mean_inference_ms"] is None


def test_a_camera_frame_is_looked_at_as_predict_looks_at_a_video_frame(client, astronaut_bgr):
    """?video=true: a 1280x720 frame is searched as a video's whole-frame search searches it (at
    0.75 of its size, faces of 32 px and up), not as a photo (enlarged 1.2x for faces of 20 px):
    the 20 px face is a photo's, not a video frame's; the 60 and 150 px faces are both's."""
    from mobilefer.inference.recognizer import EmotionRecognizer

    x, y, w, h = ASTRONAUT_FACE
    head = astronaut_bgr[y - 40: y + h + 40, x - 40: x + w + 40]
    frame, left = np.full((720, 1280, 3), 90, np.uint8), 40
    for scale in (0.22, 0.67, 1.6):
        patch = cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        frame[150:150 + patch.shape[0], left:left + patch.shape[1]] = patch
        left += patch.shape[1] + 60
    data = encode(frame, "PNG")
    photo = post(client, data, "image/png").json()["faces"]
    video = post(client, data, "image/png", query="?video=true").json()["faces"]
    assert len(photo) == 3 and min(min(f["box"][2:]) for f in photo) < 26 and len(video) == 2
    assert all(max(box_iou(v["box"], p["box"]) for p in photo) > 0.7 for v in video)
    want = EmotionRecognizer.load().recognize_frame(frame, video=True)
    assert [v["box"] for v in video] == [list(f.box) for f in want]
    assert post(client, data, "image/png", query="?video=maybe").status_code == 422
