// The live plan of a camera's faces, apart from the pixels: inference/plan.py (LivePlan, the looks
// Whole, Follow, Again and Glance) and tracking.py (Track, IoUTracker, DetectionSchedule) written
// again name for name, every number from site.json (plan.RULES, the detector's settings).
// camera.js carries the looks out on a camera's frames; tests/test_plan_trace.py replays Python's
// looks and their boxes through this file in Node and compares every look and track. A box is
// [x, y, w, h, score] (its landmarks a property).
"use strict";

const MobileferPlan = (() => {
  // faces.py iou: intersection over union of two boxes.
  function iou(a, b) {
    const w = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
    const h = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
    if (w <= 0 || h <= 0) return 0;
    const inter = w * h, union = a[2] * a[3] + b[2] * b[3] - inter;
    return union > 0 ? inter / union : 0;
  }

  // faces.py video_scale and video_min_face: a video frame is looked at no larger than a copy of
  // `detector.video_detect_pixels`, and the smallest face it is searched for grows to match.
  function videoScale(width, height, detector) {
    return Math.min(1, Math.sqrt(detector.video_detect_pixels / (width * height)));
  }

  function videoMinFace(width, height, minFace, detector) {
    const scale = videoScale(width, height, detector);
    return scale < 1 ? Math.max(minFace, Math.ceil(detector.smallest_seen / scale)) : minFace;
  }

  // tracking.py Track: a face, its box now, frames since it was seen, whether it is held; its
  // probabilities and when (the page's clock, ms) it was last classified.
  class Track {
    constructor(id, box, held = false) {
      Object.assign(this, { id, box, missed: 0, held, probs: null, at: -Infinity, lastView: null });
    }
  }

  // tracking.py IoUTracker.
  class IoUTracker {
    constructor(threshold = 0.3, maxMissed = 30) {
      Object.assign(this, { threshold, maxMissed, tracks: [], nextId: 0 });
    }

    cut() {
      this.tracks = [];
    }

    live() {
      return this.tracks.filter((t) => t.missed === 0);
    }

    moved(tracks, boxes) {
      const kept = [];
      boxes.forEach((box, i) => {
        if (box !== null && kept.every((k) => iou(boxes[k], box) < 0.5)) {
          kept.push(i);
          tracks[i].box = box;
        }
      });
      const seen = new Set(kept.map((i) => tracks[i]));
      for (const track of this.tracks) track.missed = seen.has(track) ? 0 : track.missed + 1;
      this.tracks = this.tracks.filter((t) => t.missed <= this.maxMissed);
      return kept.map((i) => tracks[i]);
    }

    resume(found) {
      const out = [];
      for (const [track, box] of found) {
        if (this.tracks.every((other) => other.missed !== 0 || iou(box, other.box) < 0.5)) {
          [track.box, track.missed] = [box, 0];
          out.push(track);
        }
      }
      return out;
    }

    extend(boxes) {
      const lost = this.tracks.filter((t) => t.missed > 0), out = [];
      for (const box of boxes) {
        let best = lost.reduce((a, t) => (a === null || iou(t.box, box) > iou(a.box, box) ? t : a), null);
        if (best !== null && iou(best.box, box) >= this.threshold) {
          lost.splice(lost.indexOf(best), 1);
        } else {
          best = new Track(this.nextId++, box);
          this.tracks.push(best);
        }
        [best.box, best.missed] = [box, 0];
        out.push(best);
      }
      return out;
    }

    update(boxes, confidence = null, hold = false) {
      const weak = new Set(boxes.flatMap((b, bi) => (confidence !== null && b[4] < confidence ? [bi] : [])));
      const pairs = [];
      this.tracks.forEach((t, ti) => boxes.forEach((b, bi) => {
        const overlap = iou(t.box, b);
        if (overlap >= this.threshold && (!weak.has(bi) || t.missed === 0)) pairs.push([overlap, ti, bi]);
      }));
      pairs.sort((p, q) => q[0] - p[0] || q[1] - p[1] || q[2] - p[2]);
      const matched = new Map(), used = new Set();
      for (const [, ti, bi] of pairs) {
        if (used.has(ti) || matched.has(bi)) continue;
        used.add(ti);
        matched.set(bi, this.tracks[ti]);
      }
      this.tracks.forEach((track, ti) => { if (!used.has(ti)) track.missed += 1; });
      const out = [];
      boxes.forEach((box, bi) => {
        let track = matched.get(bi) ?? null;
        if (track === null && weak.has(bi) && !hold) return;
        if (track === null) {
          track = new Track(this.nextId++, box, weak.has(bi));
          this.tracks.push(track);
        }
        [track.box, track.missed, track.held] = [box, 0, track.held && weak.has(bi)];
        out.push(track);
      });
      this.tracks = this.tracks.filter((t) => t.missed <= this.maxMissed);
      return out;
    }
  }

  // tracking.py DetectionSchedule.
  class DetectionSchedule {
    constructor(every = 1) {
      Object.assign(this, { every, next: every, since: null });
    }

    due(cut = false) {
      if (cut || this.since === null || this.since + 1 >= this.next) {
        this.since = 0;
        return true;
      }
      this.since += 1;
      return false;
    }

    found(arriving) {
      this.next = arriving ? Math.max(1, Math.trunc(this.every / 2)) : this.every;
    }
  }

  // plan.py's looks.
  class Whole { constructor(minFace, minBox) { Object.assign(this, { minFace, minBox }); } }
  class Follow { constructor(boxes, check, minBox) { Object.assign(this, { boxes, check, minBox }); } }
  class Again { constructor(boxes, minBox) { Object.assign(this, { boxes, minBox }); } }
  class Glance { constructor(boxes, minBox) { Object.assign(this, { boxes, minBox }); } }

  // plan.py LivePlan: `rules` is site.json's follow (plan.RULES among them), `detector` its
  // detector (threshold, smallest_seen, box_tolerance, video_detect_pixels).
  class LivePlan {
    constructor(tracker, every, minFace, rules, detector) {
      Object.assign(this, { tracker, rules, detector, minFace, schedule: new DetectionSchedule(every) });
      Object.assign(this, { index: -1, searches: 0, smallest: null, early: null, shown: new Set() });
    }

    unseenBox(minFace) {
      return Math.trunc(this.detector.box_tolerance * this.rules.hidden * minFace);
    }

    wholeMin(width, height) {
      return videoMinFace(width, height, this.minFace, this.detector);
    }

    state(track) {
      if (track.missed) return "lost";
      return track.held ? "held" : this.shown.has(track.id) ? "shown" : "new";
    }

    * frame(width, height, cut = false) {
      const r = this.rules;
      this.index += 1;
      if (cut) this.tracker.cut();
      const wholeMin = this.wholeMin(width, height), hidden = this.unseenBox(wholeMin);
      if (this.schedule.every === 1) return [this.shownOf(this.keep(yield new Whole(wholeMin, hidden)), wholeMin), true];
      const restart = this.index === 0 || cut;
      if (this.schedule.due(restart)) {
        const early = this.early;
        this.early = null;
        const look = early !== null && early[0] === this.index && !restart ? early[1]
          : new Whole(...this.bounds(wholeMin, restart));
        const boxes = yield look;
        const followed = new Set(this.tracker.live().map((t) => t.id)), tracks = this.keep(boxes);
        this.schedule.found(!restart && tracks.some((t) => !followed.has(t.id) && !t.held));
        const live = this.tracker.live().filter((t) => !t.held);
        this.smallest = live.length ? Math.min(...live.map((t) => Math.min(t.box[2], t.box[3]))) : null;
        return [this.shownOf(tracks, wholeMin), true];
      }
      const live = this.tracker.live(), period = Math.max(r.check_every, Math.ceil(live.length / r.check_faces));
      const check = live.map((t) => (this.index + t.id) % period === 0);
      let tracks = this.tracker.moved(live, yield new Follow(live.map((t) => t.box), check, hidden));
      const threshold = this.detector.threshold ?? 0;
      const lost = this.tracker.tracks.filter((t) => t.missed > 1 && t.missed <= r.look_again)
        .sort((a, b) => a.missed - b.missed).slice(0, r.look_again_faces);
      if (lost.length) {
        const found = yield new Again(lost.map((t) => t.box), hidden);
        tracks = tracks.concat(this.tracker.resume(lost.map((t, i) => [t, found[i]])
          .filter(([, b]) => b !== null && b[4] >= threshold)));
      }
      for (const t of tracks) t.held = t.held && t.box[4] < threshold;
      if (this.index % r.glance_every === 0) {
        tracks = tracks.concat(this.tracker.extend(yield new Glance(tracks.map((t) => t.box), hidden)));
      }
      return [this.shownOf(tracks, wholeMin), false];
    }

    upcoming(width, height) {
      const look = new Whole(...this.bounds(this.wholeMin(width, height), false));
      this.early = [this.index + this.schedule.next, look];
      return [this.schedule.next, look];
    }

    keep(boxes) {
      return this.tracker.update(boxes, this.detector.threshold, this.schedule.every > 1);
    }

    // plan.py _shown
    shownOf(tracks, wholeMin) {
      const limit = this.detector.box_tolerance * wholeMin;
      const shown = tracks.filter((t) => !t.held && (Math.min(t.box[2], t.box[3]) >= limit || (
        this.shown.has(t.id) && Math.min(t.box[2], t.box[3]) >= this.rules.shown_down_to * limit)));
      this.shown = new Set(shown.map((t) => t.id));
      return shown;
    }

    bounds(wholeMin, restart) {
      this.searches = restart ? 0 : this.searches + 1;
      if (!restart && this.smallest !== null && this.searches % this.rules.full_search_every) {
        wholeMin = Math.max(wholeMin, Math.trunc(this.rules.search_fraction * this.smallest));
      }
      return [wholeMin, this.unseenBox(wholeMin)];
    }
  }

  return { iou, videoScale, videoMinFace, Track, IoUTracker, DetectionSchedule, Whole, Follow, Again, Glance, LivePlan };
})();

if (typeof module !== "undefined") module.exports = MobileferPlan;  // Node: the trace test
