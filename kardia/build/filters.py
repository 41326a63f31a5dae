"""What the builder keeps: post-filters (broken structure, identity drift, emotion jumps), semantic
de-duplication of near-duplicate dialogues, and the diversity of a corpus (distinct-n)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from kardia.data import KardiaDataError, validate_record
from kardia.emotions import normalize_emotion, valence
from kardia.seed import MBTI_TYPES
from kardia.spans import SPAN_NAMES, parse_spans

_MBTI = re.compile(r"\b(" + "|".join(MBTI_TYPES) + r")s?\b")
# A simulated user who slips out of character: role labels, span markup, assistant self-talk.
_OUT_OF_CHARACTER = re.compile(
    r"<\|?/?(?:" + "|".join(SPAN_NAMES) + r")|\bas an ai\b|\blanguage model\b"
    r"|\bi'?m (?:an|your) (?:ai|assistant)\b|^\s*(?:user|assistant|listener)\s*:",
    re.IGNORECASE | re.MULTILINE,
)


def mbti_types(text: str) -> set[str]:
    """The MBTI types a text names ("INFJ", also in the plural "INFJs")."""
    return set(_MBTI.findall(text))


def structure_problem(record: dict) -> str | None:
    """Broken structure: anything ``validate_record`` rejects (roles, spans, labels, verdicts)."""
    try:
        validate_record(record)
    except KardiaDataError as exc:
        return f"{exc.field}: {exc.problem}"
    return None


def identity_drift(record: dict) -> str | None:
    """The user stops being the profiled person, or the assistant takes them for someone else:
    a user turn out of character, or any turn naming an MBTI type other than the profile's."""
    for i, m in enumerate(record["messages"][1:], start=1):
        if m["role"] == "user" and _OUT_OF_CHARACTER.search(m["content"]):
            return f"messages[{i}]: user turn out of character"
        for mbti in mbti_types(m["content"]):
            if mbti != record["mbti"]:
                return f"messages[{i}]: names {mbti}, profile is {record['mbti']}"
    return None


def emotion_labels(record: dict) -> list[str | None]:
    """The normalised emotion span of each assistant turn."""
    out = []
    for m in record["messages"]:
        if m["role"] == "assistant":
            label = parse_spans(m["content"]).emotion
            out.append(normalize_emotion(label) if label is not None else None)
    return out


def emotion_jump(record: dict) -> str | None:
    """The emotion labels swing between positive and negative from one turn to the next, or a
    label has the opposite valence of the dialogue's target emotion."""
    labels = [lab for lab in emotion_labels(record) if lab is not None]
    target = valence(record["emotion"])
    for i, lab in enumerate(labels):
        if target * valence(lab) < 0:
            return f"turn {i}: {lab!r} against target {record['emotion']!r}"
        if i and valence(labels[i - 1]) * valence(lab) < 0:
            return f"turn {i}: {labels[i - 1]!r} -> {lab!r}"
    return None


FILTERS = {
    "broken_structure": structure_problem,
    "identity_drift": identity_drift,
    "emotion_jump": emotion_jump,
}


def _spoken(record: dict) -> list[tuple[str, str]]:
    """(role, text) of what is said aloud: user turns, and the response span of each reply."""
    return [
        (
            m["role"],
            m["content"] if m["role"] == "user" else parse_spans(m["content"]).response or "",
        )
        for m in record["messages"][1:]
    ]


def dedup_text(record: dict, max_words: int | None = None) -> str:
    """What near-duplicates are judged on: the user turns and the replies, in order, cut to the
    first ``max_words`` words (the opening carries a dialogue's content, and encoding cost grows
    with length: on 2 CPU cores, 64 words encode about 3x faster than 256)."""
    words = " ".join(text for _, text in _spoken(record)).split()
    return " ".join(words[:max_words] if max_words else words)


def semantic_dedup(texts: Sequence[str], encoder, threshold: float) -> list[int]:
    """Indices of the texts to keep: greedily, a text whose cosine similarity to an earlier kept
    text is at least ``threshold`` is dropped. Similarities are computed block-wise."""
    import numpy as np

    if not texts:
        return []
    emb = encoder.encode(list(texts))
    keep = np.zeros(len(texts), dtype=bool)
    block = 1024
    for start in range(0, len(texts), block):
        stop = min(start + block, len(texts))
        # Similarity of this block to every earlier text; kept-ness of earlier blocks is final.
        sims = emb[start:stop] @ emb[:stop].T
        for i in range(start, stop):
            row = sims[i - start, :i]
            keep[i] = not (row[keep[:i]] >= threshold).any()
    return [int(i) for i in np.flatnonzero(keep)]


def post_filter(
    records: Sequence[dict],
    encoder=None,
    dedup_threshold: float | None = None,
    dedup_words: int | None = 64,
) -> tuple[list[dict], dict[str, int], list[dict]]:
    """Apply the filters in order, then semantic de-duplication (when an encoder is given) on
    ``dedup_text`` of each dialogue.

    Returns the kept records, the number dropped per reason, and one ``{dialogue_id, reason,
    detail}`` row per dropped dialogue.
    """
    dropped: Counter = Counter()
    log: list[dict] = []
    kept = []
    for rec in records:
        for reason, check in FILTERS.items():
            detail = check(rec)
            if detail is not None:
                dropped[reason] += 1
                log.append({"dialogue_id": rec.get("dialogue_id"), "reason": reason,
                            "detail": detail})  # fmt: skip
                break
        else:
            kept.append(rec)
    if encoder is not None and dedup_threshold is not None:
        keep = set(
            semantic_dedup([dedup_text(r, dedup_words) for r in kept], encoder, dedup_threshold)
        )
        for i, rec in enumerate(kept):
            if i not in keep:
                dropped["near_duplicate"] += 1
                log.append({"dialogue_id": rec.get("dialogue_id"), "reason": "near_duplicate",
                            "detail": f">= {dedup_threshold} cosine"})  # fmt: skip
        kept = [r for i, r in enumerate(kept) if i in keep]
    counts = {r: dropped[r] for r in (*FILTERS, "near_duplicate")}
    return kept, counts, log


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): unique word n-grams / all word n-grams over the corpus."""
    total, unique = 0, set()
    for t in texts:
        words = t.lower().split()
        grams = list(zip(*(words[i:] for i in range(n)), strict=False))  # ragged on purpose
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


def diversity(records: Sequence[dict]) -> dict[str, float]:
    """Distinct-1/2 of the responses and of the user turns of a corpus."""
    users, responses = [], []
    for rec in records:
        for role, text in _spoken(rec):
            (users if role == "user" else responses).append(text)
    return {
        "response_distinct_1": distinct_n(responses, 1),
        "response_distinct_2": distinct_n(responses, 2),
        "user_distinct_1": distinct_n(users, 1),
        "user_distinct_2": distinct_n(users, 2),
    }


__all__ = [
    "FILTERS",
    "dedup_text",
    "distinct_n",
    "diversity",
    "emotion_jump",
    "emotion_labels",
    "identity_drift",
    "mbti_types",
    "post_filter",
    "semantic_dedup",
    "structure_problem",
]
