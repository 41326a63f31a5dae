"""The shipped seed bank meets the issue's minimums; bad seed files fail loudly."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter

import pytest

from kardia.data import KardiaDataError
from kardia.emotions import EMOTIONS
from kardia.seed import MBTI_TYPES, load_seed_bank, render_person, sample_seeds


@pytest.fixture(scope="module")
def bank():
    return load_seed_bank("data/seed")


def test_bank_has_at_least_64_personas_with_4_per_type(bank):
    assert len(bank.personas) >= 64
    per_type = Counter(p["mbti"] for p in bank.personas)
    assert set(per_type) == set(MBTI_TYPES) and min(per_type.values()) >= 4


def test_usernames_are_hashes_not_handles(bank):
    assert all(re.fullmatch(r"[0-9a-f]{16}", p["anon_username"]) for p in bank.personas)


def test_bank_has_at_least_5_situations_per_emotion(bank):
    per_label = Counter(s["emotion"] for s in bank.situations)
    assert set(per_label) == set(EMOTIONS) and min(per_label.values()) >= 5
    assert len({s["situation"] for s in bank.situations}) == len(bank.situations)


def test_person_string_has_the_kardiabench_fields(bank):
    text = render_person(bank.personas[0])
    for field in ("MBTI:", "About:", "Signature:", "Recent Activities:"):
        assert field in text


def test_sampling_is_seeded_distinct_and_balanced(bank):
    a = sample_seeds(bank, 400, seed=1)
    assert a == sample_seeds(bank, 400, seed=1)
    assert a != sample_seeds(bank, 400, seed=2)
    pairs = {(s.persona["anon_username"], s.situation["situation"]) for s in a}
    assert len(pairs) == 400
    per_label = Counter(s.emotion for s in a)
    assert max(per_label.values()) - min(per_label.values()) <= 7  # situations cycle evenly
    with pytest.raises(ValueError, match="pairs"):
        sample_seeds(bank, len(bank.personas) * len(bank.situations) + 1, seed=0)


# (file, line to append, field named in the error)
BAD_SEEDS = [
    ("personas.jsonl", {"anon_username": "x", "mbti": "XXXX", "about": "a", "signature": "s",
                        "recent_activities": ["r"]}, "mbti"),
    ("personas.jsonl", {"anon_username": "x", "mbti": "INFJ", "about": "", "signature": "s",
                        "recent_activities": ["r"]}, "about"),
    ("situations.jsonl", {"emotion": "bored", "situation": "s", "topic": "t", "details": ["d"]},
     "emotion"),
    ("situations.jsonl", {"emotion": "sad", "situation": "s", "topic": "t", "details": [""]},
     "details"),
]  # fmt: skip


@pytest.mark.parametrize("name,row,field", BAD_SEEDS)
def test_bad_seed_entries_name_file_line_and_field(tmp_path, name, row, field):
    shutil.copytree("data/seed", tmp_path / "seed")
    path = tmp_path / "seed" / name
    n_lines = sum(1 for line in path.open() if line.strip())
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    with pytest.raises(KardiaDataError) as err:
        load_seed_bank(tmp_path / "seed")
    assert err.value.field == field and err.value.line == n_lines + 1
    assert name in str(err.value)


def test_missing_bank_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_seed_bank(tmp_path / "nope")


def test_split_seed_bank_keeps_personas_and_situations_apart_with_every_emotion(bank):
    from kardia.seed import split_seed_bank

    banks = split_seed_bank(bank, 0.1, 0.1, seed=0)
    names = {s: {p["anon_username"] for p in b.personas} for s, b in banks.items()}
    texts = {s: {x["situation"] for x in b.situations} for s, b in banks.items()}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not names[a] & names[b] and not texts[a] & texts[b]
    assert sum(map(len, names.values())) == len(bank.personas)
    assert sum(map(len, texts.values())) == len(bank.situations)
    for split in banks:  # every emotion is trained on and tested on unseen situations
        assert {x["emotion"] for x in banks[split].situations} == set(EMOTIONS)
    again = split_seed_bank(bank, 0.1, 0.1, seed=0)
    assert again["test"].situations == banks["test"].situations
    assert split_seed_bank(bank, 0.1, 0.1, seed=1)["test"].situations != banks["test"].situations


def test_split_seeds_and_records_follow_the_situation(bank):
    from kardia.seed import sample_split_seeds, split_records

    seeds = sample_split_seeds(bank, 200, 0.1, 0.1, seed=0)
    assert {k: len(v) for k, v in seeds.items()} == {"train": 160, "dev": 20, "test": 20}
    records = [{"situation": s.situation["situation"], "split": k}
               for k, group in seeds.items() for s in group]  # fmt: skip
    out = split_records(records, seeds)
    assert all(r["split"] == k for k, rs in out.items() for r in rs)


def test_a_bank_too_small_to_split_raises(bank):
    from kardia.seed import SeedBank, split_seed_bank

    small = SeedBank(bank.personas[:2], bank.situations, bank.language)
    with pytest.raises(ValueError, match="cannot give"):
        split_seed_bank(small, 0.1, 0.1, seed=0)
