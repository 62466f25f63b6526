"""`mobilefer batch` on a local Ray: the same faces as predict, bad files as rows, reruns, a killed worker."""
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from mobilefer.batch import BatchConfig, batch  # noqa: E402
from mobilefer.cli import main  # noqa: E402
from mobilefer.errors import OutputError  # noqa: E402
from mobilefer.inference.predict import PredictConfig, predict  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def collection(tmp_path_factory, astronaut_bgr):
    """Photos with and without faces, a corrupt photo, a short video and a corrupt one."""
    from skimage import data

    root = tmp_path_factory.mktemp("collection")
    (root / "photos" / "more").mkdir(parents=True)
    cv2.imwrite(str(root / "photos" / "astronaut.jpg"), astronaut_bgr)
    cv2.imwrite(str(root / "photos" / "more" / "mirrored.png"), astronaut_bgr[:, ::-1])
    cv2.imwrite(str(root / "photos" / "coffee.jpg"), np.ascontiguousarray(data.coffee()[:, :, ::-1]))
    (root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    writer = cv2.VideoWriter(str(root / "talk.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 360))
    for i in range(12):
        frame = np.full((360, 640, 3), 90, np.uint8)
        frame[:, 40 + 4 * i: 40 + 4 * i + 512][:, :600 - 4 * i] = cv2.resize(astronaut_bgr, (512, 360))[:, :600 - 4 * i]
        writer.write(frame)
    writer.release()
    (root / "cut.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 and then nothing")
    return root


def _read(out: Path, what: str) -> list[dict]:
    return pq.read_table(out / what).to_pylist()


@pytest.mark.slow
def test_same_faces_as_predict_and_bad_files_as_rows(collection, tmp_path):
    out = tmp_path / "out"
    summary = batch(BatchConfig(sources=[str(collection / "photos"), str(collection / "*.mp4")], out=str(out),
                                workers=2, batch_size=2))
    faces, sources = _read(out, "faces"), _read(out, "sources")
    by_source = {r["source"]: r for r in sources}
    assert len(sources) == len(by_source) == 6  # each source once
    assert by_source[str(collection / "photos" / "coffee.jpg")]["faces"] == 0  # no face, still visible
    assert "not an image" in by_source[str(collection / "photos" / "broken.jpg")]["error"]
    assert by_source[str(collection / "cut.mp4")]["error"]
    assert by_source[str(collection / "talk.mp4")]["frames"] == 12 and summary.videos == 1
    assert len(summary.failed) == 2

    expected = []
    for source in (collection / "photos", collection / "talk.mp4"):  # predict searches folders recursively too
        predict(PredictConfig(source=str(source)), on_result=lambda r: expected.extend(
            (r.source, r.frame, f.id, tuple(f.box), f.label, f.score, f.probs, f.columns()) for f in r.faces))
    got = {(r["source"], r["frame"], r["id"]): r for r in faces}
    assert len(got) == len(faces) == len(expected) > 12
    for source, frame, face_id, box, label, score, probs, columns in expected:
        row = got[(source, frame, face_id)]
        assert (row["x"], row["y"], row["w"], row["h"]) == box and row["label"] == label
        assert abs(row["score"] - score) < 1e-3
        assert all(abs(row[f"p_{c}"] - p) < 1e-3 for c, p in probs.items())
        assert columns["nose_x"] is not None and {k: row[k] for k in columns} == columns  # landmarks and pose


@pytest.mark.slow
def test_a_rerun_refuses_resumes_or_overwrites(collection, tmp_path, capsys):
    out = tmp_path / "out"
    photos = str(collection / "photos" / "astronaut.jpg")
    batch(BatchConfig(sources=[photos], out=str(out)))
    first = sorted(p.name for p in (out / "faces").iterdir())
    with pytest.raises(OutputError, match="--resume adds only the sources not done yet"):
        batch(BatchConfig(sources=[photos], out=str(out)))
    assert main(["batch", photos, "--out", str(out)]) == 2 and "--overwrite" in capsys.readouterr().err
    more = batch(BatchConfig(sources=[photos, str(collection / "photos" / "coffee.jpg")], out=str(out), mode="resume"))
    assert more.skipped_done == 1 and more.sources == 1
    assert sorted(r["source"] for r in _read(out, "sources")) == sorted([photos, str(collection / "photos" / "coffee.jpg")])
    batch(BatchConfig(sources=[photos], out=str(out), mode="overwrite"))
    assert [r["source"] for r in _read(out, "sources")] == [photos]
    assert sorted(p.name for p in (out / "faces").iterdir()) != first
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left behind


def _worker_pids(name: str) -> list[int]:
    """Pids of Ray worker processes running an actor of class ``name`` (Ray titles them ray::...)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if name.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_a_killed_worker_is_retried_without_lost_or_doubled_rows(collection, tmp_path):
    many = tmp_path / "many"
    many.mkdir()
    for i in range(40):
        shutil.copy(collection / "photos" / "astronaut.jpg", many / f"{i:02d}.jpg")
    out = tmp_path / "out"
    result: dict = {}

    def run() -> None:
        try:
            result["summary"] = batch(BatchConfig(sources=[str(many)], out=str(out), workers=1, batch_size=2))
        except Exception as exc:  # reported by the assertion below
            result["error"] = exc

    earlier = set(_worker_pids("ImageWorker"))  # actors of earlier jobs may still be exiting
    job = threading.Thread(target=run, daemon=True)
    job.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and job.is_alive() and time.monotonic() < deadline:
        pids = [pid for pid in _worker_pids("ImageWorker") if pid not in earlier]
        if pids:
            time.sleep(0.5)  # let it get into its batches
            try:
                os.kill(pids[0], signal.SIGKILL)
                killed = pids[0]
            except ProcessLookupError:
                earlier.add(pids[0])
        time.sleep(0.05)
    job.join(120)
    assert not job.is_alive(), "the job did not finish after its worker was killed"
    assert killed is not None, "no worker to kill: the job ended first"
    assert "error" not in result, result.get("error")
    sources, faces = _read(out, "sources"), _read(out, "faces")
    assert sorted(r["source"] for r in sources) == sorted(str(p) for p in many.iterdir())
    assert sorted(r["source"] for r in faces) == sorted(str(p) for p in many.iterdir())  # one face each, once
    assert result["summary"].faces == 40 and not result["summary"].failed


def test_one_image_that_breaks_recognition_is_an_error_row_not_a_failed_batch(collection, monkeypatch):
    import pyarrow as pa

    from mobilefer.batch import ImageWorker

    settings = {"model": None, "detector": "auto", "min_face": 20, "max_faces": None, "detect_every": None,
                "device": "cpu", "threads": 1, "uncertain": 0.0}
    worker = type("ImageWorker", (ImageWorker,), {"SETTINGS": settings})()
    real = worker.rec.recognize_many
    coffee = str(collection / "photos" / "coffee.jpg")
    width = cv2.imread(coffee).shape[1]  # the astronaut is 512 wide, the coffee 600

    def fragile(frames):
        if any(f.shape[1] == width for f in frames):
            raise RuntimeError("boom")
        return real(frames)

    monkeypatch.setattr(worker.rec, "recognize_many", fragile)
    table = worker(pa.table({"path": [str(collection / "photos" / "astronaut.jpg"), coffee]}))
    rows = {(r["row"], r["source"]): r for r in table.to_pylist()}
    assert rows[("source", coffee)]["error"].endswith("recognition failed (RuntimeError: boom)")
    assert rows[("source", str(collection / "photos" / "astronaut.jpg"))]["faces"] == 1
    assert ("face", str(collection / "photos" / "astronaut.jpg")) in rows


def test_what_a_listing_meets_becomes_rows_and_a_faceless_job_keeps_its_columns(collection, tmp_path):
    from mobilefer.batch import list_sources

    root = tmp_path / "odd"
    root.mkdir()
    shutil.copy(collection / "photos" / "coffee.jpg", root / "café.jpg")
    os.symlink("loop_b.jpg", root / "loop_a.jpg")
    os.symlink("loop_a.jpg", root / "loop_b.jpg")
    (root / "bom.txt").write_bytes("\ufeffcafé.jpg\n".encode("utf-8"))
    (root / "latin1.txt").write_bytes("café.jpg\n".encode("latin-1"))
    images, _, bad = list_sources([str(root / "bom.txt"), str(root / "latin1.txt")])
    assert images == [str(root / "café.jpg")] and not bad
    summary = batch(BatchConfig(sources=[str(root)], out=str(tmp_path / "out")))
    failed = dict(summary.failed)
    assert set(failed) == {str(root / "loop_a.jpg"), str(root / "loop_b.jpg")}
    assert "loops or points to nothing" in failed[str(root / "loop_a.jpg")]
    faces = pq.read_table(tmp_path / "out" / "faces")  # no face anywhere: still every column
    assert faces.num_rows == 0 and {"source", "label", "score", "p_happy"} <= set(faces.column_names)


def test_one_writer_per_folder_and_a_damaged_folder_is_named(collection, tmp_path):
    from mobilefer.batch import _only_writer

    out = tmp_path / "out"
    photo = str(collection / "photos" / "astronaut.jpg")
    with _only_writer(out):  # as if another batch were writing there now
        with pytest.raises(OutputError, match="another mobilefer batch is writing into it"):
            batch(BatchConfig(sources=[photo], out=str(out)))
    batch(BatchConfig(sources=[photo], out=str(out)))
    damaged = next((out / "sources").glob("*.parquet"))
    damaged.write_bytes(damaged.read_bytes()[:40])
    with pytest.raises(OutputError, match=f"{damaged.name} is damaged"):
        batch(BatchConfig(sources=[photo], out=str(out), mode="resume"))


def test_an_address_where_nothing_listens_is_refused_at_once(tmp_path):
    from helpers import free_port
    from mobilefer.batch import _check_reachable
    from mobilefer.errors import ConfigError

    started = time.monotonic()
    with pytest.raises(ConfigError, match="nothing answers there"):
        _check_reachable(f"127.0.0.1:{free_port()}")
    with pytest.raises(ConfigError, match="expected auto, HOST:PORT"):
        _check_reachable("somewhere:port")
    assert time.monotonic() - started < 10
