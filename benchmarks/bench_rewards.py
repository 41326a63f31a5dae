"""Reward and judge throughput, measured side by side in one run.

    .venv/bin/python benchmarks/bench_rewards.py [--quick] [--json out.json]

(a) format + emotion rewards on realistic four-span completions, one core (target >= 50,000/s);
(b) the LLM judge client against a local server with 50 ms latency per request: concurrency 64
    vs sequential (target >= 30x), then the same batch again, served from the SQLite cache.

The offline judges' throughput is in ``bench_judge.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kardia.emotions import EMOTIONS  # noqa: E402
from kardia.judges import OpenAICompatibleJudge  # noqa: E402
from kardia.rewards import emotion_reward, format_reward  # noqa: E402
from kardia.rubric import JudgeRequest  # noqa: E402
from kardia.spans import render_spans  # noqa: E402
from kardia.testing import ChatServer, Reply, judgement_json  # noqa: E402

WORDS = (
    "she feels worried about the exam and her family expects a lot while friends seem distant "
    "lately work has been heavy he misses home and the quiet evenings with his dog after long "
    "shifts it makes sense to feel this way given how much effort went into the project"
).split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def completions(n: int, seed: int = 0) -> tuple[list, list[str]]:
    """Four-span completions with the paper's average span lengths (41/53/1/27 words)."""
    rng = random.Random(seed)
    out, golds = [], []
    for i in range(n):
        gold = rng.choice(EMOTIONS)
        said = gold if rng.random() < 0.7 else rng.choice(EMOTIONS)
        text = render_spans(sentence(rng, 41), sentence(rng, 53), said, sentence(rng, 27))
        if i % 10 == 0:  # some broken ones, as a policy early in training produces
            text = text[: rng.randrange(len(text))]
        out.append([{"role": "assistant", "content": text}] if i % 2 else text)
        golds.append(gold)
    return out, golds


def bench_rewards(n: int) -> dict:
    comps, golds = completions(n)
    batch = 64  # TRL calls reward functions once per generation batch
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(0, n, batch):
            format_reward(comps[i : i + batch])
            emotion_reward(comps[i : i + batch], emotion=golds[i : i + batch])
        best = min(best, time.perf_counter() - start)
    return {"completions": n, "seconds": best, "completions_per_s": n / best}


def request(i: int) -> JudgeRequest:
    return JudgeRequest(
        persona="MBTI: INFP\nAbout: amateur cellist, works in a library.",
        situation="Her audition for the city orchestra was rejected.",
        history=[{"role": "user", "content": f"I didn't get into the orchestra (take {i})."}],
        response=f"That sounds so disappointing after all your practice ({i}).",
        emotion="disappointed",
    )


def bench_client(n: int, latency_s: float, concurrency: int) -> dict:
    reqs = [request(i) for i in range(n)]
    with ChatServer(lambda payload, attempt: Reply(judgement_json(4)), latency_s=latency_s) as srv:
        with tempfile.TemporaryDirectory() as tmp:
            seq = OpenAICompatibleJudge(srv.base_url, "bench", concurrency=1, timeout_s=10)
            start = time.perf_counter()
            assert all(seq.score(reqs))
            t_seq = time.perf_counter() - start

            cache = os.path.join(tmp, "judge.sqlite")
            par = OpenAICompatibleJudge(
                srv.base_url, "bench", concurrency=concurrency, timeout_s=10, cache_path=cache
            )
            start = time.perf_counter()
            assert all(par.score(reqs))
            t_par = time.perf_counter() - start

            sent = srv.requests
            start = time.perf_counter()
            assert all(par.score(reqs))
            t_cached = time.perf_counter() - start
            from_server = srv.requests - sent
    return {
        "requests": n,
        "latency_s": latency_s,
        "sequential_s": t_seq,
        f"concurrency_{concurrency}_s": t_par,
        "speedup": t_seq / t_par,
        "repeat_s": t_cached,
        "repeat_server_requests": from_server,
        "repeat_cache_hit_rate": (par.stats.cache_hits / n),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()
    n_rewards, n_client = (2_000, 64) if args.quick else (50_000, 256)
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # (a) is measured on one core
    results = {"rewards": bench_rewards(n_rewards)}
    os.sched_setaffinity(0, cores)
    r = results["rewards"]
    print(f"(a) format+emotion rewards: {r['completions_per_s']:,.0f} completions/s "
          f"on one core ({r['completions']:,} completions in {r['seconds']:.2f} s; target >= 50,000/s)")  # fmt: skip

    results["client"] = c = bench_client(n_client, latency_s=0.05, concurrency=64)
    print(f"(b) judge client, {c['requests']} requests, 50 ms server latency: sequential "
          f"{c['sequential_s']:.2f} s, concurrency 64 {c['concurrency_64_s']:.2f} s -> "
          f"{c['speedup']:.1f}x (target >= 30x); repeated batch {c['repeat_s']:.3f} s, "
          f"{c['repeat_server_requests']} server requests, cache hit rate "
          f"{c['repeat_cache_hit_rate']:.0%}")  # fmt: skip

    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
