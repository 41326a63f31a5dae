"""Rubric-ERL reward functions for TRL's GRPOTrainer (SPEC §2.2).

``r = w_format·r_format + w_emotion·r_emotion + w_rubric·r_rubric`` with the paper's weights
1/3 each. Each function follows TRL's contract: ``f(completions, **kwargs) -> list[float | None]``
where ``completions`` are strings or conversational ``[{"role", "content"}]`` lists and every
dataset column arrives as a keyword argument. They never raise on model output: malformed text
scores 0 (SPEC §6). ``None`` means "not applicable" (a failed judgement), which TRL skips.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from kardia.emotions import normalize_emotion
from kardia.judges import Judge
from kardia.rubric import JudgeRequest, rubric_score
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
        gold_label = normalize_emotion(gold) if isinstance(gold, str) else None
        if gold_label is None:
            out.append(None)
            continue
        predicted = parse_spans(completion_text(c)).emotion
        out.append(1.0 if predicted is not None and normalize_emotion(predicted) == gold_label
                   else 0.0)  # fmt: skip
    return out


def _history(prompt: object) -> list[dict]:
    """The dialogue before the completion, as messages (a plain-text prompt is one user turn)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list | tuple):
        return [m for m in prompt if isinstance(m, dict)]
    return []


def _column(kwargs: Mapping, name: str, n: int) -> list:
    values = kwargs.get(name)
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
    return values


def make_rubric_reward(judge: Judge) -> Callable[..., list[float | None]]:
    """Wrap a judge as a TRL reward: ``f(completions, prompts, **kwargs) -> list[float | None]``.

    Reads the optional columns ``person``, ``situation`` and ``emotion``. A completion whose spans
    are not complete scores 0.0 and is never sent to the judge; the judge sees the reply (the
    response span) with the persona, situation and dialogue history; a failed judgement gives
    None. The returned function exposes the judge as ``.judge`` for its counters; under TRL
    (``log_metric`` in kwargs) it also logs per step the judge's items, failures, cache hits,
    mean latency, and the mean rubric score of the replies it judged.
    """

    def rubric_reward(completions: Sequence, prompts: Sequence | None = None, **kwargs):
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
                    history=_history(prompts[i]),
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
        return out

    rubric_reward.judge = judge
    return rubric_reward


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
    weights: Mapping[str, float], judge: Judge | None = None
) -> tuple[list[Callable], list[float]]:
    """Turn ``params.yaml``'s ``{name: weight}`` into TRL's ``reward_funcs`` and ``reward_weights``.

    Names with weight 0 are dropped (that is how an ablation removes a reward).
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
            funcs.append(REWARDS[name](judge))
        else:
            funcs.append(REWARDS[name])
        ws.append(float(weight))
    if not funcs:
        raise ValueError("every reward weight is 0: nothing to train on")
    return funcs, ws
