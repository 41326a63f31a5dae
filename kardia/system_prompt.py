"""The system message in front of every dialogue, in the two styles a policy can see: ``full``
(the one stored in every built record, as KardiaBench's) and ``compact`` (``policy.prompt_style:
compact``, rebuilt from the profile and situation at training and evaluation time)."""

from __future__ import annotations

import re

# The system message of every built dialogue: what the policy sees in front of the user turns.
SYSTEM_TEMPLATE = """You are an empathetic listener. Before each reply, work out who the user is, \
what happened and what they feel. Answer with four spans in this order: understanding (what the \
user means and feels, using their profile and the context), reasoning (your empathetic \
appraisal), emotion (one label from the 32 EmpatheticDialogues emotions) and response (a short \
supportive reply of about 30 words or fewer).

User profile:
{person}

Situation: {situation}"""

# The compact system message (``policy.prompt_style: compact``): the same task and facts in about
# a third of the tokens (instructions cut, the profile reduced to its type and first "About"
# sentence). On 2 CPU cores prompt tokens dominate both training and generation time.
COMPACT_TEMPLATE = """Answer in four spans: understanding (who the user is, what happened, what they \
feel), reasoning (your empathetic appraisal), emotion (one EmpatheticDialogues label) and response \
(a short supportive reply).
User: {profile}
Situation: {situation}"""
PROMPT_STYLES = ("full", "compact")


def short_profile(person: str, max_words: int = 30) -> str:
    """A profile's MBTI type and the first sentence of its "About" line (KardiaBench's profile
    layout); any other text: its first ``max_words`` words."""
    fields = {}
    for line in person.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("MBTI", "About") and value.strip():
            fields[key.strip()] = value.strip()
    if not fields:
        return " ".join(person.split()[:max_words])
    about = fields.get("About", "")
    first = re.split(r"(?<=[.!?])\s", about, maxsplit=1)[0]
    words = first.split()
    about = " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")
    return "; ".join(x for x in (fields.get("MBTI", ""), about) if x)


def system_prompt(person: str, situation: str, style: str = "full") -> str:
    """The system message in front of a dialogue, in ``style`` (``PROMPT_STYLES``)."""
    if style == "full":
        return SYSTEM_TEMPLATE.format(person=person, situation=situation)
    if style == "compact":
        return COMPACT_TEMPLATE.format(profile=short_profile(person), situation=situation)
    raise ValueError(f"policy.prompt_style must be one of {PROMPT_STYLES}, got {style!r}")


__all__ = ["COMPACT_TEMPLATE", "PROMPT_STYLES", "SYSTEM_TEMPLATE", "short_profile", "system_prompt"]
