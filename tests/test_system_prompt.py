"""The system message in its two styles."""

from __future__ import annotations

import pytest

from kardia.system_prompt import short_profile, system_prompt, with_opening


def test_compact_system_prompt_keeps_type_first_about_sentence_and_situation():
    person = ("MBTI: ESTJ\nAbout: Assistant manager in Birmingham. I enjoy football.\n"
              "Signature: Organized.\nRecent Activities:\n- Posted in the ESTJ forum")  # fmt: skip
    assert short_profile(person) == "ESTJ; Assistant manager in Birmingham."
    assert short_profile("just some free text about me") == "just some free text about me"
    compact = system_prompt(person, "I lost my keys.", "compact")
    assert (
        "ESTJ; Assistant manager in Birmingham." in compact
        and "Situation: I lost my keys." in compact
    )
    assert "Signature" not in compact and "football" not in compact
    full = system_prompt(person, "I lost my keys.", "full")
    assert "Signature: Organized." in full and len(compact) < len(full) / 2
    with pytest.raises(ValueError, match="prompt_style"):
        system_prompt(person, "x", "tiny")


def test_the_opening_takes_the_situation_lines_place_only_when_it_quotes_it():
    person = "MBTI: INFP\nAbout: A painter."
    opening = "Hi. I lost my keys. It has left me furious."
    compact = system_prompt(person, "I lost my keys.", "compact", opening)
    assert compact.endswith("\nTheir first message: " + opening) and "Situation:" not in compact
    full = system_prompt(person, "I lost my keys.", "full", opening)
    assert full.endswith("Their first message: " + opening) and "Situation:" not in full
    # an opening that does not quote the situation keeps both lines
    both = with_opening(system_prompt(person, "Keys gone.", "compact"), "Keys gone.", opening)
    assert both.endswith("Situation: Keys gone.\nTheir first message: " + opening)
    assert system_prompt(person, "x", "compact", None) == system_prompt(person, "x", "compact")
