"""An async client for OpenAI-compatible chat endpoints, with retries and a SQLite reply cache.

One client serves every LLM call of the project — the rubric judge (``kardia.judges``) and, later,
the data builder's simulator/responder/evaluator — so concurrency, timeouts, retries and caching are
written once. It speaks the ``POST {base_url}/chat/completions`` protocol of ``vllm serve``,
OpenAI and most hosted APIs.

Why the design is what it is:
* Requests run concurrently under a semaphore; back-off sleeps happen outside it so a waiting retry
  does not hold a slot.
* A reply is retried on timeouts, dropped connections, 408/429/5xx and on content the caller's
  ``parse`` rejects (a judge answering garbage); 429/503 wait for ``Retry-After`` when given.
  After the last attempt the item is ``None`` and counted, never silently turned into a score.
* Only replies that ``parse`` accepted are cached, keyed by a hash of (namespace, model, messages,
  sampling settings): a cached reply is exactly what the same call would have produced.
* The API key is read from the environment at call time and kept out of ``repr``, the cache key,
  the cache, logs and stats.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import os
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass
class ClientStats:
    """Counters a stage writes to its metrics (``as_dict``)."""

    items: int = 0  # items asked for
    cache_hits: int = 0  # items answered from the cache
    deduplicated: int = 0  # items identical to another item of the same batch
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0  # requests after the first for an item
    failures: int = 0  # items that ended as None
    succeeded: int = 0  # items that ended with a parsed reply (cache hits included)
    latencies_s: list[float] = field(default_factory=list)  # per HTTP request that got a reply
    errors: deque = field(default_factory=lambda: deque(maxlen=20))  # last error messages

    def as_dict(self, prefix: str = "") -> dict[str, float | int]:
        lat = sorted(self.latencies_s)

        def q(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0.0

        out = {
            "items": self.items,
            "cache_hits": self.cache_hits,
            "deduplicated": self.deduplicated,
            "requests": self.requests,
            "retries": self.retries,
            "failures": self.failures,
            "succeeded": self.succeeded,
            "failure_rate": self.failures / self.items if self.items else 0.0,
            "latency_mean_s": sum(lat) / len(lat) if lat else 0.0,
            "latency_p50_s": q(0.5),
            "latency_p95_s": q(0.95),
            "latency_max_s": lat[-1] if lat else 0.0,
        }
        return {prefix + k: v for k, v in out.items()}

    def count_batch(self, n: int, started: float) -> None:
        """Count ``n`` items answered in-process (an offline judge: no request, no failure) in
        one batch begun at ``started`` (``time.perf_counter()``); its latency is the batch's."""
        self.items += n
        self.succeeded += n
        if n:
            self.latencies_s.append(time.perf_counter() - started)


class ReplyCache:
    """A SQLite table of valid replies, safe to share between processes (WAL mode)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN ourselves; timeout: wait for other writers.
        self._conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS replies ("
            " key TEXT PRIMARY KEY, namespace TEXT NOT NULL, model TEXT NOT NULL,"
            " reply TEXT NOT NULL, created_at REAL NOT NULL)"
        )

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        keys = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(keys), 500):  # stay under SQLite's bound-variable limit
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, reply FROM replies WHERE key IN ({marks})", chunk
                )
                out.update(rows.fetchall())
        return out

    def put_many(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """Store ``(key, namespace, model, reply)`` rows in one transaction."""
        if not rows:
            return
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?)",
                    [(*r, now) for r in rows],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def run_sync(coro):
    """Run a coroutine from sync code, also inside Jupyter, whose kernel already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ChatClient:
    """Concurrent, retrying, caching calls to one model behind an OpenAI-compatible endpoint.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``; requests go to ``{base_url}/chat/completions``.
        model: the served model name.
        api_key_env: name of the environment variable holding the API key (never the key itself).
        concurrency: requests in flight at once.
        timeout_s: limit for one HTTP request, connection to last byte.
        max_retries: extra attempts per item after the first.
        cache_path: SQLite file for valid replies; None disables caching.
        temperature, seed, max_tokens: sampling settings, part of the cache key.
        extra_body: extra JSON fields for the server (e.g. vLLM's ``chat_template_kwargs``).
        backoff_s, max_backoff_s: exponential back-off base and cap, with jitter.
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
        cache_path: str | os.PathLike | None = None,
        temperature: float = 0.0,
        seed: int | None = 0,
        max_tokens: int = 1024,
        extra_body: dict | None = None,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if api_key_env and not os.environ.get(api_key_env):
            raise ValueError(
                f"environment variable {api_key_env} is not set: export the API key there "
                "(keys are never read from params or files)"
            )
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.sampling = {"temperature": temperature, "seed": seed, "max_tokens": max_tokens}
        self.extra_body = dict(extra_body or {})
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.cache = ReplyCache(cache_path) if cache_path else None
        self.stats = ClientStats()
        self._rng = random.Random(seed)
        # Servers that reject response_format (400) are asked again without it, once learnt.
        self._response_format_ok = True
        self.response_format_downgrades = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, model={self.model!r})"

    def cache_key(self, namespace: str, messages: list[dict], response_format: dict | None) -> str:
        payload = {
            "namespace": namespace,
            "model": self.model,
            "messages": messages,
            "sampling": self.sampling,
            "extra_body": self.extra_body,
            "response_format": response_format,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    def complete(
        self,
        conversations: Sequence[list[dict]],
        parse: Callable[[str], T],
        *,
        namespace: str,
        response_format: dict | None = None,
    ) -> list[T | None]:
        """Sync wrapper of ``acomplete``."""
        return run_sync(
            self.acomplete(
                conversations, parse, namespace=namespace, response_format=response_format
            )
        )

    async def acomplete(
        self,
        conversations: Sequence[list[dict]],
        parse: Callable[[str], T],
        *,
        namespace: str,
        response_format: dict | None = None,
    ) -> list[T | None]:
        """Ask the model once per conversation; return ``parse(reply)`` or None per item.

        ``parse`` must raise (any ``Exception``) on a reply it rejects: the item is retried, and
        only accepted replies are cached. ``namespace`` separates prompt families and versions.
        """
        import aiohttp

        n = len(conversations)
        self.stats.items += n
        keys = [self.cache_key(namespace, list(c), response_format) for c in conversations]
        results: list[T | None] = [None] * n
        done: dict[str, T | None] = {}

        if self.cache is not None:
            for key, reply in self.cache.get_many(keys).items():
                try:
                    done[key] = parse(reply)
                except Exception:  # stale entry under a stricter parser: ask again
                    pass
        todo: dict[str, list[dict]] = {}
        for key, conv in zip(keys, conversations, strict=True):
            if key in done:
                self.stats.cache_hits += 1
            elif key in todo:
                self.stats.deduplicated += 1
            else:
                todo[key] = list(conv)

        if todo:
            sem = asyncio.Semaphore(self.concurrency)
            connector = aiohttp.TCPConnector(limit=self.concurrency)
            async with aiohttp.ClientSession(connector=connector) as session:
                replies = await asyncio.gather(
                    *(
                        self._one(session, sem, conv, parse, response_format)
                        for conv in todo.values()
                    )
                )
            fresh = []
            for key, reply in zip(todo, replies, strict=True):
                done[key] = None if reply is None else reply[0]
                if reply is not None:
                    fresh.append((key, namespace, self.model, reply[1]))
            if self.cache is not None:
                self.cache.put_many(fresh)

        for i, key in enumerate(keys):
            results[i] = done.get(key)
        failed = sum(r is None for r in results)
        self.stats.failures += failed
        self.stats.succeeded += n - failed
        return results

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ.get(self.api_key_env, '')}"
        return headers

    def _backoff(self, attempt: int) -> float:
        # Exponential with "equal jitter": half fixed, half random, so retries spread out.
        base = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return base / 2 + self._rng.uniform(0, base / 2)

    async def _one(self, session, sem, messages, parse, response_format):
        """One item through its attempts; returns (parsed, raw reply) or None."""
        import aiohttp

        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats.retries += 1
            body: dict[str, Any] = {
                "model": self.model,
                "messages": messages,
                **self.sampling,
                **self.extra_body,
            }
            if response_format is not None and self._response_format_ok:
                body["response_format"] = response_format
            wait = self._backoff(attempt)
            async with sem:
                self.stats.requests += 1
                start = time.perf_counter()
                try:
                    async with session.post(
                        self.url,
                        json=body,
                        headers=self._headers(),
                        timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                    ) as resp:
                        status, text = resp.status, await resp.text()
                        retry_after = _retry_after_s(resp.headers.get("Retry-After"))
                except (TimeoutError, aiohttp.ClientError) as exc:
                    self.stats.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    status = None
                else:
                    self.stats.latencies_s.append(time.perf_counter() - start)
            if status == 200:
                try:
                    content = json.loads(text)["choices"][0]["message"]["content"]
                    return parse(content), content
                except Exception as exc:  # unparseable envelope or a reply parse() rejects
                    self.stats.errors.append(f"invalid reply: {exc}"[:300])
            elif status is not None:
                self.stats.errors.append(f"HTTP {status}: {text[:200]}")
                if status == 400 and "response_format" in body:
                    # The server does not support structured output: ask plainly from now on.
                    if self._response_format_ok:
                        self._response_format_ok = False
                        self.response_format_downgrades += 1
                    wait = 0.0
                elif status not in RETRY_STATUSES:
                    return None  # 400/401/403/404…: asking again will not help
                elif status in (429, 503) and retry_after is not None:
                    wait = min(retry_after, 120.0)
            if attempt < self.max_retries:
                await asyncio.sleep(wait)
        return None

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
