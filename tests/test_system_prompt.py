"""The system message in its two styles."""

from __future__ import annotations

import pytest

from kardia.system_prompt import short_profile, system_prompt


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
