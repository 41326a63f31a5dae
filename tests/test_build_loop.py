"""The U/A/R loop: revisions, limits, verdict histories and a role that gives up."""

from __future__ import annotations

import pytest
from build_cases import Scripted, seeds

from kardia.build.loop import build_dialogues, check_build_failures
from kardia.data import validate_record


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
