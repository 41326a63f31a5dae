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
# The line that brings a dialogue's opening back into later turns' prompts when the history budget
# dropped it (``policy.keep_opening``): the user's own first words, where they say what happened
# and how they feel. A listener remembers them; without them a later turn's feeling is a guess.
OPENING_LINE = "Their first message: {opening}"
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


def system_prompt(person: str, situation: str, style: str = "full",
                  opening: str | None = None) -> str:  # fmt: skip
    """The system message in front of a dialogue, in ``style`` (``PROMPT_STYLES``), with the
    user's ``opening`` message when given (``with_opening``)."""
    if style == "full":
        message = SYSTEM_TEMPLATE.format(person=person, situation=situation)
    elif style == "compact":
        message = COMPACT_TEMPLATE.format(profile=short_profile(person), situation=situation)
    else:
        raise ValueError(f"policy.prompt_style must be one of {PROMPT_STYLES}, got {style!r}")
    return message if opening is None else with_opening(message, situation, opening)


def with_opening(message: str, situation: str, opening: str) -> str:
    """``message`` with the opening line after it; when the opening quotes the situation word for
    word (the offline builder's openings do), it takes the situation line's place instead, so the
    prompt does not say the same thing twice (on 2 CPU cores every prompt token costs)."""
    line = OPENING_LINE.format(opening=opening)
    situation_line = f"Situation: {situation}"
    if situation and situation in opening and message.endswith(situation_line):
        return message[: -len(situation_line)] + line
    return f"{message}\n{line}"


__all__ = ["COMPACT_TEMPLATE", "OPENING_LINE", "PROMPT_STYLES", "SYSTEM_TEMPLATE", "short_profile",
           "system_prompt", "with_opening"]
