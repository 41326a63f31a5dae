"""Verdicts for released dialogues that carry none, from a rubric judge."""

from __future__ import annotations

from build_cases import record, turn

from kardia.build.rejudge import rejudge_verdicts
from kardia.rubric import DIMENSIONS, Judgement


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
