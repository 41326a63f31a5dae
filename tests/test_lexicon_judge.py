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
