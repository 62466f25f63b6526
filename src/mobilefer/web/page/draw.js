// The page's drawing: a result's boxes, labels, landmarks, per-class bars and explanation over the
// image on a canvas (app.js calls it for photos and for every camera frame painted).
"use strict";

const MobileferDraw = (() => {
  const COLORS = {
    angry: "#ff5252", disgust: "#8bc34a", fear: "#b388ff", happy: "#ffd740", neutral: "#b0bec5",
    sad: "#40c4ff", surprise: "#ff9100", boring: "#a1887f", stress: "#f06292", uncertain: "#eeeeee",
  };
  const FALLBACK = ["#4fb3ff", "#69f0ae", "#ffab40", "#ea80fc", "#ff6e40", "#c6ff00"];

  function colorFor(label, classes) {
    if (COLORS[label]) return COLORS[label];
    const i = Math.max(0, classes.indexOf(label));
    return FALLBACK[i % FALLBACK.length];
  }

  // Each face: its box, "N label score" above it (N: its place in the list beside the image),
  // and its per-class bars beside it where they cover no other face and no bars drawn before.
  function drawFaces(ctx, result, classes, explanation = null) {
    if (!result) return;
    const stage = ctx.canvas, colorOf = (label) => colorFor(label, classes);
    const sx = stage.width / result.image.width;
    const sy = stage.height / result.image.height;
    if (explanation && result.faces[explanation.face]) drawExplanation(ctx, explanation, result, sx, sy);
    const line = Math.max(2, Math.round(stage.width / 320));
    const font = Math.max(12, Math.round(stage.width / 45));
    const boxes = result.faces.map((f) => [f.box[0] * sx, f.box[1] * sy, f.box[2] * sx, f.box[3] * sy]);
    const taken = [...boxes];
    result.faces.forEach((face, i) => {
      const [x, y, w, h] = boxes[i];
      const color = colorOf(face.label);
      ctx.save();
      ctx.font = `600 ${font}px system-ui, sans-serif`;
      ctx.textBaseline = "top";
      ctx.lineWidth = line;
      ctx.strokeStyle = color;
      ctx.strokeRect(x, y, w, h);
      const text = `${i + 1} ${face.label} ${(100 * face.score).toFixed(0)}%`;
      const tw = ctx.measureText(text).width + 8;
      const ty = y - font - 6 >= 0 ? y - font - 6 : y + h;
      ctx.fillStyle = color;
      ctx.fillRect(x - line / 2, ty, tw, font + 6);
      ctx.fillStyle = "#111";
      ctx.fillText(text, x + 4 - line / 2, ty + 3);
      taken.push([x - line / 2, ty, tw, font + 6]);
      for (const [px, py] of face.landmarks || []) {  // eyes, nose tip, mouth corners
        ctx.beginPath();
        ctx.arc(px * sx, py * sy, Math.max(2, line), 0, 2 * Math.PI);
        ctx.fillStyle = "#fff";
        ctx.fill();
        ctx.lineWidth = 1;
        ctx.strokeStyle = "#111";
        ctx.stroke();
      }
      ctx.restore();
      const bars = barsPlace(stage, face, boxes[i], taken.filter((_, j) => j !== i));
      if (bars) {
        taken.push(bars);
        drawBars(ctx, face, bars, colorOf);
      }
    });
  }

  // A face's explanation: red where its label rests most (a third of the peak and up), over the
  // part of the image the map covers, inside the face's box.
  function drawExplanation(ctx, e, result, sx, sy) {
    const peak = Math.max(...e.weights);
    if (!(peak > 0)) return;
    const grid = document.createElement("canvas");
    [grid.width, grid.height] = [e.cols, e.rows];
    const g = grid.getContext("2d"), pixels = g.createImageData(e.cols, e.rows);
    e.weights.forEach((v, i) => {
      const a = Math.min(1, Math.max(0, (v / peak - 1 / 3) * 1.5));
      pixels.data.set([255, 40, 0, Math.round(170 * a)], 4 * i);
    });
    g.putImageData(pixels, 0, 0);
    const [bx, by, bw, bh] = result.faces[e.face].box;
    ctx.save();
    ctx.beginPath();
    ctx.rect(bx * sx, by * sy, bw * sx, bh * sy);
    ctx.clip();
    ctx.imageSmoothingEnabled = true;
    const [x, y, w, h] = e.rect;
    ctx.drawImage(grid, x * sx, y * sy, w * sx, h * sy);
    ctx.restore();
  }

  const overlaps = (a, b) => a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3];

  // Where a face's bars go: right of its box, else left, inside the image and clear of ``taken``
  // (the other faces, their labels and bars); null where neither side is clear.
  function barsPlace(stage, face, [x, y, w, h], taken) {
    const rows = Object.keys(face.probs).length;
    const rowH = Math.max(8, Math.min(16, h / rows));
    const width = rowH * 4.2 + Math.max(40, Math.min(90, w * 0.8));
    for (const left of [x + w + 6, x - 6 - width]) {
      const place = [left, y, width, rowH * rows];
      if (left >= 0 && left + width <= stage.width && y + rowH * rows <= stage.height
          && !taken.some((t) => overlaps(place, t))) return place;
    }
    return null;
  }

  function drawBars(ctx, face, [left, top, width, height], colorOf) {
    const rows = Object.entries(face.probs);
    const rowH = height / rows.length;
    const labelW = rowH * 4.2, barW = width - labelW;
    ctx.save();
    ctx.font = `${Math.round(rowH * 0.8)}px system-ui, sans-serif`;
    ctx.textBaseline = "middle";
    rows.forEach(([name, p], i) => {
      const y = top + i * rowH;
      ctx.fillStyle = "rgba(0,0,0,0.55)";
      ctx.fillRect(left, y, width, rowH);
      ctx.fillStyle = "#fff";
      ctx.fillText(name.slice(0, 8), left + 2, y + rowH / 2);
      ctx.fillStyle = colorOf(name);
      ctx.fillRect(left + labelW, y + 2, Math.max(1, barW * p), rowH - 4);
    });
    ctx.restore();
  }

  return { drawFaces, colorFor };
})();
