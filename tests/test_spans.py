import pytest

from kardia.spans import SPAN_NAMES, Spans, parse_spans, render_spans, span_markers

GOOD = render_spans("She misses her dog.", "Grief needs room.", "sad", "I'm so sorry.")
GOOD_XML = render_spans("She misses her dog.", "Grief needs room.", "sad", "I'm so sorry.", "xml")


def k(name, text):
    return f"<|{name}_begin|>{text}<|{name}_end|>"


U, R, E, S = (k("understanding", "u"), k("reasoning", "r"), k("emotion", "sad"), k("response", "s"))

# (text, expected complete, expected fields {name: value}) — one comment per row says why.
CASES = [
    (GOOD, True, {"emotion": "sad", "response": "I'm so sorry."}),  # canonical kardia style
    (GOOD_XML, True, {"emotion": "sad"}),  # dataset-card xml style
    ("Sure!\n" + U + R + E + S + "\nHope it helps", True, {"response": "s"}),  # prose around
    (U + "\n\n" + R + " " + E + "\t" + S, True, {"understanding": "u"}),  # whitespace between
    (k("understanding", "  padded  ") + R + E + S, True, {"understanding": "padded"}),  # stripped
    (U + R + E, False, {"response": None}),  # missing span
    ("", False, dict.fromkeys(SPAN_NAMES)),  # empty text
    ("no spans at all", False, dict.fromkeys(SPAN_NAMES)),  # plain text
    (U + R + k("emotion", "  ") + S, False, {"emotion": ""}),  # empty span (present, blank)
    (U + U + R + E + S, False, {"understanding": None, "reasoning": "r"}),  # duplicated span
    (R + U + E + S, False, {"understanding": "u", "reasoning": "r"}),  # out of order
    (U + R + E + S + E, False, {"emotion": None}),  # duplicated at the end
    (U + R + E + "<|response_begin|>never closed", False, {"response": None}),  # unclosed
    (U + R + E + "closed only<|response_end|>", False, {"response": None}),  # no opening
    ("<|response_end|>x<|response_begin|>" + U + R + E, False, {"response": None}),  # reversed
    (  # interleaved: understanding closes inside reasoning
        "<|understanding_begin|>a<|reasoning_begin|>b<|understanding_end|>c<|reasoning_end|>"
        + E
        + S,
        False,
        {"understanding": None, "reasoning": None, "emotion": "sad"},
    ),
    (  # nested: a span inside another
        "<|understanding_begin|>a" + R + "<|understanding_end|>" + E + S,
        False,
        {"understanding": None, "reasoning": "r"},
    ),
    (  # mixed styles within one span do not pair
        "<|understanding_begin|>u</understanding>" + R + E + S,
        False,
        {"understanding": None},
    ),
    (
        "<understanding>u</understanding>" + R + E + S,
        True,
        {"understanding": "u"},
    ),  # styles mixed across spans
    (
        "<|understanding_begin|>u<|understanding_end|" + R + E + S,
        False,
        {"understanding": None},
    ),  # truncated marker
    (
        "<|UNDERSTANDING_begin|>u<|UNDERSTANDING_end|>" + R + E + S,
        False,
        {"understanding": None},
    ),  # markers are case-sensitive
]


@pytest.mark.parametrize("text,complete,fields", CASES)
def test_parse_spans(text, complete, fields):
    spans = parse_spans(text)
    assert spans.complete is complete
    for name, value in fields.items():
        assert getattr(spans, name) == value, name


@pytest.mark.parametrize("bad", [None, 42, b"<|emotion_begin|>sad<|emotion_end|>", ["x"]])
def test_parse_spans_never_raises_on_non_text(bad):
    assert parse_spans(bad) == Spans()


@pytest.mark.parametrize("style", ["kardia", "xml"])
def test_render_round_trip(style):
    text = render_spans(" a ", "b", "sad", "c", style=style)
    spans = parse_spans(text)
    assert spans.complete
    assert spans.as_dict() == {
        "understanding": "a",
        "reasoning": "b",
        "emotion": "sad",
        "response": "c",
    }


def test_render_default_style_is_kardia():
    assert render_spans("a", "b", "sad", "c").startswith(
        "<|understanding_begin|>a<|understanding_end|>"
    )


def test_render_unknown_style():
    with pytest.raises(ValueError, match="unknown span style"):
        render_spans("a", "b", "c", "d", style="markdown")


def test_span_markers():
    assert span_markers()[:2] == ["<|understanding_begin|>", "<|understanding_end|>"]
    assert span_markers("xml")[-1] == "</response>"
    assert len(set(span_markers()) | set(span_markers("xml"))) == 16
