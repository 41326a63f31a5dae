"""The 32 EmpatheticDialogues emotion labels used by KardiaBench (SPEC §2.1)."""

from __future__ import annotations

import re

EMOTIONS: tuple[str, ...] = (
    "afraid", "angry", "annoyed", "anticipating", "anxious", "apprehensive", "ashamed", "caring",
    "confident", "content", "devastated", "disappointed", "disgusted", "embarrassed", "excited",
    "faithful", "furious", "grateful", "guilty", "hopeful", "impressed", "jealous", "joyful",
    "lonely", "nostalgic", "prepared", "proud", "sad", "sentimental", "surprised", "terrified",
    "trusting",
)  # fmt: skip

_LOOKUP = {e: e for e in EMOTIONS}
# Everything that is not a letter: digits, underscores, spaces, punctuation, markdown emphasis.
_NOT_LETTER = re.compile(r"[\W\d_]+")


def normalize_emotion(text: str) -> str | None:
    """Map a label variant to its canonical lowercase label, or None if it is not one of the 32.

    Case, whitespace and punctuation are ignored (``" Anxious."``, ``"**ANXIOUS**"``,
    ``"anx ious"`` → ``"anxious"``); any other word, or a phrase, is None. Never raises.
    """
    if not isinstance(text, str) or len(text) > 64:
        return None
    return _LOOKUP.get(_NOT_LETTER.sub("", text).lower())


def emotion_matches(predicted: str | None, gold: object) -> bool:
    """Whether a predicted label (an emotion span's text) names the gold emotion, both normalised:
    a missing, empty or unknown prediction is wrong, and so is any prediction against a gold
    label that is missing or not one of the 32. The one rule behind emotion accuracy (metrics,
    evaluation) and the emotion reward."""
    label = normalize_emotion(predicted) if predicted else None
    return label is not None and label == normalize_emotion(gold)


# Valence of each label, used to spot emotion jumps in built dialogues (a dialogue whose labels
# swing between positive and negative is dropped). Our grouping; the paper gives none. The
# bittersweet labels are neutral so that no swing through them counts as a jump.
NEUTRAL = frozenset({"nostalgic", "sentimental", "surprised", "anticipating"})
POSITIVE = frozenset(
    {
        "caring", "confident", "content", "excited", "faithful", "grateful", "hopeful",
        "impressed", "joyful", "prepared", "proud", "trusting",
    }
)  # fmt: skip
NEGATIVE = frozenset(EMOTIONS) - POSITIVE - NEUTRAL


def valence(label: str) -> int:
    """+1, -1 or 0 for a canonical label (0 for neutral or unknown)."""
    return 1 if label in POSITIVE else -1 if label in NEGATIVE else 0
