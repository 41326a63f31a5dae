import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kardia.rewards import (
    REWARDS,
    build_rewards,
    completion_text,
    emotion_reward,
    format_reward,
    make_rubric_reward,
)
from kardia.rubric import DIMENSIONS, Judgement
from kardia.spans import render_spans

GOOD = render_spans("He misses home.", "Loneliness after a move.", "lonely", "That sounds lonely.")
GOOD_XML = render_spans("He misses home.", "Loneliness.", "Lonely.", "That sounds lonely.", "xml")
NO_RESPONSE = GOOD.split("<|response_begin|>")[0]
WRONG_EMOTION = render_spans("u", "r", "joyful", "s")


def conv(text):
    return [{"role": "assistant", "content": text}]


# (completion, gold emotion, format reward, emotion reward)
CASES = [
    (GOOD, "lonely", 1.0, 1.0),  # plain string, both right
    (conv(GOOD), "lonely", 1.0, 1.0),  # conversational completion
    (GOOD_XML, "lonely", 1.0, 1.0),  # xml tags, label variant "Lonely."
    (GOOD, "Lonely", 1.0, 1.0),  # gold label variant
    (WRONG_EMOTION, "lonely", 1.0, 0.0),  # well formed, wrong emotion
    (NO_RESPONSE, "lonely", 0.0, 1.0),  # emotion right, format broken
    ("lonely", "lonely", 0.0, 0.0),  # bare label without spans
    ("", "lonely", 0.0, 0.0),  # empty
    (conv(""), "lonely", 0.0, 0.0),  # empty conversational
    ([], "lonely", 0.0, 0.0),  # empty message list
    (None, "lonely", 0.0, 0.0),  # not text at all
    (render_spans("u", "r", "happy", "s"), "lonely", 1.0, 0.0),  # not one of the 32
    (GOOD, "not-a-label", 1.0, None),  # gold missing from the 32: not applicable
    (GOOD, None, 1.0, None),  # no gold: not applicable
]


@pytest.mark.parametrize("completion,gold,fmt,emo", CASES)
def test_format_and_emotion_rewards(completion, gold, fmt, emo):
    assert format_reward([completion]) == [fmt]
    assert emotion_reward([completion], emotion=[gold]) == [emo]


def test_rewards_accept_extra_trl_kwargs():
    kwargs = dict(
        prompts=[[{"role": "user", "content": "hi"}]],
        completion_ids=[[1, 2, 3]],
        trainer_state=object(),
        log_metric=lambda *a, **k: None,
        log_extra=lambda *a, **k: None,
        person=["p"],
        situation=["s"],
        mbti=["INTJ"],
    )
    assert format_reward([GOOD], **kwargs) == [1.0]
    assert emotion_reward([GOOD], emotion=["lonely"], **kwargs) == [1.0]


@pytest.mark.parametrize(
    "completion,expected",
    [
        ("abc", "abc"),
        ([{"role": "assistant", "content": "abc"}], "abc"),
        ({"role": "assistant", "content": "abc"}, "abc"),
        ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "y"),
        ([{"content": "no role"}], "no role"),
        ([{"role": "assistant", "content": None}], ""),
        (3.14, ""),
    ],
)
def test_completion_text(completion, expected):
    assert completion_text(completion) == expected


class ScriptedJudge:
    """Returns one scripted Judgement (or None) per request and records what it was sent."""

    def __init__(self, scores):
        self.scores = list(scores)
        self.seen = []

    def score(self, requests):
        self.seen.extend(requests)
        return [
            None if s is None else Judgement(dict.fromkeys(DIMENSIONS, s))
            for s in self.scores[: len(requests)]
        ]


def test_rubric_reward_judges_only_complete_spans_and_maps_failures_to_none():
    judge = ScriptedJudge([5, None, 3])
    reward = make_rubric_reward(judge)
    prompts = [
        [{"role": "system", "content": "profile"}, {"role": "user", "content": "I feel alone."}],
        "plain text prompt",
        [{"role": "user", "content": "x"}],
        [{"role": "user", "content": "y"}],
    ]
    completions = [conv(GOOD), NO_RESPONSE, GOOD, GOOD_XML]
    out = reward(
        completions,
        prompts=prompts,
        person=["P0", "P1", "P2", "P3"],
        situation=["S0", "S1", "S2", "S3"],
        emotion=["lonely"] * 4,
        completion_ids=[[0]] * 4,
        trainer_state=None,
    )
    assert out == [1.0, 0.0, None, 0.5]  # incomplete -> 0.0 without asking; failure -> None
    assert len(judge.seen) == 3
    first, _, third = judge.seen
    assert first.persona == "P0" and first.situation == "S0" and first.emotion == "lonely"
    assert first.response == "That sounds lonely."  # the reply span only
    assert first.history[-1] == {"role": "user", "content": "I feel alone."}
    assert third.persona == "P3" and third.history == [{"role": "user", "content": "y"}]
    assert reward.judge is judge and reward.__name__ == "rubric_reward"


def test_rubric_reward_logs_judge_counters_every_call_zeros_included():
    from kardia.client import ClientStats

    class CountingJudge(ScriptedJudge):
        def __init__(self, scores):
            super().__init__(scores)
            self.stats = ClientStats()

        def score(self, requests):
            self.stats.items += len(requests)
            self.stats.failures += sum(s is None for s in self.scores[: len(requests)])
            self.stats.latencies_s.append(0.25)
            return super().score(requests)

    reward = make_rubric_reward(CountingJudge([5, None]))
    logged: list[dict] = []

    def log_metric(name, value):
        logged[-1][name] = value

    logged.append({})
    reward([GOOD, GOOD, NO_RESPONSE], prompts=["a", "b", "c"], log_metric=log_metric)
    assert logged[-1] == {"judge/items": 2, "judge/failures": 1, "judge/cache_hits": 0,
                          "judge/latency_s": 0.25, "judge/score_mean": 1.0}  # fmt: skip
    logged.append({})  # a step where no reply is complete still logs its (zero) counters
    reward([NO_RESPONSE], prompts=["a"], log_metric=log_metric)
    assert logged[-1] == {"judge/items": 0, "judge/failures": 0, "judge/cache_hits": 0,
                          "judge/latency_s": 0.0}  # fmt: skip


def test_rubric_reward_without_optional_columns():
    judge = ScriptedJudge([4])
    assert make_rubric_reward(judge)([GOOD], prompts=["hi"]) == [0.75]
    assert judge.seen[0].persona == "" and judge.seen[0].emotion is None
    assert make_rubric_reward(ScriptedJudge([]))(["junk"]) == [0.0]


def test_rubric_reward_with_offline_judge(offline_judge):
    reward = make_rubric_reward(offline_judge)
    good = render_spans(
        "u", "r", "lonely", "That sounds so lonely; missing home makes sense. Want to talk?"
    )
    bad = render_spans("u", "r", "lonely", "Stop whining, nobody cares, you idiot.")
    out = reward(
        [good, bad],
        prompts=["Everyone has friends here and I sit alone missing home."] * 2,
        person=["About: student who misses home."] * 2,
        situation=["Moved away."] * 2,
        emotion=["lonely"] * 2,
    )
    assert 0 <= out[1] < out[0] <= 1


def test_registry_and_weights():
    assert set(REWARDS) == {"format", "emotion", "rubric"}
    funcs, weights = build_rewards(
        {"format": 1 / 3, "emotion": 1 / 3, "rubric": 1 / 3}, ScriptedJudge([])
    )
    assert [f.__name__ for f in funcs] == ["format_reward", "emotion_reward", "rubric_reward"]
    assert weights == pytest.approx([1 / 3] * 3)
    funcs, weights = build_rewards({"format": 0.5, "emotion": 0.5, "rubric": 0})
    assert len(funcs) == 2  # weight 0 drops a reward, and then no judge is needed


@pytest.mark.parametrize(
    "weights,message",
    [
        ({"format": 1, "style": 1}, "unknown reward"),
        ({"rubric": 1}, "needs a judge"),
        ({"format": -1}, ">= 0"),
        ({"format": "1"}, ">= 0"),
        ({"format": 0, "emotion": 0}, "nothing to train on"),
    ],
)
def test_registry_rejects_bad_weights(weights, message):
    with pytest.raises(ValueError, match=message):
        build_rewards(weights)


class AlwaysJudge:
    def score(self, requests):
        return [
            Judgement(dict.fromkeys(DIMENSIONS, 3)) if i % 2 else None
            for i, _ in enumerate(requests)
        ]


_SPAN_BITS = st.sampled_from(
    [
        "<|understanding_begin|>",
        "<|understanding_end|>",
        "<|reasoning_begin|>",
        "<|reasoning_end|>",
        "<|emotion_begin|>",
        "<|emotion_end|>",
        "<|response_begin|>",
        "<|response_end|>",
        "<emotion>",
        "</emotion>",
        "<response>",
        "</response>",
        "sad",
        "Lonely.",
        "{",
        "}",
        " ",
    ]
)
TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(_SPAN_BITS, st.text(max_size=12)), max_size=30).map("".join),
)
COMPLETION = st.one_of(
    TEXT,
    TEXT.map(conv),
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["assistant", "user"]), "content": st.one_of(TEXT, st.none())}
        ),
        max_size=3,
    ),
    st.none(),
    st.integers(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    completions=st.lists(COMPLETION, min_size=1, max_size=6),
    gold=st.one_of(st.none(), TEXT, st.sampled_from(["sad", "lonely"])),
)
def test_no_reward_raises_and_values_are_in_range(completions, gold):
    n = len(completions)
    rubric = make_rubric_reward(AlwaysJudge())
    for values in (
        format_reward(completions),
        emotion_reward(completions, emotion=[gold] * n),
        rubric(
            completions,
            prompts=[gold] * n,
            person=[gold] * n,
            situation=[None] * n,
            emotion=[gold] * n,
        ),
    ):
        assert len(values) == n
        for v in values:
            assert v is None or (isinstance(v, float) and not math.isnan(v) and 0.0 <= v <= 1.0)


class StatsJudge(ScriptedJudge):
    """A ScriptedJudge that counts items and failures like the real judges (ClientStats)."""

    def __init__(self, scores):
        from kardia.client import ClientStats

        super().__init__(scores)
        self.stats = ClientStats()

    def score(self, requests):
        out = super().score(requests)
        self.scores = self.scores[len(requests) :]
        self.stats.items += len(out)
        self.stats.failures += sum(j is None for j in out)
        return out


def test_a_failed_judgement_leaves_that_completion_without_any_reward():
    # TRL nansums the weighted rewards: a None rubric beside numeric format and emotion rewards
    # would be a rubric of 0. Every reward is None there, so TRL marks the completion unscorable.
    judge = StatsJudge([5, None])
    funcs, _ = build_rewards({"format": 1, "emotion": 1, "rubric": 1}, judge)
    completions = [GOOD, GOOD, NO_RESPONSE]  # one object for every function, as TRL passes it
    columns = {"prompts": ["a", "b", "c"], "emotion": ["lonely"] * 3}
    out = {f.__name__: f(completions=completions, **columns) for f in funcs}
    assert out["rubric_reward"] == [1.0, None, 0.0]
    assert out["format_reward"] == [1.0, None, 0.0]
    assert out["emotion_reward"] == [1.0, None, 1.0]  # the third reply names the emotion
    assert len(judge.seen) == 2  # the step was judged once, not once per reward function
    assert format_reward(completions) == [1.0, 1.0, 0.0]  # the registry's functions stay plain


def test_the_rubric_reward_stops_a_run_once_failures_pass_the_limit():
    from types import SimpleNamespace

    judge = StatsJudge([5, 5, 5, 5, None, 5, 5, 5, None, None, 5, 5])
    reward = make_rubric_reward(judge, max_failure_rate=0.02)  # counted over >= MIN_JUDGED (100)
    assert reward([GOOD] * 4, prompts=list("abcd"), trainer_state=SimpleNamespace(global_step=0)) == [1.0] * 4
    assert reward([GOOD] * 4, prompts=list("abcd"))[0] is None  # 1 failed: 1 % of 100, go on
    with pytest.raises(RuntimeError, match=r"rubric reward at step 3.*3 of 12 judgements failed \(3\.0% > "):
        reward([GOOD] * 4, prompts=list("abcd"), trainer_state=SimpleNamespace(global_step=2))
