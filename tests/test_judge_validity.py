"""Judge validity: the agreement statistics on inputs whose answer is known, intervals that
resample contexts, and the same table for a served judge over a real loopback HTTP server."""

import json
import math

import numpy as np
import pytest

from kardia.human_ratings import RatedReply
from kardia.judge_validity import (
    COLUMNS,
    LENGTH,
    auc,
    headline,
    length_scores,
    pairwise,
    score_items,
    spearman,
    validity_rows,
    validity_table,
)
from kardia.judges import OpenAICompatibleJudge
from kardia.rubric import DIMENSIONS, JudgeRequest
from kardia.testing import ChatServer, Reply, judgement_json


@pytest.mark.parametrize(
    "x,y,expected",
    [
        ([1, 2, 3, 4], [10, 20, 30, 40], 1.0),  # monotone
        ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),  # reversed
        ([3, 3, 3, 3], [1, 2, 3, 4], float("nan")),  # one score for everything orders nothing
        ([1, 2], [1, 2], float("nan")),  # too few
    ],
)
def test_spearman(x, y, expected):
    got = spearman(x, y)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


@pytest.mark.parametrize(
    "scores,positive,expected",
    [
        ([5, 4, 2, 1], [1, 1, 0, 0], 1.0),  # perfect separation
        ([1, 2, 4, 5], [1, 1, 0, 0], 0.0),  # reversed
        ([5, 5, 5, 5], [1, 1, 0, 0], 0.5),  # all ties: chance
        ([5, 3, 3, 1], [1, 1, 0, 0], 0.875),  # one tie across classes counts half: (4 - .5) / 4
        ([5, 4], [1, 1], float("nan")),  # one class only
    ],
)
def test_auc(scores, positive, expected):
    got = auc(scores, positive)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_pairwise_compares_within_a_context_only():
    # context a: judge agrees on (1,2); context b: judge ties -> half; cross-context never compared
    acc, n = pairwise([1, 2, 3, 3, 9], [1, 5, 1, 5, 1], ["a", "a", "b", "b", "c"])
    assert (acc, n) == (0.75, 2)
    acc, n = pairwise([1, 2], [1, 5], [None, None])  # no context: no pair
    assert math.isnan(acc) and n == 0
    acc, n = pairwise([1, 2], [3, 3], ["a", "a"])  # people rated them alike: no pair
    assert math.isnan(acc) and n == 0


def item(dataset, group, response, **human) -> RatedReply:
    req = JudgeRequest("", "", [{"role": "user", "content": f"context {group}"}], response)
    return RatedReply(dataset, f"{dataset}:{group}:{response}", group, (req,), human, context=group)


def items_with_known_order():
    """DiaSafety-like: long replies are safe; iEval-like: human empathy = length."""
    out = []
    for g in range(30):
        out.append(item("diasafety", f"d{g}", "ok " * 8, safe=1.0))
        out.append(item("diasafety", f"d{g}", "no", safe=0.0))
        for k in range(1, 5):
            out.append(item("ieval", f"i{g}", "word " * (k + g % 3), EU=float(k), ER=float(k),
                            S=float(k), A=float(k), Rating=float(k)))  # fmt: skip
    return out


def test_a_judge_that_matches_people_scores_perfectly_with_tight_intervals():
    items = items_with_known_order()
    rows = validity_rows("len", length_scores(items), items, resamples=200)
    by = {(r["dataset"], r["human"]): r for r in rows}
    safety = by[("diasafety", "safe")]
    assert safety["auc"] == 1.0 and safety["pairwise"] == 1.0 and safety["pairs"] == 30
    assert safety["auc_lo"] == safety["auc_hi"] == 1.0 and safety["groups"] == 30
    empathy = by[("ieval", "EU")]
    assert empathy["pairwise"] == 1.0 and empathy["pairs"] == 30 * 6
    assert 0.5 < empathy["spearman_lo"] <= empathy["spearman"] <= empathy["spearman_hi"]
    assert math.isnan(empathy["auc"])  # a 1-5 rating has no AUC
    assert set(rows[0]) == set(COLUMNS)
    assert ("failed_esconv", "feedback") not in by  # no items: no row


def test_a_reversed_judge_is_below_chance_and_failures_are_counted():
    items = items_with_known_order()
    scores = [{d: -v for d, v in s.items()} for s in length_scores(items)]
    scores[0] = None  # a failed judgement
    rows = validity_rows("rev", scores, items, resamples=50)
    safety = next(r for r in rows if r["human"] == "safe")
    assert safety["auc"] == 0.0 and safety["failed"] == 1 and safety["n"] == 59


def test_the_bootstrap_resamples_contexts_not_replies():
    # the judge agrees with people inside context a and is reversed inside context b: pooled rho
    # is 0. Resampling 100 replies would give a tight interval around 0; with two independent
    # contexts the interval must span from "always wrong" (b, b) to "always right" (a, a).
    items, scores = [], []
    for g, sign in (("a", 1), ("b", -1)):
        for k in range(50):
            rating = float(k % 5 + 1)
            items.append(item("ieval", g, f"{g}{k}", EU=rating, ER=1.0, S=1.0, A=1.0, Rating=1.0))
            scores.append(
                {**dict.fromkeys((*DIMENSIONS, "overall"), 1.0), "empathy": sign * rating}
            )
    (row,) = [
        r for r in validity_rows("j", scores, items, resamples=300, seed=1) if r["human"] == "EU"
    ]
    assert row["groups"] == 2 and abs(row["spearman"]) < 0.05
    assert row["spearman_lo"] < -0.9 and row["spearman_hi"] > 0.9


def test_score_items_averages_a_chats_replies_and_adds_overall():
    class Scripted:
        def score(self, requests):
            from kardia.rubric import Judgement

            return [Judgement(dict.fromkeys(DIMENSIONS, len(r.response))) for r in requests]

    req = lambda t: JudgeRequest("", "", [], t)  # noqa: E731
    chat = RatedReply("ieval", "c", "g", (req("x"), req("xxx")), {"EU": 3.0})
    (scores,) = score_items(Scripted(), [chat])
    assert scores["empathy"] == 2.0 and scores["overall"] == 2.0


def test_a_served_judge_validates_unchanged_over_loopback():
    """The stage's one command works for `judge.kind: openai`: a real HTTP judge on 127.0.0.1
    that scores safety 5 for long replies and 1 for short ones, and fails on one reply."""

    def serve(payload, attempt):
        case = payload["messages"][-1]["content"]
        reply = json.loads(case.split("<case>\n", 1)[1].split("\n</case>", 1)[0])["reply"]
        if reply == "broken":
            return Reply(content="not json")
        return Reply(content=judgement_json(5 if len(reply) > 5 else 1))

    items = items_with_known_order()[:12] + [item("diasafety", "zz", "broken", safe=1.0)]
    with ChatServer(serve) as srv:
        judge = OpenAICompatibleJudge(srv.base_url, "judge-model", max_retries=0, timeout_s=10)
        table, failures = validity_table({"judge": judge}, items, resamples=20)
    assert failures == {"judge": 1, LENGTH: 0}
    safety = table[(table["judge"] == "judge") & (table["human"] == "safe")].iloc[0]
    assert safety["auc"] == 1.0 and safety["failed"] == 1
    assert judge.stats.failures == 1
    assert headline(table, "judge")["safety_auc"] == 1.0
    assert set(table["judge"]) == {"judge", LENGTH}


def test_headline_quotes_ieval_means_and_the_unseen_data_set_apart():
    import pandas as pd

    t = pd.DataFrame([
        {"judge": "j", "dataset": "ieval", "dimension": "empathy", "spearman": 0.2, "auc": np.nan},
        {"judge": "j", "dataset": "ieval", "dimension": "empathy", "spearman": 0.4, "auc": np.nan},
        {"judge": "j", "dataset": "failed_esconv", "dimension": "empathy", "spearman": 0.0, "auc": np.nan},
        {"judge": "j", "dataset": "failed_esconv", "dimension": "overall", "spearman": 0.1, "auc": np.nan},
        {"judge": "j", "dataset": "diasafety", "dimension": "safety", "spearman": 0.5, "auc": 0.9},
        {"judge": "k", "dataset": "diasafety", "dimension": "safety", "spearman": 0.1, "auc": 0.6},
    ])  # fmt: skip
    assert headline(t, "j") == pytest.approx(
        {"safety_auc": 0.9, "empathy_rho": 0.3, "unseen_rho": 0.1}
    )


def test_a_check_whose_judgements_all_failed_gives_nan_not_a_crash():
    items = items_with_known_order()[:4]
    rows = validity_rows("dead", [None] * len(items), items, resamples=20)
    safety = next(r for r in rows if r["human"] == "safe")
    assert safety["n"] == 0 and safety["failed"] == 2
    assert math.isnan(safety["auc"]) and math.isnan(safety["auc_lo"])
