// Emotions read in this browser: CenterFace and the classifier on ONNX Runtime Web (WebAssembly),
// fed mobilefer's preprocessing written out in JavaScript. Each step follows its Python original,
// named beside it (src/mobilefer/...); the browser tests hold the probabilities to the Python
// runtime's within 1e-3 on the same crops, and the faces to `mobilefer predict`'s.
// Images here are {data: Uint8Array, width, height, channels}, RGB or gray, rows top to bottom.
"use strict";

const MobileferBrowser = (() => {
  const f32 = Math.fround;

  // Python's round(): halves go to the even neighbour.
  function pyRound(x) {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }
  const cvRound = pyRound;  // OpenCV's saturate_cast rounds the same way (lrint)

  function fromRGBA(rgba, width, height) {
    const data = new Uint8Array(width * height * 3);
    for (let i = 0, j = 0; j < data.length; i += 4, j += 3) {
      data[j] = rgba[i];
      data[j + 1] = rgba[i + 1];
      data[j + 2] = rgba[i + 2];
    }
    return { data, width, height, channels: 3 };
  }

  function region(img, x0, y0, x1, y1) {
    const w = x1 - x0, h = y1 - y0, c = img.channels;
    const data = new Uint8Array(w * h * c);
    for (let y = 0; y < h; y++) {
      const row = ((y0 + y) * img.width + x0) * c;
      data.set(img.data.subarray(row, row + w * c), y * w * c);
    }
    return { data, width: w, height: h, channels: c };
  }

  // ------------------------------------------------------------ preprocessing (data/preprocess.py)
  const LUMA = [f32(0.299), f32(0.587), f32(0.114)];

  // data/images.py to_channels: BT.601 luma in float32, + 0.5 and truncated
  function toChannels(img, channels) {
    if (img.channels === channels) return img;
    const n = img.width * img.height, src = img.data;
    const out = new Uint8Array(n * channels);
    if (channels === 3) {
      for (let i = 0; i < n; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = src[i];
    } else {
      for (let i = 0; i < n; i++) {
        const y = f32(f32(f32(src[3 * i] * LUMA[0]) + f32(src[3 * i + 1] * LUMA[1])) + f32(src[3 * i + 2] * LUMA[2]));
        out[i] = Math.min(255, Math.max(0, Math.floor(f32(y + 0.5))));
      }
    }
    return { data: out, width: img.width, height: img.height, channels };
  }

  function centerSquare(img) {
    const side = Math.min(img.width, img.height);
    const top = (img.height - side) >> 1, left = (img.width - side) >> 1;
    return side === img.width && side === img.height ? img : region(img, left, top, left + side, top + side);
  }

  // OpenCV's bilinear source positions and weights along one axis (resize.cpp, INTER_LINEAR);
  // ``area``: INTER_AREA enlarging, which weighs by where pixel edges fall instead of centres.
  function linearTaps(ssize, dsize, area = false) {
    const scale = ssize / dsize, inv = dsize / ssize, taps = [];
    for (let d = 0; d < dsize; d++) {
      let fx, sx;
      if (area) {
        sx = Math.floor(d * scale);
        fx = f32((d + 1) - (sx + 1) * inv);
        fx = fx <= 0 ? 0 : f32(fx - Math.floor(fx));
      } else {
        fx = f32((d + 0.5) * scale - 0.5);
        sx = Math.floor(fx);
        fx = f32(fx - sx);
      }
      if (sx < 0) { fx = 0; sx = 0; }
      if (sx >= ssize - 1) { fx = 0; sx = ssize - 1; }
      taps.push({ s0: sx, s1: Math.min(sx + 1, ssize - 1), w0: f32(1 - fx), w1: fx });
    }
    return taps;
  }

  // cv2.resize INTER_LINEAR of uint8: 11-bit fixed-point weights, rows combined as OpenCV's
  // SIMD path does on x86 (the last bit may differ from other builds). ``window`` [x0, y0, x1, y1]:
  // only those pixels of the dw x dh result.
  function resizeLinearU8(img, dw, dh, area = false, window = null) {
    const c = img.channels, src = img.data, sw = img.width, [x0, y0, x1, y1] = window ?? [0, 0, dw, dh];
    const xs = linearTaps(img.width, dw, area).slice(x0, x1), ys = linearTaps(img.height, dh, area).slice(y0, y1);
    [dw, dh] = [x1 - x0, y1 - y0];
    // each value of a row: its two source values' offsets and weights, in typed arrays (a tap object per pixel: 2.5x the time)
    const n = dw * c, at0 = new Int32Array(n), at1 = new Int32Array(n), a0 = new Int32Array(n), a1 = new Int32Array(n);
    for (let j = 0; j < n; j++) {
      const t = xs[Math.floor(j / c)], k = j % c;
      [at0[j], at1[j], a0[j], a1[j]] = [t.s0 * c + k, t.s1 * c + k, cvRound(t.w0 * 2048), cvRound(t.w1 * 2048)];
    }
    const same = a1.every((w, j) => w === 0 && a0[j] === 2048 && at0[j] === x0 * c + j);  // only rows are mixed
    const out = new Uint8Array(dw * dh * c), rows = new Map();  // source row -> horizontally resized ints
    const hrow = (sy) => {
      let r = rows.get(sy);
      if (r === undefined) {
        const base = sy * sw * c;
        r = new Int32Array(n);
        if (same) for (let j = 0, b = base + x0 * c; j < n; j++) r[j] = src[b + j] << 11;
        else for (let j = 0; j < n; j++) r[j] = src[base + at0[j]] * a0[j] + src[base + at1[j]] * a1[j];
        if (rows.set(sy, r).size > 4) rows.delete(rows.keys().next().value);
      }
      return r;
    };
    for (let dy = 0; dy < dh; dy++) {
      const t = ys[dy], b0 = cvRound(t.w0 * 2048), b1 = cvRound(t.w1 * 2048);
      const r0 = hrow(t.s0), r1 = hrow(t.s1), o = dy * n;
      for (let i = 0; i < n; i++) {
        const v = (((r0[i] >> 4) * b0) >> 16) + (((r1[i] >> 4) * b1) >> 16) + 2 >> 2;
        out[o + i] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
    return { data: out, width: dw, height: dh, channels: c };
  }

  // OpenCV's area weights along one axis (resize.cpp computeResizeAreaTab).
  function areaTaps(ssize, dsize) {
    const scale = ssize / dsize, taps = [];
    for (let d = 0; d < dsize; d++) {
      const fsx1 = d * scale, fsx2 = fsx1 + scale, cell = Math.min(scale, ssize - fsx1);
      let sx1 = Math.ceil(fsx1), sx2 = Math.floor(fsx2);
      sx2 = Math.min(sx2, ssize - 1);
      sx1 = Math.min(sx1, sx2);
      const list = [];
      if (sx1 - fsx1 > 1e-3) list.push([sx1 - 1, f32((sx1 - fsx1) / cell)]);
      for (let s = sx1; s < sx2; s++) list.push([s, f32(1 / cell)]);
      if (fsx2 - sx2 > 1e-3) list.push([sx2, f32(Math.min(Math.min(fsx2 - sx2, 1), cell) / cell)]);
      taps.push(list);
    }
    return taps;
  }

  // cv2.resize INTER_AREA of uint8: averages when shrinking, a bilinear of its own when enlarging.
  function resizeArea(img, dw, dh) {
    if (dw === img.width && dh === img.height) return img;
    if (dw > img.width || dh > img.height) return resizeLinearU8(img, dw, dh, true);
    const c = img.channels, src = img.data, sw = img.width, out = new Uint8Array(dw * dh * c);
    const kx = img.width / dw, ky = img.height / dh;
    if (Number.isInteger(kx) && Number.isInteger(ky)) {  // OpenCV's fast path: integer means
      const area = kx * ky, scale = f32(1 / area);
      for (let dy = 0; dy < dh; dy++) {
        for (let dx = 0; dx < dw; dx++) {
          for (let k = 0; k < c; k++) {
            let sum = 0;
            for (let y = 0; y < ky; y++) {
              for (let x = 0; x < kx; x++) sum += src[((dy * ky + y) * sw + dx * kx + x) * c + k];
            }
            out[(dy * dw + dx) * c + k] = area === 4 ? (sum + 2) >> 2 : Math.min(255, cvRound(f32(sum * scale)));
          }
        }
      }
      return { data: out, width: dw, height: dh, channels: c };
    }
    const xs = areaTaps(img.width, dw), ys = areaTaps(img.height, dh);
    const buf = new Float32Array(dw * c), sum = new Float32Array(dw * c);
    for (let dy = 0; dy < dh; dy++) {
      sum.fill(0);
      for (const [sy, beta] of ys[dy]) {
        buf.fill(0);
        const base = sy * sw * c;
        for (let dx = 0; dx < dw; dx++) {
          for (const [sx, alpha] of xs[dx]) {
            for (let k = 0; k < c; k++) buf[dx * c + k] = f32(buf[dx * c + k] + f32(alpha * src[base + sx * c + k]));
          }
        }
        for (let i = 0; i < dw * c; i++) sum[i] = f32(sum[i] + f32(beta * buf[i]));
      }
      for (let i = 0; i < dw * c; i++) out[dy * dw * c + i] = Math.min(255, Math.max(0, cvRound(sum[i])));
    }
    return { data: out, width: dw, height: dh, channels: c };
  }

  // follow.py _smooth: img scaled by ratio < 1, whole blocks averaged first, the rest after.
  function smooth(img, ratio) {
    const step = Math.max(1, Math.trunc(1 / ratio));
    const w = Math.floor(img.width / step) * step, h = Math.floor(img.height / step) * step;
    if (step > 1) img = resizeArea(region(img, 0, 0, w, h), w / step, h / step);
    return resizeArea(img, Math.max(1, pyRound(w * ratio)), Math.max(1, pyRound(h * ratio)));
  }

  // to_base + normalize_batch: one face (uint8, any size) -> float32 (C, S, S), normalised.
  function preprocess(img, model) {
    const base = resizeArea(toChannels(centerSquare(img), model.channels), model.base_size, model.base_size);
    const c = model.channels, s = model.input_size, b = model.base_size, out = new Float32Array(c * s * s);
    const taps = linearTaps(b, s);  // float bilinear (exact half-pixel), as OpenCV does for float32
    for (let k = 0; k < c; k++) {
      const mean = model.mean[k], inv = f32(1 / model.std[k]);
      const at = (y, x) => f32(base.data[(y * b + x) * c + k] * f32(1 / 255));
      for (let y = 0; y < s; y++) {
        const ty = taps[y];
        for (let x = 0; x < s; x++) {
          const tx = taps[x];
          const top = tx.w0 * at(ty.s0, tx.s0) + tx.w1 * at(ty.s0, tx.s1);
          const bottom = tx.w0 * at(ty.s1, tx.s0) + tx.w1 * at(ty.s1, tx.s1);
          const v = b === s ? at(y, x) : ty.w0 * top + ty.w1 * bottom;
          out[(k * s + y) * s + x] = (v - mean) * inv;
        }
      }
    }
    return out;
  }

  // ------------------------------------------------------------ face boxes (inference/detectors.py)
  const { iou } = MobileferPlan;  // faces.py iou (plan.js)

  // face_crop: a square of the box's longer side grown by margin per edge, clamped to the image.
  function faceCrop(img, box, margin) {
    const [x, y, w, h] = box;
    const side = Math.max(w, h) * (1 + 2 * margin), cx = x + w / 2, cy = y + h / 2;
    const x0 = Math.max(0, pyRound(cx - side / 2)), y0 = Math.max(0, pyRound(cy - side / 2));
    const x1 = Math.min(img.width, pyRound(cx + side / 2)), y1 = Math.min(img.height, pyRound(cy + side / 2));
    return region(img, x0, y0, x1, y1);
  }

  function softmax(row) {
    const m = Math.max(...row), e = row.map((v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  }

  // pose.py head_pose, name for name: five points -> {yaw, pitch, roll, turned} in degrees, or null.
  function headPose(landmarks, rules) {
    if (!landmarks) return null;
    const [[lx, ly], [rx, ry], [nx, ny], [mlx, mly], [mrx, mry]] = landmarks;
    const dx = rx - lx, dy = ry - ly, spread = Math.hypot(dx, dy);
    if (spread < 1e-6) return null;
    const cos = dx / spread, sin = dy / spread, ex = (lx + rx) / 2, ey = (ly + ry) / 2;
    const upright = (x, y) => [(x - ex) * cos + (y - ey) * sin, (y - ey) * cos - (x - ex) * sin];
    const nose = upright(nx, ny), left = upright(mlx, mly), right = upright(mrx, mry);
    const mouth = [(left[0] + right[0]) / 2, (left[1] + right[1]) / 2];
    if (mouth[1] <= 1e-6) return null;
    const midline = mouth[0] * nose[1] / mouth[1];
    const deg = (a) => Math.round(a * 1800 / Math.PI) / 10;
    const yaw = deg(Math.atan2(nose[0] - midline, rules.nose_depth * spread));
    const pitch = deg(Math.atan2((rules.nose_height - nose[1] / mouth[1]) * mouth[1], rules.nose_depth * spread));
    return { yaw, pitch, roll: deg(Math.atan2(dy, dx)),
             turned: Math.abs(yaw) > rules.turned_yaw || Math.abs(pitch) > rules.turned_pitch };
  }

  // faces.py Box.mapped: ``to`` (a new box array) with ``from``'s landmarks moved as the box was:
  // each point p becomes p * scale + (dx, dy); none where ``from`` has none.
  function carry(to, from, scale = 1, dx = 0, dy = 0) {
    to.landmarks = from.landmarks ? from.landmarks.map(([x, y]) => [Math.round((x * scale + dx) * 10) / 10,
                                                                    Math.round((y * scale + dy) * 10) / 10]) : null;
    return to;
  }

  // A seeded generator for explain's masks (mulberry32): the same map for the same face.
  function seeded(seed) {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  // ------------------------------------------------------------ the engine
  async function fetchModel(url, what) {
    let res;
    try {
      res = await fetch(url);
    } catch (err) {
      throw new Error(`cannot load the ${what} (${url}): ${err.message}`);
    }
    if (!res.ok) throw new Error(`cannot load the ${what} (${url}): HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  }

  async function session(bytes, url, what) {
    try {
      return await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all",
                                                        logSeverityLevel: 3 });
    } catch (err) {
      throw new Error(`${url} is not a ${what} this browser can run: ${String(err.message || err).split("\n")[0].slice(0, 200)}`);
    }
  }

  // probs.py reweighted: each probability times its class's weight, summed to 1 again (null: as they are).
  function reweighted(p, weights) {
    if (!weights) return p;
    const sum = p.reduce((a, v, j) => a + v * weights[j], 0);
    return p.map((v, j) => v * weights[j] / sum);
  }

  // WebAssembly threads for `cores` logical cores, 2 to 4: one core is left to the page (the
  // camera's decoding, drawing) from 3 cores up; on 2, two threads read a camera 1.1x as fast as
  // one on a VNNI EPYC (docs/benchmarks.md); one core, one thread.
  function wasmThreads(cores) {
    return (cores || 1) <= 1 ? 1 : Math.min(4, Math.max(2, cores - 1));
  }

  class Engine {
    constructor(site, classifier, detector) {
      this.site = site;
      this.model = site.model;
      this.rules = site.detector;
      this.classifier = classifier;
      this.detector = detector;
      this.camera = new MobileferCamera.CameraFaces(this);  // a camera's faces, followed (camera.js)
    }

    // site: site.json's contents; base: the URL the paths in it are relative to.
    static async load(site, base = location.href) {
      if (typeof ort === "undefined") throw new Error("ONNX Runtime Web did not load (static/ort/ort.wasm.min.js)");
      if (site.browser.unavailable) throw new Error(site.browser.unavailable);
      const url = (path) => new URL(path, base).href;
      ort.env.wasm.wasmPaths = url(site.browser.runtime);
      ort.env.logLevel = "error";  // not the graph optimizer's notes on unused initializers
      // Threads need a cross-origin isolated page (SharedArrayBuffer); a plain static host gives one.
      ort.env.wasm.numThreads = self.crossOriginIsolated ? wasmThreads(navigator.hardwareConcurrency) : 1;
      const [cBytes, dBytes] = await Promise.all([
        fetchModel(url(site.browser.classifier), "classifier"), fetchModel(url(site.browser.detector), "face detector")]);
      const classifier = await session(cBytes, site.browser.classifier, "classifier model");
      const detector = await session(dBytes, site.browser.detector, "face detector model");
      return new Engine(site, classifier, detector);
    }

    // CenterFaceDetector.detect: boxes [x, y, w, h, score], best first. A video frame is never
    // enlarged and looks for faces no smaller than a VIDEO_DETECT_PIXELS copy shows (video_min_face).
    // ``scale``: looked at at exactly that scale, in one pass (a followed face's square), or only
    // the ``window`` of that pass's pixels.
    // ``onProgress(done, total)``: called before each pass of a photo's search, after a frame
    // has been painted (a large photo takes several passes, seconds in a browser).
    async detect(img, { video = false, minFace = null, confidence = null, minBox = null, scale = null,
                        window = null, onProgress = null } = {}) {
      const r = this.rules, w = img.width, h = img.height, threshold = confidence ?? r.threshold;
      minFace = minFace ?? r.min_face;
      if (video && !scale) minFace = this.videoMinFace(w, h, minFace);
      const wanted = Math.min(video ? 1 : r.max_upscale, Math.max(r.work_width / w, r.smallest_seen / Math.max(1, minFace)));
      const whole = scale || Math.min(wanted, Math.sqrt(r.max_detect_pixels / (w * h)));
      const low = whole / r.large_face_pass;  // a copy large faces are seen in (blurred ones too)
      const passes = [[img, whole, scale ? window : null, 0, 0]];
      if (!scale && Math.min(w, h) * low >= 2 * r.smallest_seen) passes.push([img, low, null, 0, 0]);
      if (r.max_tiles && !scale && whole < 0.95 * wanted) {
        const ratio = Math.min(wanted, Math.sqrt(r.max_tiles * r.max_detect_pixels / (w * h)));
        for (const [x0, y0, x1, y1] of MobileferCenterFace.tiles(w, h, ratio, Math.floor(2 * r.smallest_seen / whole), r.max_detect_pixels)) {
          passes.push([{ tile: [x0, y0, x1, y1] }, ratio, null, x0, y0]);
        }
      }
      const found = [];
      for (const [k, [source, ratio, win]] of passes.entries()) {
        if (onProgress) {
          onProgress(k, passes.length);
          await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
        }
        const part = source.tile ? region(img, ...source.tile) : source;
        found.push(...await MobileferCenterFace.runPasses(this.detector, [MobileferCenterFace.passInput(part, ratio, win)], [threshold]));
      }
      return MobileferCenterFace.boxes(found, passes.map((p) => p.slice(3)), w, h, threshold, r.nms,
                                       minBox ?? r.box_tolerance * minFace);
    }

    // CenterFaceDetector.detect_many for looks of one pass each (a followed face's square:
    // detect()'s options with ``scale``, and a ``window`` or not): the passes of one size in one
    // run of the network; each look's boxes as detect() gives them.
    async detectMany(looks) {
      const r = this.rules, thresholds = looks.map(([, o]) => o.confidence ?? r.threshold);
      const found = await MobileferCenterFace.runPasses(
        this.detector, looks.map(([img, o]) => MobileferCenterFace.passInput(img, o.scale, o.window ?? null)), thresholds);
      return looks.map(([img, o], i) => MobileferCenterFace.boxes(
        [found[i]], [[0, 0]], img.width, img.height, thresholds[i], r.nms, o.minBox ?? r.box_tolerance * (o.minFace ?? r.min_face)));
    }

    // explain.py deletion_map over a face of img (RGB): copies of its base-size face, each with
    // a random share of its pixels covered by its mean, in one batch; a pixel's weight is how much
    // further the label's log probability falls where it is covered. Its own random masks (not
    // numpy's): the same method as Python's, not the same numbers. Returns the map over the
    // square of img it covers: {rows, cols, weights, rect: [x, y, side, side]}.
    async explain(img, face) {
      const e = this.site.explain, m = this.model, b = m.base_size;
      const [x, y, w, h] = face.box, side0 = Math.max(w, h) * (1 + 2 * m.face_margin);
      const crop = faceCrop(img, face.box, m.face_margin);
      const side = Math.min(crop.width, crop.height);
      const left = (crop.width - side) >> 1, top = (crop.height - side) >> 1;
      const base = resizeArea(toChannels(centerSquare(crop), m.channels), b, b), c = m.channels;
      const fill = [...Array(c).keys()].map((k) => {
        let sum = 0;
        for (let i = k; i < base.data.length; i += c) sum += base.data[i];
        return Math.round(sum / (b * b));
      });
      const random = seeded(e.seed + 1), covered = [], copies = [base];
      for (let n = 0; n < e.masks; n++) {
        const mask = new Uint8Array(b * b), data = Uint8Array.from(base.data);
        for (let i = 0; i < b * b; i++) {
          if (random() < e.share) {
            mask[i] = 1;
            for (let k = 0; k < c; k++) data[i * c + k] = fill[k];
          }
        }
        covered.push(mask);
        copies.push({ data, width: b, height: b, channels: c });
      }
      const label = m.classes.indexOf(Object.keys(face.probs).reduce((a, b) => (face.probs[b] > face.probs[a] ? b : a)));
      const logs = (await this.classify(copies)).map((p) => Math.log(Math.min(1, Math.max(1e-12, p[label]))));
      const weights = new Float32Array(b * b);
      for (let i = 0; i < b * b; i++) {
        let on = 0, onN = 0, off = 0, offN = 0;
        covered.forEach((mask, n) => {
          const fall = logs[0] - logs[n + 1];
          if (mask[i]) { on += fall; onN++; } else { off += fall; offN++; }
        });
        weights[i] = on / Math.max(onN, 1) - off / Math.max(offN, 1);
      }
      const cx = x + w / 2, cy = y + h / 2;
      const x0 = Math.max(0, pyRound(cx - side0 / 2)), y0 = Math.max(0, pyRound(cy - side0 / 2));
      return { rows: b, cols: b, weights: Array.from(weights), rect: [x0 + left, y0 + top, side, side] };
    }

    // Face crops (RGB or gray, any size) -> class probabilities, one row per crop, with the
    // model's flip averaging (runtime/classifier.py probabilities); ``mirrored``: each crop read
    // in one view instead, mirrored where true (recognizer.py classify_crops).
    async classify(crops, mirrored = null) {
      if (!crops.length) return [];
      const m = this.model, size = m.channels * m.input_size * m.input_size, s = m.input_size;
      const views = m.tta === "flip" && mirrored === null ? 2 : 1, n = crops.length;
      const x = new Float32Array(views * n * size);
      const mirror = (from, to) => {  // x[..., ::-1]
        for (let row = 0; row < m.channels * s; row++) {
          for (let col = 0; col < s; col++) to[row * s + col] = from[row * s + s - 1 - col];
        }
      };
      crops.forEach((crop, i) => {
        const one = preprocess(crop, m);
        if (mirrored !== null && mirrored[i]) mirror(one, x.subarray(i * size, (i + 1) * size));
        else x.set(one, i * size);
        if (views === 2) mirror(one, x.subarray((n + i) * size, (n + i + 1) * size));
      });
      const input = new ort.Tensor("float32", x, [views * n, m.channels, s, s]);
      const out = await this.classifier.run({ [this.classifier.inputNames[0]]: input });
      const logits = out[this.classifier.outputNames[0]].data, k = m.classes.length, t = m.temperature ?? 1;
      const rows = [], weights = this.classWeights();
      for (let i = 0; i < n; i++) {  // at the model's temperature, with its prior correction, as runtime/probs.py
        let p = softmax(Array.from(logits.subarray(i * k, (i + 1) * k), (v) => v / t));
        if (views === 2) {
          const q = softmax(Array.from(logits.subarray((n + i) * k, (n + i + 1) * k), (v) => v / t));
          p = p.map((v, j) => (v + q[j]) / 2);
        }
        rows.push(reweighted(p, weights));
      }
      return rows;
    }

    // meta.py class_weights: each class's weight in the prior correction, or null.
    classWeights() {
      const tau = this.model.prior_correction ?? 0;
      return tau ? this.model.prior.map((q) => q ** -tau) : null;
    }

    // probs.py paired: the flip average of two views' probabilities as classify gives each.
    paired(a, b) {
      const w = this.classWeights();
      if (!w) return a.map((v, j) => (v + b[j]) / 2);
      const undone = w.map((x) => 1 / x), ua = reweighted(a, undone), ub = reweighted(b, undone);
      return reweighted(ua.map((v, j) => (v + ub[j]) / 2), w);
    }

    // detectors.py video_scale and video_min_face, with this detector's settings (plan.js).
    videoScale(w, h) {
      return MobileferPlan.videoScale(w, h, this.rules);
    }

    videoMinFace(w, h, minFace) {
      return MobileferPlan.videoMinFace(w, h, minFace, this.rules);
    }

    // An RGB image -> the answer POST /v1/recognize gives: faces (box, label, score, probs), size,
    // timing. ``video``: a camera frame, whose faces are followed from the frame before, keep
    // their ids and are classified as CameraFaces.labelVideo says (``classified``: how many were this frame).
    // ``onProgress(text)``: what a photo's recognition is doing, step by step.
    async recognize(img, { video = false, onProgress = null } = {}) {
      const t0 = performance.now();
      const progress = onProgress && ((done, total) => onProgress(
        `looking for faces: pass ${done + 1} of ${total} over ${img.width}x${img.height}`));
      const tracks = video ? await this.camera.videoTracks(img) : null;
      const boxes = video ? tracks.map((t) => t.box) : await this.detect(img, { onProgress: progress });
      if (onProgress && !video) onProgress(`classifying ${boxes.length} face(s)`);
      const t1 = performance.now();
      const { probs, ids, classified } = video ? await this.camera.labelVideo(img, tracks)
        : { probs: await this.classify(boxes.map((b) => faceCrop(img, b, this.model.face_margin))),
            ids: boxes.map((b, i) => i), classified: boxes.length };
      const t2 = performance.now();
      const classes = this.model.classes;
      const faces = boxes.map((b, i) => {
        const p = probs[i], best = p.indexOf(Math.max(...p)), pose = headPose(b.landmarks, this.site.pose);
        return { id: ids[i], box: b.slice(0, 4), label: classes[best], score: p[best],
                 probs: Object.fromEntries(classes.map((c, j) => [c, p[j]])), detector_score: b[4],
                 landmarks: b.landmarks ?? null, pose };
      });
      return { faces, classified, image: { width: img.width, height: img.height }, detector: this.rules.name,
               model: this.model.name, timing_ms: { detect: t1 - t0, classify: t2 - t1, total: t2 - t0 } };
    }
  }

  const util = { pyRound, region, resizeArea, resizeLinear: resizeLinearU8, smooth, iou, carry, faceCrop };
  return { Engine, fromRGBA, preprocess, headPose, wasmThreads, util };
})();
