// mobilefer page: recognise a photo or webcam frames on the server (POST v1/recognize) or in
// this browser (browser.js), and draw what comes back. site.json says what this page can do:
// `mobilefer serve` offers both modes, a folder from `mobilefer export --format web` the browser's.
// Opened with #sample, the page recognises the sample photo on load and writes the result as text
// (#result); #browser or #server picks the mode.
"use strict";

const $ = (id) => document.getElementById(id);
const stage = $("stage");
const ctx = stage.getContext("2d");
const video = $("video");
const MAX_SEND_WIDTH = 640;  // webcam frames are scaled to this before they are recognised

const state = {
  classes: [], last: null, source: null, camera: null, results: 0, rtts: [], stamps: [],
  site: null, mode: "server", engine: null, loading: null, tracks: null,
  input: null,  // the still image last recognised: {file, pixels} (pixels in browser mode), for explain
  explanation: null,  // {face, rows, cols, weights, rect}: drawn over that face until the next image
};
window.mobilefer = state;  // for the curious (and the browser tests)

function colorOf(label) {
  return MobileferDraw.colorFor(label, state.classes);
}
state.colorOf = colorOf;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function loadSite() {
  let site;
  try {
    const res = await fetch("site.json");
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    site = await res.json();
  } catch (err) {
    setStatus(`cannot read site.json, the page's description of its model: ${err.message}`, true);
    return;
  }
  state.site = site;
  if (site.server) document.body.dataset.server = "yes";
  state.classes = site.model.classes;
  state.tracks = new MobileferCamera.ServerTracks(site.follow);  // the server mode's camera faces
  $("uncertain").value = String(Math.round(100 * (site.uncertain || 0)));
  const acc = site.model.metrics && typeof site.model.metrics.accuracy === "number"
    ? `, validation accuracy ${(100 * site.model.metrics.accuracy).toFixed(1)} %` : "";
  $("model").textContent = `${site.model.name}: ${site.model.arch}, ${site.model.classes.length} classes${acc}`;
  for (const name of site.server ? site.detectors : []) {
    const opt = document.createElement("option");
    opt.value = name;
    opt.textContent = name;
    $("detector").append(opt);
  }
  const modes = $("mode");
  if (!site.server) modes.querySelector('option[value="server"]').remove();
  if (site.browser.unavailable) modes.querySelector('option[value="browser"]').disabled = true;
  await setMode(location.hash.includes("browser") || !site.server ? "browser" : "server");
  if (location.hash.includes("sample")) await useSample();
}

const MODE_NOTES = {
  server: "Mode: server. Each image or webcam frame is sent to this server, recognised there and forgotten.",
  browser: "Mode: in this browser. The face detector and the classifier run here (ONNX Runtime Web, "
    + "WebAssembly); no image leaves this machine.",
};

async function setMode(mode) {
  stopCamera();
  clearResult();
  state.mode = mode;
  $("mode").value = mode;
  $("mode-note").textContent = MODE_NOTES[mode];
  document.body.dataset.mode = mode;
  $("detector").disabled = mode !== "server";
  $("rate").disabled = mode !== "server";
  $("latency-label").textContent = mode === "server" ? "Round trip" : "Per frame";
  $("server-label").textContent = mode === "server" ? "Server" : "Detect + classify";
  if (mode === "browser") {
    if (site().browser.unavailable) {
      setStatus(`the browser mode is not available: ${site().browser.unavailable}`, true);
      return;
    }
    try {
      await browserEngine();
      setStatus("models loaded in this browser: choose an image or start the webcam");
    } catch (err) {
      setStatus(err.message, true);
    }
  } else {
    setStatus("Choose an image or start the webcam.");
  }
}

const site = () => state.site;

// The models, loaded once, on first use (about 15 MB of WebAssembly and 10-25 MB of models).
function browserEngine() {
  if (!state.loading) {
    setStatus("loading the models into this browser…");
    state.loading = MobileferBrowser.Engine.load(site()).then((engine) => (state.engine = engine), (err) => {
      state.loading = null;  // the next try loads again
      throw new Error(`cannot run the models in this browser: ${err.message}`);
    });
  }
  return state.loading;
}

// A camera frame is looked at as predict looks at a video's frames (never enlarged).
function query(video) {
  const detector = $("detector").value, options = [];
  if (detector) options.push(`detector=${encodeURIComponent(detector)}`);
  if (video) options.push("video=true");
  if (uncertainBelow()) options.push(`uncertain=${uncertainBelow()}`);
  return options.length ? `?${options.join("&")}` : "";
}

// One recognition: an image Blob (server) or pixels (browser); returns the result, or throws an
// Error whose message says what went wrong.
async function recognize(blob, pixels = null, video = false, onProgress = null) {
  if (state.mode === "browser") {
    const engine = await browserEngine();
    const result = await engine.recognize(pixels, { video, onProgress });
    recordTiming(result.timing_ms.total, `${result.timing_ms.detect.toFixed(0)} + ${result.timing_ms.classify.toFixed(0)} ms`);
    return result;
  }
  const started = performance.now();
  const res = await fetch(`v1/recognize${query(video)}`, {
    method: "POST", body: blob, headers: { "Content-Type": blob.type || "application/octet-stream" },
  });
  const rtt = performance.now() - started;
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(`${res.status}: ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)}`);
    err.retryAfter = Number(res.headers.get("Retry-After") || 0);
    throw err;
  }
  recordTiming(rtt, `${body.timing_ms.total.toFixed(0)} ms`);
  return body;
}

// An image or video frame drawn into the grab canvas, at most maxWidth wide.
function grabFrame(source, width, height, maxWidth = Infinity) {
  const scale = Math.min(1, maxWidth / width);
  grab.width = Math.round(width * scale);
  grab.height = Math.round(height * scale);
  const g = grab.getContext("2d", { willReadFrequently: true });
  g.fillStyle = "#000";  // transparency on black, as Python decodes it
  g.fillRect(0, 0, grab.width, grab.height);
  g.drawImage(source, 0, 0, grab.width, grab.height);
  return g;
}

// Its RGB pixels, for the browser mode.
function pixelsOf(source, width, height, maxWidth = Infinity) {
  const g = grabFrame(source, width, height, maxWidth);
  return MobileferBrowser.fromRGBA(g.getImageData(0, 0, grab.width, grab.height).data, grab.width, grab.height);
}

function recordTiming(rtt, workText) {
  const now = performance.now();
  state.results += 1;
  state.rtts.push(rtt);
  state.stamps.push(now);
  if (state.rtts.length > 20) state.rtts.shift();
  while (state.stamps.length && now - state.stamps[0] > 3000) state.stamps.shift();
  const sorted = [...state.rtts].sort((a, b) => a - b);
  $("rtt").textContent = `${rtt.toFixed(0)} ms`;
  $("rtt-median").textContent = `${sorted[Math.floor(sorted.length / 2)].toFixed(0)} ms`;
  $("server-ms").textContent = workText;
  const span = (now - state.stamps[0]) / 1000;
  $("rate-out").textContent = state.stamps.length > 1 && span > 0 ? ((state.stamps.length - 1) / span).toFixed(1) : "–";
}

// ------------------------------------------------------------------ drawing
function fitStage(width, height) {
  if (stage.width !== width || stage.height !== height) {
    stage.width = width;
    stage.height = height;
  }
}

const drawFaces = (result) => MobileferDraw.drawFaces(ctx, result, state.classes, state.explanation);

function listFaces(result) {
  const list = $("faces");
  list.replaceChildren();
  for (const face of result.faces) {
    const item = document.createElement("li");
    item.dataset.label = face.label;
    const head = document.createElement("strong");
    head.textContent = `${face.label} ${(100 * face.score).toFixed(0)} %`;
    item.append(head);
    if (face.pose) {
      const pose = document.createElement("div");
      pose.className = "pose";
      const p = face.pose;
      pose.textContent = `yaw ${p.yaw.toFixed(0)}°, pitch ${p.pitch.toFixed(0)}°, roll ${p.roll.toFixed(0)}°`
        + (p.turned ? ": turned away, read less surely" : "");
      item.append(pose);
    }
    if (state.input && !state.camera) {  // a photo's face can be explained
      const why = document.createElement("button");
      why.type = "button";
      why.className = "why";
      why.textContent = "Why?";
      why.title = "show the pixels this face's emotion rests on";
      const index = result.faces.indexOf(face);
      why.addEventListener("click", () => explainFace(index));
      item.append(why);
    }
    for (const [name, p] of Object.entries(face.probs)) {  // the model's order: rows stay put from frame to frame
      const row = document.createElement("div");
      row.className = "bar";
      const label = document.createElement("span");
      label.textContent = name;
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.display = "block";
      fill.style.width = `${(100 * p).toFixed(1)}%`;
      fill.style.background = colorOf(name);
      track.append(fill);
      const pct = document.createElement("span");
      pct.className = "pct";
      pct.textContent = `${(100 * p).toFixed(0)}%`;
      row.append(label, track, pct);
      item.append(row);
    }
    list.append(item);
  }
  list.dataset.count = String(result.faces.length);
  list.dataset.results = String(state.results);
  $("face-count").textContent = String(result.faces.length);
}

// The threshold under which a face is labelled "uncertain" (recognizer.py Face.with_uncertain):
// applied to every result shown, in either mode, and again when it changes.
function uncertainBelow() {
  const percent = Number($("uncertain").value);
  return Number.isFinite(percent) ? Math.max(0, Math.min(99, percent)) / 100 : 0;
}

const topClass = (face) => Object.keys(face.probs).reduce((a, b) => (face.probs[b] > face.probs[a] ? b : a));

function withUncertain(result) {
  const below = uncertainBelow();
  for (const face of result.faces) face.label = face.score < below ? "uncertain" : topClass(face);
  return result;
}

function show(result) {
  state.last = withUncertain(result);
  listFaces(result);
  if (state.source instanceof ImageBitmap) {  // a still image: redraw once
    ctx.drawImage(state.source, 0, 0, stage.width, stage.height);
    drawFaces(result);
  }
}

// ------------------------------------------------------------------ still images
async function useFile(file) {
  if (!file) return;
  stopCamera();
  setStatus(`${state.mode === "server" ? "sending" : "reading"} ${file.name} (${(file.size / 1024).toFixed(0)} KiB)…`);
  let bitmap = null;
  try {
    // The pixels as stored (no colour management), so the browser mode sees what Python decodes.
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image", colorSpaceConversion: "none",
                                            premultiplyAlpha: "none" });
  } catch (err) {
    bitmap = null;  // the browser cannot show it; the server will still say what is wrong
  }
  try {
    if (state.mode === "browser" && !bitmap) throw new Error("not an image this browser can decode (JPEG, PNG, WebP)");
    const pixels = state.mode === "browser" ? pixelsOf(bitmap, bitmap.width, bitmap.height) : null;
    const result = await recognize(file, pixels, false, (step) => setStatus(`${file.name} (${step})…`));
    state.input = { file, pixels };
    state.explanation = null;
    if (bitmap) {
      state.source = bitmap;
      fitStage(result.image.width, result.image.height);
    }
    show(result);
    setStatus(`${file.name}: ${result.faces.length} face(s), ${result.image.width}x${result.image.height}`);
    writeResult(file.name, result);
  } catch (err) {
    clearResult();  // the picture and faces of an earlier file must not stand under this error
    setStatus(`${file.name}: ${err.message}`, true);
  }
}

// Why face ``index`` of the photo got its label: asked of the server (?explain=) or worked out
// in this browser, then drawn over the face until the next image.
async function explainFace(index) {
  const face = state.last && state.last.faces[index];
  if (!face || !state.input) return;
  const name = state.input.file.name;
  const top = topClass(face);  // an uncertain face's most likely emotion is explained
  setStatus(`${name}: explaining face ${index + 1} (${top})…`);
  try {
    let explanation;
    if (state.mode === "browser") {
      explanation = { face: index, ...(await (await browserEngine()).explain(state.input.pixels, face)) };
    } else {
      const options = query(false);
      const res = await fetch(`v1/recognize${options ? `${options}&` : "?"}explain=${index}`, {
        method: "POST", body: state.input.file,
        headers: { "Content-Type": state.input.file.type || "application/octet-stream" },
      });
      const body = await res.json().catch(() => ({}));
      if (!res.ok || !body.explanation) throw new Error(`${res.status}: ${body.detail || "no explanation came back"}`);
      explanation = { ...body.explanation, rect: face.box };
    }
    state.explanation = explanation;
    show(state.last);
    setStatus(`${name}: face ${index + 1} is ${face.label === top ? top : `${face.label}, most likely ${top}`}: `
      + `in red, the pixels ${top} rests on most`);
    document.body.dataset.explained = String(index);
  } catch (err) {
    setStatus(`${name}: cannot explain face ${index + 1}: ${err.message}`, true);
  }
}

// The result as plain text in the page: one line per face (what #sample is read by).
function writeResult(name, result) {
  const lines = result.faces.map((f, i) => `face ${i + 1}: ${f.label} ${(100 * f.score).toFixed(0)} % at ${f.box.join(",")}`);
  $("result").textContent = `${name} (${state.mode}): ${result.faces.length} face(s)${lines.length ? "\n" : ""}${lines.join("\n")}`;
}

async function useSample() {
  try {
    const res = await fetch(site().sample);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const blob = await res.blob();
    await useFile(new File([blob], site().sample.split("/").pop(), { type: blob.type || "image/jpeg" }));
  } catch (err) {
    setStatus(`cannot load the sample photo ${site().sample}: ${err.message}`, true);
  }
  document.body.dataset.sample = "done";
}

function clearResult() {
  state.source = null;
  state.last = null;
  state.input = null;
  state.explanation = null;
  state.rtts = [];
  state.stamps = [];
  ctx.clearRect(0, 0, stage.width, stage.height);
  listFaces({ faces: [] });
  for (const id of ["rtt", "rtt-median", "server-ms", "rate-out", "face-count"]) $(id).textContent = "–";
  $("result").textContent = "";
}

$("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  e.target.value = "";  // the same file chosen again (in the other mode, say) is a new choice
  useFile(file);
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  useFile(e.dataTransfer.files[0]);
});
$("mode").addEventListener("change", (e) => setMode(e.target.value));
$("uncertain").addEventListener("change", () => { if (state.last) show(state.last); });

// ------------------------------------------------------------------ webcam
const grab = document.createElement("canvas");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const CAMERA_ERRORS = {
  NotAllowedError: "camera access was denied: allow the camera for this page in the browser's site settings, "
    + "or drop a photo instead",
  NotFoundError: "no camera found: connect one, or drop a photo instead",
  NotReadableError: "the camera is in use by another program, or the system blocked it",
  OverconstrainedError: "the camera cannot deliver 640x480 video",
};

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("this browser gives no camera access here (it needs http://localhost or https)", true);
    return;
  }
  if (state.mode === "browser") {
    try {
      await browserEngine();
    } catch (err) {
      setStatus(err.message, true);
      return;
    }
  }
  try {
    // A width alone: the camera's whole picture, scaled. Asked for 640x480 too, a 16:9 camera
    // would be cropped to 4:3 and the faces at its sides never seen.
    state.camera = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: MAX_SEND_WIDTH } }, audio: false });
  } catch (err) {
    setStatus(`no camera: ${CAMERA_ERRORS[err.name] || err.message || err.name}`, true);
    return;
  }
  video.srcObject = state.camera;
  await video.play();
  if (state.engine) state.engine.camera.resetVideo();
  state.tracks.reset();
  state.source = video;
  state.last = null;
  state.input = null;  // a camera frame is not explained (it is gone by the time a click comes)
  state.explanation = null;
  $("camera").textContent = "Stop webcam";
  $("camera").classList.add("on");
  setStatus(state.mode === "server"
    ? "webcam on: frames go to the server as fast as it answers, up to the chosen rate"
    : "webcam on: faces are followed on every new frame in this browser, as fast as it can, and each " +
      `classified ${state.site.follow.classify_rate} times a second`);
  requestAnimationFrame(render);
  pump();
}

function stopCamera() {
  if (!state.camera) return;
  for (const track of state.camera.getTracks()) track.stop();
  state.camera = null;
  video.srcObject = null;
  $("camera").textContent = "Start webcam";
  $("camera").classList.remove("on");
  setStatus("webcam off");
}

function render() {
  if (!state.camera || state.source !== video) return;
  if (video.videoWidth) {
    fitStage(video.videoWidth, video.videoHeight);
    ctx.drawImage(video, 0, 0, stage.width, stage.height);
    drawFaces(state.last);
  }
  requestAnimationFrame(render);
}

// A camera frame's RGB pixels (a VideoFrame, closed here), at most maxWidth wide: read from its
// planes where MobileferFrames.fromVideoFrame reads them (a 1280x720 camera's frame in ~2.5 ms,
// against ~7 to draw it on the grab canvas and read that back), else drawn.
async function framePixels(frame, maxWidth) {
  try {
    const scale = Math.min(1, maxWidth / frame.displayWidth);
    const width = Math.round(frame.displayWidth * scale), height = Math.round(frame.displayHeight * scale);
    return (await MobileferFrames.fromVideoFrame(frame, width, height))
      ?? pixelsOf(frame, frame.displayWidth, frame.displayHeight, maxWidth);
  } finally {
    frame.close();
  }
}

// How many frames the camera has given the video element: counted as they come, even while the
// page is busy (requestVideoFrameCallback fires only when the page next paints).
function framesIn() {
  return video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality().totalVideoFrames : -1;
}

// The next video frame after ``done`` (framesIn() when the last one was grabbed): at once where
// one came while that one was recognised, else the next one the camera gives.
async function nextFrame(done) {
  const shown = () => new Promise((resolve) => (video.requestVideoFrameCallback
    ? video.requestVideoFrameCallback(() => resolve()) : requestAnimationFrame(() => resolve())));
  if (done < 0) return shown();  // no count: each frame shown is a new one
  while (state.camera && framesIn() <= done) await shown();
}

// One frame in work at a time. Server: the next frame goes when the answer is back and the rate
// allows. Browser: each new frame is recognised here, the next as soon as this one is done.
async function pump() {
  while (state.camera) {
    const started = performance.now(), frame = framesIn();
    if (!video.videoWidth) { await sleep(50); continue; }
    try {
      let result;
      if (state.mode === "browser") {
        const pixels = typeof VideoFrame === "function" ? await framePixels(new VideoFrame(video), MAX_SEND_WIDTH)
          : pixelsOf(video, video.videoWidth, video.videoHeight, MAX_SEND_WIDTH);
        result = await recognize(null, pixels, true);
      } else {
        grabFrame(video, video.videoWidth, video.videoHeight, MAX_SEND_WIDTH);
        const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
        result = state.tracks.update(await recognize(blob, null, true));
      }
      if (state.camera) show(result);
    } catch (err) {
      setStatus(err.message, true);
      await sleep(1000 * (err.retryAfter || 1));
    }
    if (state.mode === "browser") {
      await nextFrame(frame);
    } else {
      const rate = Math.max(1, Math.min(30, Number($("rate").value) || 8));
      await sleep(Math.max(0, 1000 / rate - (performance.now() - started)));
    }
  }
}

$("camera").addEventListener("click", () => (state.camera ? stopCamera() : startCamera()));
loadSite();
