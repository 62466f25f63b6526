"""--uncertain / uncertain=: a face whose top probability is under the threshold is labelled
"uncertain" in the Python API, predict, batch and the HTTP service; its probabilities stay."""
import json

import pytest

from mobilefer.cli import main
from mobilefer.errors import ConfigError
from mobilefer.inference.predict import PredictConfig
from mobilefer.inference.recognizer import UNCERTAIN, EmotionRecognizer
from mobilefer.serve.config import ServeConfig


@pytest.fixture(scope="module")
def faces(blurred_astronaut, bundled_model):
    rec = EmotionRecognizer.load(bundled_model, detector="haar", max_faces=1)
    return rec, rec.recognize(blurred_astronaut)


def test_a_face_under_the_threshold_is_uncertain_and_keeps_its_probabilities(faces, blurred_astronaut):
    rec, (face,) = faces
    assert face.label == face.top and 0.6 < face.score < 0.95
    rec.uncertain = face.score + 1e-4
    (unsure,) = rec.recognize(blurred_astronaut)
    assert unsure.label == UNCERTAIN and unsure.top == face.top
    assert unsure.probs == pytest.approx(face.probs) and unsure.score == pytest.approx(face.score)
    assert unsure.to_dict()["label"] == UNCERTAIN
    rec.uncertain = face.score - 1e-4
    assert rec.recognize(blurred_astronaut)[0].label == face.top
    assert face.with_uncertain(0.99).with_uncertain(0.0).label == face.top  # undone by a lower threshold
    rec.uncertain = 0.0


def test_an_uncertain_face_is_explained_by_its_most_likely_emotion(faces, blurred_astronaut):
    rec, (face,) = faces
    heat = rec.explain(blurred_astronaut, face.with_uncertain(0.99))
    assert heat.shape == (face.box[3], face.box[2])
    assert (heat == rec.explain(blurred_astronaut, face)).all()


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), True])
def test_a_threshold_that_is_no_probability_is_one_line(bad, bundled_model):
    with pytest.raises(ConfigError, match="--uncertain"):
        EmotionRecognizer.load(bundled_model, detector="haar", uncertain=bad)
    with pytest.raises(ConfigError, match="--uncertain"):
        PredictConfig(source="x.jpg", uncertain=bad)
    with pytest.raises(ConfigError, match="--uncertain"):
        ServeConfig(uncertain=bad)
    from mobilefer.batch import BatchConfig

    with pytest.raises(ConfigError, match="--uncertain"):
        BatchConfig(sources=["x.jpg"], out="out", uncertain=bad)


def test_predict_labels_uncertain_faces_in_its_outputs(tmp_path, blurred_astronaut, faces, capsys):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), blurred_astronaut)
    out = tmp_path / "faces.jsonl"
    assert main(["predict", str(tmp_path / "a.png"), "--detector", "haar", "--uncertain", "0.95", "--max-faces", "1",
                 "--json", str(out), "--csv", str(tmp_path / "faces.csv")]) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert [f["label"] for f in row["faces"]] == [UNCERTAIN]
    assert max(row["faces"][0]["probs"], key=row["faces"][0]["probs"].get) == faces[1][0].top
    assert ",uncertain," in (tmp_path / "faces.csv").read_text()
    assert main(["predict", str(tmp_path / "a.png"), "--uncertain", "2"]) == 2
    assert "--uncertain 2.0: expected a probability" in capsys.readouterr().err


def test_the_service_labels_by_the_request_or_its_own_threshold(blurred_astronaut, faces):
    from fastapi.testclient import TestClient
    from test_serve import encode, post

    from mobilefer.serve.app import create_app

    jpeg = encode(blurred_astronaut, "PNG")
    with TestClient(create_app(ServeConfig(uncertain=0.95))) as client:
        (face,) = post(client, jpeg, "image/png", "?detector=haar&max_faces=1").json()["faces"]
        assert face["label"] == UNCERTAIN and face["score"] < 0.95
        (face,) = post(client, jpeg, "image/png", "?detector=haar&max_faces=1&uncertain=0").json()["faces"]
        assert face["label"] == faces[1][0].top
        assert post(client, jpeg, "image/png", "?uncertain=1").status_code == 422
        assert client.get("/site.json").json()["uncertain"] == 0.95
