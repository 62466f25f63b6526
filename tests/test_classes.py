import pytest

from mobilefer.classes import FER2013_IDS, canonical_name, canonical_names, index_map


@pytest.mark.parametrize(
    "raw, canon",
    [("Anger", "angry"), ("happiness", "happy"), ("Sadness", "sad"), ("surprised", "surprise"),
     ("neural", "neutral"), ("suprise", "surprise"), (" Fear ", "fear"), ("stress", "stress"), ("Boring", "boring"),
     ("Contemptuous", "contempt"), ("Disgusted", "disgust"), ("fearful", "fear")],
)
def test_synonyms_and_notebook_typos_map_to_canonical_names(raw, canon):
    assert canonical_name(raw) == canon


def test_unknown_names_pass_through_lower_case():
    assert canonical_name("Confused") == "confused"


def test_fer2013_csv_ids_follow_the_paper_not_alphabetical_order():
    assert FER2013_IDS[4] == "sad" and FER2013_IDS[6] == "neutral" and FER2013_IDS[5] == "surprise"


def test_two_spellings_of_one_class_are_refused():
    with pytest.raises(ValueError, match="collide"):
        canonical_names(["surprise", "suprise"])


def test_index_map_by_name_and_clear_error():
    assert index_map(["sad", "happy"], ["angry", "happy", "sad"]) == [2, 1]
    with pytest.raises(ValueError, match="angry, happy"):
        index_map(["bored"], ["angry", "happy"])
