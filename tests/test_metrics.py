"""Reply metrics: format compliance, emotion accuracy over every reply, response length."""

from __future__ import annotations

import pytest

from kardia.metrics import bootstrap_ci, dialogue_of, span_metrics
from kardia.spans import render_spans


def reply(emotion: str, response: str = "That sounds hard.") -> str:
    return render_spans("They are upset.", "A loss hurts.", emotion, response)


def test_span_metrics_counts_complete_replies_and_correct_emotions():
    texts = [
        reply("sad", "I am so sorry."),  # complete, right
        reply("proud", "Well done you."),  # complete, wrong emotion
        "no spans at all",  # missing span: wrong, not complete
        "<|emotion_begin|>Sad<|emotion_end|> and nothing else",  # right emotion, incomplete
    ]
    m = span_metrics(texts, ["sad", "sad", "sad", "sad"])
    assert m["n"] == 4
    assert m["format_compliance"] == 0.5
    assert m["emotion_accuracy"] == 0.5  # over all four replies: rows 1 and 4
    assert m["response_words"] == 3.5  # "I am so sorry." and "Well done you.": complete only


@pytest.mark.parametrize("written", ["Sad", "SAD.", " sad ", "**sad**", "sad!"])
def test_emotion_labels_match_ignoring_case_and_punctuation(written):
    assert span_metrics([reply(written)], ["Sad"])["emotion_accuracy"] == 1.0


@pytest.mark.parametrize("written", ["sadness", "very sad", "happy", ""])
def test_other_words_are_not_the_gold_label(written):
    assert span_metrics([reply(written)], ["sad"])["emotion_accuracy"] == 0.0


def test_a_missing_or_unknown_gold_label_is_never_matched():
    assert span_metrics([reply("sad")], [None])["emotion_accuracy"] == 0.0
    assert span_metrics([reply("weird")], ["weird"])["emotion_accuracy"] == 0.0


def test_response_words_ignore_incomplete_replies():
    texts = [reply("sad", "one two three four five six"),
             "<|response_begin|>a b<|response_end|>"]  # fmt: skip
    m = span_metrics(texts, ["sad", "sad"])
    assert m["response_words"] == 6.0 and m["format_compliance"] == 0.5


def test_no_complete_reply_gives_zero_words():
    m = span_metrics(["nothing", "still nothing"], ["sad", "proud"])
    assert m == {"n": 2, "format_compliance": 0.0, "emotion_accuracy": 0.0, "response_words": 0.0}


def test_empty_input_gives_zeros():
    assert span_metrics([], []) == {"n": 0, "format_compliance": 0.0, "emotion_accuracy": 0.0,
                                    "response_words": 0.0}  # fmt: skip


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="2 replies for 1 gold"):
        span_metrics([reply("sad"), reply("sad")], ["sad"])
    with pytest.raises(ValueError):
        span_metrics([], ["sad"])


# --- confidence intervals and per-emotion accuracy ----------------------------------------------


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_more_data():
    from kardia.metrics import bootstrap_ci

    small = bootstrap_ci([0, 1] * 10, seed=1)
    large = bootstrap_ci([0, 1] * 1000, seed=1)
    for mean, low, high in (small, large):
        assert mean == 0.5 and low < 0.5 < high
    assert (large[2] - large[1]) < (small[2] - small[1]) / 5  # ~1/sqrt(100) as wide
    assert bootstrap_ci([0, 1] * 10, seed=1) == small  # seeded


def test_bootstrap_ci_of_a_constant_and_of_nothing():
    import math

    from kardia.metrics import bootstrap_ci

    assert bootstrap_ci([3.0, 3.0, float("nan"), 3.0]) == (3.0, 3.0, 3.0)  # NaN left out
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_per_emotion_accuracy_groups_by_gold_label():
    from kardia.metrics import per_emotion_accuracy
    from kardia.spans import render_spans

    def reply(label):
        return render_spans("u", "r", label, "resp")

    texts = [reply("sad"), reply("Joyful!"), reply("sad"), "no spans at all"]
    gold = ["sad", "joyful", "lonely", "joyful"]
    out = per_emotion_accuracy(texts, gold + [])
    assert out == {"joyful": {"n": 2, "accuracy": 0.5}, "lonely": {"n": 1, "accuracy": 0.0},
                   "sad": {"n": 1, "accuracy": 1.0}}  # fmt: skip
    with pytest.raises(ValueError):
        per_emotion_accuracy(texts, gold[:2])


def test_judge_agreement_per_dimension():
    import math

    from kardia.metrics import judge_agreement
    from kardia.rubric import DIMENSIONS

    def scores(**kw):
        return {d: kw.get(d, 3) for d in DIMENSIONS}

    a = [scores(relevance=1, empathy=5), scores(relevance=2, empathy=4),
         scores(relevance=3, empathy=3), scores(relevance=5, empathy=1), None]  # fmt: skip
    b = [scores(relevance=2, empathy=1), scores(relevance=3, empathy=2),
         scores(relevance=4, empathy=3), scores(relevance=5, empathy=5), scores()]  # fmt: skip
    out = judge_agreement(a, b)
    assert out["relevance"] == {"n": 4, "spearman": 1.0, "exact": 0.25}  # same order, one equal
    assert out["empathy"]["spearman"] == -1.0 and out["empathy"]["exact"] == 0.25
    assert math.isnan(out["fluency"]["spearman"]) and out["fluency"]["exact"] == 1.0  # constant
    with pytest.raises(ValueError):
        judge_agreement(a, b[:2])


def test_clustered_bootstrap_resamples_whole_dialogues():
    import random

    rng = random.Random(0)
    values, groups = [], []
    for d in range(20):  # 20 dialogues of 10 turns; turns of a dialogue move together
        level = rng.random()
        values += [level + rng.gauss(0, 0.02) for _ in range(10)]
        groups += [f"d{d}"] * 10
    mean, low, high = bootstrap_ci(values, resamples=2000, seed=0)
    c_mean, c_low, c_high = bootstrap_ci(values, resamples=2000, seed=0, groups=groups)
    assert c_mean == mean
    assert (c_high - c_low) > 2.5 * (high - low)  # 200 "independent" turns are really 20 dialogues
    # one group per value is the plain bootstrap, draw for draw
    assert bootstrap_ci(values, seed=3, groups=list(range(200))) == bootstrap_ci(values, seed=3)
    # NaN (a failed judgement) leaves its value out, not its dialogue's other turns
    assert bootstrap_ci([1.0, float("nan"), 3.0], groups=["a", "a", "b"])[0] == 2.0
    with pytest.raises(ValueError, match="2 group labels for 3 values"):
        bootstrap_ci([1.0, 2.0, 3.0], groups=["a", "b"])


def test_dialogue_of_reads_the_dialogue_from_an_item_id():
    assert dialogue_of("kb-000800:3") == "kb-000800"
    assert dialogue_of("ieval-17") == "ieval-17"  # a single-turn item is its own dialogue
