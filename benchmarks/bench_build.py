"""Dataset-stage throughput, measured side by side in one run.

    .venv/bin/python benchmarks/bench_build.py [--quick] [--json [out.json]]

(a) validation of KardiaBench-schema dialogues (system prompt + 8 alternating user/assistant
    turns, four-span assistant turns of ~40/50/1/25 words) on one core: in memory through
    ``kardia.data.validate_records`` (target >= 20,000 dialogues/s), and end to end from a .jsonl
    file through ``kardia.data.read_dialogues`` (read + JSON parse + validate);
(b) the offline builder (``build_dialogues`` with the seed-bank backend) and the rule
    post-filters (``post_filter`` without an encoder; semantic de-duplication is not measured);
(c) the LLM backend against a local chat server with fixed latency per request, concurrency 1
    vs 32, no reply cache.

Sizes: 100,000 / 1,000 / 32 dialogues (``--quick``: 5,000 / 200 / 8). ``--json`` alone prints one
JSON object on stdout (the table then goes to stderr); ``--json PATH`` writes it to PATH instead.
Numbers are reported, never asserted.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kardia.build.backends import make_backend  # noqa: E402
from kardia.build.filters import post_filter  # noqa: E402
from kardia.build.llm import LLMBackend  # noqa: E402
from kardia.build.loop import build_dialogues  # noqa: E402
from kardia.client import ChatClient  # noqa: E402
from kardia.data import read_dialogues, validate_records  # noqa: E402
from kardia.emotions import EMOTIONS  # noqa: E402
from kardia.seed import Seed, load_seed_bank, sample_seeds  # noqa: E402
from kardia.spans import render_spans  # noqa: E402
from kardia.system_prompt import SYSTEM_TEMPLATE  # noqa: E402
from kardia.testing import ChatServer, builder_script  # noqa: E402

VALIDATION_TARGET = 20_000  # dialogues/s, in memory
WORDS = (
    "she feels worried about the exam and her family expects a lot while friends seem distant "
    "lately work has been heavy he misses home and the quiet evenings with his dog after long "
    "shifts it makes sense to feel this way given how much effort went into the project"
).split()
MBTI = ("INFJ", "INFP", "ENFP", "ISTJ", "ENTJ", "ISFP", "ESTP", "INTP")


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(WORDS, k=n)).capitalize() + "."


def synthetic_dialogues(n: int, seed: int = 0, pool: int = 2_000) -> list[dict]:
    """``n`` valid dialogues in the KardiaBench schema. Turns are drawn from a pool of distinct
    texts (``parse_spans`` caches nothing, so reuse does not flatter the numbers)."""
    rng = random.Random(seed)
    assistant = [
        render_spans(sentence(rng, 40), sentence(rng, 50), rng.choice(EMOTIONS), sentence(rng, 25))
        for _ in range(pool)
    ]
    user = [sentence(rng, 20) for _ in range(pool)]
    records = []
    for i in range(n):
        mbti = MBTI[i % len(MBTI)]
        person = (
            f"MBTI: {mbti}\nAbout: {sentence(rng, 12)}\nSignature: {sentence(rng, 6)}\n"
            f"Recent Activities:\n- {sentence(rng, 8)}\n- {sentence(rng, 8)}"
        )
        situation = sentence(rng, 18)
        messages = [
            {
                "role": "system",
                "content": SYSTEM_TEMPLATE.format(person=person, situation=situation),
            }
        ]
        for _ in range(4):
            messages.append({"role": "user", "content": user[rng.randrange(pool)]})
            messages.append({"role": "assistant", "content": assistant[rng.randrange(pool)]})
        records.append(
            {
                "person": person,
                "mbti": mbti,
                "emotion": EMOTIONS[i % len(EMOTIONS)],
                "situation": situation,
                "anon_username": f"user_{i:07d}",
                "messages": messages,
            }
        )
    return records


def bench_validation(n: int, repeats: int = 3) -> dict:
    records = synthetic_dialogues(n)
    best_mem = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out, skipped = validate_records(enumerate(records, 1), "<memory>", "raise")
        best_mem = min(best_mem, time.perf_counter() - start)
    assert len(out) == n and skipped == 0
    del out
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dialogues.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec) + "\n")
        size = path.stat().st_size
        del records
        best_file = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            out, skipped = read_dialogues(path)
            best_file = min(best_file, time.perf_counter() - start)
            assert len(out) == n and skipped == 0
            del out
    return {
        "dialogues": n,
        "memory_s": best_mem,
        "memory_per_s": n / best_mem,
        "file_mb": size / 1e6,
        "file_s": best_file,
        "file_per_s": n / best_file,
    }


def bench_offline(bank, n: int) -> dict:
    seeds = sample_seeds(bank, n, seed=0)
    start = time.perf_counter()
    records, stats = build_dialogues(seeds, make_backend("offline", bank=bank), progress=False)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    kept, dropped, _ = post_filter(records)
    filter_s = time.perf_counter() - start
    return {
        "seeds": n,
        "built": len(records),
        "build_s": build_s,
        "build_per_s": len(records) / build_s,
        "turns": sum(len(r["messages"]) - 1 for r in records),
        "filter_s": filter_s,
        "filter_per_s": len(records) / filter_s,
        "kept": len(kept),
        "dropped": {k: v for k, v in dropped.items() if v},
    }


def bench_llm(bank, n: int, latency_s: float) -> dict:
    seeds = [Seed({**s.persona, "mbti": "INFJ"}, s.situation) for s in sample_seeds(bank, n, 0)]
    runs = {}
    for conc in (1, 32):
        with ChatServer(builder_script(close_after=2), latency_s=latency_s) as srv:
            client = ChatClient(
                srv.base_url, "bench-model", concurrency=conc, cache_path=None, max_retries=0
            )
            start = time.perf_counter()
            records, stats = build_dialogues(seeds, LLMBackend(client), progress=False)
            seconds = time.perf_counter() - start
            client.close()
            runs[conc] = {
                "requests": srv.requests,
                "seconds": seconds,
                "dialogues": len(records),
                "dialogues_per_s": len(records) / seconds,
                "requests_per_s": srv.requests / seconds,
                "ended": dict(stats.ended),
            }
    return {
        "dialogues": n,
        "latency_s": latency_s,
        "runs": runs,
        "speedup": runs[1]["seconds"] / runs[32]["seconds"],
        "same_dialogues": runs[1]["dialogues"] == runs[32]["dialogues"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument(
        "--json", nargs="?", const="-", metavar="PATH",
        help="print the numbers as one JSON object (or write them to PATH)",
    )  # fmt: skip
    args = ap.parse_args()
    json_path = Path(args.json).resolve() if args.json not in (None, "-") else None
    os.chdir(ROOT)  # data/seed is relative to the repository root
    n_valid, n_build, n_llm, latency = (
        (5_000, 200, 8, 0.01) if args.quick else (100_000, 1_000, 32, 0.02)
    )
    # With a bare --json, stdout carries the JSON only; the table goes to stderr.
    out = sys.stderr if args.json == "-" else sys.stdout

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    say(f"dataset-stage benchmark ({'quick' if args.quick else 'full'} sizes)")
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # (a) is measured on one core
    v = bench_validation(n_valid)
    os.sched_setaffinity(0, cores)
    say(f"(a) validation, {n_valid:,} dialogues of 8 turns, one core")
    say(f"    in memory  validate_records {v['memory_per_s']:>10,.0f} dialogues/s  "
        f"({v['memory_s']:.2f} s)  target >= {VALIDATION_TARGET:,}/s  "
        f"-> {v['memory_per_s'] / VALIDATION_TARGET:.1f}x target")  # fmt: skip
    say(f"    from file  read_dialogues   {v['file_per_s']:>10,.0f} dialogues/s  "
        f"({v['file_s']:.2f} s, {v['file_mb']:.0f} MB .jsonl: read + parse + validate)  "
        f"-> {v['file_per_s'] / v['memory_per_s']:.2f}x in-memory")  # fmt: skip

    bank = load_seed_bank("data/seed")
    b = bench_offline(bank, n_build)
    dropped = ", ".join(f"{k} {c}" for k, c in b["dropped"].items()) or "none"
    say(f"(b) offline build, {n_build:,} seeds -> {b['built']:,} dialogues ({b['turns']:,} turns)")
    say(f"    build_dialogues             {b['build_per_s']:>10,.0f} dialogues/s  "
        f"({b['build_s']:.2f} s)")  # fmt: skip
    say(f"    post_filter (rules only)    {b['filter_per_s']:>10,.0f} dialogues/s  "
        f"({b['filter_s']:.3f} s; kept {b['kept']:,}, dropped: {dropped})  "
        f"-> {b['filter_per_s'] / b['build_per_s']:.1f}x build")  # fmt: skip
    say("    note: semantic de-duplication is not measured (it needs the sentence encoder)")

    c = bench_llm(bank, n_llm, latency)
    r1, r32 = c["runs"][1], c["runs"][32]
    in_flight = f"; at most {n_llm} requests in flight" if n_llm < 32 else ""
    say(f"(c) LLM backend, {n_llm} dialogues, {latency * 1000:.0f} ms server latency, "
        f"no cache{in_flight}")  # fmt: skip
    say("    concurrency  requests  seconds  dialogues/s  requests/s")
    for conc, r in c["runs"].items():
        say(f"    {conc:>11}  {r['requests']:>8}  {r['seconds']:>7.2f}  "
            f"{r['dialogues_per_s']:>11.1f}  {r['requests_per_s']:>10.1f}")  # fmt: skip
    say(f"    speed-up concurrency 32 vs 1: {c['speedup']:.1f}x; dialogues built "
        f"{r1['dialogues']} vs {r32['dialogues']} "
        f"({'same' if c['same_dialogues'] else 'DIFFERENT'})")  # fmt: skip
    say("    note: the server runs in this process, so its CPU time per request counts too")

    results = {
        "quick": args.quick,
        "validation_dialogues": n_valid,
        "validation_memory_per_s": v["memory_per_s"],
        "validation_file_per_s": v["file_per_s"],
        "validation_target_per_s": VALIDATION_TARGET,
        "offline_seeds": n_build,
        "offline_dialogues": b["built"],
        "offline_build_per_s": b["build_per_s"],
        "offline_filter_per_s": b["filter_per_s"],
        "llm_dialogues": n_llm,
        "llm_latency_s": latency,
        "llm_conc1_s": r1["seconds"],
        "llm_conc32_s": r32["seconds"],
        "llm_speedup": c["speedup"],
        "llm_requests": r1["requests"],
        "llm_requests_conc32": r32["requests"],
        "llm_dialogues_conc1": r1["dialogues"],
        "llm_dialogues_conc32": r32["dialogues"],
        "llm_same_dialogues": c["same_dialogues"],
    }
    if args.json == "-":
        print(json.dumps(results))
    elif json_path is not None:
        json_path.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
