import csv
import json
import time

import cv2
import numpy as np
import pytest

from conftest import ASTRONAUT_FACE
from mobilefer.cli import main
from mobilefer.inference.faces import Box
from mobilefer.inference.predict import PredictConfig, predict
from mobilefer.inference.recognizer import VIDEO_SMOOTH, EmotionRecognizer
from mobilefer.inference.sources import SourceError, iter_frames

FRAMES = 24


def write_video(path, astronaut_bgr, fourcc="mp4v", frames=FRAMES):
    """640x480, the astronaut's head drifting right and growing: one face to track."""
    x, y, w, h = ASTRONAUT_FACE
    head = astronaut_bgr[y - 30: y + h + 30, x - 30: x + w + 30]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (640, 480))
    for i in range(frames):
        frame = np.full((480, 640, 3), 70, np.uint8)
        patch = cv2.resize(head, None, fx=1.0 + i * 0.02, fy=1.0 + i * 0.02)
        left, top = 60 + 8 * i, 80
        frame[top: top + patch.shape[0], left: left + patch.shape[1]] = patch
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory, astronaut_bgr):
    return write_video(tmp_path_factory.mktemp("video") / "drift.mp4", astronaut_bgr)


@pytest.fixture(scope="module")
def rec(bundled_model):
    return EmotionRecognizer.load(bundled_model)


def test_tracking_keeps_one_id(video, rec):
    results = list(rec.stream(str(video)))
    assert len(results) == FRAMES
    assert all(len(r.faces) == 1 for r in results)
    assert {r.faces[0].id for r in results} == {0}
    assert results[-1].faces[0].box[0] > results[0].faces[0].box[0] + 100  # it moved, the id stayed
    assert results[3].time_s == pytest.approx(0.3)


def test_smoothing_steadies_the_probabilities(video, rec):
    def spread(results):
        p = np.array([[r.faces[0].probs[c] for c in rec.classes] for r in results])
        return np.abs(np.diff(p, axis=0)).sum()

    raw = list(rec.stream(str(video), smooth="none"))
    smooth = list(rec.stream(str(video), smooth="window:8"))
    default = list(rec.stream(str(video)))  # a video is smoothed unless told not to be
    assert spread(smooth) < spread(raw) and spread(default) < spread(raw)
    assert [r.faces[0].probs for r in default] == [r.faces[0].probs for r in rec.stream(str(video), smooth=VIDEO_SMOOTH)]


def test_a_known_face_is_read_in_the_view_its_last_classification_did_not_read(video, rec):
    """VIDEO_VIEWS: a video's new face is read as it is and mirrored, then each classification
    (10 frames/s: each frame's face is due) reads it in the other view than the last, and its
    probabilities average that view with the last one; without an average of its classifications
    (smooth none) both views every time, as a photo's, and so where the last view is over
    VIEW_PAIR_WITHIN s old (--every 1s)."""
    from mobilefer.data.preprocess import preprocess

    real, calls = rec.classifier, []

    class Spy:
        meta = real.meta

        def __call__(self, x, flip=True):
            calls.append((flip, x.copy(), real(x, flip)))
            return calls[-1][2]

    rec.classifier = Spy()
    try:
        results = list(rec.stream(str(video), smooth="window:1000"))[:6]  # the plain mean of every classification
        read = calls[:6]
        calls.clear()
        list(rec.stream(str(video), smooth="none"))
        alone = calls[:]
        calls.clear()
        list(rec.stream(str(video), every="1s"))
    finally:
        rec.classifier = real
    assert [flip for flip, _, _ in alone] == [True] * FRAMES
    assert [(flip, len(x)) for flip, x, _ in calls] == [(False, 2)] * 3  # frames 0, 10, 20: both views each
    assert np.array_equal(calls[1][1][1], calls[1][1][0][..., ::-1])
    assert [flip for flip, _, _ in read] == [False] * 6
    views = []  # each classification's (mirrored, probabilities) in the order read
    for k, (result, (_, x, probs)) in enumerate(zip(results, read)):
        plain = preprocess(rec.crops(result.image, [Box(*result.faces[0].box)]), rec.meta)
        sides = [False, True] if k == 0 else [k % 2 == 0]  # after the first's mirrored view, as it is
        assert np.array_equal(x, np.concatenate([plain[..., ::-1] if m else plain for m in sides]))
        views += list(zip(sides, probs))
        pairs = [(views[0][1] + views[1][1]) / 2] + [(views[j][1] + views[j + 1][1]) / 2 for j in range(1, len(views) - 1)]
        got = np.array([result.faces[0].probs[c] for c in rec.classes])
        assert np.allclose(got, np.mean(pairs, axis=0), atol=1e-6)


def test_a_still_face_classified_in_turns_gets_a_photos_probabilities(astronaut_bgr, rec):
    """A face at the same place on the same frame, classified again and again with the default
    smoothing: one view a classification, each paired with the other, so every answer is the
    photo's (both views)."""
    from mobilefer.inference.recognizer import VIDEO_SMOOTH, _FoundFaces
    from mobilefer.inference.sources import Frame
    from mobilefer.inference.tracking import Smoother, Track

    frame = np.full((480, 640, 3), 70, np.uint8)
    frame[30:450, 110:530] = cv2.resize(astronaut_bgr, (420, 420))
    frame[145:180, 265:325] = 120  # the smile covered: a face whose two views read apart
    box = rec.detector.detect(frame)[0]
    track, smoother = Track(0, box), Smoother.parse(VIDEO_SMOOTH)
    probs = []
    for k in range(4):
        found = _FoundFaces(Frame("still", k, k / 10, frame, fps=10.0), [track], [box], False, False, True, 0.0)
        probs.append(rec._label_frame(found, smoother).faces[0].probs)
    photo = rec.classify_crops(rec.crops(frame, [box]))[0]
    mirrored = rec.classify_crops(rec.crops(frame, [box]), [True])[0]
    for p in probs:
        assert np.allclose([p[c] for c in rec.classes], photo, atol=1e-6)
    assert np.abs(mirrored - photo).max() > 1e-3  # the views differ: the pairing is what makes them equal


def test_every_n_frames_carries_labels_over(video, rec):
    results = list(rec.stream(str(video), every="5f"))
    assert [r.frame for r in results if r.classified] == [0, 5, 10, 15, 20]
    assert results[1].faces[0].probs == results[0].faces[0].probs
    assert results[5].faces[0].probs != results[4].faces[0].probs
    timed = list(rec.stream(str(video), every="1s"))  # 10 fps
    assert [r.frame for r in timed if r.classified] == [0, 10, 20]


def test_predict_writes_jsonl_csv_mp4_and_timeline(video, bundled_model, tmp_path):
    summary = predict(PredictConfig(source=str(video), model=str(bundled_model), out=str(tmp_path / "out"),
                                    json=str(tmp_path / "f.jsonl"), csv=str(tmp_path / "f.csv"), smooth="ema"))
    lines = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert len(lines) == FRAMES == summary.frames
    first = lines[0]
    assert set(first) == {"source", "frame", "time_s", "faces"}
    face = first["faces"][0]
    assert set(face) == {"id", "box", "label", "score", "probs", "landmarks", "pose"}
    assert len(face["landmarks"]) == 5 and set(face["pose"]) == {"yaw", "pitch", "roll", "turned"}
    assert len(face["box"]) == 4 and face["label"] == max(face["probs"], key=face["probs"].get)
    assert sum(face["probs"].values()) == pytest.approx(1.0, abs=1e-3)
    rows = list(csv.DictReader(open(tmp_path / "f.csv")))
    assert len(rows) == FRAMES and rows[0]["label"] == face["label"]
    cap = cv2.VideoCapture(str(tmp_path / "out" / "drift.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)  # plays at the source's speed
    cap.release()
    assert (tmp_path / "out" / "drift_timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert dict(summary.per_face)[(str(video), 0)].total() == FRAMES


def test_truncated_video_ends_cleanly(tmp_path, astronaut_bgr, rec):
    full = write_video(tmp_path / "full.avi", astronaut_bgr, fourcc="MJPG")
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    try:
        results = list(rec.stream(str(cut)))
    except SourceError:
        return  # refusing to open it at all is also clean
    assert 0 < len(results) < FRAMES


def test_bad_sources_fail_fast_with_a_message():
    with pytest.raises(SourceError, match="no such file"):
        iter_frames("missing.mp4")
    started = time.monotonic()
    with pytest.raises(SourceError, match="no webcam at index 7"):
        iter_frames("7")
    with pytest.raises(SourceError, match="did not open"):
        iter_frames("rtsp://127.0.0.1:9/none")
    assert time.monotonic() - started < 15


def test_folder_with_a_broken_image_reports_it_and_carries_on(tmp_path, astronaut_bgr, bundled_model, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), astronaut_bgr)
    (folder / "b.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(folder / "c.png"), np.full((100, 100, 3), 128, np.uint8))
    code = main(["predict", str(folder), "--model", str(bundled_model), "--json", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert code == 1 and "1 input(s) failed" in err and "b.jpg" in err
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [len(x["faces"]) if "faces" in x else x["error"] for x in lines] == [1, f"{folder / 'b.jpg'}: not an image (unknown format)", 0]


def test_cli_prints_a_table_for_images(capsys, bundled_model):
    from pathlib import Path

    code = main(["predict", str(Path(__file__).parents[1] / "examples" / "astronaut.jpg")])
    out = capsys.readouterr().out
    assert code == 0 and "1 face(s)" in out and "happy" in out


def test_a_hard_cut_makes_every_face_new(tmp_path, astronaut_bgr, rec):
    """Two shots of the same framing (IoU of the boxes far above the tracker's 0.3) joined by a
    cut: the face after it gets a new id, and its emotion starts afresh under --smooth."""
    x, y, w, h = ASTRONAUT_FACE
    head = astronaut_bgr[y - 30: y + h + 30, x - 30: x + w + 30]
    path = tmp_path / "cut.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 480))
    for i in range(20):
        second = i >= 10
        frame = np.full((480, 640, 3), 200 if second else 40, np.uint8)  # another room
        person = head[:, ::-1] if second else head  # another take
        left = 120 + 2 * (i % 10) + (14 if second else 0)
        frame[80: 80 + person.shape[0], left: left + person.shape[1]] = person
        writer.write(frame)
    writer.release()
    results = list(rec.stream(str(path), smooth="ema:0.1"))
    assert [r.frame for r in results if r.cut] == [10]
    before = {f.id for r in results[:10] for f in r.faces}
    after = {f.id for r in results[10:] for f in r.faces}
    assert len(before) == len(after) == 1 and before.isdisjoint(after)
    raw = list(rec.stream(str(path), smooth="none"))  # each frame's own probabilities
    assert results[10].faces[0].probs == pytest.approx(raw[10].faces[0].probs, abs=1e-6)
    # smoothing goes on: the next frame's classification weighs 0.1 against the cut frame's (the
    # face known now, VIDEO_VIEWS: this frame's face as it is with the cut frame's mirrored)
    plain = rec.classify_crops(rec.crops(results[11].image, [Box(*results[11].faces[0].box)]), [False])[0]
    mirrored = rec.classify_crops(rec.crops(results[10].image, [Box(*results[10].faces[0].box)]), [True])[0]
    fresh, kept = dict(zip(rec.classes, ((plain + mirrored) / 2).tolist())), results[10].faces[0].probs
    assert results[11].faces[0].probs == pytest.approx({k: 0.1 * fresh[k] + 0.9 * kept[k] for k in kept}, rel=1e-4)
    assert results[11].faces[0].probs["neutral"] != pytest.approx(fresh["neutral"], rel=0.1)


def test_predict_takes_many_sources_and_outputs_never_overwrite_each_other(tmp_path, video, astronaut_bgr,
                                                                           bundled_model, capsys):
    import shutil

    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "deep").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "a" / "x.jpg"), astronaut_bgr)
    cv2.imwrite(str(tmp_path / "b" / "x.png"), astronaut_bgr[:, ::-1])
    shutil.copy(video, tmp_path / "b" / "deep" / "drift.mp4")
    # as a shell hands over an unquoted glob: each file its own argument; a folder holds a video
    code = main(["predict", str(tmp_path / "a" / "x.jpg"), str(tmp_path / "b"), str(tmp_path / "nope.jpg"),
                 "--model", str(bundled_model), "--out", str(tmp_path / "out"), "--json", str(tmp_path / "r.jsonl")])
    printed = capsys.readouterr()
    assert code == 1 and "nope.jpg: no such file" in printed.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a_x_jpg.jpg", "b_x_png.jpg", "drift.mp4", "drift_timeline.png"]
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len([x for x in lines if x["source"].endswith("drift.mp4")]) == FRAMES
    assert [x["error"] for x in lines if "error" in x] == [f"{tmp_path / 'nope.jpg'}: no such file or folder"]
    assert "drift.mp4 face #0: 24 frames" in printed.out
    with pytest.raises(ValueError, match="a webcam or stream is predicted on its own"):
        PredictConfig(source=["0", str(video)])


def _codec(path):
    cap = cv2.VideoCapture(str(path))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return fourcc.to_bytes(4, "little").decode(errors="replace").lower(), frames


def test_annotated_video_is_h264_with_the_sources_sound(video, bundled_model, tmp_path):
    import subprocess

    from mobilefer.inference.video_out import ffmpeg_exe

    exe = ffmpeg_exe()
    if exe is None:
        pytest.skip("the video extra (imageio-ffmpeg) is not installed")
    voiced = tmp_path / "voiced.mp4"  # the drifting face with a tone as its soundtrack
    subprocess.run([exe, "-v", "error", "-i", str(video), "-f", "lavfi", "-i", "sine=frequency=440:duration=2.4",
                    "-c:v", "copy", "-c:a", "aac", "-shortest", str(voiced)], check=True)
    predict(PredictConfig(source=str(voiced), model=str(bundled_model), out=str(tmp_path / "out")))
    written = tmp_path / "out" / "voiced.mp4"
    assert _codec(written) == ("h264", FRAMES)
    probe = subprocess.run([exe, "-hide_banner", "-i", str(written)], capture_output=True, text=True).stderr
    assert "Audio: aac" in probe and "yuv420p" in probe
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["voiced.mp4", "voiced_timeline.png"]


def test_without_ffmpeg_the_video_is_mp4v_and_the_note_says_why(video, bundled_model, tmp_path, monkeypatch, caplog):
    import mobilefer.inference.video_out as video_out

    monkeypatch.setattr(video_out, "ffmpeg_exe", lambda: None)
    monkeypatch.setattr(video_out.AnnotatedVideo, "_noted", False)
    predict(PredictConfig(source=str(video), model=str(bundled_model), out=str(tmp_path / "out")))
    assert _codec(tmp_path / "out" / "drift.mp4") == ("fmp4", FRAMES)  # FFmpeg's name for MPEG-4 Part 2
    assert "browsers do not play" in caplog.text and "mobilefer[video]" in caplog.text


def test_output_names_never_meet_whatever_the_paths():
    from mobilefer.inference.predict import output_names

    sources = ["p/a_b/x.jpg", "p/a/b/x.jpg", "p/a/b/x.png", "p/A_B/x.jpg"]
    names = output_names(sources)
    assert len({n.lower() for n in names.values()}) == len(sources)
    assert names["p/a_b/x.jpg"] == "a_b_x_jpg" and names["p/a/b/x.jpg"] == "a_b_x_jpg_2"


def test_stream_takes_sources_as_predict_does(rec, tmp_path, astronaut_bgr, video):
    """A folder is searched recursively (videos too), a list is a list, never a glob pattern,
    and what names nothing usable comes first as an error result."""
    import shutil

    (tmp_path / "top" / "deep").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "top" / "one.jpg"), astronaut_bgr)
    cv2.imwrite(str(tmp_path / "top" / "deep" / "two.jpg"), astronaut_bgr)
    shutil.copy(video, tmp_path / "top" / "deep" / "drift.mp4")
    results = list(rec.stream(tmp_path / "top"))
    assert [r.source for r in results[:2]] == [str(tmp_path / "top" / "deep" / "two.jpg"),
                                               str(tmp_path / "top" / "one.jpg")]
    assert len(results) == 2 + FRAMES and all(len(r.faces) == 1 for r in results[:2])
    listed = list(rec.stream([str(tmp_path / "top" / "one.jpg"), str(tmp_path / "missing.jpg")]))
    assert [r.error for r in listed] == [f"{tmp_path / 'missing.jpg'}: no such file or folder", None]
    assert listed[1].source.endswith("one.jpg") and listed[1].faces
    with pytest.raises(SourceError, match="no such file or folder"):
        list(rec.stream([str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]))
    for nothing in ([], None, "", [" "]):
        with pytest.raises(SourceError, match="stream needs a source"):
            list(rec.stream(nothing))


def test_a_video_without_frames_and_a_link_that_loops_are_one_line_each(tmp_path, bundled_model, capsys):
    empty = tmp_path / "empty.avi"  # a header FFmpeg opens, and no frame after it
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    writer.release()
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(tmp_path / "loop.jpg")
    for source, message in ((empty, "no frames could be read"), (loop, "a symbolic link that loops")):
        code = main(["predict", str(source), "--model", str(bundled_model), "--json", str(tmp_path / "r.jsonl")])
        err = capsys.readouterr().err
        assert code != 0 and message in err and "Traceback" not in err, err
        assert not (tmp_path / "r.jsonl").exists()


def test_video_files_run_each_session_on_one_thread_and_threads_reach_the_detector(video, bundled_model, tmp_path,
                                                                                     astronaut_bgr, monkeypatch):
    """A video file's frames are decoded, searched and classified on threads of their own, so its
    ONNX Runtime sessions take one thread each, and OpenCV's loops as many while it runs; images
    take the idle cores, OpenCV too; --threads sets the model's, the face detector's and OpenCV's."""
    from mobilefer import cores
    from mobilefer.inference import predict as predict_module

    loaded, opencv = [], []
    real_load = EmotionRecognizer.load

    def load(*args, **kwargs):
        rec = real_load(*args, **kwargs)
        loaded.append((rec.classifier.session.get_session_options().intra_op_num_threads,
                       rec.detector.session.get_session_options().intra_op_num_threads))
        return rec

    monkeypatch.setattr(predict_module.EmotionRecognizer, "load", load)
    monkeypatch.delenv("MOBILEFER_THREADS")
    monkeypatch.setattr(cores, "idle", lambda: 2)  # a quiet 2-core machine
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), astronaut_bgr)
    before = cv2.getNumThreads()
    for source, threads in ((str(video), None), (str(photo), None), (str(video), 3)):
        predict(PredictConfig(source=source, model=str(bundled_model), threads=threads),
                on_result=lambda result: opencv.append(cv2.getNumThreads()))
        assert cv2.getNumThreads() == before  # the process's setting is given back
    assert loaded == [(1, 1), (2, 2), (3, 3)]
    assert set(opencv[:FRAMES]) == {1} and set(opencv[FRAMES:FRAMES + 1]) == {2}  # a photo: the idle cores
    assert set(opencv[FRAMES + 1:]) == {3}


def test_an_animated_gif_is_a_video_and_a_still_one_an_image(tmp_path, video, rec, capsys, bundled_model):
    """A reaction GIF is read frame by frame at its frames' delays, tracked and smoothed as a
    video; a GIF of one frame stays a photo, and a damaged one fails as an image does."""
    from PIL import Image

    from mobilefer.inference.sources import list_sources, source_kind

    cap = cv2.VideoCapture(str(video))
    frames = [Image.fromarray(cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2RGB)) for _ in range(3)]
    cap.release()
    clip, still, broken = tmp_path / "clip.gif", tmp_path / "still.gif", tmp_path / "broken.gif"
    frames[0].save(clip, save_all=True, append_images=frames[1:], duration=200, loop=0)
    frames[0].save(still)
    broken.write_bytes(clip.read_bytes()[:40])
    assert [source_kind(str(p)) for p in (clip, still, broken)] == ["video", "image", "image"]
    assert list_sources([str(tmp_path)]) == ([str(broken), str(still)], [str(clip)], [])
    results = list(rec.stream(str(clip)))
    assert [(r.frame, r.time_s, r.fps) for r in results] == [(0, 0.0, 5.0), (1, 0.2, 5.0), (2, 0.4, 5.0)]
    assert all(len(r.faces) == 1 and r.faces[0].id == results[0].faces[0].id for r in results)
    code = main(["predict", str(tmp_path), "--model", str(bundled_model), "--json", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert code == 1 and "broken.gif" in err and "Traceback" not in err
    assert [x["source"] for x in lines] == [str(broken), str(still)] + [str(clip)] * 3
    assert "error" in lines[0] and len(lines[1]["faces"]) == 1
