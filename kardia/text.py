"""How every text rule reads text: its words, and the markup a reader never sees.

Shared by the judges' rules (``kardia.judge_rules``, ``kardia.lexicon_judge``), the offline
builder's evaluator (``kardia.build.offline``) and what evaluation shows a judge
(``kardia.evaluation.visible_reply``), so that all of them split and clean text the same way.
"""

from __future__ import annotations

import re

# A word: lowercase letters and apostrophes ("don't" is one word, "30" none).
WORD = re.compile(r"[a-z']+")
# Span markers of either style (<|emotion_begin|>, <emotion>, </emotion>), chat special tokens
# (<|im_end|>) and the fragments a cut-off marker leaves (_begin|, _end|).
MARKUP = re.compile(r"<\|?/?[a-z_]+\|?>|_begin\||_end\|")


def words(text: str) -> list[str]:
    """The lowercase words of ``text`` (``WORD``), typographic apostrophes read as plain ones."""
    return WORD.findall(text.lower().replace("’", "'"))


__all__ = ["MARKUP", "WORD", "words"]
