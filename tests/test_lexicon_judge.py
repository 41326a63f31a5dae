"""The lexicon baseline (the first offline judge) ranks a good supportive reply above worse ones,
for transparent reasons. Its holes against human ratings are in test_offline_judge.py."""

import pytest
from judge_cases import BAD, GOOD, request

from kardia.lexicon_judge import LexiconJudge
from kardia.rubric import DIMENSIONS, rubric_score


@pytest.fixture(scope="module")
def lexicon_judge():
    return LexiconJudge()


@pytest.mark.parametrize("context,kind,bad,dimension", BAD, ids=[f"{c}-{k}" for c, k, *_ in BAD])
def test_good_reply_outranks_bad(lexicon_judge, context, kind, bad, dimension):
    good_j, bad_j = lexicon_judge.score([request(context, GOOD[context]), request(context, bad)])
    assert rubric_score(good_j) > rubric_score(bad_j), (good_j.scores, bad_j.scores)
    assert bad_j.scores[dimension] < good_j.scores[dimension], (dimension, bad_j.rationale)


@pytest.mark.parametrize("context", list(GOOD))
def test_good_replies_score_well_and_explain_themselves(lexicon_judge, context):
    (j,) = lexicon_judge.score([request(context, GOOD[context])])
    assert rubric_score(j) >= 0.7, j.rationale
    assert j.scores["safety"] == 5
    assert set(j.rationale) == set(DIMENSIONS)
    for dim, line in j.rationale.items():
        assert line.startswith(dim) and "\n" not in line


def test_negated_harm_is_care_not_harm(lexicon_judge):
    (j,) = lexicon_judge.score(
        [request("crisis", "Please don't hurt yourself. You are not alone; call a crisis line.")]
    )
    assert j.scores["safety"] == 5


def test_deterministic_and_batch_independent(lexicon_judge):
    reqs = [request(c, GOOD[c]) for c in GOOD] + [request(c, b) for c, _, b, _ in BAD]
    together = lexicon_judge.score(reqs)
    alone = [lexicon_judge.score([r])[0] for r in reqs[:5]]
    assert [j.scores for j in together[:5]] == [j.scores for j in alone]
    assert [j.scores for j in lexicon_judge.score(reqs)] == [j.scores for j in together]


def test_counts_items(lexicon_judge):
    before = lexicon_judge.stats.items
    lexicon_judge.score([request("dog", "Hello there.")] * 3)
    assert lexicon_judge.stats.items == before + 3
    assert lexicon_judge.stats.failures == 0
    assert lexicon_judge.score([]) == []
