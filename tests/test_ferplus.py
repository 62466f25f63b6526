"""FER+ readers (folder, zip, fer2013new.csv + fer2013.csv) and the two label modes."""
import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_image
from mobilefer.data.ferplus import EMOTIONS, vote_labels
from mobilefer.data.readers import load_images
from mobilefer.errors import DatasetError

# votes: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
ROWS = {
    "fer0000000.png": [0, 10, 0, 0, 0, 0, 0, 0, 0, 0],  # happy, unanimous
    "fer0000001.png": [1, 1, 7, 0, 0, 0, 0, 1, 0, 0],  # surprise; single votes are dropped
    "fer0000002.png": [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],  # a tie: no majority, soft keeps it (0.5/0.5)
    "fer0000003.png": [4, 0, 0, 0, 3, 2, 0, 0, 1, 0],  # 4 of 9: no majority; soft 4/9, 3/9, 2/9
    "fer0000004.png": [2, 0, 0, 0, 0, 0, 0, 0, 8, 0],  # unknown
    "fer0000005.png": [0, 0, 0, 0, 0, 0, 0, 0, 1, 9],  # not a face
    "fer0000006.png": [0, 0, 0, 0, 0, 0, 0, 6, 0, 4],  # contempt 6 of 10
    "fer0000007.png": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # only single votes
    "fer0000008.png": [0, 0, 0, 8, 0, 0, 0, 0, 0, 2],  # sad, but its PNG is missing
}
MISSING = "fer0000008.png"


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(make_image(60 + 20 * seed, np.random.default_rng(seed), 48)).save(buffer, format="PNG")
    return buffer.getvalue()


def _label_csv() -> str:
    return "".join(f'{name},"(0, 0, 48, 48)",{",".join(map(str, votes))}\n' for name, votes in ROWS.items())


@pytest.fixture
def ferplus_folder(tmp_path: Path) -> Path:
    root = tmp_path / "FER2013Train"
    root.mkdir()
    (root / "label.csv").write_text(_label_csv())
    for i, name in enumerate(ROWS):
        if name != MISSING:
            (root / name).write_bytes(_png(i))
    return root


@pytest.fixture
def ferplus_zip(tmp_path: Path) -> Path:
    path = tmp_path / "ferplus_train.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("FER2013Train/label.csv", _label_csv())
        for i, name in enumerate(ROWS):
            if name != MISSING:
                archive.writestr(f"FER2013Train/{name}", _png(i))
    return path


def test_majority_rule_as_in_the_paper():
    result = vote_labels(np.array(list(ROWS.values())), "majority")
    kept = {name: EMOTIONS[label] for name, label, keep in zip(ROWS, result.labels, result.keep) if keep}
    assert kept == {"fer0000000.png": "happy", "fer0000001.png": "surprise", "fer0000006.png": "contempt",
                    "fer0000008.png": "sad"}
    assert result.dropped == {"no majority": 2, "unknown emotion": 1, "not a face": 1,
                              "no two annotators agreed on anything": 1}


def test_soft_labels_are_the_remaining_vote_distribution():
    result = vote_labels(np.array(list(ROWS.values())), "soft")
    soft = {name: row for name, row, keep in zip(ROWS, result.soft, result.keep) if keep}
    assert set(soft) == {"fer0000000.png", "fer0000001.png", "fer0000002.png", "fer0000003.png",
                         "fer0000006.png", "fer0000008.png"}
    np.testing.assert_allclose(soft["fer0000003.png"][[0, 4, 5]], [4 / 9, 3 / 9, 2 / 9], rtol=1e-6)
    np.testing.assert_allclose(soft["fer0000002.png"][:2], [0.5, 0.5])
    np.testing.assert_allclose(soft["fer0000006.png"][7], 1.0)  # NF votes are not an emotion
    assert all(abs(row.sum() - 1) < 1e-6 for row in soft.values())


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_ferplus_folder_and_zip_read_alike(form, ferplus_folder, ferplus_zip):
    data = load_images(ferplus_folder if form == "folder" else ferplus_zip)
    assert data.classes == EMOTIONS == ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"]
    assert sorted(data.files) == ["fer0000000.png", "fer0000001.png", "fer0000006.png"]
    assert data.counts()["contempt"] == 1 and data.counts()["happy"] == 1
    assert [name for name, _ in data.skipped] == [MISSING]  # listed, not fatal
    assert data.dropped["not a face"] == 1 and data.dropped["no majority"] == 2
    assert data.soft is None and (data.base_size, data.channels) == (48, 1)


def test_soft_mode_keeps_ties_and_carries_targets(ferplus_folder):
    data = load_images(ferplus_folder, labels="soft")
    assert len(data) == 5 and data.soft.shape == (5, 8)
    row = data.soft[data.files.index("fer0000003.png")]
    assert data.labels[data.files.index("fer0000003.png")] == EMOTIONS.index("neutral")
    np.testing.assert_allclose(row[EMOTIONS.index("angry")], 3 / 9, rtol=1e-6)


def test_a_folder_of_splits_names_them(ferplus_folder):
    with pytest.raises(DatasetError, match="holds FER\\+ splits \\(FER2013Train\\)"):
        load_images(ferplus_folder.parent)


def test_soft_labels_need_votes(folder_data):
    with pytest.raises(DatasetError, match="--labels soft needs vote counts"):
        load_images(folder_data, labels="soft")


def _official_pair(root: Path, names: list[str], usages: list[str]) -> tuple[Path, Path]:
    """fer2013new.csv (votes) + fer2013.csv (pixels) for the rows of ROWS, in order."""
    root.mkdir(exist_ok=True)
    votes, pixels = root / "fer2013new.csv", root / "fer2013.csv"
    with open(votes, "w", newline="") as v, open(pixels, "w", newline="") as p:
        vw, pw = csv.writer(v), csv.writer(p)
        vw.writerow(["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                     "fear", "contempt", "unknown", "NF"])
        pw.writerow(["emotion", "pixels", "Usage"])
        for i, (name, usage) in enumerate(zip(names, usages)):
            vw.writerow([usage, name, *ROWS[list(ROWS)[i]]])
            img = make_image(60 + 20 * i, np.random.default_rng(i), 48)
            pw.writerow([3, " ".join(map(str, img.ravel())), usage])
    return votes, pixels


def test_official_csv_pair_with_usage_and_dropped_faces(tmp_path):
    names = list(ROWS)
    names[1] = ""  # FER+ dropped this image: not a face
    usages = ["Training"] * 6 + ["PublicTest"] * 3
    votes, pixels = _official_pair(tmp_path / "data", names, usages)
    train = load_images(votes, usage="Training")
    assert train.files == ["fer0000000.png"] and train.dropped["not a face"] == 2  # the empty name and NF
    val = load_images(votes, usage="PublicTest", pixels=pixels)
    assert sorted(val.files) == ["fer0000006.png", "fer0000008.png"]
    np.testing.assert_array_equal(val.images[val.files.index("fer0000006.png"), :, :, 0],
                                  make_image(60 + 20 * 6, np.random.default_rng(6), 48))


def test_official_csv_pair_errors_name_the_files(tmp_path):
    votes, pixels = _official_pair(tmp_path / "a", list(ROWS), ["Training"] * 9)
    pixels.unlink()
    with pytest.raises(DatasetError, match="need the FER2013 pixels.*--pixels"):
        load_images(votes)
    votes, pixels = _official_pair(tmp_path / "b", list(ROWS), ["Training"] * 9)
    pixels.write_text("\n".join(pixels.read_text().splitlines()[:-2]) + "\n")
    with pytest.raises(DatasetError, match="different numbers of rows"):
        load_images(votes)
    votes, pixels = _official_pair(tmp_path / "c", list(ROWS), ["Training"] * 9)
    lines = pixels.read_text().splitlines()
    lines[3] = lines[3].replace("Training", "PrivateTest")
    pixels.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="line 4: Usage 'Training'.*same order"):
        load_images(votes)


def test_bad_vote_rows_name_the_line(tmp_path):
    root = tmp_path / "FER2013Valid"
    root.mkdir()
    (root / "label.csv").write_text('a.png,"(0, 0, 48, 48)",1,2,x,0,0,0,0,0,0,0\n')
    with pytest.raises(DatasetError, match="label.csv:1: vote counts must be whole numbers"):
        load_images(root)
    (root / "label.csv").write_text('a.png,"(0, 0, 48, 48)",1,2\n')
    with pytest.raises(DatasetError, match="label.csv:1: expected 12 columns"):
        load_images(root)


@pytest.mark.parametrize("votes", ["1e400", "nan", "99999999999999999999", "2.5", "-1", "5000"])
def test_votes_that_are_not_counts_name_the_line(tmp_path, votes):
    root = tmp_path / "FER2013Valid"
    root.mkdir()
    (root / "label.csv").write_text(f'a.png,"(0, 0, 48, 48)",{votes},2,0,0,0,0,0,0,0,0\n')
    with pytest.raises(DatasetError, match="label.csv:1: (vote counts must be whole|expected 10 vote counts)"):
        load_images(root)


def test_short_and_blank_rows_of_the_official_pair_name_the_line(tmp_path):
    for which, line in (("votes", 3), ("pixels", 3), ("votes-blank", 5)):
        votes, pixels = _official_pair(tmp_path / which, list(ROWS), ["Training"] * 9)
        target = pixels if which == "pixels" else votes
        lines = target.read_text().splitlines()
        lines[line - 1] = "" if which == "votes-blank" else ",".join(lines[line - 1].split(",")[:2])
        target.write_text("\n".join(lines) + "\n")
        with pytest.raises(DatasetError, match=f"line {line}: .* columns"):
            load_images(votes)


def test_a_face_listed_twice_counts_once_or_is_refused_when_its_votes_differ(ferplus_folder):
    label = ferplus_folder / "label.csv"
    first = label.read_text().splitlines()[0]
    label.write_text(label.read_text() + first + "\n")
    data = load_images(ferplus_folder)
    assert data.files.count("fer0000000.png") == 1 and data.dropped["listed twice with the same votes"] == 1
    label.write_text(label.read_text() + first.replace(",0,10,", ",10,0,") + "\n")
    with pytest.raises(DatasetError, match="fer0000000.png is listed twice with different votes"):
        load_images(ferplus_folder)


def test_training_on_soft_labels_scores_on_majority_labels(tmp_path):
    """--labels soft: training keeps the tie images and learns the vote distribution; the
    validation set (another FER+ folder) is scored on its majority labels only."""
    from helpers import tiny_config
    from mobilefer.engine.train import train
    from mobilefer.runtime import read_meta

    rng = np.random.default_rng(3)

    def split(root: Path, count: int) -> Path:
        root.mkdir()
        rows = []
        for i in range(count):
            happy = i % 2 == 0
            votes = [0, 8, 0, 0, 0, 0, 0, 0, 0, 0] if happy else [0, 0, 0, 8, 0, 0, 0, 0, 0, 0]
            if i % 5 == 0:
                votes = [0, 5, 0, 5, 0, 0, 0, 0, 0, 0]  # a tie: soft keeps it, majority drops it
            Image.fromarray(make_image(215 if happy else 40, rng, 48)).save(root / f"fer{i:07d}.png")
            rows.append(f'fer{i:07d}.png,"(0, 0, 48, 48)",{",".join(map(str, votes))}\n')
        (root / "label.csv").write_text("".join(rows))
        return root

    train_dir, valid_dir = split(tmp_path / "FER2013Train", 40), split(tmp_path / "FER2013Valid", 20)
    result = train(tiny_config(train_dir, tmp_path / "run", val_data=str(valid_dir), labels="soft", epochs=2,
                               img_size=32))
    meta = read_meta(result.last)
    assert meta.classes == EMOTIONS and meta.data["labels"] == "soft (vote distribution)"
    assert meta.data["num_train"] == 40 and meta.data["num_val"] == 16  # 4 ties left out of validation
    assert meta.data["dropped"]["val"] == {"no majority": 4}
