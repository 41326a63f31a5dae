"""Prompts as every stage shapes them: the history budget, the system message's style, the rows
training, dev checks and evaluation read (one shaping, so every system sees the same prompts)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from kardia.data import read_splits
from kardia.generation import fold_system, supports_system_role
from kardia.system_prompt import PROMPT_STYLES, system_prompt, with_opening


def trim_history(messages: Sequence[dict], history_exchanges: int | None) -> list[dict]:
    """Keep the system message, the last user turn and at most ``history_exchanges`` earlier
    user/assistant exchanges before it (``None``: the whole dialogue)."""
    messages = list(messages)
    if history_exchanges is None:
        return messages
    if history_exchanges < 0:
        raise ValueError(f"history_exchanges must be >= 0 or null, got {history_exchanges}")
    head = messages[:1] if messages and messages[0].get("role") == "system" else []
    body = messages[len(head) :]
    return head + body[-(2 * history_exchanges + 1) :]

def dropped_opening(messages: Sequence[dict], history_exchanges: int | None) -> str | None:
    """The dialogue's first user message when ``trim_history`` drops it (None when it stays:
    a first turn, or a budget that reaches back to it)."""
    body = [m for m in messages if m.get("role") != "system"]
    kept = [m for m in trim_history(messages, history_exchanges) if m.get("role") != "system"]
    if not body or body[0].get("role") != "user" or len(kept) == len(body):
        return None
    return body[0]["content"]

def prompt_args(policy: dict) -> dict:
    """How ``policy`` shapes a prompt: the keyword arguments of ``prompt_rows`` it sets (the same
    for training, dev checks and evaluation, so every system sees the same prompts)."""
    return {"history_exchanges": policy.get("history_exchanges"),
            "prompt_style": policy.get("prompt_style", "full"),
            "keep_opening": bool(policy.get("keep_opening", False))}  # fmt: skip

def shape_prompt(turn: dict, history_exchanges: int | None, prompt_style: str = "full",
                 keep_opening: bool = False):  # fmt: skip
    """A turn's prompt trimmed to the history budget, its system message in ``prompt_style``
    (rebuilt from the turn's ``person`` and ``situation``; ``full`` keeps the stored one).

    ``keep_opening``: when the budget drops the dialogue's first user message, the system message
    carries it (``system_prompt.with_opening``): the emotion is the dialogue's, and the opening
    is where the user names it."""
    if prompt_style not in PROMPT_STYLES:
        raise ValueError(f"policy.prompt_style must be one of {PROMPT_STYLES}, got {prompt_style!r}")
    prompt = trim_history(turn["prompt"], history_exchanges)
    if not prompt or prompt[0].get("role") != "system":
        return prompt
    opening = dropped_opening(turn["prompt"], history_exchanges) if keep_opening else None
    situation = str(turn.get("situation") or "")
    if prompt_style != "full":
        content = system_prompt(str(turn.get("person") or ""), situation, prompt_style, opening)
    elif opening is not None:
        content = with_opening(prompt[0]["content"], situation, opening)
    else:
        return prompt
    return [{"role": "system", "content": content}, *prompt[1:]]

def prompt_rows(
    turns: Iterable[dict],
    *,
    difficulty: str | None = None,
    history_exchanges: int | None = None,
    prompt_style: str = "full",
    keep_opening: bool = False,
    system_role: bool = True,
    limit: int | None = None,
) -> list[dict]:
    """Turn rows (``data/built/turns/<split>.jsonl``) shaped for training: the prompt trimmed to
    the history budget with its system message in ``prompt_style`` (and folded into the first
    user turn for templates without a system role), the gold completion, and the columns the
    rewards read."""
    rows = []
    for t in turns:
        if difficulty is not None and t.get("difficulty") != difficulty:
            continue
        prompt = shape_prompt(t, history_exchanges, prompt_style, keep_opening)
        rows.append(
            {
                "prompt": prompt if system_role else fold_system(prompt),
                "completion": t["completion"],
                "emotion": t["emotion"],
                "person": t["person"],
                "situation": t["situation"],
                "turn": int(t.get("turn", 0)),  # 0: the dialogue's first turn
            }
        )
        if limit is not None and len(rows) >= limit:
            break
    return rows

def spread(rows: Sequence[dict], n: int | None, seed: int,
           first_turn_share: float | None = None) -> list[dict]:  # fmt: skip
    """A seeded sample of ``n`` rows (all when ``n`` is None or covers them), in input order.

    ``first_turn_share`` reserves that share of the sample for dialogues' first turns (rows with
    ``turn == 0``: where the user says what happened and how they feel), the rest drawn from
    later turns; None samples all rows alike."""
    if n is None or n >= len(rows):
        return list(rows)
    if first_turn_share is None:
        keep = sorted(random.Random(seed).sample(range(len(rows)), n))
        return [rows[i] for i in keep]
    if not 0.0 <= first_turn_share <= 1.0:
        raise ValueError(f"first_turn_share must be in [0, 1] or null, got {first_turn_share}")
    first = [r for r in rows if r["turn"] == 0]
    later = [r for r in rows if r["turn"] > 0]
    n_first = min(round(n * first_turn_share), len(first))
    keep_ids = {id(r) for r in spread(first, n_first, seed) + spread(later, n - n_first, seed)}
    return [r for r in rows if id(r) in keep_ids]


def train_rows(data_dir: str, policy: dict, tokenizer, difficulty: str) -> list[dict]:
    """The train turns of one difficulty (SFT: easy, GRPO: hard), shaped for the tokenizer."""
    rows = prompt_rows(
        read_splits(data_dir, "turns")["train"],
        difficulty=difficulty,
        system_role=supports_system_role(tokenizer),
        **prompt_args(policy),
    )
    if not rows:
        raise ValueError(f"no {difficulty} train turns in {data_dir}: run build_data first")
    return rows
