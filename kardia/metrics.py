"""Metrics over generated replies: format compliance, emotion accuracy, reply length."""

from __future__ import annotations

from collections.abc import Sequence

from kardia.emotions import emotion_matches, normalize_emotion
from kardia.rubric import DIMENSIONS
from kardia.spans import parse_spans


def span_metrics(texts: Sequence[str], gold_emotions: Sequence[str | None]) -> dict:
    """Share of replies with all four spans complete (``format_compliance``), share whose emotion
    span names the gold label (``emotion_accuracy``, over every reply: a missing span is wrong),
    and the mean number of words in the response span of complete replies."""
    if len(texts) != len(gold_emotions):
        raise ValueError(f"{len(texts)} replies for {len(gold_emotions)} gold labels")
    n = len(texts)
    complete = correct = 0
    words: list[int] = []
    for text, gold in zip(texts, gold_emotions, strict=True):
        spans = parse_spans(text)
        if spans.complete:
            complete += 1
            words.append(len((spans.response or "").split()))
        correct += emotion_matches(spans.emotion, gold)
    return {
        "n": n,
        "format_compliance": complete / n if n else 0.0,
        "emotion_accuracy": correct / n if n else 0.0,
        "response_words": sum(words) / len(words) if words else 0.0,
    }


def bootstrap_ci(
    values: Sequence[float],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: Sequence | None = None,
) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap confidence interval (seeded).

    With ``groups`` (one label per value, e.g. the dialogue a test turn comes from), whole groups
    are resampled: turns of one dialogue share a persona, a situation and a model state, so
    resampling them as if independent gives intervals far narrower than the real spread. Each
    resample's statistic is the mean over all values of the groups it drew. NaN values (a failed
    judgement) are left out; an empty input gives three NaNs.
    """
    import numpy as np

    if groups is None:
        groups = range(len(values))
    elif len(groups) != len(values):
        raise ValueError(f"{len(groups)} group labels for {len(values)} values")
    kept = [(g, v) for g, v in zip(groups, values, strict=True) if v == v]  # v == v drops NaN
    if not kept:
        return (float("nan"),) * 3
    labels = {g: k for k, g in enumerate(dict.fromkeys(g for g, _ in kept))}
    index = np.asarray([labels[g] for g, _ in kept])
    x = np.asarray([v for _, v in kept], dtype=float)
    sums = np.bincount(index, weights=x, minlength=len(labels))
    counts = np.bincount(index, minlength=len(labels)).astype(float)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(labels), size=(resamples, len(labels)))
    means = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(x.mean()), float(low), float(high)


def dialogue_of(item_id: str) -> str:
    """The cluster a test item belongs to: its dialogue (``item_id`` is ``dialogue_id:turn``);
    an id without a turn (a single-turn item) is its own cluster."""
    return str(item_id).rsplit(":", 1)[0]


def per_emotion_accuracy(texts: Sequence[str], gold_emotions: Sequence[str]) -> dict[str, dict]:
    """Emotion accuracy per gold label: ``{label: {"n": …, "accuracy": …}}``, labels sorted."""
    if len(texts) != len(gold_emotions):
        raise ValueError(f"{len(texts)} replies for {len(gold_emotions)} gold labels")
    hits: dict[str, list[int]] = {}
    for text, gold in zip(texts, gold_emotions, strict=True):
        label = normalize_emotion(gold)
        if label is None:
            continue
        hits.setdefault(label, []).append(int(emotion_matches(parse_spans(text).emotion, label)))
    return {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in sorted(hits.items())}


def judge_agreement(a: Sequence[dict | None], b: Sequence[dict | None]) -> dict[str, dict]:
    """How two judges agree on the same replies, per rubric dimension: Spearman's rho (ranks with
    ties averaged) and the share of exactly equal 1–5 scores. ``a[i]``/``b[i]`` are one reply's
    ``{dimension: score}`` (``Judgement.scores``) or None when that judgement failed; a reply is
    compared only where both judges answered."""
    import pandas as pd

    if len(a) != len(b):
        raise ValueError(f"{len(a)} judgements against {len(b)}")
    both = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    out = {}
    for d in DIMENSIONS:
        xs = pd.Series([x[d] for x, _ in both], dtype=float)
        ys = pd.Series([y[d] for _, y in both], dtype=float)
        rho = xs.rank().corr(ys.rank()) if len(both) > 1 else float("nan")
        out[d] = {
            "n": len(both),
            "spearman": float(rho),  # NaN when either judge gives one score to everything
            "exact": float((xs == ys).mean()) if both else float("nan"),
        }
    return out
