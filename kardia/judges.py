"""Rubric judges: an LLM behind any OpenAI-compatible endpoint, or an offline judge.

Both score a batch of ``JudgeRequest`` and return one ``Judgement`` or ``None`` (failed) per
request, in order. The training judge (Rubric-ERL reward) and the evaluation judge are configured
separately in ``params.yaml`` and built with ``make_judge``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from kardia.client import ChatClient, ClientStats
from kardia.lexicon_judge import LexiconJudge
from kardia.offline_judge import DEFAULT_HEADS, OfflineJudge
from kardia.rubric import (
    JUDGEMENT_SCHEMA,
    RUBRIC_VERSION,
    Judgement,
    JudgeRequest,
    parse_judgement,
    render_judge_messages,
)

__all__ = [
    "Judge",
    "JudgeRequest",
    "Judgement",
    "LexiconJudge",
    "OfflineJudge",
    "OpenAICompatibleJudge",
    "make_judge",
]

RESPONSE_FORMATS = ("json_schema", "json_object", "none")


@runtime_checkable
class Judge(Protocol):
    def score(self, requests: Sequence[JudgeRequest]) -> list[Judgement | None]: ...


class OpenAICompatibleJudge:
    """An LLM judge served at ``{base_url}/chat/completions`` (``vllm serve``, OpenAI, others).

    Temperature 0 and a fixed seed make replies as deterministic as the server allows; guided JSON
    output (``response_format``) is asked for and dropped automatically if the server rejects it.
    Replies that fail ``parse_judgement`` are retried like transport errors. See
    ``kardia.client.ChatClient`` for the retry, concurrency and cache behaviour; its counters are
    in ``self.stats``.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        cache_path: str | None = None,
        seed: int = 0,
        max_tokens: int = 1024,
        response_format: str = "json_schema",
        extra_body: dict | None = None,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ):
        if response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format must be one of {RESPONSE_FORMATS}")
        self.client = ChatClient(
            base_url,
            model,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout_s=timeout_s,
            max_retries=max_retries,
            cache_path=cache_path,
            temperature=0.0,
            seed=seed,
            max_tokens=max_tokens,
            extra_body=extra_body,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
        )
        self.response_format = {
            "json_schema": {
                "type": "json_schema",
                "json_schema": {"name": "judgement", "schema": JUDGEMENT_SCHEMA},
            },
            "json_object": {"type": "json_object"},
            "none": None,
        }[response_format]
        self.name = f"llm:{model}"

    def __repr__(self) -> str:
        return f"OpenAICompatibleJudge(url={self.client.url!r}, model={self.client.model!r})"

    @property
    def stats(self) -> ClientStats:
        return self.client.stats

    def score(self, requests: Sequence[JudgeRequest]) -> list[Judgement | None]:
        return self.client.complete(
            [render_judge_messages(r) for r in requests],
            parse_judgement,
            namespace=RUBRIC_VERSION,
            response_format=self.response_format,
        )

    async def ascore(self, requests: Sequence[JudgeRequest]) -> list[Judgement | None]:
        return await self.client.acomplete(
            [render_judge_messages(r) for r in requests],
            parse_judgement,
            namespace=RUBRIC_VERSION,
            response_format=self.response_format,
        )


def make_judge(cfg: dict) -> Judge:
    """Build a judge from a ``params.yaml`` judge section.

    ``kind: offline`` gives ``OfflineJudge(heads)`` (a heads file from the ``judge_fit`` stage);
    ``kind: lexicon`` the hand-written baseline ``LexiconJudge()``; ``kind: openai`` an
    ``OpenAICompatibleJudge`` from ``base_url``, ``model`` and the optional client keys.
    """
    cfg = dict(cfg)
    kind = cfg.pop("kind", None)
    cfg.pop("max_failure_rate", None)  # read by the stages, not the judge
    heads = cfg.pop("heads", None)  # offline only; the other kinds ignore it
    if kind == "offline":
        return OfflineJudge(heads or DEFAULT_HEADS)
    if kind == "lexicon":
        return LexiconJudge()
    if kind == "openai":
        missing = [k for k in ("base_url", "model") if not cfg.get(k)]
        if missing:
            raise ValueError(f"judge kind 'openai' needs {', '.join(missing)}")
        if cfg.get("cache_path"):
            cfg["cache_path"] = os.fspath(cfg["cache_path"])
        return OpenAICompatibleJudge(cfg.pop("base_url"), cfg.pop("model"), **cfg)
    raise ValueError(f"unknown judge kind {kind!r}; expected 'offline', 'lexicon' or 'openai'")


def max_failure_rate(cfg: Mapping) -> float:
    """A judge section's ``max_failure_rate`` (default 0.05, SPEC §6), checked to be in [0, 1)."""
    rate = float(cfg.get("max_failure_rate", 0.05))
    if not 0 <= rate < 1:
        raise ValueError(f"max_failure_rate must be in [0, 1), got {rate}")
    return rate


def check_failure_rate(stats: ClientStats | dict, max_failure_rate: float, what: str) -> None:
    """Stop a stage when too many judgements failed (SPEC §6), with a message that says why."""
    d = stats.as_dict() if isinstance(stats, ClientStats) else stats
    if d.get("items") and d["failure_rate"] > max_failure_rate:
        raise RuntimeError(
            f"{what}: {d['failures']} of {d['items']} judgements failed "
            f"({d['failure_rate']:.1%} > max_failure_rate {max_failure_rate:.1%}); "
            "check that the judge server is up and answers JSON (see stats.errors)"
        )
