"""The FastAPI application: recognition API, model metadata, health, and the browser page.

    POST /v1/recognize   image (raw body or multipart) -> faces, as `predict --json` writes them
    GET  /v1/model       the model's self-description
    GET  /healthz        liveness and load
    GET  /               the page: drop an image or switch on the webcam; recognised here or in the browser
    GET  /site.json      what the page needs to know (mobilefer.web.site_info)
    GET  /models/classifier.onnx, /models/detector.onnx   the models, for the page's browser mode
    GET  /docs, /openapi.json   FastAPI's own
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from mobilefer import __version__
from mobilefer.errors import MobileferError
from mobilefer.inference.detectors import VIDEO_DETECT_PIXELS, DetectorUnavailable
from mobilefer.serve.config import ServeConfig
from mobilefer.serve.engine import RELEASE_AFTER_PIXELS, Engine, release_memory
from mobilefer.serve.gate import Busy, InferenceGate
from mobilefer.serve.uploads import UploadError, decode_upload, image_bytes, read_body
from mobilefer.web import ISOLATED, page_dir, runtime_dir

CONFIG_ENV = "MOBILEFER_SERVE_CONFIG"  # how `serve --workers N` hands its settings to each worker

# The page loads nothing from elsewhere; the camera stream and drawn images are blob/data URLs;
# its browser mode compiles ONNX Runtime's WebAssembly ('wasm-unsafe-eval' allows that, not eval).
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
               "style-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; object-src 'none'; "
               "frame-ancestors 'none'")


class _PageFiles(StaticFiles):
    """The page's files, cross-origin isolated as the page is (web.ISOLATED)."""

    async def get_response(self, path: str, scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(ISOLATED)
        return response


class PoseOut(BaseModel):
    yaw: float  # degrees; > 0: turned towards the image's right
    pitch: float  # > 0: tilted up
    roll: float  # > 0: turned clockwise on the image
    turned: bool  # turned far from the camera: its emotion is read less reliably


class FaceOut(BaseModel):
    id: int | None
    box: list[int]  # x, y, width, height in image pixels
    label: str  # a class, or "uncertain": its top probability (score) is under the threshold
    score: float
    probs: dict[str, float]
    landmarks: list[list[float]] | None  # eyes, nose tip, mouth corners (x, y), image-left first; None: the detector has none
    pose: PoseOut | None


class ImageSize(BaseModel):
    width: int
    height: int


class ExplanationOut(BaseModel):
    face: int  # the index in faces of the face explained
    rows: int
    cols: int
    weights: list[float]  # rows x cols over the face's box, row by row: higher where its label rests more


class RecognizeOut(BaseModel):
    faces: list[FaceOut]
    image: ImageSize
    detector: str
    model: str
    timing_ms: dict[str, float]
    explanation: ExplanationOut | None = None


class Problem(BaseModel):
    detail: str


_IMAGE_SCHEMA = {"type": "string", "format": "binary"}
_REQUEST_BODY = {"requestBody": {"required": True, "content": {
    "image/jpeg": {"schema": _IMAGE_SCHEMA},
    "image/png": {"schema": _IMAGE_SCHEMA},
    "image/webp": {"schema": _IMAGE_SCHEMA},
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                       "properties": {"image": _IMAGE_SCHEMA}}},
}}}
_ERRORS = {
    400: {"model": Problem, "description": "malformed request (Content-Length, multipart)"},
    408: {"model": Problem, "description": "the body arrived too slowly"},
    413: {"model": Problem, "description": "upload or image pixel count over the limit"},
    415: {"model": Problem, "description": "not a JPEG, PNG or WebP image"},
    422: {"model": Problem, "description": "corrupt image, empty body, bad query value"},
    503: {"model": Problem, "description": "at capacity; see Retry-After"},
}


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The application with its model loaded (once, here): call it once per worker process."""
    config = config or ServeConfig()
    engine = Engine(config)
    gate = InferenceGate(config.slots, config.queue, config.queue_timeout_s)
    started = time.time()
    page = (page_dir() / "index.html").read_text()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.close()

    app = FastAPI(title="mobilefer", version=__version__, lifespan=lifespan,
                  description="Facial emotion recognition with MobileNetV3: detect faces, read their emotions.")
    app.state.engine, app.state.gate = engine, gate
    app.mount("/static/ort", _PageFiles(directory=str(runtime_dir())), name="runtime")
    app.mount("/static", _PageFiles(directory=str(page_dir())), name="static")

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(MobileferError)
    async def mobilefer_error(request: Request, exc: MobileferError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache",
                                           **ISOLATED})

    @app.get("/healthz", summary="liveness and current load")
    async def healthz() -> dict:
        return {"status": "ok", "model": engine.model_path.name, "pid": os.getpid(),
                "uptime_s": round(time.time() - started, 1), **gate.stats()}

    @app.get("/v1/model", summary="the model's metadata: classes in output order, arch, input size, metrics")
    async def model() -> dict:
        return engine.model_info()

    @app.get("/site.json", include_in_schema=False)
    async def site() -> dict:
        return engine.site_info()

    @app.get("/models/classifier.onnx", include_in_schema=False)
    async def classifier_model() -> Response:
        if engine.browser_unavailable():
            return JSONResponse({"detail": engine.browser_unavailable()}, status_code=404)
        return FileResponse(engine.model_path, media_type="application/octet-stream")

    @app.get("/models/detector.onnx", include_in_schema=False)
    async def detector_model() -> Response:
        try:
            return Response(engine.detector_model(), media_type="application/octet-stream")
        except DetectorUnavailable as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.post("/v1/recognize", response_model=RecognizeOut, responses=_ERRORS, openapi_extra=_REQUEST_BODY,
              summary="faces in an image, each with its emotion and class probabilities")
    async def recognize(
        request: Request,
        detector: Literal["auto", "haar", "centerface", "none"] | None = Query(
            None, description=f"face detector (default: the server's, {engine.default_detector}); "
                              "none: the image is one face crop"),
        min_face: int | None = Query(None, ge=1, le=10_000, description=f"smallest face side in pixels "
                                     f"(default {config.min_face})"),
        max_faces: int | None = Query(None, ge=1, le=config.max_faces, description="at most this many faces, "
                                      "largest-scoring first"),
        video: bool = Query(False, description="the image is a camera or video frame: looked at as predict "
                                               "looks at a video's frames (never enlarged; HD at most "
                                               f"{VIDEO_DETECT_PIXELS:,} pixels), not as a photo"),
        explain: int | None = Query(None, ge=0, le=10_000, description="also explain the face at this index of "
                                    "faces: which of its pixels its emotion rests on (~0.3 s)"),
        uncertain: float | None = Query(None, ge=0, lt=1, description="label a face \"uncertain\" when its top "
                                        f"probability is under this (default {config.uncertain:g}: "
                                        + ("never" if not config.uncertain else "the server's") + ")"),
    ) -> dict:
        start = time.perf_counter()
        try:
            name = engine.resolve_detector(detector) if detector else engine.default_detector
        except DetectorUnavailable as exc:
            raise UploadError(422, str(exc)) from None
        async with gate.admit():
            try:
                body = await asyncio.wait_for(read_body(request.stream(), request.headers.get("content-length"),
                                                        config.max_upload_bytes), config.read_timeout_s)
            except asyncio.TimeoutError:
                raise UploadError(408, f"the upload took over {config.read_timeout_s:g} s to arrive") from None
            data = image_bytes(body, request.headers.get("content-type"))
            received = time.perf_counter()
            async with gate.slot():
                waited = time.perf_counter()
                if await request.is_disconnected():  # gave up while queued: don't spend a slot on it
                    raise UploadError(499, "client closed the request before it was served")

                def work():  # decode and recognise on the slot's thread, off the event loop
                    image = decode_upload(data, config.max_pixels)
                    decoded = time.perf_counter()
                    result = engine.recognize(image, name, min_face, max_faces, video, explain, uncertain)
                    del image
                    if result.width * result.height > RELEASE_AFTER_PIXELS:
                        release_memory()  # a large photo's buffers go back to the system now
                    return decoded, result

                decoded, result = await asyncio.get_running_loop().run_in_executor(engine.executor, work)
        engine.release_when_idle(lambda: gate.admitted == 0)
        timing = {"receive": received - start, "queue": waited - received, "decode": decoded - waited}
        timing = {k: 1000 * v for k, v in timing.items()} | result.timing_ms
        timing["total"] = 1000 * (time.perf_counter() - start)
        answer = {"faces": [f.to_dict() for f in result.faces],
                  "image": {"width": result.width, "height": result.height},
                  "detector": result.detector, "model": engine.model_path.name,
                  "timing_ms": {k: round(v, 2) for k, v in timing.items()}}
        if result.explanation is not None:
            answer["explanation"] = result.explanation
        return answer

    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory for worker processes: the settings come in $MOBILEFER_SERVE_CONFIG."""
    text = os.environ.get(CONFIG_ENV)
    return create_app(ServeConfig.from_json(text) if text else ServeConfig())
