"""The offline generator: valid, varied, reproducible dialogues, and an evaluator that reads text."""

from __future__ import annotations

import random

import pytest

from kardia.build.filters import diversity, post_filter
from kardia.build.loop import Dialogue, build_dialogues, system_message
from kardia.build.offline import CHECKS, OfflineBackend, third_person
from kardia.data import difficulty, validate_record
from kardia.seed import load_seed_bank, sample_seeds
from kardia.spans import render_spans


@pytest.fixture(scope="module")
def bank():
    return load_seed_bank("data/seed")


@pytest.fixture(scope="module")
def built(bank):
    return build_dialogues(
        sample_seeds(bank, 200, seed=0), OfflineBackend(bank.language), progress=False
    )


def test_offline_dialogues_are_valid_and_end_solved(built):
    records, stats = built
    assert stats.ended["solved"] + stats.ended["max_exchanges"] == 200
    kept, counts, _ = post_filter(records)
    assert len(kept) >= 180  # the filters drop only the few turns that stayed broken
    for r in kept:
        validate_record(r)
        assert 1 <= len(r["verdicts"]) <= 10
        assert all(1 <= len(h) <= 6 for h in r["verdicts"])


def test_offline_build_is_reproducible_and_varied(bank, built):
    again, _ = build_dialogues(
        sample_seeds(bank, 200, seed=0), OfflineBackend(bank.language), progress=False
    )
    assert again == built[0]
    other, _ = build_dialogues(
        sample_seeds(bank, 200, seed=0), OfflineBackend(bank.language), seed=1, progress=False
    )
    assert other != built[0]
    d = diversity(built[0])
    # Measured on 200 dialogues: responses 0.14, user turns 0.39 distinct-2; a generator that
    # repeats one template per role would fall far below these floors.
    assert d["response_distinct_2"] > 0.05 and d["user_distinct_2"] > 0.15
    assert len({r["messages"][1]["content"] for r in built[0]}) == 200


def test_both_easy_and_hard_dialogues_come_out(built):
    labels = [difficulty(r["verdicts"]) for r in built[0]]
    assert 0.1 < labels.count("hard") / len(labels) < 0.5


def dialogue(bank, user_text="My friend moved away and I keep thinking about it."):
    seed = sample_seeds(bank, 1, seed=3)[0]
    d = Dialogue(0, seed, [system_message(seed)], random.Random(0))
    d.messages.append({"role": "user", "content": user_text})
    return d


def test_the_evaluator_fails_each_flaw_by_name(bank):
    backend = OfflineBackend(bank.language)
    d = dialogue(bank)
    mbti, emotion = d.seed.persona["mbti"], d.seed.emotion
    other = "ESTP" if mbti != "ESTP" else "INFJ"
    topic = d.seed.situation["topic"]
    good = render_spans(f"The {mbti} user is upset.", "It matters.", emotion,
                        f"That sounds hard, {topic} matters.")  # fmt: skip
    assert backend.failed_checks(d, good) == []
    wrong = "sad" if emotion != "sad" else "joyful"
    cases = {
        "complete_spans": good.replace("<|emotion_begin|>", ""),
        "emotion_matches": good.replace(f">{emotion}<", f">{wrong}<"),
        "persona_grounded": good.replace(mbti, other),
        "on_topic": render_spans(f"The {mbti} user.", "x", emotion, "Life goes on."),
        "concise": good.replace("matters.<|response_end|>", "matters. " + "word " * 40
                                + "<|response_end|>"),
        "not_dismissive": good.replace("That sounds hard", "Just get over it"),
    }  # fmt: skip
    assert set(cases) == set(CHECKS)
    for check, candidate in cases.items():
        assert check in backend.failed_checks(d, candidate), check


def test_solved_needs_a_closing_user_turn_after_the_opening(bank):
    backend = OfflineBackend(bank.language)
    d = dialogue(bank, "Thanks for listening, I really needed that.")
    reply = f"Anytime; {d.seed.situation['topic']} matters."
    good = render_spans(f"The {d.seed.persona['mbti']} user.", "x", d.seed.emotion, reply)
    assert backend.verdict(d, good).label == "PASS"  # a first message cannot close the talk
    d.messages += [{"role": "assistant", "content": good},
                   {"role": "user", "content": "Thanks for listening, I really needed that."}]  # fmt: skip
    assert backend.verdict(d, good).label == "SOLVED"


# (first-person sentence, third-person retelling)
RETELL = [
    ("I lost my keys", "they lost their keys"),
    ("I'm tired and I was late", "they're tired and they were late"),
    ("My sister called me", "their sister called them"),
]


@pytest.mark.parametrize("first,third", RETELL)
def test_third_person(first, third):
    assert third_person(first).lower() == third.lower()


def test_exchange_weights_with_string_keys_mean_the_same(bank):
    # papermill hands dict parameters over as JSON, so {3: 1} arrives as {"3": 1}
    as_ints = OfflineBackend(bank.language, exchanges={3: 1, 10: 2})
    as_strings = OfflineBackend(bank.language, exchanges={"3": 1, "10": 2})
    seeds = sample_seeds(bank, 20, seed=0)
    a, _ = build_dialogues(seeds, as_ints, progress=False)
    b, _ = build_dialogues(seeds, as_strings, progress=False)
    assert a == b
