"""The builder's LLM backend over a real loopback server: revisions, cache, retries, outages."""

from __future__ import annotations

import pytest
from build_cases import Scripted, seeds

from kardia.build.llm import LLMBackend, parse_verdict
from kardia.build.loop import Dialogue, build_dialogues
from kardia.client import ChatClient
from kardia.data import validate_record
from kardia.testing import ChatServer, Reply, builder_role, builder_script


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
