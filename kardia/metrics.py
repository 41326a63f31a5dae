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
