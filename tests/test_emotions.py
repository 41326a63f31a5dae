import pytest

from kardia.emotions import EMOTIONS, emotion_matches, normalize_emotion


def test_the_32_labels():
    assert len(EMOTIONS) == 32 == len(set(EMOTIONS))
    assert all(e == e.lower().strip() for e in EMOTIONS)
    assert {"afraid", "trusting", "sentimental", "anticipating"} <= set(EMOTIONS)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("anxious", "anxious"),  # canonical
        ("Anxious", "anxious"),  # case
        ("  ANXIOUS \n", "anxious"),  # whitespace and case
        ("anxious.", "anxious"),  # trailing punctuation
        ("**Anxious**", "anxious"),  # markdown emphasis
        ('"grateful"', "grateful"),  # quotes
        ("anx ious", "anxious"),  # inner whitespace
        ("Sentimental!", "sentimental"),  # exclamation
        ("[terrified]", "terrified"),  # brackets
        ("joyful_", "joyful"),  # underscore
        ("happy", None),  # an emotion, but not one of the 32
        ("anxiety", None),  # a related word
        ("I feel anxious", None),  # a phrase, not a label
        ("anxious, sad", None),  # two labels
        ("", None),  # empty
        ("   ", None),  # blank
        ("x" * 1000, None),  # absurdly long
    ],
)
def test_normalize_emotion(text, expected):
    assert normalize_emotion(text) == expected


@pytest.mark.parametrize("bad", [None, 3, ["sad"], {"sad": 1}])
def test_normalize_emotion_non_text(bad):
    assert normalize_emotion(bad) is None


def test_every_label_normalises_to_itself_in_any_case():
    for e in EMOTIONS:
        assert normalize_emotion(e.upper()) == e
        assert normalize_emotion(f" {e.title()}. ") == e


# (predicted span text, gold, matches)
MATCHES = [
    ("Anxious.", "anxious", True),
    ("**SAD**", "Sad", True),
    ("sad", "lonely", False),
    (None, "sad", False),  # no emotion span
    ("", "sad", False),
    ("sadness", "sad", False),  # not a label
    ("sad", None, False),  # no gold label
    ("sad", float("nan"), False),  # a missing value read from a table
    ("sad", "sadness", False),  # a gold label outside the 32
]


@pytest.mark.parametrize("predicted,gold,matches", MATCHES)
def test_emotion_matches(predicted, gold, matches):
    assert emotion_matches(predicted, gold) is matches
