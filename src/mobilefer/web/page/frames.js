// A camera's frames as the page reads them: a WebCodecs VideoFrame (the video's current frame)
// -> RGB pixels {data, width, height, channels: 3} without drawing it on a canvas (app.js
// framePixels; the browser tests hold it to Chromium's drawing and to OpenCV's conversion).
"use strict";

const MobileferFrames = (() => {
  // YUV -> RGB, per the frame's colour space (WebCodecs VideoColorSpace): [Y's gain, its offset,
  // V -> R, U -> G, V -> G, U -> B]; BT.709, or BT.601 (a camera that names no matrix is drawn so),
  // in TV range unless the frame says full. null for another matrix.
  const BT601 = [null, "smpte170m", "bt470bg"];
  function yuvCoefficients(colorSpace) {
    const matrix = colorSpace ? colorSpace.matrix : null;
    if (matrix !== "bt709" && !BT601.includes(matrix)) return null;
    const bt709 = matrix === "bt709", full = colorSpace && colorSpace.fullRange;
    const [kr, kb] = bt709 ? [0.2126, 0.0722] : [0.299, 0.114], kg = 1 - kr - kb;
    const y = full ? 1 : 255 / 219, c = full ? 1 : 255 / 224;
    return [y, full ? 0 : 16, c * 2 * (1 - kr), c * 2 * (1 - kb) * kb / kg, c * 2 * (1 - kr) * kr / kg, c * 2 * (1 - kb)];
  }

  // The conversion's lookup tables, 16 fraction bits: a 2 x 2 block's luma sum -> its scaled luma
  // (rounding half added), and each chroma value -> its part of R, G, B. Made once per colour
  // space (a camera's frames keep theirs); null for a matrix yuvCoefficients does not know.
  const tablesMade = new Map();
  function yuvTables(colorSpace) {
    const key = colorSpace ? `${colorSpace.matrix}/${colorSpace.fullRange}` : "none";
    if (!tablesMade.has(key)) {
      const coefficients = yuvCoefficients(colorSpace), one = 1 << 16;
      let tables = null;
      if (coefficients) {
        const [gain, black, vr, ug, vg, ub] = coefficients;
        const table = (gainOf) => Int32Array.from({ length: 256 }, (_, c) => Math.round(one * gainOf * (c - 128)));
        tables = { luma: Int32Array.from({ length: 4 * 255 + 1 }, (_, sum) => Math.round(one * gain * (sum / 4 - black)) + one / 2),
                   vr: table(vr), ug: table(ug), vg: table(vg), ub: table(ub) };
      }
      tablesMade.set(key, tables);
    }
    return tablesMade.get(key);
  }

  // A camera's VideoFrame (WebCodecs) -> RGB pixels at width x height, read without a canvas: a
  // frame of that size as the browser converts it (VideoFrame.copyTo RGBA); an I420 or NV12 frame
  // twice that size from its planes, each pixel the mean of its 2 x 2 source pixels with their
  // chroma sample (integer arithmetic through yuvTables). null for any other frame
  // (another size, layout or colour matrix, or turned): its caller draws it on a canvas instead.
  let planes = new Uint8Array(0);  // the last frame's planes, reused (a camera's frames keep their size)
  async function fromVideoFrame(frame, width, height) {
    if (frame.rotation || frame.flip) return null;  // a turned or mirrored camera: its planes are not as shown
    const { width: sw, height: sh } = frame.visibleRect;
    if (sw === width && sh === height) {
      const options = { format: "RGBA" };
      let size;
      try {
        size = frame.allocationSize(options);
      } catch (err) {
        return null;  // a browser that converts no frame to RGBA
      }
      if (planes.length < size) planes = new Uint8Array(size);
      await frame.copyTo(planes, options);
      return MobileferBrowser.fromRGBA(planes, width, height);
    }
    const tables = yuvTables(frame.colorSpace);
    if (!["I420", "NV12"].includes(frame.format) || sw !== 2 * width || sh !== 2 * height || !tables) return null;
    const size = frame.allocationSize();
    if (planes.length < size) planes = new Uint8Array(size);
    const layout = await frame.copyTo(planes);
    const yOff = layout[0].offset, yStride = layout[0].stride, cStride = layout[1].stride;
    const step = frame.format === "NV12" ? 2 : 1, uOff = layout[1].offset;
    const vOff = step === 2 ? uOff + 1 : layout[2].offset;
    const { luma: lumaOf, vr: vrOf, ug: ugOf, vg: vgOf, ub: ubOf } = tables;
    const out = new Uint8ClampedArray(width * height * 3);
    for (let y = 0, o = 0; y < height; y++) {
      const row = yOff + 2 * y * yStride, below = row + yStride, u0 = uOff + y * cStride, v0 = vOff + y * cStride;
      for (let x = 0; x < width; x++, o += 3) {
        const sx = 2 * x, u = planes[u0 + x * step], v = planes[v0 + x * step];
        const l = lumaOf[planes[row + sx] + planes[row + sx + 1] + planes[below + sx] + planes[below + sx + 1]];
        out[o] = (l + vrOf[v]) >> 16;
        out[o + 1] = (l - ugOf[u] - vgOf[v]) >> 16;
        out[o + 2] = (l + ubOf[u]) >> 16;
      }
    }
    return { data: new Uint8Array(out.buffer), width, height, channels: 3 };
  }
  return { fromVideoFrame };
})();
