"""Numbers the paper reports (SPEC §2), kept in one place so tables can show them beside ours."""

from __future__ import annotations

# Table 3 of the paper: KardiaBench statistics. The paper has no dev split; lengths are given
# for train only (words).
TABLE3 = {
    "train": {
        "dialogues": 19533,
        "turns": 157790,
        "avg_turns": round(157790 / 19533, 2),
        "avg_words_user": 51,
        "avg_words_understanding": 41,
        "avg_words_reasoning": 53,
        "avg_words_response": 27,
        "emotion_labels": 32,
        "profiles": 639,
    },
    "test": {
        "dialogues": 2547,
        "turns": 20290,
        "avg_turns": round(20290 / 2547, 2),
        "emotion_labels": 32,
        "profiles": 32,
    },
}
