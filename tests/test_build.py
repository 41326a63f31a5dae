"""The U/A/R builder loop, its post-filters, and the LLM backend over a real loopback server."""

from __future__ import annotations

import numpy as np
import pytest

from kardia.build import (
    LLMBackend,
    Verdict,
    build_dialogues,
    check_build_failures,
    distinct_n,
    emotion_jump,
    identity_drift,
    make_backend,
    parse_verdict,
    post_filter,
    rejudge_verdicts,
    semantic_dedup,
    structure_problem,
)
from kardia.client import ChatClient
from kardia.data import validate_record
from kardia.rubric import DIMENSIONS, Judgement
from kardia.seed import Seed
from kardia.spans import render_spans
from kardia.testing import ChatServer, Reply, builder_role, builder_script

PERSONA = {
    "anon_username": "0123456789abcdef",
    "mbti": "INFJ",
    "about": "I draw lanterns.",
    "signature": "Quietly.",
    "recent_activities": ["Posted a sketch"],
}
SITUATION = {
    "emotion": "sad",
    "situation": "My friend moved away.",
    "topic": "your friend moving away",
    "details": ["We met at school."],
}


def seeds(n: int) -> list[Seed]:
    return [
        Seed({**PERSONA, "anon_username": f"{i:016x}"}, {**SITUATION, "situation": f"Case {i}."})
        for i in range(n)
    ]


def turn(emotion: str = "sad", understanding: str = "The INFJ user misses a friend.") -> str:
    return render_spans(understanding, "Loss hurts.", emotion, "That sounds hard.")


class Scripted:
    """A backend whose evaluator answers from a list of verdicts per exchange (Python, no HTTP)."""

    def __init__(self, verdicts, fail_role: str | None = None):
        self.verdicts = verdicts  # callable (dialogue, exchange, attempt) -> label
        self.fail_role = fail_role
        self.drafts_seen = []

    def user_turns(self, dialogues):
        if self.fail_role == "user":
            return [None for _ in dialogues]
        return [f"user turn {d.exchanges}" for d in dialogues]

    def respond(self, dialogues, drafts):
        self.drafts_seen.extend(drafts)
        if self.fail_role == "respond":
            return [None for _ in dialogues]
        return [turn() for _ in dialogues]

    def evaluate(self, dialogues, candidates):
        out = []
        for d in dialogues:
            attempt = d.state.setdefault(d.exchanges, 0)
            d.state[d.exchanges] += 1
            out.append(Verdict(self.verdicts(d, d.exchanges, attempt), "fix it"))
        return out


# --- loop limits ------------------------------------------------------------------------------


def test_a_failing_turn_is_revised_at_most_max_revisions_times_and_kept():
    backend = Scripted(lambda d, ex, att: "FAIL" if ex == 0 else "SOLVED")
    records, stats = build_dialogues(seeds(2), backend, max_revisions=5, progress=False)
    assert [r["verdicts"][0] for r in records] == [["FAIL"] * 6] * 2  # 1 try + 5 revisions
    assert records[0]["verdicts"][1] == ["SOLVED"]
    assert stats.exhausted_turns == 2
    assert stats.attempts == 2 * 6 + 2


def test_revisions_receive_the_rejected_draft_and_feedback():
    backend = Scripted(lambda d, ex, att: "FAIL" if att < 2 else "SOLVED")
    records, _ = build_dialogues(seeds(1), backend, progress=False)
    assert records[0]["verdicts"] == [["FAIL", "FAIL", "SOLVED"]]
    drafts = [d for d in backend.drafts_seen if d is not None]
    assert len(drafts) == 2 and drafts[0].feedback == "fix it" and "_begin|>" in drafts[0].text


def test_dialogues_stop_at_max_exchanges_without_solved():
    records, stats = build_dialogues(
        seeds(3), Scripted(lambda *a: "PASS"), max_exchanges=4, progress=False
    )
    assert all(len(r["messages"]) == 1 + 2 * 4 for r in records)
    assert all(r["end"] == "max_exchanges" for r in records)
    assert stats.ended == {"max_exchanges": 3}


def test_solved_ends_the_dialogue_at_once():
    backend = Scripted(lambda d, ex, att: "SOLVED" if ex == d.id else "PASS")
    records, stats = build_dialogues(seeds(3), backend, max_exchanges=10, progress=False)
    assert [len(r["verdicts"]) for r in records] == [1, 2, 3]
    assert all(r["end"] == "solved" for r in records)
    assert all(validate_record(r) for r in records)


@pytest.mark.parametrize("role", ["user", "respond"])
def test_a_role_that_gives_up_drops_the_dialogue_and_is_counted(role):
    records, stats = build_dialogues(
        seeds(4), Scripted(lambda *a: "PASS", fail_role=role), progress=False
    )
    assert records == [] and stats.ended == {"failed": 4} and stats.failed_steps == {role: 4}
    with pytest.raises(RuntimeError, match="4 of 4 dialogues failed"):
        check_build_failures(stats, 0.05)


def test_loop_limits_are_checked():
    with pytest.raises(ValueError):
        build_dialogues(seeds(1), Scripted(lambda *a: "PASS"), max_exchanges=0)


# --- post-filters -----------------------------------------------------------------------------


def record(turns: list[tuple[str, str]], emotion: str = "sad", mbti: str = "INFJ") -> dict:
    messages = [{"role": "system", "content": "sys"}]
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {
        "dialogue_id": "x",
        "person": "p",
        "mbti": mbti,
        "emotion": emotion,
        "situation": "s",
        "anon_username": "u",
        "messages": messages,
    }


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
    from kardia.encoder import shared_encoder

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


# --- the LLM backend over HTTP ----------------------------------------------------------------


def test_llm_backend_builds_dialogues_with_revisions_and_caches(tmp_path):
    with ChatServer(builder_script(close_after=3)) as srv:
        client = ChatClient(srv.base_url, "m", cache_path=tmp_path / "c.sqlite", concurrency=8)
        records, stats = build_dialogues(seeds(5), LLMBackend(client), progress=False)
        assert stats.ended == {"solved": 5}
        for r in records:
            validate_record(r)
            # every draft names no type first, so R fails it once; the thanks turn is SOLVED
            assert r["verdicts"] == [["FAIL", "PASS"]] * 3 + [["FAIL", "SOLVED"]]
            assert r["messages"][1]["content"].startswith("It still bothers me")
        served = srv.requests
        assert served == 5 * (4 + 8 + 8)  # U once per exchange, A and R twice per turn
        again, _ = build_dialogues(seeds(5), LLMBackend(client), progress=False)
        assert again == records and srv.requests == served  # all from the SQLite cache


def test_llm_backend_retries_replies_it_cannot_use():
    script = builder_script(close_after=1, fail_first=False)

    def flaky(payload, attempt):
        role = builder_role(payload)
        if attempt == 1 and role == "respond":
            return Reply("Sure! Here is my reply without any spans.")
        if attempt == 1 and role == "evaluate":
            return Reply('{"verdict": "MAYBE"}')
        return script(payload, attempt)

    with ChatServer(flaky) as srv:
        client = ChatClient(srv.base_url, "m", backoff_s=0.001)
        records, stats = build_dialogues(seeds(2), LLMBackend(client), progress=False)
    # 2 dialogues x 2 exchanges x (A, R): every first reply rejected by the parser, then retried
    assert stats.ended == {"solved": 2} and client.stats.retries == 8
    assert all(r["verdicts"] == [["PASS"], ["SOLVED"]] for r in records)


def test_llm_backend_counts_failures_when_the_server_is_down():
    with ChatServer(lambda p, a: Reply(status=500)) as srv:
        client = ChatClient(srv.base_url, "m", max_retries=1, backoff_s=0.001)
        records, stats = build_dialogues(seeds(3), LLMBackend(client), progress=False)
    assert records == [] and stats.failed_steps == {"user": 3}


def test_llm_backend_messages_hide_the_spans_from_the_user_simulator():
    backend = LLMBackend(None)  # only renders messages here
    records, _ = build_dialogues(seeds(1), Scripted(lambda *a: "PASS"), max_exchanges=2,
                                 progress=False)  # fmt: skip
    from kardia.build import Dialogue

    d = Dialogue(0, seeds(1)[0], records[0]["messages"], rng=None)
    view = backend.user_messages(d)
    # U is given profile, situation and emotion (SPEC §2.1), and sees only the replies
    assert view[0]["role"] == "system" and "How you feel about it: sad" in view[0]["content"]
    assert [m["role"] for m in view[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert view[-1]["content"] == "That sounds hard." and "_begin|>" not in str(view)


# (reply, verdict or None for an error)
VERDICT_REPLIES = [
    ('{"verdict": "PASS", "feedback": "ok"}', "PASS"),
    ('```json\n{"verdict": "solved", "feedback": "done"}\n```', "SOLVED"),
    ('Thinking... {"verdict": "FAIL", "feedback": "too long"}', "FAIL"),
    ('{"verdict": "GOOD"}', None),
    ("no json here", None),
]


@pytest.mark.parametrize("reply,expected", VERDICT_REPLIES)
def test_parse_verdict(reply, expected):
    if expected is None:
        with pytest.raises(ValueError):
            parse_verdict(reply)
    else:
        assert parse_verdict(reply).label == expected


def test_make_backend_errors():
    with pytest.raises(ValueError, match="unknown build backend"):
        make_backend("gpt")
    with pytest.raises(ValueError, match="base_url"):
        make_backend("llm", llm={"model": "m"})
    with pytest.raises(ValueError, match="seed bank"):
        make_backend("offline")


# --- re-judging released data -----------------------------------------------------------------


class ListJudge:
    """Scores the replies in order from a list of mean scores (None = failed judgement)."""

    def __init__(self, means):
        self.means = list(means)

    def score(self, requests):
        out = []
        for _ in requests:
            m = self.means.pop(0)
            out.append(None if m is None else Judgement(dict.fromkeys(DIMENSIONS, m), {}))
        return out


def test_rejudge_maps_rubric_scores_to_verdicts():
    recs = [
        record([("a", turn()), ("b", turn()), ("c", turn())]),
        record([("a", turn()), ("b", turn())]),
    ]
    # rubric score (mean-1)/4: 1 -> 0.0 FAIL, 3 -> 0.5 PASS, 5 -> 1.0
    verdicts = rejudge_verdicts(recs, ListJudge([1, 3, 5, None, 2]), fail_below=0.5)
    assert verdicts == [[["FAIL"], ["PASS"], ["SOLVED"]], [[], ["FAIL"]]]


def test_compact_system_prompt_keeps_type_first_about_sentence_and_situation():
    from kardia.build import short_profile, system_prompt

    person = ("MBTI: ESTJ\nAbout: Assistant manager in Birmingham. I enjoy football.\n"
              "Signature: Organized.\nRecent Activities:\n- Posted in the ESTJ forum")  # fmt: skip
    assert short_profile(person) == "ESTJ; Assistant manager in Birmingham."
    assert short_profile("just some free text about me") == "just some free text about me"
    compact = system_prompt(person, "I lost my keys.", "compact")
    assert (
        "ESTJ; Assistant manager in Birmingham." in compact
        and "Situation: I lost my keys." in compact
    )
    assert "Signature" not in compact and "football" not in compact
    full = system_prompt(person, "I lost my keys.", "full")
    assert "Signature: Organized." in full and len(compact) < len(full) / 2
    with pytest.raises(ValueError, match="prompt_style"):
        system_prompt(person, "x", "tiny")
