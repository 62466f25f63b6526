// A camera's faces in this browser, frame after frame, as `mobilefer predict` follows a video's:
// the live plan's looks (plan.js) carried out as inference/live.py VideoFaces and follow.py
// FaceFollower carry them out, and the recognizer's classification rate, on an Engine's detector
// and classifier (browser.js). Each step names its Python original beside it; the browser tests
// replay Python's frames through it.
"use strict";

const MobileferCamera = (() => {
  const { pyRound, region, resizeArea, smooth, iou, carry, faceCrop } = MobileferBrowser.util;

  // cv2.cvtColor(BGR2GRAY) of uint8, from RGB: OpenCV's 14-bit fixed-point luma.
  function grayU8(img) {
    if (img.channels === 1) return img;
    const n = img.width * img.height, src = img.data, out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = (src[3 * i] * 4899 + src[3 * i + 1] * 9617 + src[3 * i + 2] * 1868 + 8192) >> 14;
    return { data: out, width: img.width, height: img.height, channels: 1 };
  }

  // follow.py _small_gray: gray, each step x step block averaged into one pixel.
  function smallGray(img, step) {
    const gray = grayU8(img), w = Math.floor(gray.width / step), h = Math.floor(gray.height / step);
    return step === 1 ? gray : resizeArea(region(gray, 0, 0, w * step, h * step), w, h);
  }

  // follow.py match_patch: box's patch of ``previous`` found in ``frame`` near where it was (the
  // box moved there, same size and score), or null where it matches under match_min or at the
  // edge of the window looked in. Normalised cross-correlation (cv2.matchTemplate TM_CCOEFF_NORMED).
  function matchPatch(previous, frame, box, f) {
    const w = frame.width, h = frame.height, side = Math.max(box[2], box[3]);
    const step = Math.max(1, pyRound(side / f.match_side));
    const margin = step * Math.max(2, Math.ceil(Math.trunc(f.match_margin * side) / step));
    const x0 = Math.max(0, box[0] - margin), y0 = Math.max(0, box[1] - margin);
    const x1 = Math.min(w, box[0] + box[2] + margin), y1 = Math.min(h, box[1] + box[3] + margin);
    const patch = smallGray(region(previous, box[0], box[1], Math.min(w, box[0] + box[2]), Math.min(h, box[1] + box[3])), step);
    const win = smallGray(region(frame, x0, y0, x1, y1), step);
    const pw = patch.width, ph = patch.height, count = pw * ph;
    if (Math.min(pw, ph) < 4 || ph >= win.height || pw >= win.width) return null;  // no room to look around it
    let mean = 0;
    for (const v of patch.data) mean += v;
    mean /= count;
    const t = Float64Array.from(patch.data, (v) => v - mean);
    const tNorm = t.reduce((a, v) => a + v * v, 0);
    if (Math.sqrt(tNorm / count) < 2) return null;  // a flat patch (a dark or blown-out frame) matches anywhere
    const sw = win.width - pw + 1, sh = win.height - ph + 1;
    let best = -Infinity, bx = 0, by = 0;
    for (let y = 0; y < sh; y++) {
      for (let x = 0; x < sw; x++) {
        let num = 0, sum = 0, sum2 = 0;
        for (let py = 0; py < ph; py++) {
          const row = (y + py) * win.width + x;
          for (let px = 0; px < pw; px++) {
            const v = win.data[row + px];
            num += t[py * pw + px] * v;
            sum += v;
            sum2 += v * v;
          }
        }
        const den = Math.sqrt(Math.max(sum2 - sum * sum / count, 0) * tNorm);
        const score = Math.abs(num) < den ? num / den : Math.abs(num) < 1.125 * den ? Math.sign(num) : 0;
        if (score > best) [best, bx, by] = [score, x, y];
      }
    }
    const edgeX = (bx === 0 || bx === sw - 1) && (bx === 0 ? x0 > 0 : x1 < w);
    const edgeY = (by === 0 || by === sh - 1) && (by === 0 ? y0 > 0 : y1 < h);
    if (!(best >= f.match_min) || edgeX || edgeY) return null;
    const x = Math.min(x0 + bx * step, w - box[2]), y = Math.min(y0 + by * step, h - box[3]);
    return carry([x, y, box[2], box[3], box[4]], box, 1, x - box[0], y - box[1]);
  }

  // follow.py _pick: of the boxes found in a square, the one that is box's face now, in the
  // frame's pixels: the one overlapping box most (else the best scoring); null where nothing was
  // found or its box is under minBox px.
  function pick(box, found, { x0, y0, unit }, minBox) {
    if (!found.length) return null;
    const last = [Math.trunc((box[0] - x0) * unit), Math.trunc((box[1] - y0) * unit), Math.trunc(box[2] * unit),
                  Math.trunc(box[3] * unit)];
    let best = found.reduce((a, b) => (iou(b, last) > iou(a, last) || (iou(b, last) === iou(a, last) && b[4] > a[4]) ? b : a));
    if (iou(best, last) === 0) best = found.reduce((a, b) => (b[4] > a[4] ? b : a));
    const moved = carry([x0 + pyRound(best[0] / unit), y0 + pyRound(best[1] / unit), pyRound(best[2] / unit),
                         pyRound(best[3] / unit), best[4]], best, 1 / unit, x0, y0);
    return Math.min(moved[2], moved[3]) < minBox ? null : moved;
  }

  class CameraFaces {
    constructor(engine) {
      this.engine = engine;
      this.resetVideo();
    }

    // follow.py FaceFollower.follow: each face looked for in a square around its last box, at
    // the whole-frame search's scale and at least INPUT px across, all squares in one detector
    // call, and those it misses once more in retry_input px squares; null where neither finds it
    // (or under minBox px).
    async followMany(img, boxes, minBox) {
      const f = this.engine.site.follow, out = await this.lookNearMany(img, boxes, minBox, f.input);
      const missed = boxes.map((_, i) => i).filter((i) => out[i] === null);
      const again = await this.lookNearMany(img, missed.map((i) => boxes[i]), minBox, f.retry_input);
      missed.forEach((i, k) => { out[i] = again[k]; });
      return out;
    }

    // follow.py FaceFollower._look: each face looked for in one square input px across as looked
    // at (square), the squares in one detector call (Engine.detectMany), each one's box picked.
    async lookNearMany(img, boxes, minBox, input) {
      const squares = boxes.map((box) => this.square(img, box, input)), wanted = squares.filter(Boolean);
      const found = wanted.length ? await this.engine.detectMany(wanted.map((q) => [q.image, q.options])) : [];
      let k = 0;
      return boxes.map((box, i) => (squares[i] ? pick(box, found[k++], squares[i], minBox) : null));
    }

    // follow.py FaceFollower._square and _region: how a face is looked at. A face at the
    // whole-frame search's scale is looked at in that search's pixels, on its lattice; a large
    // face in a smooth copy. Null where the square is too small.
    square(img, box, input) {
      const f = this.engine.site.follow, grid = f.grid, w = img.width, h = img.height, scale = this.engine.videoScale(w, h);
      const ratio = Math.min(scale, input / (f.region * Math.max(box[2], box[3])));
      const seen = Math.max(8, Math.floor(Math.max(box[2], box[3]) * ratio / 2));
      const options = { video: true, confidence: f.follow_confidence };
      if (ratio === scale) {
        const [passW, passH] = MobileferCenterFace.passSize(w, h, scale);
        const sideX = Math.min(input, passW), sideY = Math.min(input, passH);
        let left = (box[0] + box[2] / 2) * passW / w - sideX / 2, top = (box[1] + box[3] / 2) * passH / h - sideY / 2;
        [left, top] = [pyRound(left / grid) * grid, pyRound(top / grid) * grid];
        left = pyRound(Math.min(Math.max(0, left), passW - sideX));
        top = pyRound(Math.min(Math.max(0, top), passH - sideY));
        return { image: img, options: { ...options, minFace: Math.trunc(seen / ratio), scale, window: [left, top, left + sideX, top + sideY] },
                 x0: 0, y0: 0, unit: 1 };
      }
      const side = Math.min(pyRound(input / ratio), w, h);
      const x0 = pyRound(Math.min(Math.max(0, box[0] + box[2] / 2 - side / 2), w - side));
      const y0 = pyRound(Math.min(Math.max(0, box[1] + box[3] / 2 - side / 2), h - side));
      if (side < 8) return null;
      const image = smooth(region(img, x0, y0, x0 + side, y0 + side), ratio);
      return { image, options: { ...options, minFace: seen, scale: 1 }, x0, y0, unit: ratio };
    }

    // follow.py FaceFollower.glance: large faces in a thumbnail that overlap none of boxes.
    async glance(img, boxes, minBox) {
      const width = Math.min(this.engine.site.follow.glance_width, img.width), ratio = width / img.width;
      const small = resizeArea(img, width, Math.max(1, pyRound(img.height * ratio)));
      const found = await this.engine.detect(small, { video: true, minFace: this.engine.rules.smallest_seen });
      return found.map((b) => carry([Math.trunc(b[0] / ratio), Math.trunc(b[1] / ratio), Math.trunc(b[2] / ratio),
                                     Math.trunc(b[3] / ratio), b[4]], b, 1 / ratio))
        .filter((b) => Math.min(b[2], b[3]) >= minBox && boxes.every((o) => iou(b, o) < 0.3));
    }

    // live.py VideoFaces.__call__: a camera's faces, frame after frame, as predict finds a video's:
    // the looks the plan (plan.js, plan.py written again) asks for, carried out on this frame.
    // Without VideoFaces' cut detection (a camera has no cuts, and at the page's frame rate its
    // motion between frames looks like them) and its searches started ahead (a camera's next
    // frames are not there yet). Returns the frame's reported tracks (plan.js Track).
    async videoTracks(img) {
      const previous = this.previous, steps = this.plan.frame(img.width, img.height);
      this.previous = img;
      let step = steps.next();
      while (!step.done) step = steps.next(await this.look(step.value, img, previous));
      const [tracks, searched] = step.value;
      this.searched = searched;
      return tracks;
    }

    // live.py VideoFaces._look: what a look finds on img (previous: the frame before, for patches).
    async look(look, img, previous) {
      const { Whole, Follow, Again } = MobileferPlan, f = this.engine.site.follow;
      if (look instanceof Whole) {
        return this.engine.detect(img, { video: true, minFace: look.minFace, minBox: look.minBox, confidence: f.follow_confidence });
      }
      if (look instanceof Follow) {  // follow.py FaceFollower.follow: a patch match first where not checked
        const out = look.boxes.map((box, i) => (!look.check[i] && previous !== null ? matchPatch(previous, img, box, f) : null));
        const todo = out.map((_, i) => i).filter((i) => out[i] === null);
        const found = await this.followMany(img, todo.map((i) => look.boxes[i]), look.minBox);
        todo.forEach((i, k) => { out[i] = found[k]; });
        return out;
      }
      if (look instanceof Again) return this.lookNearMany(img, look.boxes, look.minBox, f.input);  // no larger square
      return this.glance(img, look.boxes, look.minBox);
    }

    // recognizer.py EmotionRecognizer._label_frame, by the clock: the new faces, and of the others
    // classified at least 1/classify_rate s ago the classify_faces classified longest ago (more
    // where that keeps each within classify_within frames); the others keep their probabilities.
    // A known face's probabilities average its classifications as Python's VIDEO_SMOOTH does
    // (tracking.Track.update_probs, ema: follow.smooth is the newest's weight); where
    // follow.video_views says so, a known face is read in one view, paired with its last (viewsInTurn).
    async labelVideo(img, tracks) {
      const f = this.engine.site.follow, now = performance.now();
      const chosen = tracks.filter((t) => t.probs === null);
      const known = tracks.filter((t) => t.probs !== null).sort((a, b) => a.at - b.at || a.id - b.id);
      const budget = Math.max(f.classify_faces, Math.ceil(known.length / f.classify_within));
      const ready = known.filter((t) => now - t.at >= 1000 / f.classify_rate);
      chosen.push(...ready.slice(0, Math.max(0, budget - chosen.length)));
      const crops = chosen.map((t) => faceCrop(img, t.box, this.engine.model.face_margin)), a = f.smooth;
      const probs = f.video_views && this.engine.model.tta === "flip" && a < 1
        ? await this.viewsInTurn(crops, chosen, now) : await this.engine.classify(crops);
      chosen.forEach((t, i) => Object.assign(t, {
        probs: t.probs === null ? probs[i] : probs[i].map((p, j) => a * p + (1 - a) * t.probs[j]), at: now }));
      return { probs: tracks.map((t) => t.probs), ids: tracks.map((t) => t.id), classified: chosen.length };
    }

    // recognizer.py _views_in_turn (VIDEO_VIEWS): each face's probabilities the mean of two views,
    // a new face's crop (no view read in the last view_pair_within s) read as it is and mirrored,
    // a known one's in the view its last classification did not read, paired with that one;
    // each track keeps the view read last, [mirrored, probabilities, when (ms)].
    async viewsInTurn(crops, tracks, now) {
      const within = 1000 * this.engine.site.follow.view_pair_within, fresh = [], known = [];
      tracks.forEach((t, i) => (t.lastView === null || now - t.lastView[2] > within ? fresh : known).push(i));
      const sides = known.map((i) => !tracks[i].lastView[0]), n = fresh.length;
      const read = await this.engine.classify([...fresh, ...fresh, ...known].map((i) => crops[i]),
                                              [...fresh.map(() => false), ...fresh.map(() => true), ...sides]);
      const probs = new Array(tracks.length);
      fresh.forEach((i, k) => {
        probs[i] = this.engine.paired(read[k], read[n + k]);
        tracks[i].lastView = [true, read[n + k], now];
      });
      known.forEach((i, k) => {
        probs[i] = this.engine.paired(read[2 * n + k], tracks[i].lastView[1]);
        tracks[i].lastView = [sides[k], read[2 * n + k], now];
      });
      return probs;
    }

    // The next camera frame starts a new video (a new camera, or the same one after a pause).
    resetVideo() {
      const f = this.engine.site.follow, r = this.engine.rules, { LivePlan, IoUTracker } = MobileferPlan;
      this.plan = new LivePlan(new IoUTracker(f.iou, f.max_missed), f.detect_every, r.min_face, f, r);
      this.searched = false;  // whether the last frame was searched whole
      this.previous = null;  // the last frame, for its faces' patches
    }
  }

  // The server mode's camera: the server recognises each frame on its own, so the page keeps the
  // faces' tracks with IoUTracker.update (plan.js: each face continues the track it overlaps most,
  // one to one; a track unseen for up to max_missed frames keeps its id) and averages a face's
  // probabilities as Track.update_probs does with recognizer.VIDEO_SMOOTH (follow.smooth: the
  // newest's weight). Both modes then give a camera face one id and a label that does not flicker.
  class ServerTracks {
    constructor(follow) {
      this.follow = follow;
      this.reset();
    }

    reset() {
      this.tracker = new MobileferPlan.IoUTracker(this.follow.iou, this.follow.max_missed);
    }

    // A /v1/recognize answer for the next camera frame, its faces given their ids and averaged
    // probabilities (label and score from those), in place.
    update(result) {
      const tracks = this.tracker.update(result.faces.map((face) => [...face.box, face.detector_score ?? 1]));
      const a = this.follow.smooth;
      result.faces.forEach((face, i) => {
        const track = tracks[i], p = face.probs;
        track.probs = track.probs === null ? { ...p }
          : Object.fromEntries(Object.keys(p).map((c) => [c, a * p[c] + (1 - a) * track.probs[c]]));
        const best = Object.keys(track.probs).reduce((x, y) => (track.probs[y] > track.probs[x] ? y : x));
        Object.assign(face, { id: track.id, probs: { ...track.probs }, label: best, score: track.probs[best] });
      });
      return result;
    }
  }

  return { CameraFaces, ServerTracks, matchPatch };
})();
