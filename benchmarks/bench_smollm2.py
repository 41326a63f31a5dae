"""Training speed and memory on the default backbone: each CPU choice against the naive setting.

    .venv/bin/python benchmarks/bench_smollm2.py [--quick] [--json [out.json]] [--backbones-dir D]

Every row runs ``kardia.training.sft.run_sft`` / ``kardia.training.grpo.run_grpo`` — the stages' own code — in a fresh
subprocess (so its peak memory is its own) on a small corpus the offline builder makes in a
temporary folder, with the real rewards and the offline judge, on SmolLM2-135M-Instruct as the
backbone stage builds it (``--backbones-dir``, default ``models/backbones/``):

* ``naive``: what a plain TRL set-up does — the stored ~235-token system prompt, span markers as
  plain text (~7 tokens each), every block trained (SFT: full fine-tuning; GRPO: LoRA r=16 on all
  linear layers, the STACK.md baseline), completions capped at 160 tokens;
* ``chosen``: the default ``policy`` in params.yaml — compact
  prompt, markers as added tokens, the top ``train_layers`` blocks trained (their backward pass
  only), completions capped at its ``grpo.max_completion_length``;
* one row per choice, each the chosen setting with that one choice undone, so every choice's
  share is measured, not assumed; ``fp32 products`` switches ``policy.mixed_precision`` off (the
  chosen ``auto`` autocasts to bf16 only where the CPU has AMX/AVX512-BF16: the header line says
  which this machine is), ``bf16 weights`` stores and updates the weights in bf16 too.

SFT runs batch 8, GRPO 4 prompts x 4 completions (batch 16), as the default stages. Seconds per
step are the median over the measured steps after the first (the first pays for lazy
initialisation); peak memory is the worker's maximum RSS. Generation rows time greedy decoding of
16 and 48 dev prompts with the chosen SFT model (tokens per second). ``--quick``: the chosen and
naive rows only, 2 measured steps. ``--json`` alone prints one JSON object on stdout (the table
then goes to stderr); ``--json PATH`` writes it to PATH. Numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_train  # noqa: E402  (shared helpers)
from bench_train import StepTimer, _params, bench_judge, make_corpus  # noqa: E402

BACKBONE = "smollm2-135m-instruct"
NAIVE = {"prompt_style": "full", "span_tokens": "text", "train_layers": None}
# name -> (policy overrides on params.yaml's policy, GRPO completion cap or None for params')
VARIANTS = {
    "chosen": ({}, None),
    "naive": (NAIVE, 160),
    "full prompt": ({"prompt_style": "full"}, None),
    "markers as text": ({"span_tokens": "text"}, None),
    "all blocks trained": ({"train_layers": None}, None),
    "lora, all blocks": ({"finetune": "lora", "train_layers": None}, None),
    "fp32 products": ({"mixed_precision": "no"}, None),
    "bf16 weights": ({"dtype": "bfloat16"}, None),
}
QUICK = ("chosen", "naive")


def worker(spec: dict) -> dict:
    """One measurement (run in its own process)."""

    from kardia.training.grpo import run_grpo
    from kardia.training.sft import run_sft

    params = _params()
    overrides, cap = VARIANTS[spec["variant"]]
    policy = {**params["policy"], "backbone": BACKBONE, **overrides, "backbones_dir": spec["backbones_dir"]}
    if policy["finetune"] == "lora" and spec["kind"] == "sft" and spec["variant"] == "naive":
        policy["finetune"] = "full"  # the naive SFT is full fine-tuning (STACK.md)
    if spec["kind"] == "grpo" and spec["variant"] == "naive":
        policy["finetune"] = "lora"  # the naive GRPO: TRL + LoRA on every block (STACK.md)
    work = Path(spec["work"])
    base = {"seed": 0, "policy": policy, "data_dir": str(work / "data"),
            "launch": {"num_processes": 1}}  # fmt: skip
    steps = spec["steps"]
    timer = StepTimer()
    sft_dir = work / f"sft-{spec['variant'].replace(' ', '_')}"
    if spec["kind"] == "sft" or not sft_dir.exists():
        cfg = {**base, "out_dir": str(sft_dir), "work_dir": str(work / "sft_run"),
               "sft": {"max_steps": steps if spec["kind"] == "sft" else 1, "learning_rate": 1e-4,
                       "batch_size": 8, "sampling": "random"}}  # fmt: skip
        summary = run_sft(cfg, callbacks=[timer.callback] if spec["kind"] == "sft" else [])
    if spec["kind"] == "grpo":
        grpo = params["grpo"]
        cfg = {**base, "sft_dir": str(sft_dir), "judge": spec["judge"],
               "grpo": {"rewards": params["rewards"], "max_steps": steps,
                        "learning_rate": grpo["learning_rate"], "batch_size": 16,
                        "num_generations": 4,
                        "max_completion_length": cap or grpo["max_completion_length"],
                        "save_steps": 10_000, "resume": False,
                        "checkpoint_dir": str(work / f"ck-{spec['variant'].replace(' ', '_')}")}}  # fmt: skip
        summary = run_grpo(cfg, callbacks=[timer.callback])
    measured = timer.times[1:] or timer.times
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"kind": spec["kind"], "variant": spec["variant"], "steps": len(timer.times),
            "s_per_step": statistics.median(measured), "first_step_s": timer.times[0],
            "peak_memory_mb": peak / 2**20, "parameters": summary["parameters"],
            "trainable": summary["trainable"]}  # fmt: skip


def generation_worker(spec: dict) -> dict:
    """Greedy decoding speed of the chosen SFT model on dev prompts, at one batch size."""
    import torch

    from kardia.data import read_splits
    from kardia.generation import hf_generate
    from kardia.models import load_policy
    from kardia.prompts import prompt_args, prompt_rows

    params = _params()
    policy = {**params["policy"], "backbone": BACKBONE, "backbones_dir": spec["backbones_dir"]}
    work = Path(spec["work"])
    model, tok = load_policy(work / "sft-chosen", policy, trainable=False)
    rows = prompt_rows(read_splits(work / "data", "turns")["dev"], **prompt_args(policy))
    prompts = [r["prompt"] for r in rows][: spec["prompts"]]
    torch.set_num_threads(torch.get_num_threads())
    start = time.perf_counter()
    texts = hf_generate(model, tok, prompts, max_new_tokens=128, batch_size=spec["prompts"],
                        progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return {"kind": "generate", "variant": f"batch {spec['prompts']}", "steps": 1,
            "s_per_step": seconds, "first_step_s": seconds, "tokens_per_s": tokens / seconds,
            "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,
            "parameters": None, "trainable": None}  # fmt: skip


def run_worker(spec: dict, env: dict) -> dict:
    return bench_train.run_worker(spec, env, script=__file__)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", nargs="?", const="-", default=None)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument(
        "--backbones-dir",
        default=str(ROOT / "models/backbones"),
        help="where the backbone stage built the model (default: models/backbones)",
    )
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        run = generation_worker if spec["kind"] == "generate" else worker
        print("RESULT " + json.dumps(run(spec)))
        return 0

    out = sys.stderr if args.json == "-" else sys.stdout
    if not (Path(args.backbones_dir) / BACKBONE / "kardia_backbone.json").is_file():
        raise SystemExit(
            f"{args.backbones_dir}/{BACKBONE} is missing: build it first "
            "(`dvc repro backbone`, or kardia.backbone.build_backbone)"
        )
    steps = 3 if args.quick else 4
    variants = QUICK if args.quick else tuple(VARIANTS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_corpus(work / "data", 40 if args.quick else 80)
        judge = bench_judge(work, args.quick)
        cpu = {"CUDA_VISIBLE_DEVICES": "", "KARDIA_TRAINING_BACKEND": "transformers"}
        for kind in ("sft", "grpo"):
            for variant in variants:
                if kind == "grpo" and variant not in ("chosen", "naive", "all blocks trained", "fp32 products"):
                    continue  # the other choices' GRPO cost follows from their SFT rows
                spec = {"kind": kind, "variant": variant, "steps": steps, "work": tmp,
                        "judge": judge, "backbones_dir": args.backbones_dir}  # fmt: skip
                rows.append(run_worker(spec, cpu))
                print(_line(rows[-1]), file=sys.stderr, flush=True)
        for n in (16, 48):
            rows.append(run_worker({"kind": "generate", "prompts": n, "work": tmp,
                                    "backbones_dir": args.backbones_dir}, cpu))  # fmt: skip

    from kardia.models import native_bf16

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"bf16 in hardware: {'yes' if native_bf16() else 'no'}", file=out)  # fmt: skip
    print(f"{'stage':8} {'setting':20} {'s/step':>8} {'1st step':>9} {'peak MB':>9} "
          f"{'trainable':>12}  tokens/s", file=out)  # fmt: skip
    for r in rows:
        print(_line(r), file=out)
    ok = {(r["kind"], r["variant"]): r for r in rows if "error" not in r}
    for kind in ("sft", "grpo"):
        chosen = ok.get((kind, "chosen"))
        for variant in variants:
            other = ok.get((kind, variant))
            if chosen and other and variant != "chosen":
                print(f"{kind}: {variant} / chosen = {other['s_per_step'] / chosen['s_per_step']:.2f}x "
                      f"s/step, {other['peak_memory_mb'] / chosen['peak_memory_mb']:.2f}x peak memory",
                      file=out)  # fmt: skip
    if args.json == "-":
        print(json.dumps(rows))
    elif args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 1 if any("error" in r for r in rows) else 0


def _line(r: dict) -> str:
    if "error" in r:
        return f"{r['kind']:8} {r.get('variant', ''):20} -- {r['error']}"
    tps = f"{r['tokens_per_s']:.1f}" if r.get("tokens_per_s") else ""
    trainable = f"{r['trainable']:,}" if r.get("trainable") else ""
    return (
        f"{r['kind']:8} {r['variant']:20} {r['s_per_step']:8.2f} {r['first_step_s']:9.2f} "
        f"{r['peak_memory_mb']:9.0f} {trainable:>12}  {tps}"
    )


if __name__ == "__main__":
    sys.exit(main())
