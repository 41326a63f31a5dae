"""The builder's post-filters, semantic de-duplication and distinct-n."""

from __future__ import annotations

import numpy as np
import pytest
from build_cases import record, turn

from kardia.build.filters import (
    distinct_n,
    emotion_jump,
    identity_drift,
    post_filter,
    semantic_dedup,
    structure_problem,
)
from kardia.encoder import shared_encoder

CLEAN = record([("I miss her.", turn()), ("A lot.", turn("lonely"))])

# (record, filter, expected to flag) — one row per failure class, and the clean record for each
FILTER_CASES = [
    (CLEAN, structure_problem, False),
    (CLEAN, identity_drift, False),
    (CLEAN, emotion_jump, False),
    # broken structure: an assistant turn without its response span
    (record([("hi", turn().split("<|response_begin|>")[0])]), structure_problem, True),
    # identity drift: the simulated user talks like the assistant
    (record([("As an AI, I understand.", turn())]), identity_drift, True),
    (record([("User: I feel bad", turn())]), identity_drift, True),
    # identity drift: the responder takes an INFJ for an ESTP
    (record([("hi", turn(understanding="The ESTP user is sad."))]), identity_drift, True),
    # a type the profile has is fine, also in the plural
    (record([("hi", turn(understanding="Like most INFJs, they hide it."))]), identity_drift, False),
    # emotion jump: sad -> joyful between turns
    (record([("a", turn("sad")), ("b", turn("joyful"))]), emotion_jump, True),
    # emotion jump: a label against the target's valence
    (record([("a", turn("proud"))], emotion="devastated"), emotion_jump, True),
    # neutral labels never jump
    (record([("a", turn("sad")), ("b", turn("nostalgic")), ("c", turn("sad"))]), emotion_jump,
     False),
]  # fmt: skip


@pytest.mark.parametrize("rec,check,flagged", FILTER_CASES)
def test_filters(rec, check, flagged):
    assert (check(rec) is not None) is flagged


def test_post_filter_counts_each_reason_and_logs_it():
    bad = record([("As an AI, hello.", turn())])
    kept, counts, log = post_filter([CLEAN, bad, CLEAN])
    assert len(kept) == 2
    assert counts == {
        "broken_structure": 0,
        "identity_drift": 1,
        "emotion_jump": 0,
        "near_duplicate": 0,
    }
    assert log[0]["reason"] == "identity_drift"


class FixedEncoder:
    """Unit vectors chosen per text: the dedup arithmetic, isolated from a real model."""

    def __init__(self, vectors):
        self.vectors = vectors

    def encode(self, texts):
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def test_semantic_dedup_drops_later_near_duplicates_greedily():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    near_a = np.array([0.99, np.sqrt(1 - 0.99**2)])
    enc = FixedEncoder({"a": a, "b": b, "a2": near_a, "a3": near_a})
    assert semantic_dedup(["a", "b", "a2", "a3"], enc, 0.98) == [0, 1]
    assert semantic_dedup(["a", "b", "a2", "a3"], enc, 0.995) == [0, 1, 2]
    assert semantic_dedup([], enc, 0.9) == []


def test_semantic_dedup_with_the_real_encoder():
    texts = [
        "My dog died last week and the house feels empty without him.",
        "My dog died last week, and the house feels so empty without him.",
        "I finally got the promotion I worked three years for.",
    ]
    assert semantic_dedup(texts, shared_encoder(), 0.95) == [0, 2]


# (texts, n, expected distinct-n)
DISTINCT = [
    (["a b c", "a b d"], 1, 4 / 6),
    (["a b c", "a b d"], 2, 3 / 4),
    (["same same", "same same"], 1, 1 / 4),
    ([], 2, 0.0),
]


@pytest.mark.parametrize("texts,n,expected", DISTINCT)
def test_distinct_n(texts, n, expected):
    assert distinct_n(texts, n) == pytest.approx(expected)
