"""Offline judge throughput, side by side in one run: judgements per second for *new* replies.

    .venv/bin/python benchmarks/bench_judge.py [--quick] [--heads-dir models/judges] [--json [out.json]]

Every judge scores the same N replies that no judge has seen, in batches of 64 (as the GRPO
reward calls it), to contexts it has seen before (in GRPO the persona, situation and user turn of
a prompt repeat across its completions and steps, so their encodings are cached), on the threads
torch uses here. A second row per judge ("cold") also makes every context new. The target from
the issue is >= 150 judgements/s for new replies on 2 cores; the ratio column is measured / 150.

Judges: the lexicon baseline and every heads file in ``--heads-dir`` (``judge_fit`` writes them).
``--quick`` fits small MiniLM and n-gram heads on a slice of the train split instead, and scores
fewer replies. Numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kardia.human_ratings import load_rated  # noqa: E402
from kardia.judges import LexiconJudge, OfflineJudge  # noqa: E402
from kardia.offline_judge import fit_heads  # noqa: E402
from kardia.rubric import JudgeRequest  # noqa: E402

TARGET = 150.0  # judgements/s for new replies (issue 11)
OPENINGS = ("That sounds", "It makes sense that", "I'm sorry", "I can hear how", "Honestly,")
MIDDLES = ("hard after", "heavy with", "lonely since", "exciting given", "frustrating after")


def new_replies(n: int, start: int = 0) -> list[str]:
    """Distinct, plausible replies (the counter keeps every one new to any cache, including the
    encoder cache the MiniLM-based judges share)."""
    return [f"{OPENINGS[i % 5]} {MIDDLES[(i // 5) % 5]} what happened with the plan number {i}; "
            f"would talking about part {i % 97} help?" for i in range(start, start + n)]  # fmt: skip


def contexts(n: int) -> list[JudgeRequest]:
    items = load_rated(ROOT / "data/human_ratings", "heldout", ("ieval",))
    reqs = [q for item in items for q in item.requests]
    return [reqs[i % len(reqs)] for i in range(n)]


def rate(judge, requests: list[JudgeRequest], batch: int = 64) -> float:
    start = time.perf_counter()
    for i in range(0, len(requests), batch):
        judge.score(requests[i : i + batch])
    return len(requests) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--heads-dir", default=str(ROOT / "models/judges"))
    ap.add_argument("--json", nargs="?", const="-", default=None)
    args = ap.parse_args()
    n = 128 if args.quick else 2048
    heads_dir = Path(args.heads_dir)
    if args.quick:
        heads_dir = Path(tempfile.mkdtemp(prefix="bench-judge-"))
        train = load_rated(ROOT / "data/human_ratings", "train", ("diasafety", "ieval"),
                           max_per_dataset=100)  # fmt: skip
        for rep in ("minilm", "ngram"):
            fit_heads(train, rep, folds=2).save(heads_dir / f"{rep}.pkl")
    judges = {"lexicon": LexiconJudge()}
    for path in sorted(heads_dir.glob("*.pkl")):
        judges[f"offline:{path.stem}"] = OfflineJudge(path)
    if len(judges) == 1:
        print(f"no heads files in {heads_dir}: run `dvc repro judge_fit` (or use --quick)",
              file=sys.stderr)  # fmt: skip
    ctx = contexts(n)
    out = sys.stderr if args.json == "-" else sys.stdout
    rows = []
    print(f"{'judge':<18} {'warm /s':>9} {'cold /s':>9} {'warm / target':>14}", file=out)
    for k, (name, judge) in enumerate(judges.items()):
        replies = new_replies(2 * n, start=2 * n * k)  # never seen by an earlier judge either
        judge.score(ctx[:64])  # load models; warm the context encodings
        judge.score(ctx)
        warm = rate(judge, [JudgeRequest(q.persona, q.situation, q.history, r, q.emotion)
                            for q, r in zip(ctx, replies[:n], strict=True)])  # fmt: skip
        cold_ctx = [JudgeRequest("", f"{q.situation} ({k}.{i})", [{"role": "user", "content": f"{k}.{i}: "
                                 f"{q.history[-1]['content']}"}], r) for i, (q, r)
                    in enumerate(zip(ctx, replies[n:], strict=True))]  # fmt: skip
        cold = rate(judge, cold_ctx)
        rows.append({"judge": name, "replies": n, "warm_per_s": round(warm, 1),
                     "cold_per_s": round(cold, 1), "warm_vs_target": round(warm / TARGET, 2)})  # fmt: skip
        print(f"{name:<18} {warm:>9.1f} {cold:>9.1f} {warm / TARGET:>13.2f}x", file=out)
    if args.json == "-":
        print(json.dumps(rows))
    elif args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
