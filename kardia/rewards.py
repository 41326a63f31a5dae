"""Rubric-ERL reward functions for TRL's GRPOTrainer (SPEC §2.2).

``r = w_format·r_format + w_emotion·r_emotion + w_rubric·r_rubric`` with the paper's weights
1/3 each. Each function follows TRL's contract: ``f(completions, **kwargs) -> list[float | None]``
where ``completions`` are strings or conversational ``[{"role", "content"}]`` lists and every
dataset column arrives as a keyword argument. They never raise on model output: malformed text
scores 0 (SPEC §6).

A failed judgement is never a score. TRL 1.14 sums the weighted rewards with ``nansum``, so a
``None`` rubric beside numeric format and emotion rewards would count as 0 in the advantage. With a
rubric reward, ``build_rewards`` therefore masks the other rewards too: a completion whose
judgement failed gets ``None`` from every function, TRL marks it unscorable (left out of its
group's baseline, advantage 0), and the rubric reward stops training — every step, not after it —
once more judgements have failed than ``max_failure_rate``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

from kardia.emotions import emotion_matches, normalize_emotion
from kardia.judges import Judge, check_failure_rate
from kardia.rubric import JudgeRequest, prompt_history, rubric_score
from kardia.spans import parse_spans


def completion_text(completion: object) -> str:
    """The assistant text of a completion: a string, or the assistant content of a message list."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        content = completion.get("content")
        return content if isinstance(content, str) else ""
    if isinstance(completion, list | tuple):
        parts = [
            m.get("content")
            for m in completion
            if isinstance(m, dict) and m.get("role", "assistant") == "assistant"
        ]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def format_reward(completions: Sequence, **kwargs) -> list[float]:
    """1.0 when all four spans are present once, non-empty and in order; else 0.0."""
    return [1.0 if parse_spans(completion_text(c)).complete else 0.0 for c in completions]


def emotion_reward(completions: Sequence, emotion: Sequence | None = None, **kwargs) -> list:
    """1.0 when the emotion span names the gold label (after normalisation); else 0.0.

    A row whose gold label is missing or not one of the 32 gets None (not applicable).
    """
    golds = list(emotion) if emotion is not None else [None] * len(completions)
    out: list[float | None] = []
    for c, gold in zip(completions, golds, strict=True):
        gold_label = normalize_emotion(gold)
        if gold_label is None:
            out.append(None)
            continue
        out.append(float(emotion_matches(parse_spans(completion_text(c)).emotion, gold_label)))
    return out


def _column(kwargs: Mapping, name: str, n: int) -> list:
    values = kwargs.get(name)
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
    return values


MIN_JUDGED = 100  # the failure rate that stops training counts at least this many judgements


def make_rubric_reward(judge: Judge, max_failure_rate: float | None = None) -> Callable[..., list[float | None]]:
    """Wrap a judge as a TRL reward: ``f(completions, prompts, **kwargs) -> list[float | None]``.

    Reads the optional columns ``person``, ``situation`` and ``emotion``. A completion whose spans
    are not complete scores 0.0 and is never sent to the judge; the judge sees the reply (the
    response span) with the persona, situation and dialogue history; a failed judgement gives
    None. With ``max_failure_rate``, every call checks the judge's failures so far (over at least
    ``MIN_JUDGED`` judgements) and raises, stopping training before the step's update, above it.
    The result for the last ``completions`` object is kept, so the masked rewards of the same step
    (``build_rewards``) do not judge twice.
    The returned function exposes the judge as ``.judge`` for its counters; under TRL
    (``log_metric`` in kwargs) it also logs per step the judge's items, failures, cache hits,
    mean latency, and the mean rubric score of the replies it judged.
    """
    last: dict = {"completions": None, "out": None}

    def rubric_reward(completions: Sequence, prompts: Sequence | None = None, **kwargs):
        if last["completions"] is completions:  # the same step, asked again by a masked reward
            return list(last["out"])
        out = _score(completions, prompts, **kwargs)
        last.update(completions=completions, out=out)
        return list(out)

    def _score(completions: Sequence, prompts: Sequence | None = None, **kwargs):
        n = len(completions)
        prompts = list(prompts) if prompts is not None else [None] * n
        persons = _column(kwargs, "person", n)
        situations = _column(kwargs, "situation", n)
        emotions = _column(kwargs, "emotion", n)
        out: list[float | None] = [0.0] * n
        index, requests = [], []
        for i, c in enumerate(completions):
            spans = parse_spans(completion_text(c))
            if not spans.complete:
                continue
            index.append(i)
            requests.append(
                JudgeRequest(
                    persona=str(persons[i] or ""),
                    situation=str(situations[i] or ""),
                    history=prompt_history(prompts[i]),
                    response=spans.response or "",
                    emotion=emotions[i] if isinstance(emotions[i], str) else None,
                )
            )
        before = _judge_counters(judge)
        if requests:
            for i, j in zip(index, judge.score(requests), strict=True):
                out[i] = None if j is None else rubric_score(j)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and before is not None:  # TRL logs these per step (zeros too)
            for name, value in _judge_deltas(judge, before).items():
                log_metric(f"judge/{name}", value)
            # the rubric among complete replies: "rubric rose" must not only mean
            # "more replies were complete" (incomplete ones score 0 above)
            judged = [out[i] for i in index if out[i] is not None]
            if judged:
                log_metric("judge/score_mean", sum(judged) / len(judged))
        stats = getattr(judge, "stats", None)
        if max_failure_rate is not None and stats is not None:
            # the rate over the judgements so far, counting at least MIN_JUDGED: one failure in the
            # first step's 16 is no outage (and is masked, never a reward); a judge that is down is
            state = kwargs.get("trainer_state")
            where = f" at step {state.global_step + 1}" if state is not None else ""
            seen = max(stats.items, MIN_JUDGED)
            check_failure_rate({"items": stats.items, "failures": stats.failures,
                                "failure_rate": stats.failures / seen}, max_failure_rate,
                               f"rubric reward{where}, stopped before a failed judgement could count "
                               "as a reward")  # fmt: skip
        return out

    rubric_reward.judge = judge
    return rubric_reward


def unless_judgement_failed(func: Callable, rubric: Callable) -> Callable:
    """``func`` with None wherever ``rubric`` (a ``make_rubric_reward`` function) has a failed
    judgement for the same completion, so TRL leaves that completion out instead of adding the
    other rewards to a rubric of 0. Keeps ``func``'s name (TRL logs rewards by it)."""

    @functools.wraps(func)
    def masked(completions: Sequence, prompts: Sequence | None = None, **kwargs):
        values = func(completions=completions, prompts=prompts, **kwargs)
        judged = rubric(completions=completions, prompts=prompts, **kwargs)
        return [None if j is None else v for v, j in zip(values, judged, strict=True)]

    return masked


def _judge_counters(judge: Judge) -> tuple[int, int, int, int] | None:
    stats = getattr(judge, "stats", None)
    if stats is None:
        return None
    return stats.items, stats.failures, stats.cache_hits, len(stats.latencies_s)


def _judge_deltas(judge: Judge, before: tuple) -> dict[str, float]:
    """What one reward call cost the judge: items, failures, cache hits, mean latency (s)."""
    stats = judge.stats
    latencies = list(stats.latencies_s)[before[3] :]
    return {
        "items": stats.items - before[0],
        "failures": stats.failures - before[1],
        "cache_hits": stats.cache_hits - before[2],
        "latency_s": sum(latencies) / len(latencies) if latencies else 0.0,
    }


def weighted_total(values: Sequence[float | None], weights: Sequence[float]) -> float:
    """One completion's reward as TRL sums it: a None (not applicable) reward is left out."""
    return sum(w * v for w, v in zip(weights, values, strict=True) if v is not None)


# name -> reward function, or a factory that takes the judge (only "rubric" needs one).
REWARDS: dict[str, Callable] = {
    "format": format_reward,
    "emotion": emotion_reward,
    "rubric": make_rubric_reward,
}
NEEDS_JUDGE = frozenset({"rubric"})


def build_rewards(
    weights: Mapping[str, float], judge: Judge | None = None, max_failure_rate: float | None = None
) -> tuple[list[Callable], list[float]]:
    """Turn ``params.yaml``'s ``{name: weight}`` into TRL's ``reward_funcs`` and ``reward_weights``.

    Names with weight 0 are dropped (that is how an ablation removes a reward). With a rubric
    reward, the others give None where its judgement failed (``unless_judgement_failed``), and the
    rubric stops the run above ``max_failure_rate`` (the judge section's value).
    """
    unknown = sorted(set(weights) - set(REWARDS))
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known: {sorted(REWARDS)}")
    funcs, ws = [], []
    for name, weight in weights.items():
        if not isinstance(weight, int | float) or weight < 0:
            raise ValueError(f"reward weight for {name!r} must be a number >= 0, got {weight!r}")
        if weight == 0:
            continue
        if name in NEEDS_JUDGE:
            if judge is None:
                raise ValueError(f"reward {name!r} needs a judge")
            funcs.append(REWARDS[name](judge, max_failure_rate))
        else:
            funcs.append(REWARDS[name])
        ws.append(float(weight))
    if not funcs:
        raise ValueError("every reward weight is 0: nothing to train on")
    rubric = next((f for f in funcs if hasattr(f, "judge")), None)
    if rubric is not None:
        funcs = [f if f is rubric else unless_judgement_failed(f, rubric) for f in funcs]
    return funcs, ws
