"""Five landmarks a face and the head pose from them: on made-up points (exact), on a real
portrait turned by known angles and mirrored, and on real clips."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import needs_centerface
from mobilefer.inference.detectors import create_detector
from mobilefer.inference.faces import Box, iou
from mobilefer.inference.pose import NOSE_HEIGHT, TURNED_YAW, head_pose

MONTAGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "intel_asl_webcam_montage_cuts.mp4"
# an upright frontal face: eyes 40 px apart, the nose tip NOSE_HEIGHT of the way to the mouth
FRONTAL = np.array([[80, 100], [120, 100], [100, 100 + 44 * NOSE_HEIGHT], [86, 144], [114, 144]], float)


def turned(points, degrees, about=(100, 120)):
    a = np.radians(degrees)
    rotate = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (points - about) @ rotate.T + about


def mirrored(points, width=200):
    flipped = points.copy()
    flipped[:, 0] = width - flipped[:, 0]
    return flipped[[1, 0, 2, 4, 3]]  # image-left first again


def test_a_frontal_face_has_no_pose_and_a_turned_picture_rolls_by_its_angle():
    pose = head_pose(FRONTAL)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((0, 0, 0), abs=1e-6) and not pose.turned
    for degrees in (-30, -20, 10, 20):  # clockwise on the image is a positive roll
        moved = head_pose(turned(FRONTAL, degrees))
        assert moved.roll == pytest.approx(degrees, abs=1e-6)
        assert (moved.yaw, moved.pitch) == pytest.approx((0, 0), abs=1e-6)


def test_the_nose_off_the_midline_is_a_yaw_and_a_mirror_turns_it_the_other_way():
    right = FRONTAL.copy()
    right[2, 0] += 12  # the nose tip towards the image's right
    pose = head_pose(right)
    assert pose.yaw > 20 and abs(pose.pitch) < 1e-6
    other = head_pose(mirrored(right))
    assert other.yaw == pytest.approx(-pose.yaw) and other.roll == pytest.approx(-pose.roll)
    far = FRONTAL.copy()
    far[2, 0] += 40
    assert head_pose(far).yaw > TURNED_YAW and head_pose(far).turned
    up = FRONTAL.copy()
    up[2, 1] -= 10  # the nose tip nearer the eyes: the head tilts up
    assert head_pose(up).pitch > 10
    assert head_pose(np.zeros((5, 2))) is None and head_pose(None) is None


def test_landmarks_of_a_real_portrait_and_its_roll_when_the_photo_turns(astronaut_bgr):
    """CenterFace's five points lie inside the box, eyes above the mouth; the portrait is nearly
    frontal; turned by 20 degrees either way the roll follows (within 13-27 degrees)."""
    needs_centerface()
    detector = create_detector("centerface")
    box = detector.detect(astronaut_bgr)[0]
    points = np.array(box.landmarks)
    assert ((points[:, 0] >= box.x) & (points[:, 0] <= box.x + box.w)).all()
    assert ((points[:, 1] >= box.y) & (points[:, 1] <= box.y + box.h)).all()
    assert points[0, 0] < points[1, 0] and max(points[:2, 1]) < min(points[3:, 1])  # image-left first; eyes above the mouth
    straight = head_pose(box.landmarks)
    assert abs(straight.yaw) < 10 and abs(straight.roll) < 6
    h, w = astronaut_bgr.shape[:2]
    for degrees in (20, -20):  # getRotationMatrix2D turns counter-clockwise: the face's roll is -degrees
        photo = cv2.warpAffine(astronaut_bgr, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0), (w, h),
                               borderMode=cv2.BORDER_REPLICATE)
        roll = head_pose(detector.detect(photo)[0].landmarks).roll
        assert 13 <= -np.sign(degrees) * roll <= 27, (degrees, roll)


@pytest.mark.skipif(not MONTAGE.is_file(), reason="needs ../shared/data/videos")
def test_a_turned_face_in_real_footage_turns_the_other_way_in_the_mirror():
    needs_centerface()
    detector = create_detector("centerface")
    cap = cv2.VideoCapture(str(MONTAGE))
    pairs, index = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        index += 1
        if index % 15:
            continue
        mirror = detector.detect(frame[:, ::-1].copy())
        for box in detector.detect(frame):
            pose = head_pose(box.landmarks)
            flipped = Box(frame.shape[1] - box.x - box.w, box.y, box.w, box.h)
            twin = max(mirror, key=lambda b: iou(b, flipped), default=None)
            if pose and abs(pose.yaw) > 10 and twin is not None and iou(twin, flipped) > 0.5:
                pairs.append((pose.yaw, head_pose(twin.landmarks).yaw))
    cap.release()
    assert len(pairs) >= 5
    assert np.mean([np.sign(a) != np.sign(b) for a, b in pairs]) >= 0.9, pairs


def test_haar_faces_say_they_have_no_landmarks(astronaut_bgr, bundled_model):
    from mobilefer.inference.recognizer import EmotionRecognizer

    face = EmotionRecognizer.load(bundled_model, detector="haar").recognize(astronaut_bgr)[0]
    assert face.landmarks is None and face.pose is None
    assert face.to_dict()["landmarks"] is None and set(face.columns().values()) == {None}
