"""Faces in video between whole-frame detections: followed, joined, and new after a cut."""
import threading
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import astronaut_head, needs_centerface, room_cut_frames, seat_cut_frames, texture, walk_frames
from mobilefer.inference.detectors import Box, CenterFaceDetector, OneByOne, video_min_face, video_scale
from mobilefer.inference.follow import FaceFollower, _region, _smooth, _window, match_patch
from mobilefer.inference.live import VideoFaces
from mobilefer.inference import recognizer
from mobilefer.inference.plan import RULES
from mobilefer.inference.recognizer import CLASSIFY_FACES, EmotionRecognizer
from mobilefer.inference.tracking import DetectionSchedule, IoUTracker, iou, iou_matrix

INPUT, RETRY_INPUT, REGION, GRID = RULES.input, RULES.retry_input, RULES.region, RULES.grid

MONTAGE = Path(__file__).parents[2] / "shared" / "data" / "videos" / "intel_asl_webcam_montage_cuts.mp4"
MONTAGE_CUTS = [109, 186, 273, 322, 395, 484, 552]  # from the clips' README


def _write(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return str(path)


def _place(frame, patch, left, top):
    frame[top: top + patch.shape[0], left: left + patch.shape[1]] = patch


@pytest.fixture(scope="module")
def rec(bundled_model):
    needs_centerface()
    return EmotionRecognizer.load(bundled_model, detector="centerface")


@pytest.fixture(scope="module")
def walk(tmp_path_factory, astronaut_bgr):
    """helpers.walk_frames as an MPEG-4 file."""
    return _write(tmp_path_factory.mktemp("live") / "walk.mp4", walk_frames(astronaut_bgr))


def test_faces_are_followed_between_whole_frame_detections(rec, walk):
    results = list(rec.stream(walk, detect_every=8))
    every = list(rec.stream(walk, detect_every=1))
    assert ["detect" in r.timing_ms for r in results[:8]] == [True] + [False] * 7
    walker = [next(f for f in r.faces if f.id == 0) for r in results]
    xs = [f.box[0] for f in walker]
    assert all(b > a for a, b in zip(xs, xs[1:]))  # the box moves with the face, frame by frame
    for r, truth in zip(results, every):  # where the detector on every frame puts it
        assert max(iou(Box(*walker[r.frame].box), Box(*f.box)) for f in truth.faces) > 0.6


def test_a_face_coming_into_view_joins_at_the_next_detection(rec, walk):
    results = list(rec.stream(walk, detect_every=6))
    counts = [len(r.faces) for r in results]
    joined = 6  # the whole-frame detection on frame 6 sees it
    assert counts[:joined] == [1] * joined and set(counts[joined:]) == {2}
    assert results[joined].faces[-1].id == 1 and results[joined].faces[-1].box[0] > 480
    # a search that finds a face arriving brings the next one nearer (half the period), then back to every 6th
    assert [r.frame for r in results if "detect" in r.timing_ms] == [0, 6, 9, 15]
    again = list(rec.stream(walk, detect_every=6))  # the same every run
    assert [[f.to_dict() for f in r.faces] for r in again] == [[f.to_dict() for f in r.faces] for r in results]


def test_a_hard_cut_gives_every_face_a_new_id(rec, tmp_path, astronaut_bgr):
    results = list(rec.stream(_write(tmp_path / "cut.mp4", room_cut_frames(astronaut_bgr))))
    assert [r.frame for r in results if r.cut] == [10]
    assert {f.id for r in results[:10] for f in r.faces} == {0}
    assert {f.id for r in results[10:] for f in r.faces} == {1}  # same place, still a new person
    assert "detect" in results[10].timing_ms


def test_a_cut_to_another_person_in_the_same_place_gives_a_new_id(rec, tmp_path, astronaut_bgr):
    """Talking heads filmed in one set: the background stays, another person sits where the last
    one sat. The frame as a whole hardly changes (too little for the cut test over the whole
    picture), but it jumps, and no face followed matches its last patch: a cut."""
    results = list(rec.stream(_write(tmp_path / "set.mp4", seat_cut_frames(astronaut_bgr))))
    assert all(len(r.faces) == 1 for r in results)
    assert [r.frame for r in results if r.cut] == [12]
    assert {r.faces[0].id for r in results[:12]} == {0} and {r.faces[0].id for r in results[12:]} == {1}


def test_whole_frame_detection_schedule():
    schedule = DetectionSchedule(every=4)
    assert [schedule.due() for _ in range(9)] == [True, False, False, False, True, False, False, False, True]
    assert schedule.due(cut=True) and not schedule.due()
    assert all(DetectionSchedule(every=1).due() for _ in range(3))
    schedule = DetectionSchedule(every=4)
    assert schedule.due()
    schedule.found(arriving=True)  # faces came into view: the next search after half the period
    assert [schedule.due() for _ in range(2)] == [False, True]
    schedule.found(arriving=False)
    assert [schedule.due() for _ in range(4)] == [False, False, False, True]
    one = DetectionSchedule(every=1)
    one.due()
    one.found(arriving=True)
    assert one.due()  # never less than one frame


def test_hd_whole_frame_search_looks_at_half_a_megapixel():
    assert video_min_face(640, 480, 20, 24) == 20  # SD: as asked
    assert video_min_face(1280, 720, 20, 24) == 32
    assert video_min_face(1920, 1080, 20, 24) == 48
    assert video_min_face(1920, 1080, 60, 24) == 60  # asking for larger faces still holds
    assert video_scale(640, 480) == 1 and video_scale(1920, 1080) == 0.5


def test_a_face_growing_into_view_is_reported_before_the_next_whole_frame_search(bundled_model, tmp_path,
                                                                               astronaut_bgr):
    """Someone walking towards the camera: a face under the reported size on the first frame is
    followed unseen and reported once it is large enough, not at the next whole-frame search."""
    needs_centerface()
    rec = EmotionRecognizer.load(bundled_model, detector="centerface", min_face=34)  # reported: boxes >= 27 px
    frames = []
    for i in range(16):  # a box of ~24 px on the first frame (followed unseen from 20 px), ~35 on the last
        frame = np.full((480, 640, 3), 90, np.uint8)
        _place(frame, astronaut_head(astronaut_bgr, 20 + i), 300 - i, 200 - i)
        frames.append(frame)
    clip = _write(tmp_path / "grow.mp4", frames)
    results = list(rec.stream(clip, detect_every=16))  # one whole-frame search: the first frame
    every = list(rec.stream(clip, detect_every=1))
    assert not every[0].faces and not results[0].faces  # too small to report on the first frame
    shown = [r.frame for r in results if r.faces]
    assert shown and shown == list(range(shown[0], 16))  # reported from some frame on, every frame after
    assert {f.id for r in results for f in r.faces} == {0}  # the face the first search found, unseen
    for r in results[shown[0]:]:
        assert max(iou(Box(*r.faces[0].box), Box(*t.box)) for t in every[r.frame].faces) > 0.5


class _Fake(OneByOne):
    """What every detector declares (faces.FaceDetector), for the made-up ones below."""

    name, smallest_seen, thread_safe, min_face, threshold, windows, proposals = "fake", 24, False, 20, None, False, False


class _OneFace(_Fake):
    """A detector with one 100 px face in a 640x480 frame, found again in each follow square."""

    def __init__(self):
        self.whole = []  # min_face of each whole-frame search

    def detect(self, image, *, min_face=None, max_faces=None, upscale=True, confidence=None, min_box=None,
               scale=None):
        h, w = image.shape[:2]
        if w == 640:
            self.whole.append(min_face)
            return [Box(270, 190, 100, 100, 0.9)]
        return [Box(w // 3, h // 3, w // 3, h // 3, 0.9)] if w == INPUT else []  # a square, no glance


def test_whole_frame_searches_between_full_ones_look_for_faces_the_size_of_those_followed():
    detector = _OneFace()
    video = VideoFaces(detector, IoUTracker(), every=2, min_face=20)
    frame = np.zeros((480, 640, 3), np.uint8)
    for _ in range(2 * (RULES.full_search_every + 2)):
        tracks, _, _ = video(frame)
        assert [t.id for t in tracks] == [0]
    reduced = int(RULES.search_fraction * 100)
    full = [0, RULES.full_search_every]
    assert detector.whole == [20 if i in full else reduced for i in range(RULES.full_search_every + 2)]


def test_a_followed_face_is_looked_at_as_the_whole_frame_search_looks_at_it():
    small, large = Box(300, 200, 20, 20), Box(200, 100, 200, 200)
    (x0, y0, x1, y1), ratio = _region(small, 640, 480, video_scale(640, 480))
    assert ratio == 1 and x1 - x0 == INPUT and y1 - y0 == INPUT  # unscaled, with INPUT px around it
    (x0, y0, x1, y1), ratio = _region(large, 640, 480, 1.0)
    assert ratio == pytest.approx(INPUT / (REGION * 200)) and x1 - x0 == 480  # as wide as the frame allows
    hd = video_scale(1920, 1080)
    (x0, y0, x1, y1), ratio = _region(Box(900, 500, 40, 40), 1920, 1080, hd)
    assert ratio == pytest.approx(hd) and round((x1 - x0) * ratio) == INPUT  # HD: at the search's scale


def test_a_large_face_is_looked_at_in_a_smooth_copy_as_opencv_averages_it():
    """follow._smooth averages whole blocks first: OpenCV's area reduction of the blocks it keeps
    (all but a few pixels at the far edges), within two grey levels on average on a picture as
    smooth as a face at that scale, exactly where the scale is a whole factor."""
    picture = cv2.GaussianBlur(cv2.resize(texture(5), (1035, 1035)), (0, 0), 12)
    for side in (1035, 300, 150):
        square, ratio = picture[:side, :side], INPUT / side
        kept = side // int(1 / ratio) * int(1 / ratio)
        assert side - kept < side / INPUT
        copy = _smooth(square, ratio)
        area = cv2.resize(square[:kept, :kept], copy.shape[1::-1], interpolation=cv2.INTER_AREA)
        assert copy.shape[0] == round(kept * ratio) and np.abs(copy.astype(int) - area).mean() < 2.0
    whole = picture[:384, :384]
    assert np.array_equal(_smooth(whole, 0.25), cv2.resize(whole, (96, 96), interpolation=cv2.INTER_AREA))


def test_a_crowd_is_matched_with_the_same_overlaps_box_by_box():
    rng = np.random.default_rng(0)
    boxes = [Box(*map(int, rng.integers(0, 200, 2)), *map(int, rng.integers(0, 60, 2))) for _ in range(40)]
    boxes += [boxes[3], Box(5, 5, 0, 0)]  # a box twice (overlap 1) and one with no area
    overlaps = iou_matrix(boxes, boxes[:30])
    assert overlaps.shape == (42, 30) and 0 < np.count_nonzero(overlaps) < overlaps.size
    assert all(overlaps[i, j] == iou(a, b) for i, a in enumerate(boxes) for j, b in enumerate(boxes[:30]))
    assert iou_matrix([], boxes).shape == (0, 42)


def test_followed_tracks_keep_ids_and_the_older_wins_a_shared_face():
    tracker = IoUTracker()
    a, b = tracker.update([Box(0, 0, 50, 50), Box(200, 0, 50, 50)])
    seen = tracker.moved([a, b], [Box(10, 0, 50, 50), Box(12, 0, 50, 50)])  # both found the same face
    assert seen == [a] and b.missed == 1
    back = tracker.extend([Box(200, 2, 50, 50)])  # b's face seen again where it was
    assert back == [b] and b.missed == 0
    assert tracker.extend([Box(400, 0, 50, 50)])[0].id == 2


@pytest.mark.slow
@pytest.mark.skipif(not MONTAGE.is_file(), reason="the shared real clips are not beside this checkout")
def test_every_known_cut_of_the_real_montage_starts_new_faces(bundled_model):
    needs_centerface()
    results = list(EmotionRecognizer.load(bundled_model).stream(str(MONTAGE)))
    assert [r.frame for r in results if r.cut] == MONTAGE_CUTS
    seen: set[int] = set()
    for r in results:
        ids = {f.id for f in r.faces}
        if r.frame in MONTAGE_CUTS:
            assert ids and not ids & seen, f"frame {r.frame}: an id from before the cut"
        seen |= ids


def test_haar_follows_faces_between_whole_frame_detections(bundled_model, walk):
    rec = EmotionRecognizer.load(bundled_model, detector="haar")
    results = list(rec.stream(walk, detect_every=6))
    assert len(results) == 16 and all(r.faces for r in results)
    assert [r.frame for r in results if "detect" in r.timing_ms] == [0, 6, 12]


def _frames(path):
    cap, frames = cv2.VideoCapture(path), []
    while (got := cap.read())[0]:
        frames.append(got[1])
    return frames


class _Recording(_Fake):
    """A real detector that records the thread each whole-frame search ran on."""

    def __init__(self, detector):
        self.inner, self.threads = detector, []
        self.name, self.smallest_seen, self.thread_safe = detector.name, detector.smallest_seen, True
        self.min_face, self.threshold = detector.min_face, detector.threshold

    def detect(self, image, **kwargs):
        if image.shape[1] == 640:
            self.threads.append(threading.current_thread().name)
        return self.inner.detect(image, **kwargs)


def test_a_search_started_early_gives_the_tracks_a_search_on_its_own_frame_gives(rec, walk):
    """A file's scheduled whole-frame searches start frames ahead, on another thread, and change
    nothing: the same ids and boxes as each search run on its own frame."""
    frames = _frames(walk)

    def run(read_ahead):
        detector = _Recording(rec.detector)
        video = VideoFaces(detector, IoUTracker(), every=6, min_face=20,
                           ahead=(lambda k: frames[i + k] if i + k < len(frames) else None) if read_ahead else None)
        out = []
        for i, frame in enumerate(frames):
            tracks, _, _ = video(frame)
            out.append([(t.id, t.box) for t in tracks])
        return out, detector.threads

    early, threads = run(True)
    # frames 0 (the first), 6 (it finds the second face: the next after 3), 9 and 15
    assert threads == ["MainThread"] + ["mobilefer-search_0"] * 3
    assert early == run(False)[0] and {i for faces in early for i, _ in faces} == {0, 1}


def test_a_followed_face_is_matched_from_its_last_patch_where_it_moved():
    before = texture()
    after = np.roll(before, (3, 5), axis=(0, 1))  # everything moved 5 px right, 3 px down
    box = Box(200, 150, 80, 90, 0.9)
    moved = match_patch(before, after, box)
    assert moved is not None and abs(moved.x - 205) <= 2 and abs(moved.y - 153) <= 2
    assert (moved.w, moved.h, moved.score) == (80, 90, 0.9)
    assert match_patch(before, texture(1), box) is None  # another picture: no match
    flat = np.full((480, 640, 3), 128, np.uint8)
    assert match_patch(flat, flat, box) is None  # nothing to match on


class _Faces(_Fake):
    """A detector that sees ``boxes`` in a 640x480 frame, and a face in the middle of each
    follow square; it counts the follow squares it is asked about."""

    name, smallest_seen, thread_safe = "fake", 24, True

    def __init__(self, boxes):
        self.boxes, self.squares = boxes, 0

    def detect(self, image, *, min_face=None, max_faces=None, upscale=True, confidence=None, min_box=None,
               scale=None):
        h, w = image.shape[:2]
        if w == 640:
            return list(self.boxes)
        if w == INPUT:
            self.squares += 1
            return [Box(w // 3, h // 3, w // 3, h // 3, 0.9)]
        return []


def _squares_per_frame(detector, video, frame, frames=6):
    """After the whole-frame search, the detector squares each of ``frames`` still frames asked
    for, and the tracks of the last."""
    video(frame)  # the whole-frame search
    counts = []
    for _ in range(frames):
        before = detector.squares
        tracks, _, _ = video(frame)
        counts.append(detector.squares - before)
    return counts, tracks


def test_followed_faces_take_turns_with_the_detector_and_are_matched_between():
    boxes = [Box(100, 100, 90, 90, 0.9), Box(400, 200, 90, 90, 0.9)]
    detector = _Faces(boxes)
    video = VideoFaces(detector, IoUTracker(), every=100, min_face=20)
    frame = texture()
    counts, tracks = _squares_per_frame(detector, video, frame)
    assert counts == [1] * 6  # one of the two faces each frame, in turn
    assert [t.box for t in tracks] == boxes and [t.id for t in tracks] == [0, 1]
    covered = frame.copy()
    covered[100:190, 100:190] = texture(1)[:90, :90]  # face 0 changed beyond a match: the detector looks
    before = detector.squares
    video(covered)
    video(covered)
    assert detector.squares - before == 3


def test_a_crowd_costs_a_few_detector_squares_a_frame():
    boxes = [Box(40 + 150 * (i % 4), 40 + 150 * (i // 4), 40, 40, 0.9) for i in range(12)]
    detector = _Faces(boxes)
    counts, tracks = _squares_per_frame(detector, VideoFaces(detector, IoUTracker(), every=100, min_face=20), texture())
    assert counts == [RULES.check_faces] * 6 and len(tracks) == 12  # 12 faces, each every 3rd frame; the others matched


def _classified_per_frame(bundled_model, tmp_path, faces: int, frames: int) -> tuple[list[list[int]], list]:
    """Which faces (by x) each frame of a still video of ``faces`` faces classified, and its results."""
    boxes = [Box(40 + 70 * i, 200, 40, 40, 0.9) for i in range(faces)]  # follow squares inside the frame
    rec = EmotionRecognizer(EmotionRecognizer.load(bundled_model, detector="none").classifier, _Faces(boxes))
    asked = []
    crops = rec.crops
    rec.crops = lambda frame, found: asked.append([b.x for b in found]) or crops(frame, found)
    results = list(rec.stream(_write(tmp_path / "group.mp4", [texture()] * frames), detect_every=100))
    assert all(len(r.faces) == faces for r in results)
    return asked, results


def _longest_wait(asked: list[list[int]]) -> int:
    last, longest = {x: 0 for x in asked[0]}, 0
    for frame_index, xs in enumerate(asked[1:], start=1):
        last.update((x, frame_index) for x in xs)
        longest = max(longest, max(frame_index - seen for seen in last.values()))
    return longest


def test_a_group_is_classified_one_known_face_a_frame_in_turn(bundled_model, tmp_path):
    asked, results = _classified_per_frame(bundled_model, tmp_path, faces=5, frames=11)
    assert len(asked[0]) == 5 and all(len(xs) == CLASSIFY_FACES == 1 for xs in asked[1:])
    assert _longest_wait(asked) == 4  # each face every 5th frame, in turn
    assert results[0].classified and not any(r.classified for r in results[1:])


def test_a_crowd_is_classified_often_enough_that_no_face_waits_long(bundled_model, tmp_path, monkeypatch):
    monkeypatch.setattr(recognizer, "CLASSIFY_WITHIN", 2)  # 5 faces, each within 2 frames: 3 a frame
    monkeypatch.setattr(recognizer, "CLASSIFY_RATE", 30)  # a face may be classified again on the next frame
    asked, _ = _classified_per_frame(bundled_model, tmp_path, faces=5, frames=7)
    assert all(len(xs) == 3 for xs in asked[1:]) and _longest_wait(asked) <= 2


def test_one_face_is_classified_ten_times_a_second_and_carried_between(bundled_model, tmp_path):
    asked, results = _classified_per_frame(bundled_model, tmp_path, faces=1, frames=7)  # 30 frames/s
    assert len(asked) == 3 and [r.classified for r in results] == [True, False, False] * 2 + [True]
    assert all(r.faces[0].probs == results[0].faces[0].probs for r in results[1:3])  # carried over


def test_the_frames_still_to_come_of_a_file_can_be_looked_at():
    from mobilefer.inference.sources import Frame, Lookahead

    frames = Lookahead(iter([Frame("clip", i, i / 30, None) for i in range(4)]))
    assert next(frames).index == 0
    assert frames.peek(2).index == 2 and frames.peek(1).index == 1 and frames.peek(3).index == 3
    assert frames.peek(4) is None
    assert [f.index for f in frames] == [1, 2, 3]


def test_haar_never_searches_on_a_second_thread(bundled_model):
    haar = EmotionRecognizer.load(bundled_model, detector="haar").detector
    assert VideoFaces(haar, IoUTracker(), every=10, min_face=20, ahead=lambda k: None).ahead is None


class _Script(_Fake):
    """A detector whose whole-frame search of the i-th frame finds ``frames[i]`` (boxes with any
    score, kept down to the confidence asked for), with CenterFace's threshold of 0.5."""

    name, smallest_seen, threshold = "fake", 24, 0.5

    def __init__(self, frames):
        self.frames, self.asked = iter(frames), []

    def detect(self, image, *, min_face=None, max_faces=None, upscale=True, confidence=None, min_box=None,
               scale=None):
        self.asked.append(confidence)
        kept = 0.5 if confidence is None else confidence
        return [b for b in next(self.frames) if b.score >= kept and min(b.w, b.h) >= (min_box or 0)]


def _reported(frames) -> list[list[int]]:
    """The ids reported on each frame of ``frames`` (whole-frame boxes) detected on every frame."""
    detector = _Script(frames)
    video = VideoFaces(detector, IoUTracker(), every=1, min_face=20)
    image = np.zeros((480, 640, 3), np.uint8)
    return [[t.id for t in video(image)[0]] for _ in frames]


def test_a_face_at_the_size_limit_is_not_reported_on_and_off():
    # min_face 20: boxes of 16 px and more are reported; a reported face stays down to 14 px
    sides = [15, 16, 15, 14, 15, 13, 15, 16]
    reported = _reported([[Box(300, 200, side, side + 2, 0.9)] for side in sides])
    assert [bool(ids) for ids in reported] == [False, True, True, True, True, False, False, True]


def test_a_known_face_is_kept_on_weaker_evidence_than_a_new_one():
    known, new = Box(100, 100, 60, 60, 0.9), Box(400, 200, 60, 60, 0.45)
    weak = Box(102, 101, 60, 60, 0.45)
    frames = [[known], [weak, new], [weak, new], [], [weak]]
    assert _reported(frames) == [[0], [0], [0], [], []]  # the new face never scores 0.5; one gone stays gone


class _WhereLooked(_Fake):
    """A detector that sees one face at ``face`` (x, y, side) with the i-th call's score
    ``scores[i]``, in whole frames and in the squares following looks at (at the frame's scale):
    each pixel of the frames it is given holds its own coordinates (see :func:`_coordinates`), so a
    square says where it is. It sees nothing in a thumbnail."""

    name, smallest_seen, threshold = "fake", 24, 0.5

    def __init__(self, face, scores):
        self.face, self.scores = face, iter(scores)

    def detect(self, image, *, min_face=None, max_faces=None, upscale=True, confidence=None, min_box=None,
               scale=None):
        if scale is None and image.shape[:2] != (480, 640):
            return []
        b, g, r = (int(v) for v in image[0, 0])
        x0, y0 = b | (r & 3) << 8, g | (r >> 2) << 8
        x, y, side = self.face
        score = next(self.scores)
        return [Box(x - x0, y - y0, side, side, score)] if score >= (confidence or 0.5) else []


def _coordinates(width=640, height=480):
    """A frame whose pixel (x, y) holds x and y in its three bytes."""
    y, x = np.mgrid[:height, :width]
    return np.dstack([x & 255, y & 255, (x >> 8) | (y >> 8) << 2]).astype(np.uint8)


def test_a_face_weak_at_a_search_is_followed_unseen_until_a_look_sees_it_as_a_new_face_needs():
    # a whole-frame search on frame 0 scores it 0.45 (a new face needs 0.5), looks on the frames
    # after it 0.45, then 0.8 (the detector looks on every frame: no patch matching between); at
    # 0.3 the face is lost (its first look and the larger one both miss it)
    detector = _WhereLooked((300, 200, 24), [0.45, 0.45, 0.8, 0.8, 0.45, 0.3, 0.3])
    video = VideoFaces(detector, IoUTracker(), every=100, min_face=20, rules=replace(RULES, check_every=1))
    frame = _coordinates()
    reported = [[t.id for t in video(frame)[0]] for _ in range(6)]
    assert reported == [[], [], [0], [0], [0], []]  # reported on weak evidence once known, as any face


@pytest.mark.parametrize("again, reported", [
    (0.8, [[0], [], [0], [0]]),  # looked for again on frame 2: as sure as a new face needs, resumed
    (0.45, [[0], [], [], []]),  # only on weak evidence (on frames 2 and 3): stays lost
])
def test_a_face_lost_by_following_is_looked_for_again_on_the_next_frames(again, reported):
    assert RULES.look_again == 3
    # frame 0: the search finds it; frame 1: its look and the larger one miss it; then looks again
    detector = _WhereLooked((300, 200, 24), [0.9, 0.3, 0.3, again, again])
    video = VideoFaces(detector, IoUTracker(), every=100, min_face=20, rules=replace(RULES, check_every=1))
    frame = _coordinates()
    assert [[t.id for t in video(frame)[0]] for _ in range(4)] == reported


def test_a_weak_box_only_continues_a_track_seen_on_the_last_frame():
    tracker = IoUTracker()
    tracker.update([Box(0, 0, 50, 50, 0.9), Box(200, 0, 50, 50, 0.9)])
    tracker.update([Box(0, 0, 50, 50, 0.9)])  # the second face is missed
    tracks = tracker.update([Box(2, 0, 50, 50, 0.4), Box(200, 0, 50, 50, 0.4), Box(400, 0, 50, 50, 0.4)],
                            confidence=0.5)
    assert [t.id for t in tracks] == [0]
    assert [t.id for t in tracker.update([Box(200, 0, 50, 50, 0.6)], confidence=0.5)] == [1]  # strong: rejoins


class _MissesSmallSquares(_Fake):
    """A detector whose whole-frame search finds one 20 px face, and which finds it again only in
    follow squares of RETRY_INPUT px (it misses it in the first, INPUT px one)."""

    name, smallest_seen, threshold, windows = "fake", 24, 0.5, True
    pass_size = staticmethod(CenterFaceDetector.pass_size)

    def __init__(self, face):
        self.face, self.looked = face, []

    def detect(self, image, *, min_face=None, max_faces=None, upscale=True, confidence=None, min_box=None,
               scale=None, window=None):
        if window is None:
            return [self.face]
        self.looked.append(window)
        return [Box(301, 203, 20, 20, 0.9)] if window[2] - window[0] == RETRY_INPUT else []


def test_a_face_the_first_square_misses_is_looked_for_again_in_a_larger_one_both_on_the_search_lattice():
    face = Box(301, 203, 20, 20, 0.9)
    detector = _MissesSmallSquares(face)
    video = VideoFaces(detector, IoUTracker(), every=100, min_face=4)
    frame = texture()
    for _ in range(3):  # the whole-frame search, a patch match, the detector's turn
        tracks, _, _ = video(frame)
    assert [t.id for t in tracks] == [0] and [w[2] - w[0] for w in detector.looked] == [INPUT, RETRY_INPUT]
    for x0, y0, x1, y1 in detector.looked:
        assert (x0 % GRID, y0 % GRID) == (0, 0)
        assert x0 <= face.x and face.x + face.w <= x1 and y0 <= face.y and face.y + face.h <= y1


def test_a_follow_window_is_in_the_search_pixels_of_any_frame_size():
    """HD frames and 640x360 (looked at as 640x384: the network's sides are multiples of 32) are
    resized for the whole-frame search; a followed face's window is a square of those pixels."""
    for (w, h), face in {(1920, 1080): Box(901, 503, 40, 40), (640, 360): Box(301, 203, 20, 20),
                         (1280, 720): Box(1250, 700, 30, 20)}.items():
        size = CenterFaceDetector.pass_size(w, h, video_scale(w, h))
        assert size[0] % 32 == 0 and size[1] % 32 == 0
        sx, sy = size[0] / w, size[1] / h
        for side in (INPUT, RETRY_INPUT):
            x0, y0, x1, y1 = _window(face, w, h, size, side)
            assert x1 - x0 == y1 - y0 == side and 0 <= x0 and x1 <= size[0] and 0 <= y0 and y1 <= size[1]
            assert x0 <= face.x * sx and (face.x + face.w) * sx <= x1  # the face inside it, as scaled
            assert y0 <= face.y * sy and (face.y + face.h) * sy <= y1
            assert (x0 % GRID, y0 % GRID) == (0, 0)  # moved inside the pass, still on it: its sides are multiples


@pytest.mark.parametrize("size", [(1280, 720), (640, 360)])
def test_a_window_of_the_search_finds_the_face_where_the_whole_frame_search_does(rec, astronaut_bgr, size):
    """CenterFace on a window of the whole-frame search's pixels: the whole pass as one window
    gives that pass's boxes, and a face's window on the lattice gives its box within 2 px; the
    follower looks at a face at that scale through such a window."""
    w, h = size
    detector = rec.detector
    scale = video_scale(w, h)
    pass_w, pass_h = detector.pass_size(w, h, scale)
    min_face = video_min_face(w, h, 20, detector.smallest_seen)
    frame = cv2.resize(texture(3), (w, h), interpolation=cv2.INTER_LINEAR)
    _place(frame, astronaut_head(astronaut_bgr, 60), 301, 203)
    whole = detector.detect(frame, upscale=False, min_face=min_face, scale=scale)
    assert len(whole) == 1
    face = whole[0]
    windowed = detector.detect(frame, upscale=False, min_face=min_face, scale=scale, window=(0, 0, pass_w, pass_h))
    assert [b.as_list() for b in windowed] == [face.as_list()]
    window = _window(face, w, h, (pass_w, pass_h), 2 * RETRY_INPUT)
    near = detector.detect(frame, upscale=False, min_face=min_face, scale=scale, window=window)
    # within 2 px: the network sees less around a window's face than over the whole pass, and
    # CenterFace's 8-bit layers round that difference up (its fp32 original: within a pixel)
    assert len(near) == 1 and np.abs(np.array(near[0].as_list()) - face.as_list()).max() <= 2
    followed, = FaceFollower(detector)._look(frame, [Box(face.x + 4, face.y - 3, face.w, face.h)], 4, INPUT)
    assert followed is not None and iou(followed, face) > 0.8


def test_faces_looked_for_in_one_call_get_the_boxes_one_call_each_gives(rec, astronaut_bgr):
    """detect_many runs the network once for all squares of one size (and once per other size):
    the same boxes as a detect() call for each, windows of the search's pixels, smooth copies,
    and squares where nothing is found alike."""
    detector = rec.detector
    frame = texture(5)
    for left, top, side in ((40, 60, 30), (300, 220, 50), (420, 40, 110)):
        _place(frame, astronaut_head(astronaut_bgr, side), left, top)
    faces = detector.detect(frame, upscale=False, min_face=20)
    assert len(faces) == 3
    follower = FaceFollower(detector)
    boxes = faces + [Box(560, 400, 30, 30)]  # the last: a square with no face
    calls = []
    many = detector.detect_many
    try:
        detector.detect_many = lambda looks: calls.append(len(looks)) or many(looks)
        together = follower.follow(frame, boxes, 4)
    finally:
        del detector.detect_many
    assert calls[0] == 4  # the four squares in one call; the one with no face looked for again
    one_each = [follower._look(frame, [box], 4, INPUT)[0] or follower._look(frame, [box], 4, RETRY_INPUT)[0]
                for box in boxes]
    assert together == one_each and together[3] is None and all(together[:3])
    looks = [(frame, {"upscale": False, "min_face": 20}), (frame[:200, :200], {"upscale": False, "min_face": 20}),
             (frame, {"upscale": False, "min_face": 20, "scale": 1.0, "window": (0, 0, 96, 96)})]
    assert detector.detect_many(looks) == [detector.detect(image, **options) for image, options in looks]



def test_drawing_on_a_frame_after_it_is_given_changes_nothing_found_on_the_next(rec, astronaut_bgr):
    """A caller draws on the frame it was given (FrameResult.image is for drawing) while the next
    frame is matched against it: the tracks must be those found without any drawing."""
    from mobilefer.inference.draw import draw_faces
    from mobilefer.inference.recognizer import Face

    def run(draw: bool):
        video = VideoFaces(rec.detector, IoUTracker(), every=100, min_face=20)
        found = []
        for frame in walk_frames(astronaut_bgr):
            tracks, _, _ = video(frame)
            found.append([(t.id, t.box) for t in tracks])
            if draw:
                draw_faces(frame, [Face(tuple(t.box.as_list()), "surprise", 0.99, {}, t.id) for t in tracks])
                frame[:] = texture(1)  # or anything at all: the caller's frame is the caller's
        return found

    plain = run(draw=False)
    assert all(ids for ids in plain)  # the walker is followed on every frame
    assert run(draw=True) == plain


def test_predict_with_out_finds_what_predict_without_it_finds(bundled_model, walk, tmp_path):
    from mobilefer.inference.predict import PredictConfig, predict

    def faces(**out):
        name = tmp_path / f"faces{len(out)}.jsonl"
        predict(PredictConfig(source=walk, model=bundled_model, detector="centerface", json=str(name), **out))
        return [line for line in name.read_text().splitlines()]

    plain = faces()
    assert len(plain) == 16
    assert faces(out=str(tmp_path / "annotated")) == plain
    assert (tmp_path / "annotated" / "walk.mp4").stat().st_size > 0


def test_a_video_typed_in_a_terminal_runs_with_a_progress_bar(bundled_model, walk, tmp_path):
    """``mobilefer predict clip.mp4`` as a person types it: stdout and stderr on a terminal (a pty)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    src = Path(__file__).resolve().parents[1] / "src"
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a terminal window's size
    child = subprocess.Popen([sys.executable, "-m", "mobilefer.cli", "predict", walk, "--model", bundled_model,
                              "--json", str(tmp_path / "walk.jsonl")], stdin=terminal, stdout=terminal,
                             stderr=terminal, env={**os.environ, "PYTHONPATH": str(src)}, cwd=tmp_path)
    os.close(terminal)
    screen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    text = screen.decode(errors="replace")
    assert child.wait(timeout=120) == 0, text
    assert "Traceback" not in text and "16 video frames" in text
    assert "/16 [" in text  # the bar, knowing the clip's length


def test_followed_faces_carry_landmarks_and_pose_on_every_frame(rec, walk):
    """Between whole-frame searches a face's landmarks move with its box (a patch match) or come
    from the look that found it: every reported face has them, inside its box."""
    results = list(rec.stream(walk, detect_every=8))
    walker = [next(f for f in r.faces if f.id == 0) for r in results]
    assert all(f.landmarks is not None and f.pose is not None for f in walker)
    for face in walker:
        x, y, w, h = face.box
        points = np.array(face.landmarks)
        assert ((points[:, 0] > x) & (points[:, 0] < x + w) & (points[:, 1] > y) & (points[:, 1] < y + h)).all()
        assert abs(face.pose.roll) < 10
    nose = np.array([f.landmarks[2][0] for f in walker])
    assert np.abs(np.diff(nose) - 9).max() <= 4  # the nose tip walks right 9 px a frame, as the face does
