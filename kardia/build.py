"""The model-in-the-loop dialogue builder of KardiaBench (SPEC §2.1).

Three roles build every dialogue: a user simulator **U** (profile + situation + emotion + history
→ next user turn), a responder **A** (writes the four spans) and a rubric evaluator **R** (gives
each A turn a verdict FAIL / PASS / SOLVED). On FAIL, A revises with R's feedback, at most
``max_revisions`` times; SOLVED ends the dialogue; at most ``max_exchanges`` user/assistant
exchanges. Every assistant turn keeps its verdict history, from which the easy/hard split follows.

The loop advances all unfinished dialogues one step at a time, so a backend sees whole batches:
the LLM backend sends them concurrently, the offline backend composes them from the seed bank.
Afterwards, post-filters drop broken structure, identity drift and emotion jumps, and semantic
de-duplication drops near-duplicate dialogues.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kardia.data import VERDICTS, KardiaDataError, expand_turns, validate_record
from kardia.emotions import normalize_emotion, valence
from kardia.rubric import _json_objects, _quote
from kardia.seed import MBTI_TYPES, Seed
from kardia.spans import SPAN_NAMES, parse_spans, render_spans

BUILD_VERSION = "kardia-build-v1"  # part of every prompt cache key and of the build metrics

# The system message of every built dialogue: what the policy sees in front of the user turns.
SYSTEM_TEMPLATE = """You are an empathetic listener. Before each reply, work out who the user is, \
what happened and what they feel. Answer with four spans in this order: understanding (what the \
user means and feels, using their profile and the context), reasoning (your empathetic \
appraisal), emotion (one label from the 32 EmpatheticDialogues emotions) and response (a short \
supportive reply of about 30 words or fewer).

User profile:
{person}

Situation: {situation}"""

# The compact system message (``policy.prompt_style: compact``): the same task and facts in about
# a third of the tokens (instructions cut, the profile reduced to its type and first "About"
# sentence). On 2 CPU cores prompt tokens dominate both training and generation time.
COMPACT_TEMPLATE = """Answer in four spans: understanding (who the user is, what happened, what they \
feel), reasoning (your empathetic appraisal), emotion (one EmpatheticDialogues label) and response \
(a short supportive reply).
User: {profile}
Situation: {situation}"""
PROMPT_STYLES = ("full", "compact")


def short_profile(person: str, max_words: int = 30) -> str:
    """A profile's MBTI type and the first sentence of its "About" line (KardiaBench's profile
    layout); any other text: its first ``max_words`` words."""
    fields = {}
    for line in person.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("MBTI", "About") and value.strip():
            fields[key.strip()] = value.strip()
    if not fields:
        return " ".join(person.split()[:max_words])
    about = fields.get("About", "")
    first = re.split(r"(?<=[.!?])\s", about, maxsplit=1)[0]
    words = first.split()
    about = " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")
    return "; ".join(x for x in (fields.get("MBTI", ""), about) if x)


def system_prompt(person: str, situation: str, style: str = "full") -> str:
    """The system message in front of a dialogue, in ``style`` (``PROMPT_STYLES``)."""
    if style == "full":
        return SYSTEM_TEMPLATE.format(person=person, situation=situation)
    if style == "compact":
        return COMPACT_TEMPLATE.format(profile=short_profile(person), situation=situation)
    raise ValueError(f"policy.prompt_style must be one of {PROMPT_STYLES}, got {style!r}")


# U — the user simulator sees the supporter's replies (response spans only) as the other party.
USER_PROMPT = """You are role-playing a person who is talking to a supportive listener.
Stay in character; you are this person, never an assistant or an AI.

Your profile:
{person}

What happened to you: {situation}
How you feel about it: {emotion}

Write only your next message: one to three sentences in the first person, casual and natural, \
revealing a bit more about what happened or how you feel. Do not name your emotion with the \
exact word "{emotion}". When the listener has really helped and you feel understood, say so and \
close the conversation politely."""
USER_OPENING = "(The conversation starts now. Write your first message to the listener.)"

# A's revision request: the draft goes back with R's feedback.
REVISION_PROMPT = """An evaluator rejected your last reply.
Feedback: {feedback}
Write the reply again, with all four spans in order, fixing what the feedback names."""

# R — the rubric evaluator: one verdict per candidate turn, as JSON.
EVALUATOR_PROMPT = """You are the rubric evaluator of an emotional-support dialogue dataset.
You see the user's profile, their situation, the reference emotion, the dialogue so far and a \
candidate assistant turn with four spans: understanding, reasoning, emotion and response.

Give one verdict:
- "FAIL": the turn must be rewritten: a span is missing or empty; the emotion label is not the \
user's emotion; the understanding ignores who the user is; the response is generic, dismissive, \
unsafe, longer than about 40 words, or does not answer the last user message.
- "PASS": the turn is acceptable and the conversation should go on.
- "SOLVED": the turn is acceptable and the user's concern is resolved; the dialogue ends here.

Reply with one JSON object only: {{"verdict": "FAIL" | "PASS" | "SOLVED", "feedback": "<one \
sentence: what to fix, or why it is good>"}}"""

VERDICT_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": list(VERDICTS)},
        "feedback": {"type": "string"},
    },
    "required": ["verdict", "feedback"],
    "additionalProperties": False,
}

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
        "content": SYSTEM_TEMPLATE.format(
            person=seed.person, situation=seed.situation["situation"]
        ),
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


# --- post-filters -------------------------------------------------------------------------------

_MBTI = re.compile(r"\b(" + "|".join(MBTI_TYPES) + r")s?\b")
# A simulated user who slips out of character: role labels, span markup, assistant self-talk.
_OUT_OF_CHARACTER = re.compile(
    r"<\|?/?(?:" + "|".join(SPAN_NAMES) + r")|\bas an ai\b|\blanguage model\b"
    r"|\bi'?m (?:an|your) (?:ai|assistant)\b|^\s*(?:user|assistant|listener)\s*:",
    re.IGNORECASE | re.MULTILINE,
)


def mbti_types(text: str) -> set[str]:
    """The MBTI types a text names ("INFJ", also in the plural "INFJs")."""
    return set(_MBTI.findall(text))


def structure_problem(record: dict) -> str | None:
    """Broken structure: anything ``validate_record`` rejects (roles, spans, labels, verdicts)."""
    try:
        validate_record(record)
    except KardiaDataError as exc:
        return f"{exc.field}: {exc.problem}"
    return None


def identity_drift(record: dict) -> str | None:
    """The user stops being the profiled person, or the assistant takes them for someone else:
    a user turn out of character, or any turn naming an MBTI type other than the profile's."""
    for i, m in enumerate(record["messages"][1:], start=1):
        if m["role"] == "user" and _OUT_OF_CHARACTER.search(m["content"]):
            return f"messages[{i}]: user turn out of character"
        for mbti in mbti_types(m["content"]):
            if mbti != record["mbti"]:
                return f"messages[{i}]: names {mbti}, profile is {record['mbti']}"
    return None


def emotion_labels(record: dict) -> list[str | None]:
    """The normalised emotion span of each assistant turn."""
    out = []
    for m in record["messages"]:
        if m["role"] == "assistant":
            label = parse_spans(m["content"]).emotion
            out.append(normalize_emotion(label) if label is not None else None)
    return out


def emotion_jump(record: dict) -> str | None:
    """The emotion labels swing between positive and negative from one turn to the next, or a
    label has the opposite valence of the dialogue's target emotion."""
    labels = [lab for lab in emotion_labels(record) if lab is not None]
    target = valence(record["emotion"])
    for i, lab in enumerate(labels):
        if target * valence(lab) < 0:
            return f"turn {i}: {lab!r} against target {record['emotion']!r}"
        if i and valence(labels[i - 1]) * valence(lab) < 0:
            return f"turn {i}: {labels[i - 1]!r} -> {lab!r}"
    return None


FILTERS = {
    "broken_structure": structure_problem,
    "identity_drift": identity_drift,
    "emotion_jump": emotion_jump,
}


def _spoken(record: dict) -> list[tuple[str, str]]:
    """(role, text) of what is said aloud: user turns, and the response span of each reply."""
    return [
        (
            m["role"],
            m["content"] if m["role"] == "user" else parse_spans(m["content"]).response or "",
        )
        for m in record["messages"][1:]
    ]


def dedup_text(record: dict, max_words: int | None = None) -> str:
    """What near-duplicates are judged on: the user turns and the replies, in order, cut to the
    first ``max_words`` words (the opening carries a dialogue's content, and encoding cost grows
    with length: on 2 CPU cores, 64 words encode about 3x faster than 256)."""
    words = " ".join(text for _, text in _spoken(record)).split()
    return " ".join(words[:max_words] if max_words else words)


def semantic_dedup(texts: Sequence[str], encoder, threshold: float) -> list[int]:
    """Indices of the texts to keep: greedily, a text whose cosine similarity to an earlier kept
    text is at least ``threshold`` is dropped. Similarities are computed block-wise."""
    import numpy as np

    if not texts:
        return []
    emb = encoder.encode(list(texts))
    keep = np.zeros(len(texts), dtype=bool)
    block = 1024
    for start in range(0, len(texts), block):
        stop = min(start + block, len(texts))
        # Similarity of this block to every earlier text; kept-ness of earlier blocks is final.
        sims = emb[start:stop] @ emb[:stop].T
        for i in range(start, stop):
            row = sims[i - start, :i]
            keep[i] = not (row[keep[:i]] >= threshold).any()
    return [int(i) for i in np.flatnonzero(keep)]


def post_filter(
    records: Sequence[dict],
    encoder=None,
    dedup_threshold: float | None = None,
    dedup_words: int | None = 64,
) -> tuple[list[dict], dict[str, int], list[dict]]:
    """Apply the filters in order, then semantic de-duplication (when an encoder is given) on
    ``dedup_text`` of each dialogue.

    Returns the kept records, the number dropped per reason, and one ``{dialogue_id, reason,
    detail}`` row per dropped dialogue.
    """
    dropped: Counter = Counter()
    log: list[dict] = []
    kept = []
    for rec in records:
        for reason, check in FILTERS.items():
            detail = check(rec)
            if detail is not None:
                dropped[reason] += 1
                log.append({"dialogue_id": rec.get("dialogue_id"), "reason": reason,
                            "detail": detail})  # fmt: skip
                break
        else:
            kept.append(rec)
    if encoder is not None and dedup_threshold is not None:
        keep = set(
            semantic_dedup([dedup_text(r, dedup_words) for r in kept], encoder, dedup_threshold)
        )
        for i, rec in enumerate(kept):
            if i not in keep:
                dropped["near_duplicate"] += 1
                log.append({"dialogue_id": rec.get("dialogue_id"), "reason": "near_duplicate",
                            "detail": f">= {dedup_threshold} cosine"})  # fmt: skip
        kept = [r for i, r in enumerate(kept) if i in keep]
    counts = {r: dropped[r] for r in (*FILTERS, "near_duplicate")}
    return kept, counts, log


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): unique word n-grams / all word n-grams over the corpus."""
    total, unique = 0, set()
    for t in texts:
        words = t.lower().split()
        grams = list(zip(*(words[i:] for i in range(n)), strict=False))  # ragged on purpose
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


def diversity(records: Sequence[dict]) -> dict[str, float]:
    """Distinct-1/2 of the responses and of the user turns of a corpus."""
    users, responses = [], []
    for rec in records:
        for role, text in _spoken(rec):
            (users if role == "user" else responses).append(text)
    return {
        "response_distinct_1": distinct_n(responses, 1),
        "response_distinct_2": distinct_n(responses, 2),
        "user_distinct_1": distinct_n(users, 1),
        "user_distinct_2": distinct_n(users, 2),
    }


# --- the LLM backend ----------------------------------------------------------------------------


def _clean_user_turn(text: str) -> str:
    text = text.strip().strip('"').strip()
    if not text or len(text.split()) > 200:
        raise ValueError("empty or overlong user turn")
    if "_begin|>" in text or "<understanding>" in text:
        raise ValueError("user turn contains span markup")
    return text


def _canonical_turn(text: str) -> str:
    """Accept a responder reply only with four complete spans and a valid label; re-render it in
    the canonical KardiaBench style."""
    spans = parse_spans(text)
    if not spans.complete:
        raise ValueError("reply without four complete spans")
    label = normalize_emotion(spans.emotion or "")
    if label is None:
        raise ValueError(f"emotion span {spans.emotion!r} is not one of the 32 labels")
    return render_spans(spans.understanding, spans.reasoning, label, spans.response)


def parse_verdict(text: str) -> Verdict:
    """R's reply: one JSON object with ``verdict`` (FAIL/PASS/SOLVED) and ``feedback``."""
    for obj in _json_objects(text):
        if isinstance(obj, dict) and "verdict" in obj:
            label = str(obj["verdict"]).strip().upper()
            if label not in VERDICTS:
                raise ValueError(f"verdict {obj['verdict']!r} not in {VERDICTS}")
            return Verdict(label, str(obj.get("feedback", ""))[:500])
    raise ValueError("no JSON object with a 'verdict' key")


class LLMBackend:
    """U, A and R played by LLMs behind OpenAI-compatible endpoints (``vllm serve``, hosted APIs).

    ``generator`` plays U and A (sampled, temperature > 0 for variety); ``evaluator`` plays R
    (temperature 0); both are ``kardia.client.ChatClient`` instances, so concurrency, retries and
    the SQLite reply cache come from the judge client. Pass the same client twice to use one
    model for all three roles, as the paper did.
    """

    def __init__(self, generator, evaluator=None):
        self.generator = generator
        self.evaluator = evaluator or generator
        self.response_format = {
            "type": "json_schema",
            "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA},
        }

    def user_messages(self, d: Dialogue) -> list[dict]:
        """U's view: its own turns as ``assistant``, the listener's replies as ``user``."""
        seed = d.seed
        messages = [
            {
                "role": "system",
                "content": USER_PROMPT.format(
                    person=seed.person, situation=seed.situation["situation"], emotion=seed.emotion
                ),
            },
            {"role": "user", "content": USER_OPENING},
        ]
        for m in d.history():
            if m["role"] == "user":
                messages.append({"role": "assistant", "content": m["content"]})
            else:
                reply = parse_spans(m["content"]).response or ""
                messages.append({"role": "user", "content": reply})
        return messages

    def responder_messages(self, d: Dialogue, draft: Draft | None) -> list[dict]:
        messages = [dict(m) for m in d.messages]
        if draft is not None:
            messages += [
                {"role": "assistant", "content": draft.text},
                {"role": "user", "content": REVISION_PROMPT.format(feedback=draft.feedback)},
            ]
        return messages

    def evaluator_messages(self, d: Dialogue, candidate: str) -> list[dict]:
        case = {
            "user_profile": d.seed.person,
            "situation": d.seed.situation["situation"],
            "reference_emotion": d.seed.emotion,
            "dialogue_so_far": d.history(),
            "candidate_turn": parse_spans(candidate).as_dict(),
        }
        user = f"Evaluate the candidate turn.\n<case>\n{_quote(case)}\n</case>\nJSON only."
        return [
            {"role": "system", "content": EVALUATOR_PROMPT},
            {"role": "user", "content": user},
        ]

    def user_turns(self, dialogues):
        return self.generator.complete(
            [self.user_messages(d) for d in dialogues],
            _clean_user_turn,
            namespace=f"{BUILD_VERSION}/user",
        )

    def respond(self, dialogues, drafts):
        return self.generator.complete(
            [self.responder_messages(d, dr) for d, dr in zip(dialogues, drafts, strict=True)],
            _canonical_turn,
            namespace=f"{BUILD_VERSION}/respond",
        )

    def evaluate(self, dialogues, candidates):
        if not dialogues:
            return []
        return self.evaluator.complete(
            [self.evaluator_messages(d, c) for d, c in zip(dialogues, candidates, strict=True)],
            parse_verdict,
            namespace=f"{BUILD_VERSION}/evaluate",
            response_format=self.response_format,
        )


def make_backend(
    kind: str, *, bank=None, llm: dict | None = None, offline: dict | None = None, seed: int = 0
) -> Backend:
    """``offline`` (the seed-bank composer, options from ``build_data.offline``) or ``llm`` (from
    a ``build_data.llm`` section: ``base_url``, ``model``, optional ``evaluator_model`` and the
    client settings)."""
    if kind == "offline":
        from kardia.offline_builder import OfflineBackend

        if bank is None:
            raise ValueError("the offline backend needs the seed bank")
        return OfflineBackend(bank.language, **(offline or {}))
    if kind == "llm":
        from kardia.client import ChatClient

        cfg = dict(llm or {})
        missing = [k for k in ("base_url", "model") if not cfg.get(k)]
        if missing:
            raise ValueError(f"backend 'llm' needs build_data.llm.{', '.join(missing)}")
        common = {
            k: cfg[k]
            for k in ("api_key_env", "concurrency", "timeout_s", "max_retries", "cache_path")
            if cfg.get(k) is not None
        }
        max_tokens = int(cfg.get("max_tokens", 1024))
        generator = ChatClient(
            cfg["base_url"], cfg["model"], temperature=float(cfg.get("temperature", 0.8)),
            seed=seed, max_tokens=max_tokens, **common,
        )  # fmt: skip
        evaluator = ChatClient(
            cfg["base_url"], cfg.get("evaluator_model") or cfg["model"], temperature=0.0,
            seed=seed, max_tokens=max_tokens, **common,
        )  # fmt: skip
        return LLMBackend(generator, evaluator)
    raise ValueError(f"unknown build backend {kind!r}; expected 'offline' or 'llm'")


def rejudge_verdicts(records: Sequence[dict], judge, fail_below: float = 0.5) -> list[list[list]]:
    """Verdicts for dialogues that carry none (the released KardiaBench), from a rubric judge.

    Each assistant turn is scored like a Rubric-ERL reward: FAIL when its rubric score
    ``(mean − 1) / 4`` is below ``fail_below``, else PASS, and SOLVED for an acceptable final
    turn (the released dialogues ended where R said SOLVED). A failed judgement leaves that turn
    with an empty history. Only the final turns were released, so every history has one verdict.
    """
    from kardia.rewards import make_rubric_reward  # lazy: rewards pulls in the judges

    rows = expand_turns(records)
    scores = make_rubric_reward(judge)(
        [r["completion"] for r in rows],
        [r["prompt"] for r in rows],
        person=[r["person"] for r in rows],
        situation=[r["situation"] for r in rows],
        emotion=[r["emotion"] for r in rows],
    )
    it = iter(scores)  # expand_turns yields the turns of each record in order
    out = []
    for rec in records:
        n_turns = len(rec["messages"]) // 2
        turns = []
        for t, score in enumerate(next(it) for _ in range(n_turns)):
            if score is None:
                turns.append([])
            elif score < fail_below:
                turns.append(["FAIL"])
            else:
                turns.append(["SOLVED" if t == n_turns - 1 else "PASS"])
        out.append(turns)
    return out


def fill_missing_verdicts(records: Sequence[dict], judge, fail_below: float) -> int:
    """Re-judge (``rejudge_verdicts``) the records that carry no verdicts, in place; return how
    many were re-judged. The judge's counters tell how many judgements failed."""
    missing = [r for r in records if not r.get("verdicts")]
    if missing:
        for rec, verdicts in zip(
            missing, rejudge_verdicts(missing, judge, fail_below), strict=True
        ):
            rec["verdicts"] = verdicts
    return len(missing)


__all__ = [
    "BUILD_VERSION",
    "Backend",
    "BuildStats",
    "Dialogue",
    "Draft",
    "LLMBackend",
    "Verdict",
    "build_dialogues",
    "distinct_n",
    "diversity",
    "identity_drift",
    "emotion_jump",
    "fill_missing_verdicts",
    "make_backend",
    "post_filter",
    "rejudge_verdicts",
    "semantic_dedup",
    "structure_problem",
]
