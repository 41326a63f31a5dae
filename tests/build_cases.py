"""Seeds, turns, records and a scripted backend shared by the builder's tests."""

from __future__ import annotations

from kardia.build.loop import Verdict
from kardia.seed import Seed
from kardia.spans import render_spans

PERSONA = {
    "anon_username": "0123456789abcdef",
    "mbti": "INFJ",
    "about": "I draw lanterns.",
    "signature": "Quietly.",
    "recent_activities": ["Posted a sketch"],
}
SITUATION = {
    "emotion": "sad",
    "situation": "My friend moved away.",
    "topic": "your friend moving away",
    "details": ["We met at school."],
}


def seeds(n: int) -> list[Seed]:
    return [
        Seed({**PERSONA, "anon_username": f"{i:016x}"}, {**SITUATION, "situation": f"Case {i}."})
        for i in range(n)
    ]


def turn(emotion: str = "sad", understanding: str = "The INFJ user misses a friend.") -> str:
    return render_spans(understanding, "Loss hurts.", emotion, "That sounds hard.")


class Scripted:
    """A backend whose evaluator answers from a list of verdicts per exchange (Python, no HTTP)."""

    def __init__(self, verdicts, fail_role: str | None = None):
        self.verdicts = verdicts  # callable (dialogue, exchange, attempt) -> label
        self.fail_role = fail_role
        self.drafts_seen = []

    def user_turns(self, dialogues):
        if self.fail_role == "user":
            return [None for _ in dialogues]
        return [f"user turn {d.exchanges}" for d in dialogues]

    def respond(self, dialogues, drafts):
        self.drafts_seen.extend(drafts)
        if self.fail_role == "respond":
            return [None for _ in dialogues]
        return [turn() for _ in dialogues]

    def evaluate(self, dialogues, candidates):
        out = []
        for d in dialogues:
            attempt = d.state.setdefault(d.exchanges, 0)
            d.state[d.exchanges] += 1
            out.append(Verdict(self.verdicts(d, d.exchanges, attempt), "fix it"))
        return out


def record(turns: list[tuple[str, str]], emotion: str = "sad", mbti: str = "INFJ") -> dict:
    messages = [{"role": "system", "content": "sys"}]
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {
        "dialogue_id": "x",
        "person": "p",
        "mbti": mbti,
        "emotion": emotion,
        "situation": "s",
        "anon_username": "u",
        "messages": messages,
    }
