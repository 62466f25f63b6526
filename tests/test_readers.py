import io

import numpy as np
import pytest
from PIL import Image

from mobilefer.data.images import decode_image
from mobilefer.data.readers import DatasetError, load_images, stratified_split


def test_folder_classes_are_canonical_and_sorted(folder_data):
    data = load_images(folder_data)
    assert data.classes == ["happy", "sad", "surprise"]  # "Surprised" -> surprise
    assert data.images.shape == (72, 24, 24, 1) and data.images.dtype == np.uint8
    assert data.counts() == {"happy": 24, "sad": 24, "surprise": 24}
    # labels follow the folders: "sad" images are dark
    assert data.images[data.labels == 1].mean() < 80 < data.images[data.labels == 0].mean()


def test_zip_strips_the_split_folder_and_ignores_non_images(zip_data):
    data = load_images(zip_data)
    assert data.classes == ["happy", "sad", "surprise"]
    assert len(data) == 36 and data.skipped == []
    assert data.files[0].startswith("train/")


def test_fer_csv_usage_selects_rows_and_maps_ids_by_name(fer_csv):
    train = load_images(fer_csv, usage="Training")
    test = load_images(fer_csv, usage="PublicTest")
    assert len(train) == 30 and len(test) == 12
    assert train.classes == ["happy", "sad", "surprise"]
    sad = train.images[train.labels == train.classes.index("sad")]
    assert sad.mean() < 80  # id 4 is sad in FER2013, whatever the alphabet says
    assert train.images.shape[1:] == (48, 48, 1)


def test_fixed_model_classes_allow_a_subset(fer_csv):
    data = load_images(fer_csv, classes=["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"])
    assert set(np.unique(data.labels)) == {3, 4, 5}


def test_class_outside_the_model_is_a_clear_error(folder_data):
    with pytest.raises(DatasetError, match="surprise.*not among the model's classes: angry, happy"):
        load_images(folder_data, classes=["angry", "happy", "sad"])


@pytest.mark.parametrize(
    "mode, fmt",
    [(m, "PNG") for m in ("L", "RGB", "RGBA", "P", "I;16", "LA")]
    + [(m, f) for m in ("L", "RGB", "RGBA", "P") for f in ("BMP", "WEBP") if not (f == "BMP" and m == "RGBA")]
    + [("L", "JPEG"), ("RGB", "JPEG")],
)
def test_every_common_image_kind_decodes(mode, fmt):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        img = Image.fromarray((rng.integers(0, 65535, (20, 30))).astype(np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    arr = decode_image(buffer.getvalue(), "x")
    assert arr.dtype == np.uint8 and arr.shape[:2] == (20, 30)


def test_corrupt_files_are_skipped_and_listed(folder_data):
    (folder_data / "happy" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (folder_data / "sad" / "empty.jpg").write_bytes(b"")
    data = load_images(folder_data)
    assert len(data) == 72
    assert sorted(name for name, _ in data.skipped) == ["happy/broken.png", "sad/empty.jpg"]
    assert "broken.png" in data.skipped[0][1] or "broken.png" in data.skipped[1][1]


def test_empty_class_folder_is_named(folder_data):
    (folder_data / "angry").mkdir()
    (folder_data / "angry" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="angry: class folder holds no images"):
        load_images(folder_data)


def test_tree_without_images_is_an_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="holds no images"):
        load_images(tmp_path)


def test_images_without_class_folders_are_an_error(tmp_path):
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(DatasetError, match="sub-folder per class"):
        load_images(tmp_path)


def test_not_a_zip(tmp_path):
    path = tmp_path / "x.zip"
    path.write_text("nope")
    with pytest.raises(DatasetError, match="not a readable zip"):
        load_images(path)


@pytest.mark.parametrize(
    "row, message",
    [("9,1 2 3 4,Training", "line 3: emotion '9'"),
     ("3,1 2 3,Training", "line 3: expected a square image"),
     ("3,1 2 x 4,Training", "line 3: pixels must be"),
     ("3", "line 3: expected 3 columns")],
)
def test_bad_csv_rows_name_file_and_line(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    path.write_text(f"emotion,pixels,Usage\n3,{' '.join(['7'] * 4)},Training\n{row}\n")
    with pytest.raises(DatasetError, match=f"bad.csv: {message}"):
        load_images(path)


def test_csv_without_header(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="line 1: expected a header"):
        load_images(path)


def test_stratified_split_is_seeded_and_covers_every_class():
    labels = np.repeat([0, 1, 2], [50, 10, 3])
    a = stratified_split(labels, 0.2, seed=3)
    b = stratified_split(labels, 0.2, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    train, val = a
    assert set(labels[val]) == {0, 1, 2}
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(labels)


def test_colour_data_keeps_three_channels_and_large_images_are_area_resized(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("happy", "sad"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (300, 200, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.jpg")
    data = load_images(tmp_path, max_base_size=64)
    assert data.images.shape == (6, 64, 64, 3)


def test_limit_takes_exactly_that_many_images_in_proportion(folder_data):
    from mobilefer.data.readers import stratified_sample

    labels = np.repeat([0, 1, 2], [700, 200, 101])
    for count in (1, 20, 599, 600, 1000):
        picked = stratified_sample(labels, count, seed=0)
        assert len(picked) == count == len(set(picked))
        assert abs(np.mean(labels[picked] == 0) - 0.7) <= 1 / count + 0.01
    assert len(load_images(folder_data, limit=20)) == 20
