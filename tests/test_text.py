"""Words and markup as every text rule reads them."""

from __future__ import annotations

import pytest

from kardia.text import MARKUP, words


def test_words_are_lowercase_letters_and_apostrophes():
    assert words("I DON’T know, 3 times!") == ["i", "don't", "know", "times"]
    assert words("") == []


@pytest.mark.parametrize(
    "text,cleaned",
    [
        ("<|response_begin|>Hi<|response_end|>", " Hi "),
        ("<response>Hi</response>", " Hi "),
        ("Hi<|im_end|>", "Hi "),
        ("Hi <|emotion_begin|>sad _end|", "Hi  sad  "),  # a marker cut off by the token budget
        ("I <3 you, 2 < 3", "I <3 you, 2 < 3"),  # no tag: left alone
    ],
)
def test_markup_is_what_a_reader_never_sees(text, cleaned):
    assert MARKUP.sub(" ", text) == cleaned
