"""The seed bank the dialogue builder starts from (``data/seed/``, format in its README.md).

* ``personas.jsonl`` — fictional forum profiles in the KardiaBench style: ``anon_username``
  (a hashed handle), ``mbti``, ``about``, ``signature``, ``recent_activities``.
* ``situations.jsonl`` — first-person situations per emotion label: ``emotion``, ``situation``,
  ``topic`` (a second-person noun phrase), ``details`` (sentences the user can reveal later).
* ``language.json`` — phrase banks for the offline generator (``kardia.build.offline``).

Everything here was written for this project; no real person is described.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from kardia.data import KardiaDataError, check_fractions
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


def split_seed_bank(
    bank: SeedBank, dev_fraction: float, test_fraction: float, seed: int
) -> dict[str, SeedBank]:
    """Partition the personas and the situations into train/dev/test banks, so dialogues built
    from them share no profile and no situation across splits (a held-out situation's emotion
    cannot be looked up from train). Situations are split within each emotion (at least one per
    emotion in every held-out split that asks for any), personas at random; seeded."""
    check_fractions(dev_fraction, test_fraction)
    rng = random.Random(seed)

    def cut(items: list, n_dev: int, n_test: int) -> dict[str, list]:
        items = list(items)
        rng.shuffle(items)
        return {"test": items[:n_test], "dev": items[n_test : n_test + n_dev],
                "train": items[n_test + n_dev :]}  # fmt: skip

    def sizes(n: int) -> tuple[int, int]:
        n_dev = max(round(n * dev_fraction), 1 if dev_fraction else 0)
        n_test = max(round(n * test_fraction), 1 if test_fraction else 0)
        if n_dev + n_test >= n:
            raise ValueError(f"{n} items cannot give train, dev and test a share each")
        return n_dev, n_test

    personas = cut(bank.personas, *sizes(len(bank.personas)))
    situations: dict[str, list] = {"train": [], "dev": [], "test": []}
    for emotion in sorted({s["emotion"] for s in bank.situations}):
        same = [s for s in bank.situations if s["emotion"] == emotion]
        for split, part in cut(same, *sizes(len(same))).items():
            situations[split].extend(part)
    return {split: SeedBank(personas[split], situations[split], bank.language)
            for split in ("train", "dev", "test")}  # fmt: skip


def sample_split_seeds(
    bank: SeedBank, n: int, dev_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[Seed]]:
    """``n`` seeds in all, ``{split: seeds}``, each split drawn from its own part of the bank
    (``split_seed_bank``) in proportion to the fractions."""
    banks = split_seed_bank(bank, dev_fraction, test_fraction, seed)
    share = {"dev": dev_fraction, "test": test_fraction}
    share["train"] = 1 - dev_fraction - test_fraction
    return {split: sample_seeds(b, round(n * share[split]), seed) for split, b in banks.items()}


def split_records(records: list[dict], seeds: dict[str, list[Seed]]) -> dict[str, list[dict]]:
    """Built dialogues into the splits their seeds were drawn for (``sample_split_seeds``): a
    situation belongs to exactly one split, so it says where its dialogue goes."""
    where = {s.situation["situation"]: split for split, group in seeds.items() for s in group}
    out: dict[str, list[dict]] = {split: [] for split in seeds}
    for r in records:
        out[where[r["situation"]]].append(r)
    return out
