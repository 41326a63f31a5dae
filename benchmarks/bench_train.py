"""Training speed and memory by model shape: SFT and GRPO seconds per step and peak memory.

(The CPU choices for the SmolLM2 backbone are measured by ``bench_smollm2.py``.)

    .venv/bin/python benchmarks/bench_train.py [--quick] [--json [out.json]]

Every row runs ``kardia.training.sft.run_sft`` / ``kardia.training.grpo.run_grpo`` — the stages' own code — in a fresh
subprocess (so its peak memory is its own) on a small corpus the offline builder makes in a
temporary folder, with the real rewards and the offline judge:

(a) CPU: the embedded-default tiny policy (params.yaml ``policy.tiny``) and a ~25M-parameter
    Qwen2-style decoder (hidden 512, 8 layers), full fine-tuning, batch 8 (SFT) and 16
    completions = 4 prompts x 4 (GRPO), completions capped at 128 tokens;
(b) GPU, only where CUDA is present: a randomly initialised Qwen2.5-0.5B-shaped model (config
    only, no weights; LoRA r=16) for one SFT and one GRPO step with plain TRL + PEFT and with
    Unsloth (``KARDIA_TRAINING_BACKEND`` picks the path; Unsloth's row says why when it cannot run).

Seconds per step are the median over the measured steps after the first (the first step pays
for lazy initialisation). Peak memory: the worker's maximum RSS on CPU, ``max_memory_allocated``
on GPU. The GRPO policy is untrained, so most completions run to the cap: a worst case for
generation. ``--quick``: fewer steps and a smaller corpus. ``--json`` alone prints one JSON object
on stdout (the table then goes to stderr); ``--json PATH`` writes it to PATH. Numbers are
reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {
    "tiny": None,  # params.yaml policy.tiny
    "25M": {
        "vocab_size": 2048,
        "hidden_size": 512,
        "num_layers": 8,
        "num_heads": 8,
        "num_kv_heads": 4,
        "intermediate_size": 1536,
    },  # fmt: skip
    # Qwen2.5-0.5B's shape (config.json of Qwen/Qwen2.5-0.5B-Instruct); random weights
    "qwen2.5-0.5b-shape": {
        "vocab_size": 151936,
        "hidden_size": 896,
        "num_layers": 24,
        "num_heads": 14,
        "num_kv_heads": 2,
        "intermediate_size": 4864,
    },  # fmt: skip
}


def _params() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "params.yaml").read_text())


def make_corpus(out_dir: Path, n_dialogues: int, seed: int = 0) -> Path:
    """A small built dataset (offline builder), split and written like build_data does."""
    from kardia.build.backends import make_backend
    from kardia.build.filters import post_filter
    from kardia.build.loop import build_dialogues
    from kardia.data import assign_difficulty, ensure_ids, write_splits
    from kardia.seed import load_seed_bank, sample_split_seeds, split_records

    params = _params()["build_data"]
    bank = load_seed_bank(ROOT / "data" / "seed")
    backend = make_backend("offline", bank=bank, offline=params["offline"], seed=seed)
    seeds = sample_split_seeds(bank, n_dialogues, 0.1, 0.1, seed)
    records, _ = build_dialogues([s for group in seeds.values() for s in group], backend,
                                 max_exchanges=10, max_revisions=5, seed=seed)  # fmt: skip
    records, _, _ = post_filter(records)  # the rule filters (no de-duplication needed here)
    splits = split_records(records, seeds)
    ensure_ids(splits)
    assign_difficulty([r for s in splits.values() for r in s])
    write_splits(splits, out_dir)
    return out_dir


class StepTimer:
    """A TrainerCallback that records the wall time of every optimiser step."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class _CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                timer.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                timer.times.append(time.perf_counter() - timer.start)

        self.times: list[float] = []
        self.callback = _CB()


def worker(spec: dict) -> dict:
    """One measurement (run in its own process)."""
    import torch

    from kardia.training.grpo import run_grpo
    from kardia.training.sft import run_sft

    params = _params()
    tiny = MODELS[spec["model"]] or params["policy"]["tiny"]
    work = Path(spec["work"])
    cuda = torch.cuda.is_available()
    policy = {"backbone": "tiny", "finetune": "full", "history_exchanges": 0,
              "max_seq_length": 1024, "tiny": tiny}  # fmt: skip
    if spec["model"] == "qwen2.5-0.5b-shape":
        policy["backbone"] = str(work / "qwen-shape")  # saved below by the parent, config only
        policy["finetune"] = "lora"
    base = {"seed": 0, "policy": policy, "data_dir": str(work / "data"),
            "launch": {"num_processes": 1}}  # fmt: skip
    steps = spec["steps"]
    timer = StepTimer()
    sft_dir = work / f"sft-{spec['model']}-{spec['backend']}"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    if spec["kind"] == "sft" or not sft_dir.exists():
        cfg = {**base, "out_dir": str(sft_dir), "work_dir": str(work / "sft_run"),
               "sft": {"max_steps": steps if spec["kind"] == "sft" else 1, "learning_rate": 1e-4,
                       "batch_size": 8, "sampling": "random"}}  # fmt: skip
        summary = run_sft(cfg, callbacks=[timer.callback] if spec["kind"] == "sft" else [])
    if spec["kind"] == "grpo":
        cfg = {**base, "sft_dir": str(sft_dir), "judge": spec["judge"],
               "grpo": {"rewards": params["rewards"], "max_steps": steps,
                        "learning_rate": 1e-5, "batch_size": 16, "num_generations": 4,
                        "max_completion_length": 128, "save_steps": 10_000, "resume": False,
                        "checkpoint_dir": str(work / f"ck-{spec['model']}-{spec['backend']}")}}  # fmt: skip
        summary = run_grpo(cfg, callbacks=[timer.callback])
    measured = timer.times[1:] or timer.times
    peak = (torch.cuda.max_memory_allocated() if cuda else
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # fmt: skip
    return {**{k: spec[k] for k in ("kind", "model", "device", "backend")},
            "backend_used": summary["backend"], "steps": len(timer.times),
            "s_per_step": statistics.median(measured), "first_step_s": timer.times[0],
            "peak_memory_mb": peak / 2**20, "parameters": summary["parameters"]}  # fmt: skip


def run_worker(spec: dict, env: dict, script: str = __file__) -> dict:
    """Run ``script --worker <spec>`` in a fresh process (its peak memory is its own) and read
    its ``RESULT`` line; a failed worker becomes a row with the error's last lines."""
    out = subprocess.run(
        [sys.executable, script, "--worker", json.dumps(spec)],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=1800,
    )  # fmt: skip
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        return {**spec, "error": " | ".join(tail)[-300:]}
    return json.loads(lines[-1][len("RESULT ") :])


def save_qwen_shape(path: Path, data_dir: Path) -> None:
    """A randomly initialised Qwen2.5-0.5B-shaped model with our tokenizer (config only)."""
    from kardia.data import read_splits
    from kardia.models import dialogue_texts, save_policy, tiny_model, train_tokenizer

    tok = train_tokenizer(dialogue_texts(read_splits(data_dir, "dialogues")["train"]), 2048)
    shape = dict(MODELS["qwen2.5-0.5b-shape"])
    vocab = shape.pop("vocab_size")
    model = tiny_model(tok, max_positions=32768, **shape)
    model.resize_token_embeddings(vocab)  # the real embedding size; our ids use the first 2k
    save_policy(model, tok, path, {"backbone": "qwen2.5-0.5b-shape", "tokenizer": "auto"})


def bench_judge(work: Path, quick: bool) -> dict:
    """The training judge of params.yaml; with ``--quick`` and no fitted heads yet (a fresh
    clone), heads fitted on a small slice of the human-rated train split, and it says so."""
    judge = dict(_params()["judge"])
    heads = ROOT / str(judge.get("heads") or "")
    if judge["kind"] != "offline" or heads.is_file():
        judge["heads"] = str(heads) if judge["kind"] == "offline" else judge.get("heads")
        return judge
    if not quick:
        raise SystemExit(f"{heads}: no fitted judge; run `dvc repro judge_fit` first")
    from kardia.human_ratings import load_rated
    from kardia.offline_judge import fit_heads

    items = load_rated(ROOT / "data/human_ratings", "train", ("diasafety", "ieval"),
                       max_per_dataset=100)  # fmt: skip
    path = fit_heads(items, "minilm", folds=2).save(work / "judge-minilm.pkl")
    print(f"--quick: judge heads fitted on a 100-item slice ({path.name})", file=sys.stderr)
    return {"kind": "offline", "heads": str(path)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", nargs="?", const="-", default=None)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))))
        return 0

    import torch

    out = sys.stderr if args.json == "-" else sys.stdout
    steps = 3 if args.quick else 6
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_corpus(work / "data", 40 if args.quick else 120)
        judge = bench_judge(work, args.quick)
        cpu = {"CUDA_VISIBLE_DEVICES": ""}  # the CPU rows stay on CPU on a GPU machine too
        models = ["tiny"] if args.quick else ["tiny", "25M"]
        for model in models:
            for kind in ("sft", "grpo"):
                spec = {"kind": kind, "model": model, "device": "cpu", "backend": "transformers",
                        "steps": steps, "work": tmp, "judge": judge}  # fmt: skip
                rows.append(run_worker(spec, {**cpu, "KARDIA_TRAINING_BACKEND": "transformers"}))
        if torch.cuda.is_available():
            save_qwen_shape(work / "qwen-shape", work / "data")
            for backend in ("transformers", "unsloth"):
                for kind in ("sft", "grpo"):
                    spec = {"kind": kind, "model": "qwen2.5-0.5b-shape", "device": "cuda",
                            "backend": backend, "steps": 2, "work": tmp, "judge": judge}  # fmt: skip
                    rows.append(run_worker(spec, {"KARDIA_TRAINING_BACKEND": backend}))
        else:
            rows.append({"kind": "sft+grpo", "model": "qwen2.5-0.5b-shape", "device": "cuda",
                         "backend": "transformers/unsloth", "error": "skipped: no CUDA device"})  # fmt: skip

    print(f"{'stage':5} {'model':19} {'device':6} {'backend':13} {'s/step':>8} {'1st step':>9} "
          f"{'peak MB':>9} {'params':>11}", file=out)  # fmt: skip
    for r in rows:
        if "error" in r:
            print(f"{r['kind']:5} {r['model']:19} {r['device']:6} {r['backend']:13} "
                  f"-- {r['error']}", file=out)  # fmt: skip
            continue
        print(f"{r['kind']:5} {r['model']:19} {r['device']:6} {r['backend_used']:13} "
              f"{r['s_per_step']:8.3f} {r['first_step_s']:9.3f} {r['peak_memory_mb']:9.0f} "
              f"{r['parameters'] or 0:11,}", file=out)  # fmt: skip
    ok = {(r["kind"], r["model"], r.get("backend_used")): r for r in rows if "error" not in r}
    for kind in ("sft", "grpo"):
        a, b = ok.get((kind, "25M", "transformers")), ok.get((kind, "tiny", "transformers"))
        if a and b:
            print(
                f"{kind}: 25M / tiny = {a['s_per_step'] / b['s_per_step']:.1f}x s/step, "
                f"{a['peak_memory_mb'] / b['peak_memory_mb']:.1f}x peak memory",
                file=out,
            )
        g, u = (ok.get((kind, "qwen2.5-0.5b-shape", be)) for be in ("transformers", "unsloth"))
        if g and u:
            print(
                f"{kind}: Unsloth vs plain TRL on GPU = {g['s_per_step'] / u['s_per_step']:.2f}x "
                f"speed, {u['peak_memory_mb'] / g['peak_memory_mb']:.2f}x memory",
                file=out,
            )
    if args.json == "-":
        print(json.dumps(rows))
    elif args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    # a missing or failing Unsloth is a finding (its row says why), not a benchmark failure
    failed = [r for r in rows if "error" in r and r["backend"] == "transformers"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
