"""The four-span assistant turn of Kardia-R1 (SPEC §2.1).

Every assistant turn is ``understanding → reasoning → emotion → response``, each wrapped in a pair
of markers. Two tag styles exist in the wild and both are read:

* ``<|understanding_begin|> … <|understanding_end|>`` — the KardiaBench / model style (written by
  default), and
* ``<understanding> … </understanding>`` — the style shown on the dataset card.

Parsing never raises: rewards call it on arbitrary model output (SPEC §6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SPAN_NAMES = ("understanding", "reasoning", "emotion", "response")
STYLES = ("kardia", "xml")

_NAMES = "|".join(SPAN_NAMES)
# One scan finds every marker of either style; groups: (name, begin|end) or (slash, name).
_TAG = re.compile(rf"<\|({_NAMES})_(begin|end)\|>|<(/?)({_NAMES})>")


@dataclass(frozen=True, slots=True)
class Spans:
    """The spans found in one text.

    A field holds the stripped text of its span when that span occurs exactly once, opened and
    closed in one style, with no other marker inside it (so nested, interleaved, duplicated or
    unclosed spans give ``None``). An empty but well-formed span gives ``""``.
    """

    understanding: str | None = None
    reasoning: str | None = None
    emotion: str | None = None
    response: str | None = None
    complete: bool = False

    def as_dict(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in SPAN_NAMES}


_EMPTY = Spans()


def parse_spans(text: str) -> Spans:
    """Read the four spans from ``text``; never raises.

    ``complete`` is True when all four spans are present exactly once, non-empty and in canonical
    order — the paper's format reward. Text outside the spans is ignored.
    """
    if not isinstance(text, str):
        return _EMPTY
    # Per name: list of (kind, style, start, end, index of the marker in document order).
    found: dict[str, list[tuple[str, str, int, int, int]]] = {}
    for i, m in enumerate(_TAG.finditer(text)):
        if m.group(1):
            name, kind, style = m.group(1), m.group(2), "kardia"
        else:
            name, kind, style = m.group(4), ("end" if m.group(3) else "begin"), "xml"
        found.setdefault(name, []).append((kind, style, m.start(), m.end(), i))
    if not found:
        return _EMPTY

    values: dict[str, str | None] = {}
    starts: list[int] = []
    for name in SPAN_NAMES:
        marks = found.get(name)
        value = None
        if marks is not None and len(marks) == 2:
            (k1, s1, _, end1, i1), (k2, s2, start2, _, i2) = marks
            # Adjacent in document order means no other marker (nesting, interleaving) inside.
            if k1 == "begin" and k2 == "end" and s1 == s2 and i2 == i1 + 1:
                value = text[end1:start2].strip()
                starts.append(i1)
        values[name] = value

    # ``starts`` is filled in SPAN_NAMES order, so sorted means canonical order.
    complete = all(values[n] for n in SPAN_NAMES) and starts == sorted(starts)
    return Spans(complete=bool(complete), **values)


def render_spans(
    understanding: str, reasoning: str, emotion: str, response: str, style: str = "kardia"
) -> str:
    """Write one assistant turn with the four spans, one per line."""
    parts = (understanding, reasoning, emotion, response)
    if style == "kardia":
        return "\n".join(
            f"<|{n}_begin|>{v.strip()}<|{n}_end|>" for n, v in zip(SPAN_NAMES, parts, strict=True)
        )
    if style == "xml":
        return "\n".join(f"<{n}>{v.strip()}</{n}>" for n, v in zip(SPAN_NAMES, parts, strict=True))
    raise ValueError(f"unknown span style {style!r}; expected one of {STYLES}")


def span_markers(style: str = "kardia") -> list[str]:
    """All eight markers of one style, in canonical order (for tokenizers and stop lists)."""
    if style == "kardia":
        return [f"<|{n}_{k}|>" for n in SPAN_NAMES for k in ("begin", "end")]
    if style == "xml":
        return [t for n in SPAN_NAMES for t in (f"<{n}>", f"</{n}>")]
    raise ValueError(f"unknown span style {style!r}; expected one of {STYLES}")
