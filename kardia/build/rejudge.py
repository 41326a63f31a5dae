"""Verdicts for a loaded dataset that carries none (the released KardiaBench), from a judge."""

from __future__ import annotations

from collections.abc import Sequence

from kardia.data import expand_turns
from kardia.rewards import make_rubric_reward


def rejudge_verdicts(records: Sequence[dict], judge, fail_below: float = 0.5) -> list[list[list]]:
    """Verdicts for dialogues that carry none (the released KardiaBench), from a rubric judge.

    Each assistant turn is scored like a Rubric-ERL reward: FAIL when its rubric score
    ``(mean − 1) / 4`` is below ``fail_below``, else PASS, and SOLVED for an acceptable final
    turn (the released dialogues ended where R said SOLVED). A failed judgement leaves that turn
    with an empty history. Only the final turns were released, so every history has one verdict.
    """
    rows = expand_turns(records)
    scores = make_rubric_reward(judge)(
        [r["completion"] for r in rows],
        [r["prompt"] for r in rows],
        person=[r["person"] for r in rows],
        situation=[r["situation"] for r in rows],
        emotion=[r["emotion"] for r in rows],
    )
    it = iter(scores)  # expand_turns yields the turns of each record in order
    out = []
    for rec in records:
        n_turns = len(rec["messages"]) // 2
        turns = []
        for t, score in enumerate(next(it) for _ in range(n_turns)):
            if score is None:
                turns.append([])
            elif score < fail_below:
                turns.append(["FAIL"])
            else:
                turns.append(["SOLVED" if t == n_turns - 1 else "PASS"])
        out.append(turns)
    return out


def fill_missing_verdicts(records: Sequence[dict], judge, fail_below: float) -> int:
    """Re-judge (``rejudge_verdicts``) the records that carry no verdicts, in place; return how
    many were re-judged. The judge's counters tell how many judgements failed."""
    missing = [r for r in records if not r.get("verdicts")]
    if missing:
        for rec, verdicts in zip(
            missing, rejudge_verdicts(missing, judge, fail_below), strict=True
        ):
            rec["verdicts"] = verdicts
    return len(missing)


__all__ = ["fill_missing_verdicts", "rejudge_verdicts"]
