"""The model-in-the-loop dialogue builder of KardiaBench (SPEC §2.1): the U/A/R loop.

Three roles build every dialogue: a user simulator **U** (profile + situation + emotion + history
→ next user turn), a responder **A** (writes the four spans) and a rubric evaluator **R** (gives
each A turn a verdict FAIL / PASS / SOLVED). On FAIL, A revises with R's feedback, at most
``max_revisions`` times; SOLVED ends the dialogue; at most ``max_exchanges`` user/assistant
exchanges. Every assistant turn keeps its verdict history, from which the easy/hard split follows.

The loop advances all unfinished dialogues one step at a time, so a backend (``Backend``: the
LLM one in ``kardia.build.llm``, the offline one in ``kardia.build.offline``) sees whole batches.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kardia.data import VERDICTS
from kardia.seed import Seed
from kardia.system_prompt import system_prompt

BUILD_VERSION = "kardia-build-v1"  # part of every prompt cache key and of the build metrics
END_REASONS = ("solved", "max_exchanges", "failed")


@dataclass
class Verdict:
    label: str  # FAIL | PASS | SOLVED
    feedback: str = ""


@dataclass
class Draft:
    """A rejected candidate and the evaluator's feedback, handed back to A for a revision."""

    text: str
    feedback: str


@dataclass
class Dialogue:
    """One dialogue under construction."""

    id: int
    seed: Seed
    messages: list[dict]
    rng: random.Random
    verdicts: list[list[str]] = field(default_factory=list)
    end: str | None = None  # one of END_REASONS once finished
    state: dict = field(default_factory=dict)  # backend scratch space (the offline plan)

    @property
    def exchanges(self) -> int:
        return len(self.verdicts)

    def history(self, role: str | None = None) -> list[dict]:
        """Messages after the system prompt (optionally of one role)."""
        return [m for m in self.messages[1:] if role is None or m["role"] == role]

    def record(self) -> dict:
        """The dialogue in the KardiaBench schema, plus its verdict histories and how it ended."""
        persona = self.seed.persona
        return {
            "dialogue_id": f"kb-{self.id:06d}",
            "person": self.seed.person,
            "mbti": persona["mbti"],
            "emotion": self.seed.emotion,
            "situation": self.seed.situation["situation"],
            "anon_username": persona["anon_username"],
            "messages": [dict(m) for m in self.messages],
            "verdicts": [list(v) for v in self.verdicts],
            "end": self.end,
        }


class Backend(Protocol):
    """The three roles over a batch of dialogues; None marks an item the backend gave up on."""

    def user_turns(self, dialogues: Sequence[Dialogue]) -> list[str | None]: ...

    def respond(
        self, dialogues: Sequence[Dialogue], drafts: Sequence[Draft | None]
    ) -> list[str | None]: ...

    def evaluate(
        self, dialogues: Sequence[Dialogue], candidates: Sequence[str]
    ) -> list[Verdict | None]: ...


@dataclass
class BuildStats:
    dialogues: int = 0
    ended: Counter = field(default_factory=Counter)
    verdicts: Counter = field(default_factory=Counter)
    attempts: int = 0
    exhausted_turns: int = 0  # turns still FAIL after the last revision (kept, marked by history)
    failed_steps: Counter = field(default_factory=Counter)  # which role gave up on a dialogue

    def as_dict(self) -> dict:
        return {
            "dialogues": self.dialogues,
            "ended": dict(self.ended),
            "verdicts": {v: self.verdicts[v] for v in VERDICTS},
            "attempts": self.attempts,
            "exhausted_turns": self.exhausted_turns,
            "failed_steps": dict(self.failed_steps),
        }


def system_message(seed: Seed) -> dict:
    return {
        "role": "system",
        "content": system_prompt(seed.person, seed.situation["situation"], "full"),
    }


def build_dialogues(
    seeds: Sequence[Seed],
    backend: Backend,
    *,
    max_exchanges: int = 10,
    max_revisions: int = 5,
    seed: int = 0,
    progress: bool = True,
) -> tuple[list[dict], BuildStats]:
    """Run U, A and R until every dialogue is SOLVED, hits ``max_exchanges`` or fails.

    Returns the finished records (failed dialogues are left out and counted in the stats) and the
    build statistics. A turn still failing after ``max_revisions`` revisions keeps its last
    candidate; its history (all FAIL) makes the dialogue lean hard, and the post-filters drop it
    if its structure is broken.
    """
    from tqdm import tqdm  # plain text bar: shows in papermill output and terminals alike

    if max_exchanges < 1 or max_revisions < 0:
        raise ValueError("max_exchanges must be >= 1 and max_revisions >= 0")
    dialogues = [
        Dialogue(i, s, [system_message(s)], random.Random(f"{seed}/{i}"))
        for i, s in enumerate(seeds)
    ]
    stats = BuildStats(dialogues=len(dialogues))
    bar = tqdm(total=len(dialogues), desc="build dialogues", unit="dlg", disable=not progress)

    def finish(d: Dialogue, reason: str, step: str | None = None) -> None:
        d.end = reason
        stats.ended[reason] += 1
        if step:
            stats.failed_steps[step] += 1
        bar.update(1)

    for exchange in range(max_exchanges):
        active = [d for d in dialogues if d.end is None]
        if not active:
            break
        for d, text in zip(active, backend.user_turns(active), strict=True):
            if text is None:
                finish(d, "failed", "user")
            else:
                d.messages.append({"role": "user", "content": text})
        pending = [d for d in active if d.end is None]
        drafts: list[Draft | None] = [None] * len(pending)
        histories: dict[int, list[str]] = {d.id: [] for d in pending}
        for attempt in range(max_revisions + 1):
            if not pending:
                break
            candidates = backend.respond(pending, drafts)
            stats.attempts += len(pending)
            answered = []
            for d, c in zip(pending, candidates, strict=True):
                if c is None:
                    finish(d, "failed", "respond")
                else:
                    answered.append((d, c))
            verdicts = backend.evaluate([d for d, _ in answered], [c for _, c in answered])
            pending, drafts = [], []
            for (d, c), v in zip(answered, verdicts, strict=True):
                if v is None:
                    finish(d, "failed", "evaluate")
                    continue
                stats.verdicts[v.label] += 1
                histories[d.id].append(v.label)
                if v.label == "FAIL" and attempt < max_revisions:
                    pending.append(d)
                    drafts.append(Draft(c, v.feedback))
                    continue
                if v.label == "FAIL":
                    stats.exhausted_turns += 1
                d.messages.append({"role": "assistant", "content": c})
                d.verdicts.append(histories[d.id])
                if v.label == "SOLVED":
                    finish(d, "solved")
                elif exchange == max_exchanges - 1:
                    finish(d, "max_exchanges")
    bar.close()
    return [d.record() for d in dialogues if d.end != "failed"], stats


def check_build_failures(stats: BuildStats, max_failure_rate: float) -> None:
    """Stop when the backend gave up on too many dialogues (SPEC §6), saying where it failed."""
    failed = stats.ended.get("failed", 0)
    if stats.dialogues and failed / stats.dialogues > max_failure_rate:
        raise RuntimeError(
            f"build: {failed} of {stats.dialogues} dialogues failed "
            f"({failed / stats.dialogues:.1%} > max_failure_rate {max_failure_rate:.1%}); "
            f"failed at {dict(stats.failed_steps)} — is the model server up and answering?"
        )


__all__ = [
    "BUILD_VERSION",
    "END_REASONS",
    "Backend",
    "BuildStats",
    "Dialogue",
    "Draft",
    "Verdict",
    "build_dialogues",
    "check_build_failures",
    "system_message",
]
