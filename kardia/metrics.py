"""Metrics over generated replies: format compliance, emotion accuracy, reply length."""

from __future__ import annotations

from collections.abc import Sequence

from kardia.emotions import normalize_emotion
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
        predicted = normalize_emotion(spans.emotion) if spans.emotion else None
        if predicted is not None and predicted == normalize_emotion(gold or ""):
            correct += 1
    return {
        "n": n,
        "format_compliance": complete / n if n else 0.0,
        "emotion_accuracy": correct / n if n else 0.0,
        "response_words": sum(words) / len(words) if words else 0.0,
    }


def bootstrap_ci(
    values: Sequence[float], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap confidence interval (seeded).

    NaN values (a failed judgement) are left out; an empty input gives three NaNs.
    """
    import numpy as np

    x = np.asarray([v for v in values if v == v], dtype=float)  # v == v drops NaN
    if x.size == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(x.mean()), float(low), float(high)


def per_emotion_accuracy(texts: Sequence[str], gold_emotions: Sequence[str]) -> dict[str, dict]:
    """Emotion accuracy per gold label: ``{label: {"n": …, "accuracy": …}}``, labels sorted."""
    if len(texts) != len(gold_emotions):
        raise ValueError(f"{len(texts)} replies for {len(gold_emotions)} gold labels")
    hits: dict[str, list[int]] = {}
    for text, gold in zip(texts, gold_emotions, strict=True):
        label = normalize_emotion(gold or "")
        if label is None:
            continue
        predicted = parse_spans(text).emotion
        ok = predicted is not None and normalize_emotion(predicted) == label
        hits.setdefault(label, []).append(int(ok))
    return {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in sorted(hits.items())}


def judge_agreement(a: Sequence[dict | None], b: Sequence[dict | None]) -> dict[str, dict]:
    """How two judges agree on the same replies, per rubric dimension: Spearman's rho (ranks with
    ties averaged) and the share of exactly equal 1–5 scores. ``a[i]``/``b[i]`` are one reply's
    ``{dimension: score}`` (``Judgement.scores``) or None when that judgement failed; a reply is
    compared only where both judges answered."""
    import pandas as pd

    from kardia.rubric import DIMENSIONS

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
