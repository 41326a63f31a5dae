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
# One scan finds every marker of either style; split() interleaves text and markers.
_TAG = re.compile(rf"(<\|(?:{_NAMES})_(?:begin|end)\|>|</?(?:{_NAMES})>)")
# marker -> (span name, is_begin, style)
_INFO = {f"<|{n}_begin|>": (n, True, "kardia") for n in SPAN_NAMES}
_INFO |= {f"<|{n}_end|>": (n, False, "kardia") for n in SPAN_NAMES}
_INFO |= {f"<{n}>": (n, True, "xml") for n in SPAN_NAMES}
_INFO |= {f"</{n}>": (n, False, "xml") for n in SPAN_NAMES}
# The marker sequences of a well-formed turn in one style: the common case, checked first.
_CANONICAL = {
    tuple(t for n in SPAN_NAMES for t in (f"<|{n}_begin|>", f"<|{n}_end|>")),
    tuple(t for n in SPAN_NAMES for t in (f"<{n}>", f"</{n}>")),
}


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
    parts = _TAG.split(text)  # [text, marker, text, marker, ..., text]
    if len(parts) == 1:
        return _EMPTY
    markers = parts[1::2]  # the text after marker k is parts[2k + 2]
    if len(markers) == 8 and tuple(markers) in _CANONICAL:
        u, r, e, s = (parts[i].strip() for i in (2, 6, 10, 14))
        return Spans(u, r, e, s, complete=bool(u and r and e and s))

    positions: dict[str, list[int]] = {}
    for k, marker in enumerate(markers):
        positions.setdefault(_INFO[marker][0], []).append(k)
    values: dict[str, str | None] = {}
    starts: list[int] = []
    for name in SPAN_NAMES:
        ks = positions.get(name)
        value = None
        # Exactly one begin immediately followed by its end, in one style: adjacency in marker
        # order means no other marker (nesting, interleaving) sits inside the span.
        if ks is not None and len(ks) == 2 and ks[1] == ks[0] + 1:
            _, begin1, style1 = _INFO[markers[ks[0]]]
            _, begin2, style2 = _INFO[markers[ks[1]]]
            if begin1 and not begin2 and style1 == style2:
                value = parts[2 * ks[0] + 2].strip()
                starts.append(ks[0])
        values[name] = value
    # ``starts`` is filled in SPAN_NAMES order, so sorted means canonical order.
    complete = all(values[n] for n in SPAN_NAMES) and starts == sorted(starts)
    return Spans(complete=complete, **values)


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
