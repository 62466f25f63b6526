// A camera's faces in this browser, frame after frame, as `mobilefer predict` follows a video's
// (inference/live.py VideoFaces, follow.py FaceFollower, tracking.py IoUTracker and the
// recognizer's classification rate), on an Engine's detector and classifier (browser.js). Each
// step names its Python original beside it; the browser tests replay Python's frames through it.
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

  class CameraFaces {
    constructor(engine) {
      this.engine = engine;
      this.resetVideo();
    }

    // follow.py FaceFollower.follow: the face looked for in a square around its last box, at the
    // whole-frame search's scale and at least INPUT px across, or once more in a retry_input px
    // square; null where neither finds it (or under minBox px).
    async followOne(img, box, minBox) {
      const f = this.engine.site.follow;
      return (await this.lookNear(img, box, minBox, f.input)) ?? (await this.lookNear(img, box, minBox, f.retry_input));
    }

    // follow.py FaceFollower._look, _window and _region: one square around a face. A face at the
    // whole-frame search's scale is looked at in that search's pixels, on its lattice; a large face in a smooth copy.
    async lookNear(img, box, minBox, input) {
      const f = this.engine.site.follow, grid = f.grid, w = img.width, h = img.height, scale = this.engine.videoScale(w, h);
      const ratio = Math.min(scale, input / (f.region * Math.max(box[2], box[3])));
      const seen = Math.max(8, Math.floor(Math.max(box[2], box[3]) * ratio / 2));
      let found, x0 = 0, y0 = 0, unit = 1;
      if (ratio === scale) {
        const [passW, passH] = MobileferBrowser.Engine.passSize(w, h, scale);
        const sideX = Math.min(input, passW), sideY = Math.min(input, passH);
        let left = (box[0] + box[2] / 2) * passW / w - sideX / 2, top = (box[1] + box[3] / 2) * passH / h - sideY / 2;
        [left, top] = [pyRound(left / grid) * grid, pyRound(top / grid) * grid];
        left = pyRound(Math.min(Math.max(0, left), passW - sideX));
        top = pyRound(Math.min(Math.max(0, top), passH - sideY));
        found = await this.engine.detect(img, { video: true, minFace: Math.trunc(seen / ratio), confidence: f.confidence,
                                         scale, window: [left, top, left + sideX, top + sideY] });
      } else {
        const side = Math.min(pyRound(input / ratio), w, h);
        x0 = pyRound(Math.min(Math.max(0, box[0] + box[2] / 2 - side / 2), w - side));
        y0 = pyRound(Math.min(Math.max(0, box[1] + box[3] / 2 - side / 2), h - side));
        if (side < 8) return null;
        found = await this.engine.detect(smooth(region(img, x0, y0, x0 + side, y0 + side), ratio),
                                  { video: true, minFace: seen, confidence: f.confidence });
        unit = ratio;
      }
      if (!found.length) return null;
      const last = [Math.trunc((box[0] - x0) * unit), Math.trunc((box[1] - y0) * unit), Math.trunc(box[2] * unit),
                    Math.trunc(box[3] * unit)];
      let best = found.reduce((a, b) => (iou(b, last) > iou(a, last) || (iou(b, last) === iou(a, last) && b[4] > a[4]) ? b : a));
      if (iou(best, last) === 0) best = found.reduce((a, b) => (b[4] > a[4] ? b : a));
      const moved = carry([x0 + pyRound(best[0] / unit), y0 + pyRound(best[1] / unit), pyRound(best[2] / unit),
                           pyRound(best[3] / unit), best[4]], best, 1 / unit, x0, y0);
      return Math.min(moved[2], moved[3]) < minBox ? null : moved;
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

    // A camera's faces, frame after frame, as predict finds a video's (live.py VideoFaces, without
    // its cut detection: a camera has no cuts, and at the page's frame rate its motion between
    // frames looks like them): the whole frame
    // every detect_every frames, or half as many after a search that found a face not followed
    // before (two of three of these, while faces were followed after the search before, only for
    // faces of search_fraction of the smallest of them), between them each face looked for near where it
    // was (with the detector every check_every frames, faces taking turns, matched from its patch
    // on the frame before between; a face lost on the frames just before looked for again), and a
    // thumbnail glanced at every glance_every frames. Faces down to `hidden` of the smallest shown
    // are followed unseen, and so are faces a search sees on weak evidence alone, until a look
    // sees them as a new face needs. A box's [7] is its face: {id, probs, at, missed}, the same
    // object from frame to frame while the face is followed, or found again within max_missed frames.
    async videoBoxes(img) {
      const f = this.engine.site.follow, r = this.engine.rules, index = ++this.frameIndex, previous = this.previous;
      this.previous = img;
      const wholeMin = this.engine.videoMinFace(img.width, img.height, r.min_face), limit = r.box_tolerance * wholeMin;
      const unseenBox = (minFace) => Math.trunc(r.box_tolerance * f.hidden * minFace);  // live.py _unseen_box
      // live.py VideoFaces._shown: a box's [5] says whether it was reported on the frame before,
      // its [6] whether it is held (seen on weak evidence only: followed, not reported)
      const shown = (boxes) => boxes.filter((b) => {
        const side = Math.min(b[2], b[3]);
        b[5] = b[6] !== true && (side >= limit || (b[5] === true && side >= f.shown_down_to * limit));
        return b[5];
      });
      // tracking.py IoUTracker.moved and .update: the faces not seen on this frame (those seen on
      // the last and those lost before) are lost one frame more, and kept for max_missed frames
      const lose = (unseen) => {
        for (const b of unseen) [b[5], b[7].missed] = [false, b[7].missed + 1];
        this.lost = unseen.filter((b) => b[7].missed <= f.max_missed);
      };
      if (index >= this.nextSearch) {  // live.py VideoFaces._bounds
        this.searches = index === 0 ? 0 : this.searches + 1;
        let minFace = wholeMin;
        if (index > 0 && this.smallest !== null && this.searches % f.full_search_every) {
          minFace = Math.max(minFace, Math.trunc(f.search_fraction * this.smallest));
        }
        const found = await this.engine.detect(img, { video: true, minFace, minBox: unseenBox(minFace), confidence: f.confidence });
        // tracking.py IoUTracker.update (live.py VideoFaces._keep): each box continues the face it
        // overlaps most (IoU >= 0.3; seen on the last frame or lost within max_missed), one to
        // one, the largest overlaps first; a box under the detector's threshold continues only a
        // face seen on the last frame (or a held one, still held), else it is held: followed unseen
        const tracks = [...this.boxes, ...this.lost], weak = (b) => b[4] < r.threshold, pairs = [];
        tracks.forEach((t, ti) => found.forEach((b, bi) => {
          const overlap = iou(t, b);
          if (overlap >= 0.3 && (!weak(b) || t[7].missed === 0)) pairs.push([overlap, ti, bi]);
        }));
        pairs.sort((p, q) => q[0] - p[0] || q[1] - p[1] || q[2] - p[2]);
        const matched = new Map(), used = new Set();
        for (const [, ti, bi] of pairs) {
          if (used.has(ti) || matched.has(bi)) continue;
          used.add(ti);
          matched.set(bi, tracks[ti]);
        }
        const boxes = found.map((b, bi) => {
          const last = matched.get(bi) ?? null;
          return carry([...b.slice(0, 5), last?.[5] === true, weak(b) && (last === null || last[6] === true),
                        last === null ? this.newFace() : last[7]], b);
        });
        // tracking.py DetectionSchedule.found: a face not followed on the frame before brings the next search nearer
        const arriving = index > 0 && boxes.some((b, bi) => !b[6] && (!matched.has(bi) || b[7].missed > 0));
        this.nextSearch = index + (arriving ? Math.max(1, Math.trunc(f.detect_every / 2)) : f.detect_every);
        lose(tracks.filter((t, ti) => !used.has(ti)));
        for (const b of boxes) b[7].missed = 0;
        this.boxes = boxes;
        const sides = this.boxes.filter((b) => !b[6]).map((b) => Math.min(b[2], b[3]));
        this.smallest = sides.length ? Math.min(...sides) : null;
        return shown(this.boxes);
      }
      const minBox = unseenBox(wholeMin), followed = [], gone = [];
      const period = Math.max(f.check_every, Math.ceil(this.boxes.length / f.check_faces));  // live.py CHECK_EVERY
      for (const box of this.boxes) {
        const matched = (index + box[7].id) % period !== 0 && previous !== null ? matchPatch(previous, img, box, f) : null;
        const now = matched ?? await this.followOne(img, box, minBox);
        if (now && followed.every((o) => iou(now, o) < 0.5)) {
          followed.push(carry([...now.slice(0, 5), box[5] === true, box[6] === true && now[4] < r.threshold, box[7]], now));
        } else {
          gone.push(box);
        }
      }
      lose([...gone, ...this.lost]);
      // live.py LOOK_AGAIN: faces lost on the frames before looked for again where they were, the
      // latest lost first, resumed where a look is as sure of them as a new face needs
      const again = this.lost.filter((b) => b[7].missed > 1 && b[7].missed <= f.look_again)
        .sort((p, q) => p[7].missed - q[7].missed).slice(0, f.look_again_faces);
      for (const box of again) {
        const now = await this.lookNear(img, box, minBox, f.input);
        if (now && now[4] >= r.threshold && followed.every((o) => iou(now, o) < 0.5)) {
          followed.push(carry([...now.slice(0, 5), false, false, box[7]], now));
          this.lost = this.lost.filter((b) => b !== box);
          box[7].missed = 0;
        }
      }
      if (index % f.glance_every === 0) {  // tracking.py IoUTracker.extend: a lost face it overlaps, or a new one
        for (const b of await this.glance(img, followed, minBox)) {
          const best = this.lost.reduce((a, o) => (a === null || iou(o, b) > iou(a, b) ? o : a), null);
          const last = best !== null && iou(best, b) >= 0.3 ? best : null;
          if (last !== null) this.lost = this.lost.filter((o) => o !== last);
          const face = last === null ? this.newFace() : last[7];
          face.missed = 0;
          followed.push(carry([...b, false, last?.[6] === true, face], b));
        }
      }
      this.boxes = followed;
      return shown(followed);
    }

    newFace() {
      return { id: this.nextId++, probs: null, at: -Infinity, missed: 0 };
    }

    // recognizer.py EmotionRecognizer._label_frame, by the clock: the new faces, and of the others
    // classified at least 1/classify_rate s ago the classify_faces classified longest ago (more
    // where that keeps each within classify_within frames); the others keep their probabilities.
    // A known face's probabilities average its classifications as Python's VIDEO_SMOOTH does
    // (tracking.Track.update_probs, ema: follow.smooth is the newest's weight).
    async labelVideo(img, boxes) {
      const f = this.engine.site.follow, now = performance.now(), faces = boxes.map((b) => b[7]);
      const chosen = boxes.filter((b) => b[7].probs === null);
      const known = boxes.filter((b) => b[7].probs !== null).sort((a, b) => a[7].at - b[7].at || a[7].id - b[7].id);
      const budget = Math.max(f.classify_faces, Math.ceil(known.length / f.classify_within));
      const ready = known.filter((b) => now - b[7].at >= 1000 / f.classify_rate);
      chosen.push(...ready.slice(0, Math.max(0, budget - chosen.length)));
      const probs = await this.engine.classify(chosen.map((b) => faceCrop(img, b, this.engine.model.face_margin)));
      const a = f.smooth;
      chosen.forEach((b, i) => Object.assign(b[7], {
        probs: b[7].probs === null ? probs[i] : probs[i].map((p, j) => a * p + (1 - a) * b[7].probs[j]), at: now }));
      return { probs: faces.map((face) => face.probs), ids: faces.map((face) => face.id), classified: chosen.length };
    }

    // The next camera frame starts a new video (a new camera, or the same one after a pause).
    resetVideo() {
      this.nextId = 0;  // a face's id, as predict numbers a video's faces
      this.frameIndex = -1;
      this.nextSearch = 0;  // the frame of the next whole-frame search
      this.searches = 0;
      this.smallest = null;  // the smallest face after the last whole-frame search
      this.boxes = [];
      this.lost = [];  // the last boxes of faces lost within max_missed frames (their [7].missed: frames since)
      this.previous = null;  // the last frame, for its faces' patches
    }
  }

  // The server mode's camera: the server recognises each frame on its own, so the page keeps the
  // faces' tracks, as tracking.py IoUTracker.update does (each face continues the track it overlaps
  // most, IoU >= 0.3, one to one, the largest overlaps first; a track unseen for up to max_missed
  // frames keeps its id) and averages a face's probabilities as Track.update_probs does with
  // recognizer.VIDEO_SMOOTH (follow.smooth: the newest's weight). Both modes then give a camera
  // face one id and a label that does not flicker.
  class ServerTracks {
    constructor(follow) {
      this.follow = follow;
      this.reset();
    }

    reset() {
      this.tracks = [];
      this.nextId = 0;
    }

    // A /v1/recognize answer for the next camera frame, its faces given their ids and averaged
    // probabilities (label and score from those), in place.
    update(result) {
      const pairs = [];
      this.tracks.forEach((t, ti) => result.faces.forEach((face, fi) => {
        const overlap = iou(t.box, face.box);
        if (overlap >= 0.3) pairs.push([overlap, ti, fi]);
      }));
      pairs.sort((p, q) => q[0] - p[0] || q[1] - p[1] || q[2] - p[2]);
      const matched = new Map(), used = new Set();
      for (const [, ti, fi] of pairs) {
        if (used.has(ti) || matched.has(fi)) continue;
        used.add(ti);
        matched.set(fi, this.tracks[ti]);
      }
      this.tracks.forEach((t, ti) => { if (!used.has(ti)) t.missed += 1; });
      const a = this.follow.smooth;
      result.faces.forEach((face, fi) => {
        let track = matched.get(fi);
        if (track === undefined) {
          track = { id: this.nextId++, probs: null };
          this.tracks.push(track);
        }
        const p = face.probs;
        track.probs = track.probs === null ? { ...p }
          : Object.fromEntries(Object.keys(p).map((c) => [c, a * p[c] + (1 - a) * track.probs[c]]));
        Object.assign(track, { box: face.box, missed: 0 });
        const best = Object.keys(track.probs).reduce((x, y) => (track.probs[y] > track.probs[x] ? y : x));
        Object.assign(face, { id: track.id, probs: { ...track.probs }, label: best, score: track.probs[best] });
      });
      this.tracks = this.tracks.filter((t) => t.missed <= this.follow.max_missed);
      return result;
    }
  }

  return { CameraFaces, ServerTracks, matchPatch };
})();
