// CenterFace's passes in this browser, as inference/centerface.py makes and reads them: a pass's
// input (the image resized as OpenCV's blobFromImage resizes it, or a window of those pixels),
// the passes of one size run as one batch (detect_many), the outputs read into boxes and the
// boxes of several passes merged. browser.js's Engine decides which passes a look makes.
"use strict";

const MobileferCenterFace = (() => {
  const { pyRound, region, resizeLinear, iou } = MobileferBrowser.util;

  // CenterFaceDetector.pass_size: img resized for a pass at ratio (the strides need multiples of 32).
  function passSize(width, height, ratio) {
    return [Math.max(32, Math.ceil(width * ratio / 32) * 32), Math.max(32, Math.ceil(height * ratio / 32) * 32)];
  }

  // CenterFaceDetector._pass: one pass over img at ratio, or over the window [x0, y0, x1, y1] of
  // that pass's pixels alone: its input (RGB planes, 0-255) and how its boxes map back to img.
  function passInput(img, ratio, window = null) {
    const [netW, netH] = passSize(img.width, img.height, ratio);
    const [left, top, right, bottom] = window ?? [0, 0, netW, netH];
    const same = netW === img.width && netH === img.height;
    const small = same ? (window ? region(img, left, top, right, bottom) : img) : resizeLinear(img, netW, netH, false, window);
    const plane = small.width * small.height, blob = new Float32Array(3 * plane), px = small.data;
    for (let i = 0, j = 0; i < plane; i++, j += 3) {
      blob[i] = px[j]; blob[plane + i] = px[j + 1]; blob[2 * plane + i] = px[j + 2];
    }
    return { blob, width: small.width, height: small.height, left, top, sx: img.width / netW, sy: img.height / netH };
  }

  // _Pass.read: the k-th image of a run's outputs (heatmap, scale, offset, landmarks) as rects
  // [x, y, w, h] in its image's pixels, scores and points; a landmark is (its y, its x) as a
  // fraction of the box from its corner, point j at channels 2j and 2j + 1.
  function readPass([heat, scale, offset, marks], k, pass, threshold) {
    const [hh, hw] = heat.dims.slice(2), hp = hh * hw, h0 = k * hp, s0 = 2 * k * hp, m0 = marks ? k * marks.dims[1] * hp : 0;
    const rects = [], scores = [], points = [], { left, top, sx, sy } = pass;
    for (let i = 0; i < hp; i++) {
      const score = heat.data[h0 + i];
      if (!(score > threshold)) continue;
      const ys = Math.floor(i / hw), xs = i % hw;
      const sideH = Math.exp(scale.data[s0 + i]) * 4, sideW = Math.exp(scale.data[s0 + hp + i]) * 4;
      const cy = (ys + offset.data[s0 + i] + 0.5) * 4 + top, cx = (xs + offset.data[s0 + hp + i] + 0.5) * 4 + left;
      rects.push([(cx - sideW / 2) * sx, (cy - sideH / 2) * sy, sideW * sx, sideH * sy]);
      scores.push(score);
      points.push(marks ? [0, 1, 2, 3, 4].map((j) => [
        (marks.data[m0 + (2 * j + 1) * hp + i] * sideW + cx - sideW / 2) * sx,
        (marks.data[m0 + 2 * j * hp + i] * sideH + cy - sideH / 2) * sy]) : null);
    }
    return { rects, scores, points };
  }

  // CenterFaceDetector.detect_many: passes (passInput's, each with its threshold) run as one
  // batch per size (a frame's followed faces, each a 96 px square: one run instead of one each);
  // each pass's readPass, in order.
  async function runPasses(session, passes, thresholds) {
    const found = new Array(passes.length), groups = new Map();
    passes.forEach((p, i) => {
      const size = `${p.width}x${p.height}`;
      groups.set(size, [...(groups.get(size) ?? []), i]);
    });
    for (const group of groups.values()) {
      const { width, height } = passes[group[0]], size = 3 * width * height;
      let blob = passes[group[0]].blob;
      if (group.length > 1) {
        blob = new Float32Array(group.length * size);
        group.forEach((i, k) => blob.set(passes[i].blob, k * size));
      }
      const out = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", blob, [group.length, 3, height, width]) });
      const outputs = session.outputNames.slice(0, 4).map((name) => out[name]);
      group.forEach((i, k) => { found[i] = readPass(outputs, k, passes[i], thresholds[i]); });
    }
    return found;
  }

  // cv2.dnn.NMSBoxes: best score first, a box is kept unless it overlaps a kept one by more than nms.
  function nmsBoxes(rects, scores, threshold, nms) {
    const order = scores.map((s, i) => [s, i]).filter(([s]) => s > threshold).sort((a, b) => b[0] - a[0]);
    const keep = [];
    for (const [, i] of order) {
      if (keep.every((j) => iou(rects[i], rects[j]) <= nms)) keep.push(i);
    }
    return keep;
  }

  // _Plan.boxes: the passes' boxes (each found moved by its [x0, y0] corner) merged, clipped to
  // the w x h image, as [x, y, w, h, score] with their landmarks; at least minBox px, best first.
  function boxes(found, corners, w, h, threshold, nms, minBox) {
    const rects = [], scores = [], points = [];
    found.forEach(({ rects: r, scores: s, points: p }, k) => {
      const [x0, y0] = corners[k];
      rects.push(...r.map(([x, y, bw, bh]) => [x + x0, y + y0, bw, bh]));
      scores.push(...s);
      points.push(...p.map((pts) => pts && pts.map(([px, py]) => [px + x0, py + y0])));
    });
    const out = [];
    for (const i of nmsBoxes(rects, scores, threshold, nms)) {
      const [x, y, bw, bh] = rects[i];
      const x0 = Math.max(0, pyRound(x)), y0 = Math.max(0, pyRound(y));
      const x1 = Math.min(w, pyRound(x + bw)), y1 = Math.min(h, pyRound(y + bh));
      if (x1 > x0 && y1 > y0) {
        // a box's landmarks ride on it as a property (a photo's; following makes new boxes without)
        const box = [x0, y0, x1 - x0, y1 - y0, scores[i]];
        box.landmarks = points[i] && points[i].map(([px, py]) => [Math.round(px * 10) / 10, Math.round(py * 10) / 10]);
        out.push(box);
      }
    }
    return out.filter((b) => Math.min(b[2], b[3]) >= minBox).sort((a, b) => b[4] - a[4] || b[2] * b[3] - a[2] * a[3]);
  }

  function tiles(width, height, ratio, overlap, maxPixels) {  // _tiles
    const side = Math.floor(Math.sqrt(maxPixels) / ratio);
    overlap = Math.min(overlap, Math.floor(side / 2));
    const starts = (length) => {
      if (length <= side) return [0];
      const count = Math.ceil((length - overlap) / (side - overlap));
      return Array.from({ length: count }, (_, i) => pyRound(i * (length - side) / (count - 1)));
    };
    const out = [];
    for (const y of starts(height)) for (const x of starts(width)) out.push([x, y, Math.min(width, x + side), Math.min(height, y + side)]);
    return out;
  }

  return { passSize, passInput, runPasses, boxes, tiles };
})();
