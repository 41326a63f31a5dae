"""The seed bank the dialogue builder starts from (``data/seed/``, format in its README.md).

* ``personas.jsonl`` — fictional forum profiles in the KardiaBench style: ``anon_username``
  (a hashed handle), ``mbti``, ``about``, ``signature``, ``recent_activities``.
* ``situations.jsonl`` — first-person situations per emotion label: ``emotion``, ``situation``,
  ``topic`` (a second-person noun phrase), ``details`` (sentences the user can reveal later).
* ``language.json`` — phrase banks for the offline generator (``kardia.offline_builder``).

Everything here was written for this project; no real person is described.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from kardia.data import KardiaDataError
from kardia.emotions import EMOTIONS

MBTI_TYPES = tuple(
    a + b + c + d for a in "IE" for b in "NS" for c in "TF" for d in "JP"
)  # the 16 types, e.g. "INTJ"

PERSONA_FIELDS = {
    "anon_username": str,
    "mbti": str,
    "about": str,
    "signature": str,
    "recent_activities": list,
}
SITUATION_FIELDS = {"emotion": str, "situation": str, "topic": str, "details": list}


@dataclass(frozen=True)
class Seed:
    """What one dialogue starts from: a persona and a situation (which carries the emotion)."""

    persona: dict
    situation: dict

    @property
    def person(self) -> str:
        return render_person(self.persona)

    @property
    def emotion(self) -> str:
        return self.situation["emotion"]


@dataclass(frozen=True)
class SeedBank:
    personas: list[dict]
    situations: list[dict]
    language: dict


def render_person(persona: dict) -> str:
    """The raw profile string of a KardiaBench record (``person``): MBTI, About, Signature and
    Recent Activities, one field per line."""
    activities = "\n".join(f"- {a}" for a in persona["recent_activities"])
    return (
        f"MBTI: {persona['mbti']}\n"
        f"About: {persona['about']}\n"
        f"Signature: {persona['signature']}\n"
        f"Recent Activities:\n{activities}"
    )


def _read_jsonl(path: Path, fields: dict[str, type]) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise KardiaDataError(str(path), line_no, "<json>", exc.msg) from None
            if not isinstance(row, dict):
                raise KardiaDataError(str(path), line_no, "<record>", "expected a JSON object")
            for name, typ in fields.items():
                value = row.get(name)
                if not isinstance(value, typ) or not value:
                    raise KardiaDataError(
                        str(path), line_no, name, f"expected a non-empty {typ.__name__}"
                    )
                if typ is list and not all(isinstance(v, str) and v.strip() for v in value):
                    raise KardiaDataError(str(path), line_no, name, "expected non-empty strings")
            row["_line"] = line_no
            rows.append(row)
    return rows


def load_seed_bank(path: str | Path = "data/seed") -> SeedBank:
    """Read and check the seed bank; a bad entry raises ``KardiaDataError`` (file, line, field)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"seed bank folder {root} not found")
    personas = _read_jsonl(root / "personas.jsonl", PERSONA_FIELDS)
    situations = _read_jsonl(root / "situations.jsonl", SITUATION_FIELDS)
    seen: set[str] = set()
    for p in personas:
        where = (str(root / "personas.jsonl"), p.pop("_line"))
        if p["mbti"] not in MBTI_TYPES:
            raise KardiaDataError(*where, "mbti", f"{p['mbti']!r} is not one of the 16 types")
        if p["anon_username"] in seen:
            raise KardiaDataError(*where, "anon_username", "duplicate profile")
        seen.add(p["anon_username"])
    for s in situations:
        where = (str(root / "situations.jsonl"), s.pop("_line"))
        if s["emotion"] not in EMOTIONS:
            raise KardiaDataError(*where, "emotion", f"{s['emotion']!r} is not one of the 32")
    language = json.loads((root / "language.json").read_text(encoding="utf-8"))
    return SeedBank(personas, situations, language)


def sample_seeds(bank: SeedBank, n: int, seed: int) -> list[Seed]:
    """``n`` distinct (persona, situation) pairs: situations cycle so that the emotions stay
    balanced, personas are drawn at random without repeating a pair."""
    capacity = len(bank.personas) * len(bank.situations)
    if n > capacity:
        raise ValueError(f"asked for {n} dialogues but the seed bank has {capacity} pairs")
    rng = random.Random(seed)
    order = list(range(len(bank.situations)))
    rng.shuffle(order)
    used: set[tuple[int, int]] = set()
    seeds = []
    for i in range(n):
        s = order[i % len(order)]
        p = rng.randrange(len(bank.personas))
        while (p, s) in used:
            p = rng.randrange(len(bank.personas))
        used.add((p, s))
        seeds.append(Seed(bank.personas[p], bank.situations[s]))
    return seeds
