"""BlazeFace, MediaPipe's mobile face detector, as the cheap first look of a video's searches.

The bundled ``blazeface_back.onnx`` (MediaPipe's "back camera" model, Apache-2.0; see
weights/BLAZEFACE_NOTICE.txt) looks at a whole frame letterboxed into 256x256 RGB: ~0.1 G
multiply-adds against CenterFace's 1.85 G at 640x480, about a sixth of its time on a CPU
without 8-bit dot products. It finds faces down to SMALLEST_SEEN px of its input (28 px of a
640x480 frame), not the small ones CenterFace finds, and its boxes and points are not
CenterFace's (tighter boxes; eyes, nose, mouth centre and ears). So it only proposes: a video's
whole-frame search that looks for faces of at least :meth:`BlazeFace.smallest_face` takes its
boxes and has CenterFace look at a square around each (:mod:`.live`), which gives the boxes,
scores and landmarks every face carries. Searches for smaller faces stay CenterFace's.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from mobilefer.inference.faces import Box
from mobilefer.runtime.refs import WEIGHTS_DIR

MODEL = WEIGHTS_DIR / "blazeface_back.onnx"
INPUT = 256  # its input side
STRIDES = (16, 32, 32, 32)  # MediaPipe's SSD anchor layout for this model: 16x16x2 + 8x8x6 anchors
# The smallest face it finds reliably, in pixels of its input: 11, 28 px of a 640x480 frame (the
# shared clips, every 6th frame, against CenterFace's whole-frame search: 255 of 256 faces of 28 px
# and up found at THRESHOLD, 36 of 41 of 24-27 px, 69 of 75 smaller).
SMALLEST_SEEN = 11
# It proposes; CenterFace decides. A proposal needs less than MediaPipe's 0.5: a missed
# proposal is a missed face, an extra one costs one CenterFace square (~1.5 ms; 0.4 found 252
# of the 256 with 40 % fewer extra proposals).
THRESHOLD = 0.3
NMS_IOU = 0.3


def _anchors(side: int, strides: tuple[int, ...]) -> np.ndarray:
    """(896, 2) anchor centres in [0, 1], in the model's output order."""
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        cells = math.ceil(side / strides[i])
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], -1).reshape(-1, 2)
        out.append(np.repeat(centres, 2 * (j - i), axis=0))  # two anchors per layer of a stride
        i = j
    return np.concatenate(out).astype(np.float32)


class BlazeFace:
    """Whole-frame face proposals: ``detect(frame)`` -> boxes (x, y, w, h, score) in the frame's
    pixels, best first. ONNX Runtime sessions run concurrently, so one instance serves threads."""

    thread_safe = True

    def __init__(self, path: str | Path = MODEL, side: int = INPUT, strides: tuple[int, ...] = STRIDES,
                 threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.side = side
        self.anchors = _anchors(side, strides)
        outputs = self.session.get_outputs()
        if outputs[0].shape[1] != len(self.anchors):
            raise ValueError(f"{path}: expected BlazeFace's {len(self.anchors)} anchors, got {outputs[0].shape}")

    def smallest_face(self, width: int, height: int) -> int:
        """The smallest face (px) it finds in a ``width`` x ``height`` frame."""
        return math.ceil(SMALLEST_SEEN * max(width, height) / self.side)

    def detect(self, frame: np.ndarray, threshold: float = THRESHOLD) -> list[Box]:
        """uint8 (H, W, 3) BGR frame -> its faces' boxes, best first."""
        h, w = frame.shape[:2]
        side = self.side
        scale = side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        square = np.zeros((side, side, 3), np.uint8)  # letterboxed in black, as MediaPipe pads
        ox, oy = (side - size[0]) // 2, (side - size[1]) // 2
        square[oy:oy + size[1], ox:ox + size[0]] = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        blob = cv2.dnn.blobFromImage(square, 1 / 127.5, mean=(127.5, 127.5, 127.5), swapRB=True)
        regressors, scores = self.session.run(None, {"input": blob})
        logits = scores[0, :, 0]
        keep = logits >= math.log(threshold / (1 - threshold))  # sigmoid(logit) >= threshold
        raw, anchors = regressors[0, keep, :4] / side, self.anchors[keep]
        score = 1 / (1 + np.exp(-logits[keep].astype(np.float64)))
        cx, cy = (raw[:, 0] + anchors[:, 0]) * side, (raw[:, 1] + anchors[:, 1]) * side
        bw, bh = raw[:, 2] * side, raw[:, 3] * side
        rects = np.stack([(cx - bw / 2 - ox) / scale, (cy - bh / 2 - oy) / scale, bw / scale, bh / scale], 1)
        boxes = []  # merged as CenterFace's passes are (centerface._Plan.boxes), best first
        for i in np.ravel(cv2.dnn.NMSBoxes(rects.tolist(), score.tolist(), 0.0, NMS_IOU)):
            box = Box(*(int(round(v)) for v in rects[i]), float(score[i]))
            if box.w > 0 and box.h > 0:
                boxes.append(box)
        return boxes

