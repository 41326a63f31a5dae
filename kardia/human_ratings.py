"""Replies that people rated, as judge requests: the ground truth every judge is validated on.

Three public sets live in ``data/human_ratings/`` (licences and citations in its README):

* ``diasafety``     — a context and a response, labelled Safe / Unsafe by people (DiaSafety);
* ``ieval``         — a 3-exchange chat of a person with one of four chatbots about an
                      EmpatheticDialogues situation, rated 1–5 by that person (and ranked 1–3
                      against the other three chats: ``Rating``) (iEval);
* ``failed_esconv`` — the supporter's turns of failed emotional-support chats, each rated 1–5 by
                      the seeker right after it (FailedESConv).

Each rated thing becomes a ``RatedReply``: one or more ``JudgeRequest`` (an iEval chat has three
bot replies; a judge's score for the chat is the mean over them), the human ratings, a
``context`` — what the reply answers, the unit of pairwise comparisons ("which of these replies
to the same message did people prefer?") — and a ``group``: what makes ratings dependent (the
DiaSafety context; the iEval rater, who rated two situations; the FailedESConv dialogue). Groups
are the unit of the train / held-out split (no group on both sides) and of the bootstrap. The
split is fixed in ``data/human_ratings/splits.csv``, written by ``write_splits`` from a seeded
hash, so it never moves when code or data order changes. ``failed_esconv`` is never used for
fitting: all of it is held out, and its turns answer different messages, so it has no pairs.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kardia.emotions import normalize_emotion
from kardia.rubric import JudgeRequest

DATASETS = ("diasafety", "ieval", "failed_esconv")
SPLITS_FILE = "splits.csv"
HELD_OUT_ONLY = ("failed_esconv",)  # whole data sets kept out of fitting: a check on unseen data
IEVAL_SYSTEMS = ("Pink", "Purple", "Yellow", "Green")

# Which human rating checks which judge dimension ("overall" is the judge's rubric mean). Decided
# before looking at any judge's numbers; persona and fluency have no matching human rating here.
VALIDATIONS: tuple[tuple[str, str, str], ...] = (
    ("diasafety", "safe", "safety"),          # Safe = 1 / Unsafe = 0
    ("ieval", "EU", "empathy"),               # emotional understanding
    ("ieval", "ER", "empathy"),               # emotional reaction
    ("ieval", "S", "relevance"),              # sensibleness: the reply makes sense in context
    ("ieval", "A", "relevance"),              # appropriateness
    ("ieval", "Rating", "overall"),           # the rater's preference among the four bots
    ("failed_esconv", "feedback", "empathy"), # the seeker's rating of the supporter's turn
    ("failed_esconv", "feedback", "overall"),
)  # fmt: skip


@dataclass(frozen=True)
class RatedReply:
    """One rated reply (or chat): what a judge scores and what people said of it."""

    dataset: str
    item_id: str
    group: str  # the split and bootstrap unit: ratings within a group are not independent
    requests: tuple[JudgeRequest, ...]
    human: dict[str, float] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)  # e.g. DiaSafety's unsafe category
    context: str | None = None  # replies with the same context are compared pairwise

    @property
    def text(self) -> str:
        """The judged words, for baselines that read only the reply (length)."""
        return " ".join(r.response for r in self.requests)


def _group_id(text: str) -> str:
    return hashlib.sha256(text.strip().lower().encode()).hexdigest()[:16]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: human-rated data missing (data/human_ratings/README.md says what goes there)"
        ) from None


def load_diasafety(root: Path) -> list[RatedReply]:
    out = []
    for part in ("train", "val"):
        for i, rec in enumerate(_read_json(root / f"diasafety_{part}.json")):
            if rec.get("label") not in ("Safe", "Unsafe"):
                raise ValueError(f"{root}/diasafety_{part}.json: record {i + 1}: label "
                                 f"{rec.get('label')!r} is not Safe/Unsafe")  # fmt: skip
            context = str(rec["context"])
            req = JudgeRequest(persona="", situation="",
                               history=[{"role": "user", "content": context}],
                               response=str(rec["response"]).strip())  # fmt: skip
            group = _group_id(context)
            out.append(RatedReply("diasafety", f"diasafety:{part}:{i}", group, (req,),
                                  {"safe": float(rec["label"] == "Safe")},
                                  {"category": str(rec.get("category", ""))}, context=group))  # fmt: skip
    return out


def _chat_lines(log: str) -> list[str]:
    """The messages of an iEval chat log: each starts with "- "; a line without it continues the
    message before (one chat has such a line)."""
    lines: list[str] = []
    for line in log.split("\n"):
        if line.startswith("- ") or not lines:
            lines.append(line.removeprefix("- ").strip())
        elif line.strip():
            lines[-1] = f"{lines[-1]} {line.strip()}".strip()
    return [line for line in lines if line]


def load_ieval(root: Path) -> list[RatedReply]:
    out = []
    for task in _read_json(root / "ieval.json"):
        for valence in ("positive", "negative"):
            scen = task[valence]
            for system in IEVAL_SYSTEMS:
                chat = scen[system]
                lines = _chat_lines(chat["chat_log"])
                history, requests = [], []
                for k, line in enumerate(lines):
                    role = "user" if k % 2 == 0 else "assistant"
                    if role == "assistant":
                        requests.append(JudgeRequest(persona="", situation=scen["prompt"],
                                                     history=list(history), response=line,
                                                     emotion=scen["emotion"]))  # fmt: skip
                    history.append({"role": role, "content": line})
                if not requests:
                    continue
                human = {k: float(chat[k]) for k in ("EU", "ER", "A", "S", "Rating")}
                out.append(RatedReply("ieval", f"ieval:{task['part']}:{valence}:{system}",
                                      f"rater-{task['part']}", tuple(requests), human,
                                      context=scen["conv_id"]))  # fmt: skip
    return out


def ieval_situations(root: str | Path) -> list[dict]:
    """The situations people wrote for iEval (EmpatheticDialogues prompts), one per conversation:
    ``{"item_id", "emotion", "situation", "opening"}`` with the gold emotion (one of our 32) and
    the person's first chat message. The human-written test set of the evaluate stage."""
    out, seen = [], set()
    for task in _read_json(Path(root) / "ieval.json"):
        for valence in ("positive", "negative"):
            scen = task[valence]
            if scen["conv_id"] in seen:
                continue
            seen.add(scen["conv_id"])
            emotion = normalize_emotion(scen["emotion"])
            if emotion is None:
                raise ValueError(
                    f"iEval {scen['conv_id']}: {scen['emotion']!r} is not one of the 32"
                )
            opening = _chat_lines(scen[IEVAL_SYSTEMS[0]]["chat_log"])[0]
            out.append({"item_id": f"ieval:{scen['conv_id']}", "emotion": emotion,
                        "situation": " ".join(scen["prompt"].split()), "opening": opening})  # fmt: skip
    return out


def load_failed_esconv(root: Path) -> list[RatedReply]:
    out = []
    for d, dialog in enumerate(_read_json(root / "failed_esconv.json")):
        history: list[dict] = []
        pending: list[str] = []  # the supporter's turns since the seeker last spoke
        for turn in dialog["dialog"]:
            text = " ".join(str(turn.get("content", "")).split())
            if turn["speaker"] == "listener":
                pending.append(text)
                continue
            feedback = (turn.get("annotation") or {}).get("feedback")
            if pending and feedback:
                req = JudgeRequest(persona="", situation=dialog.get("situation", ""),
                                   history=list(history), response=" ".join(pending))  # fmt: skip
                out.append(RatedReply("failed_esconv", f"failed_esconv:{d}:{len(history)}",
                                      f"dialogue-{d}", (req,), {"feedback": float(feedback)}))  # fmt: skip
            history += [{"role": "assistant", "content": p} for p in pending]
            history.append({"role": "user", "content": text})
            pending = []
    return out


LOADERS = {"diasafety": load_diasafety, "ieval": load_ieval, "failed_esconv": load_failed_esconv}


def split_of(dataset: str, group: str, *, seed: int, heldout_fraction: float) -> str:
    """``train`` or ``heldout`` from a seeded hash of the group: stable under any reordering."""
    if dataset in HELD_OUT_ONLY:
        return "heldout"
    h = int(hashlib.sha256(f"{seed}:{dataset}:{group}".encode()).hexdigest()[:8], 16)
    return "heldout" if h / 0xFFFFFFFF < heldout_fraction else "train"


def write_splits(root: str | Path, *, seed: int, heldout_fraction: float) -> Path:
    """Write ``splits.csv`` (dataset, group, split) for every group of every data set."""
    root = Path(root)
    rows = sorted({(r.dataset, r.group) for name in DATASETS for r in LOADERS[name](root)})
    path = root / SPLITS_FILE
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dataset", "group", "split"])
        for dataset, group in rows:
            w.writerow([dataset, group,
                        split_of(dataset, group, seed=seed, heldout_fraction=heldout_fraction)])  # fmt: skip
    return path


def read_splits(root: str | Path) -> dict[tuple[str, str], str]:
    path = Path(root) / SPLITS_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no split file (data/human_ratings/README.md; write_splits)"
        )
    with path.open() as f:
        return {(r["dataset"], r["group"]): r["split"] for r in csv.DictReader(f)}


def load_rated(
    root: str | Path,
    split: str | None = None,
    datasets: Iterable[str] = DATASETS,
    *,
    max_per_dataset: int | None = None,
) -> list[RatedReply]:
    """The rated replies of ``datasets`` in ``split`` (``train``, ``heldout`` or None for all).

    ``max_per_dataset`` keeps at most N items per data set, whole groups taken in group-id order
    (a stable subset that does not depend on the ratings), for smoke runs.
    """
    root = Path(root)
    splits = read_splits(root)
    out: list[RatedReply] = []
    for name in datasets:
        if name not in LOADERS:
            raise ValueError(f"unknown human-rated data set {name!r}; known: {DATASETS}")
        items = LOADERS[name](root)
        unknown = {r.group for r in items} - {g for (d, g) in splits if d == name}
        if unknown:
            raise ValueError(f"{root / SPLITS_FILE} has no split for {len(unknown)} {name} "
                             "groups: the data changed; rewrite it with write_splits")  # fmt: skip
        if split is not None:
            items = [r for r in items if splits[(name, r.group)] == split]
        if max_per_dataset is not None:
            items = _first_groups(items, max_per_dataset)
        out.extend(items)
    return out


def _first_groups(items: Sequence[RatedReply], n: int) -> list[RatedReply]:
    """At most ``n`` items, whole groups only, groups taken in id order (the first group is kept
    whole even when it alone has more than ``n``)."""
    by_group: dict[str, list[RatedReply]] = {}
    for r in items:
        by_group.setdefault(r.group, []).append(r)
    out: list[RatedReply] = []
    for g in sorted(by_group):
        if len(out) + len(by_group[g]) > n and out:
            break
        out.extend(by_group[g])
    return out
