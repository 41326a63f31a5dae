"""KardiaBench records: loading, validation, turn expansion, profile- and situation-disjoint splits, easy/hard.

A record is one dialogue (SPEC §2.1): ``person`` (raw profile), ``mbti``, ``emotion``,
``situation``, ``anon_username`` and ``messages`` — a system prompt, then alternating user and
assistant turns whose assistant content carries the four spans. Records we build also carry
``verdicts``: for each assistant turn, the evaluator's verdict history (FAIL / PASS / SOLVED);
the loader keeps any extra field (``dialogue_id``, ``difficulty``…).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from kardia.emotions import normalize_emotion
from kardia.spans import parse_spans

FIELDS: dict[str, type] = {
    "person": str,
    "mbti": str,
    "emotion": str,
    "situation": str,
    "anon_username": str,
    "messages": list,
}
VERDICTS = ("FAIL", "PASS", "SOLVED")
ON_ERROR = ("raise", "skip")


class KardiaDataError(ValueError):
    """A bad record; the message names the file, the 1-based line (or record) and the field."""

    def __init__(self, source: str, line: int, field: str, problem: str):
        self.source, self.line, self.field, self.problem = source, line, field, problem
        super().__init__(f"{source}:{line}: field {field!r}: {problem}")


def validate_record(record: object, source: str = "<memory>", line: int = 1) -> dict:
    """Check one dialogue and return it with its emotion label normalised; raise on any fault."""

    def bad(field: str, problem: str) -> KardiaDataError:
        return KardiaDataError(source, line, field, problem)

    if not isinstance(record, dict):
        raise bad("<record>", f"expected a JSON object, got {type(record).__name__}")
    for field, typ in FIELDS.items():
        if field not in record:
            raise bad(field, "missing")
        if not isinstance(record[field], typ):
            raise bad(field, f"expected {typ.__name__}, got {type(record[field]).__name__}")
    emotion = normalize_emotion(record["emotion"])
    if emotion is None:
        raise bad("emotion", f"{record['emotion']!r} is not one of the 32 labels")

    messages = record["messages"]
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad(f"messages[{i}]", "expected an object with a string 'role'")
        if not isinstance(m.get("content"), str):
            raise bad(f"messages[{i}].content", "expected a string")
    if not messages or messages[0]["role"] != "system":
        raise bad("messages[0].role", "the first message must be the system prompt")
    turns = messages[1:]
    if len(turns) < 2:
        raise bad("messages", "needs at least one user turn and one assistant turn")
    for i, m in enumerate(turns, start=1):
        expected = "user" if i % 2 == 1 else "assistant"
        if m["role"] != expected:
            raise bad(
                f"messages[{i}].role", f"expected {expected!r} (roles alternate), got {m['role']!r}"
            )
        if expected == "assistant" and not parse_spans(m["content"]).complete:
            raise bad(f"messages[{i}].content", "assistant turn without four complete spans")
    if turns[-1]["role"] != "assistant":
        raise bad(
            f"messages[{len(messages) - 1}].role", "the dialogue must end with an assistant turn"
        )

    n_assistant = len(turns) // 2
    verdicts = record.get("verdicts")
    if verdicts is not None:
        if not isinstance(verdicts, list) or len(verdicts) != n_assistant:
            raise bad(
                "verdicts",
                f"expected a list with one verdict history per assistant turn ({n_assistant})",
            )
        for i, history in enumerate(verdicts):
            # An empty history marks a turn whose verdict is unknown (its re-judging failed).
            if not isinstance(history, list) or any(v not in VERDICTS for v in history):
                raise bad(f"verdicts[{i}]", f"expected a list of {VERDICTS}")
    return {**record, "emotion": emotion}


def _read(path: Path) -> Iterator[tuple[int, object]]:
    """(1-based line or record number, raw record) from a .jsonl, .json or .parquet file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield line_no, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise KardiaDataError(
                        str(path), line_no, "<json>", f"invalid JSON: {exc.msg}"
                    ) from None
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise KardiaDataError(
                str(path), exc.lineno, "<json>", f"invalid JSON: {exc.msg}"
            ) from None
        if not isinstance(data, list):
            raise KardiaDataError(str(path), 1, "<json>", "expected a list of dialogue objects")
        yield from enumerate(data, start=1)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from enumerate(pq.read_table(path).to_pylist(), start=1)
    else:
        raise ValueError(
            f"{path}: unsupported file type {suffix!r} (use .jsonl, .json or .parquet)"
        )


def validate_records(
    rows: Iterable[tuple[int, object]], source: str, on_error: str
) -> tuple[list[dict], int]:
    """Validate (line, record) pairs: raise on the first bad one, or skip and count it."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    records, skipped = [], 0
    for line, raw in rows:
        try:
            records.append(validate_record(raw, source, line))
        except KardiaDataError:
            if on_error == "raise":
                raise
            skipped += 1
    return records, skipped


def read_dialogues(source: str | Path, on_error: str = "raise") -> tuple[list[dict], int]:
    """Validated records from a local file, and how many bad ones were skipped (``on_error``)."""
    return validate_records(_read(Path(source)), str(source), on_error)


def load_dialogues(
    source, *, on_error: str = "raise", split: str = "train", counts: dict | None = None
):
    """Load KardiaBench-schema dialogues into a ``datasets.Dataset``.

    ``source`` is a ``.jsonl``/``.json``/``.parquet`` path or a hub dataset name (read with
    ``datasets.load_dataset``, then validated like a file). Pass ``counts={}`` to receive the
    numbers of loaded and skipped records.
    """
    import datasets

    path = Path(source)
    if path.suffix.lower() in (".jsonl", ".json", ".parquet") or path.exists():
        records, skipped = read_dialogues(path, on_error)
    else:
        raw = datasets.load_dataset(str(source), split=split)
        records, skipped = validate_records(enumerate(raw, start=1), str(source), on_error)
    if counts is not None:
        counts.update(loaded=len(records), skipped=skipped)
    return datasets.Dataset.from_list(records)


def expand_turns(records: Iterable[dict]) -> list[dict]:
    """One row per assistant turn — the paper's "QA pairs": the messages before it as ``prompt``,
    the turn as a one-message ``completion``, plus the gold emotion and persona fields."""
    rows = []
    for d, rec in enumerate(records):
        messages = rec["messages"]
        for t, i in enumerate(range(2, len(messages), 2)):
            rows.append(
                {
                    "dialogue_id": rec.get("dialogue_id", d),
                    "turn": t,
                    "prompt": messages[:i],
                    "completion": [messages[i]],
                    "emotion": rec["emotion"],
                    "person": rec["person"],
                    "mbti": rec["mbti"],
                    "situation": rec["situation"],
                    "anon_username": rec["anon_username"],
                }
            )
    return rows


def check_fractions(dev_fraction: float, test_fraction: float) -> None:
    """Raise unless both split fractions are in [0, 1) and leave room for train."""
    if not (0 <= dev_fraction < 1 and 0 <= test_fraction < 1 and dev_fraction + test_fraction < 1):
        raise ValueError("dev_fraction and test_fraction must be in [0, 1) and sum below 1")


def split_by_profile(
    records: list[dict], dev_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[dict]]:
    """Seeded train/dev/test split in which no profile (``anon_username``) and, where the data
    allows it, no situation crosses splits: records sharing either are one group (connected
    components), and whole groups are assigned, the largest first, to the split furthest below
    its share of records.

    When situations link so many profiles that one group would hold more than the train share,
    no situation-disjoint split exists: the split is then by profile alone, with a warning, and
    ``split_overlap`` counts what is shared (the build_data stage records it). A built dataset
    never gets there: its seed bank is partitioned first (``kardia.seed.split_seed_bank``).
    """
    check_fractions(dev_fraction, test_fraction)
    groups = _linked_groups(records)
    if max(map(len, groups), default=0) > (1 - dev_fraction - test_fraction) * len(records):
        import warnings

        warnings.warn("situations link most profiles: splitting by profile alone (held-out "
                      "situations also occur in train; see split_overlap)", stacklevel=2)  # fmt: skip
        by_profile: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            by_profile.setdefault(r["anon_username"], []).append(i)
        groups = list(by_profile.values())
    order = sorted(groups, key=lambda g: min(records[i]["anon_username"] for i in g))
    random.Random(seed).shuffle(order)
    order.sort(key=len, reverse=True)  # stable: equal sizes keep the seeded order
    share = {"test": test_fraction, "dev": dev_fraction}
    want = {s: share[s] * len(records) for s in share}
    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for g in order:
        # the held-out split furthest below its target takes the group if it still fits
        gap = {s: want[s] - len(splits[s]) for s in share}
        target = max(gap, key=lambda s: gap[s])
        where = target if gap[target] >= len(g) / 2 else "train"
        splits[where].extend(records[i] for i in g)
    return splits


def _linked_groups(records: list[dict]) -> list[list[int]]:
    """Indices of records that share a profile or a situation, directly or through others."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, r in enumerate(records):
        for key in (("profile", r["anon_username"]), ("situation", _situation_key(r))):
            j = first.setdefault(key, i)
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(records)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _situation_key(record: dict) -> str:
    return " ".join(str(record.get("situation") or "").lower().split())


def split_overlap(splits: dict[str, list[dict]]) -> dict[str, int]:
    """How many profiles and situations a held-out split shares with train (0 and 0 when the
    splits test generalisation to unseen users and unseen situations)."""
    train = splits.get("train", [])
    seen = {"profiles": {r["anon_username"] for r in train},
            "situations": {_situation_key(r) for r in train}}  # fmt: skip
    out = {}
    for split in ("dev", "test"):
        recs = splits.get(split, [])
        out[f"{split}_profiles_in_train"] = len({r["anon_username"] for r in recs}
                                                & seen["profiles"])  # fmt: skip
        out[f"{split}_situations_in_train"] = len({_situation_key(r) for r in recs}
                                                  & seen["situations"])  # fmt: skip
    return out


def difficulty(verdicts: Iterable[Iterable[str]]) -> str:
    """The paper's easy/hard rule from the dialogue's verdict frequencies (SPEC §2.1):
    easy if p_FAIL < p_PASS + p_SOLVED or p_FAIL + p_PASS < p_SOLVED, else hard."""
    flat = [v for history in verdicts for v in history]
    if not flat:
        raise ValueError("no verdicts to classify")
    n = len(flat)
    p_fail, p_pass, p_solved = (flat.count(v) / n for v in VERDICTS)
    return "easy" if p_fail < p_pass + p_solved or p_fail + p_pass < p_solved else "hard"


SPLITS = ("train", "dev", "test")
_SUFFIXES = (".jsonl", ".json", ".parquet")


def write_jsonl(records: Iterable[dict], path: str | Path) -> Path:
    """Write one JSON object per line, atomically (a temporary file renamed into place), so an
    interrupted stage never leaves a half-written file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def _split_file(folder: Path, split: str) -> Path | None:
    hits = [folder / f"{split}{s}" for s in _SUFFIXES if (folder / f"{split}{s}").exists()]
    return hits[0] if hits else None


def load_kardiabench(
    source: str | Path,
    *,
    on_error: str = "raise",
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """Existing KardiaBench-schema dialogues as train/dev/test, and the load counts.

    ``source`` is one of:
    * a file (``.jsonl``/``.json``/``.parquet``): split by profile into train/dev/test;
    * a folder holding ``train``/``dev``/``test`` files (any of those types; ``dev`` optional);
    * a hub dataset name (e.g. ``Jhcircle/KadiaBench``), read through ``datasets`` with its
      ``train`` and ``test`` splits.
    When no dev split exists it is carved out of train, profile-disjoint (SPEC §2.1 default).
    """
    path = Path(source)
    counts = {"loaded": 0, "skipped": 0}

    def read(src, split="train") -> list[dict]:
        c: dict = {}
        ds = load_dialogues(src, on_error=on_error, split=split, counts=c)
        counts["loaded"] += c["loaded"]
        counts["skipped"] += c["skipped"]
        return ds.to_list()

    if path.is_file():
        records = read(path)
        return split_by_profile(records, dev_fraction, test_fraction, seed), counts
    if path.is_dir():
        files = {s: _split_file(path, s) for s in SPLITS}
        if files["train"] is None or files["test"] is None:
            raise FileNotFoundError(
                f"{path}: expected train and test files (.jsonl/.json/.parquet), dev optional"
            )
        splits = {s: read(f) for s, f in files.items() if f is not None}
    elif path.suffix.lower() in _SUFFIXES:
        raise FileNotFoundError(f"{path} not found")
    else:
        splits = {"train": read(str(source), "train"), "test": read(str(source), "test")}
    if "dev" not in splits:
        inner = split_by_profile(splits["train"], dev_fraction, 0.0, seed)
        splits["train"], splits["dev"] = inner["train"], inner["dev"]
    return {s: splits[s] for s in SPLITS}, counts


def assign_difficulty(records: Iterable[dict]) -> dict[str, int]:
    """Set ``difficulty`` (easy/hard, or None when no verdict is known) on each record from its
    ``verdicts``; return how many of each."""
    counts = {"easy": 0, "hard": 0, "unjudged": 0}
    for rec in records:
        flat = [v for h in rec.get("verdicts") or [] for v in h]
        rec["difficulty"] = difficulty(rec["verdicts"]) if flat else None
        counts[rec["difficulty"] or "unjudged"] += 1
    return counts


def verdict_shares(verdicts: Iterable[Iterable[str]]) -> dict[str, float]:
    """p_FAIL, p_PASS, p_SOLVED of one dialogue (zeros when it has no verdict)."""
    flat = [v for h in verdicts for v in h]
    return {f"p_{v.lower()}": (flat.count(v) / len(flat) if flat else 0.0) for v in VERDICTS}


def write_splits(splits: dict[str, list[dict]], out_dir: str | Path) -> dict[str, Path]:
    """Write a dataset the way every later stage reads it, replacing ``out_dir`` atomically:

    * ``dialogues/<split>.jsonl`` — KardiaBench schema (plus ``dialogue_id``, ``verdicts``,
      ``difficulty``), readable by ``load_dialogues`` like the released data;
    * ``turns/<split>.jsonl`` — one row per assistant turn (``expand_turns``) with ``difficulty``;
    * ``difficulty.csv`` — the easy/hard assignment with each dialogue's verdict shares.
    """
    import csv
    import shutil

    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "dialogues").mkdir(parents=True)
    (tmp / "turns").mkdir()
    with (tmp / "difficulty.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["dialogue_id", "split", "difficulty", "turns", *verdict_shares([])])
        for split, records in splits.items():
            write_jsonl(records, tmp / "dialogues" / f"{split}.jsonl")
            rows = expand_turns(records)
            by_id = {r["dialogue_id"]: r.get("difficulty") for r in records}
            write_jsonl(
                ({**row, "difficulty": by_id[row["dialogue_id"]]} for row in rows),
                tmp / "turns" / f"{split}.jsonl",
            )
            for r in records:
                shares = verdict_shares(r.get("verdicts") or [])
                writer.writerow([r["dialogue_id"], split, r.get("difficulty") or "",
                                 len(r["messages"]) // 2,
                                 *(f"{v:.4f}" for v in shares.values())])  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return {
        "dialogues": out / "dialogues",
        "turns": out / "turns",
        "difficulty": out / "difficulty.csv",
    }


def ensure_ids(splits: dict[str, list[dict]]) -> None:
    """Give every record a unique ``dialogue_id`` (the released data has none)."""
    seen: set = set()
    for split, records in splits.items():
        for i, r in enumerate(records):
            if r.get("dialogue_id") is None or r["dialogue_id"] in seen:
                r["dialogue_id"] = f"{split}-{i:06d}"
            seen.add(r["dialogue_id"])


def read_splits(out_dir: str | Path, what: str = "dialogues") -> dict[str, list[dict]]:
    """Read back ``write_splits`` output: ``what`` is ``dialogues`` (validated) or ``turns``."""
    folder = Path(out_dir) / what
    if what == "dialogues":
        return {s: read_dialogues(folder / f"{s}.jsonl")[0] for s in SPLITS}
    with_rows = {}
    for s in SPLITS:
        with (folder / f"{s}.jsonl").open(encoding="utf-8") as f:
            with_rows[s] = [json.loads(line) for line in f if line.strip()]
    return with_rows
