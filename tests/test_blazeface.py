"""BlazeFace (the bundled MediaPipe model) and the video searches that start from its proposals."""
import numpy as np
import pytest
from helpers import needs_centerface, walk_frames

from conftest import ASTRONAUT_FACE
from mobilefer.inference.blazeface import MODEL, SMALLEST_SEEN, BlazeFace
from mobilefer.inference.faces import Box, iou
from mobilefer.inference.live import VideoFaces
from mobilefer.inference.tracking import IoUTracker

pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="the bundled blazeface_back.onnx is missing")


@pytest.fixture(scope="module")
def blaze():
    return BlazeFace()


def test_it_finds_the_astronaut_where_she_is_in_any_frame_shape(blaze, astronaut_bgr):
    (box,) = blaze.detect(astronaut_bgr)
    assert iou(box, Box(*ASTRONAUT_FACE)) > 0.6 and box.score > 0.8
    for pad in ((200, 0), (0, 300)):  # letterboxed either way: the box maps back to the frame
        frame = np.full((512 + pad[0], 512 + pad[1], 3), 30, np.uint8)
        frame[pad[0]:, pad[1]:] = astronaut_bgr
        (moved,) = blaze.detect(frame)
        # within a twentieth of the face: the frame is looked at smaller, the same face less sharply
        assert abs(moved.x - pad[1] - box.x) <= 6 and abs(moved.y - pad[0] - box.y) <= 6
        assert abs(moved.w - box.w) <= 6


def test_no_face_is_no_proposal(blaze):
    assert blaze.detect(np.full((480, 640, 3), 90, np.uint8)) == []


def test_the_smallest_face_it_finds_scales_with_the_frame(blaze):
    assert blaze.smallest_face(640, 480) == 28 == blaze.smallest_face(480, 640)
    assert blaze.smallest_face(1280, 720) == 55 and SMALLEST_SEEN == 11


class _Spy:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def detect(self, frame):
        self.calls += 1
        return self.inner.detect(frame)

    def smallest_face(self, width, height):
        return self.inner.smallest_face(width, height)


def test_searches_for_large_faces_start_from_proposals_and_find_what_the_detector_finds(blaze, astronaut_bgr,
                                                                                      bundled_model):
    """The walking face (90 px) makes the searches between full ones look for faces of 45 px and
    up: those take BlazeFace's proposals, and CenterFace's looks around them give the boxes,
    landmarks and ids that its own searches give."""
    needs_centerface()
    from mobilefer.inference.recognizer import EmotionRecognizer

    rec = EmotionRecognizer.load(bundled_model, detector="centerface")
    frames = walk_frames(astronaut_bgr)

    def run(proposer):
        video = VideoFaces(rec.detector, IoUTracker(), every=2, min_face=20, proposer=proposer)
        return [[(t.id, t.box) for t in video(frame)[0]] for frame in frames]

    spy = _Spy(blaze)
    proposed, own = run(spy), run(None)
    assert spy.calls >= 2  # the searches between full ones (every third, and the first, are full)
    assert [[i for i, _ in faces] for faces in proposed] == [[i for i, _ in faces] for faces in own]
    for a, b in zip(proposed, own):
        for (_, box_a), (_, box_b) in zip(a, b):
            assert iou(box_a, box_b) > 0.8 and box_a.landmarks is not None


def test_a_recognizer_takes_proposals_with_centerface_only(bundled_model):
    from mobilefer.inference.recognizer import EmotionRecognizer

    assert not EmotionRecognizer.load(bundled_model, detector="haar").proposals
    needs_centerface()
    assert EmotionRecognizer.load(bundled_model, detector="centerface").proposals
