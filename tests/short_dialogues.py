"""Small KardiaBench-schema corpora with short replies, for the training tests.

The offline builder's dialogues carry ~450-token system prompts and ~180-token replies (with a
600-token vocabulary): a tiny policy needs hundreds of steps before it writes four complete spans,
and the Rubric-ERL judge is only ever asked about complete replies. These dialogues keep the
system prompt near 50 tokens and every reply at 24, so ~60 SFT steps teach the span format and a
GRPO run a few seconds long really calls the judge.
"""

from __future__ import annotations

import json
from pathlib import Path

from kardia.data import assign_difficulty, validate_record
from kardia.spans import render_spans

SITUATIONS = {
    "sad": ("My dog died last week.", ["I miss him so much.", "The house is quiet now."]),
    "proud": ("I finished my first marathon.", ["I ran the whole way.", "My legs still hurt."]),
    "anxious": ("My exam is tomorrow.", ["I cannot sleep tonight.", "What if I fail?"]),
    "grateful": (
        "A neighbour fixed my bike.",
        ["He would not take money.", "I want to thank him."],
    ),
    "lonely": ("I moved to a new city alone.", ["I know nobody here.", "Evenings are the worst."]),
    "excited": ("I start a new job soon.", ["It is my dream job.", "I bought a new bag."]),
}
MBTI = ("INFP", "ESTJ", "INTJ", "ENFP")
EASY = [["PASS"]]  # per assistant turn: accepted at once
HARD = [["FAIL", "FAIL", "PASS"]]  # p_FAIL 2/3 > p_PASS 1/3: the paper's rule says hard


def reply(emotion: str) -> str:
    return render_spans(f"They feel {emotion}.", "It matters.", emotion, "I hear you.")


def dialogue(i: int, hard: bool) -> dict:
    """Dialogue ``i``: two exchanges, its own profile, every third one hard."""
    emotion = list(SITUATIONS)[i % len(SITUATIONS)]
    situation, user_turns = SITUATIONS[emotion]
    mbti = MBTI[i % len(MBTI)]
    person = f"MBTI: {mbti}\nAbout: I like long walks."
    messages = [
        {
            "role": "system",
            "content": f"You are an empathetic assistant. User profile:\n{person}\n"
            f"Situation: {situation}",
        }
    ]
    for text in user_turns:
        messages += [{"role": "user", "content": text},
                     {"role": "assistant", "content": reply(emotion)}]  # fmt: skip
    record = {
        "dialogue_id": f"d{i:03d}",
        "person": person,
        "mbti": mbti,
        "emotion": emotion,
        "situation": situation,
        "anon_username": f"user{i:03d}",
        "messages": messages,
        "verdicts": (HARD if hard else EASY) * len(user_turns),
    }
    return validate_record(record)


def records(n: int) -> list[dict]:
    return [dialogue(i, hard=i % 3 == 2) for i in range(n)]


def splits(n_train: int = 24, n_dev: int = 6, n_test: int = 6) -> dict[str, list[dict]]:
    """Train/dev/test with both difficulties in each (every third dialogue is hard), each record
    labelled easy/hard from its verdicts as the build_data stage does."""
    recs = records(n_train + n_dev + n_test)
    out = {
        "train": recs[:n_train],
        "dev": recs[n_train : n_train + n_dev],
        "test": recs[n_train + n_dev :],
    }
    for split in out.values():
        assign_difficulty(split)
    return out


def write_jsonl(recs: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path
