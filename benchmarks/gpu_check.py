"""The device check (issue 14): SFT and GRPO steps through ``kardia.training``'s entry points on
CUDA in bf16, for randomly initialised models with Qwen2.5-0.5B's shape and SmolLM2-135M's shape
(configs only: nothing is downloaded), with step times and peak GPU memory written as JSON.

    scripts/gpu_check                 # on a GPU machine (then runs the GPU-only tests too)
    scripts/gpu_check --dry-run       # the same code on CPU at toy sizes, one step each (CI)

The tokenizer is the tiny policy's byte-level BPE trained on the short test dialogues, so the
vocabulary (and the embedding matrix) is smaller than the real models'; the transformer blocks
have the real shapes. The judge is the lexicon baseline (no sentence encoder needed there).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # short_dialogues: the training tests' corpus

# the blocks of the real models (hidden, layers, heads, kv heads, MLP); vocab comes from the tokenizer
SHAPES = {
    "qwen2.5-0.5b-shape": ("qwen2", dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                                         num_key_value_heads=2, intermediate_size=4864)),
    "smollm2-135m-shape": ("llama", dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                                         num_key_value_heads=3, intermediate_size=1536)),
}  # fmt: skip
TOY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
           intermediate_size=128)  # fmt: skip


def build_backbone(kind: str, sizes: dict, tokenizer, out: Path, seed: int) -> Path:
    """A randomly initialised model of ``kind``'s architecture saved with ``tokenizer``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    config_class = {"qwen2": Qwen2Config, "llama": LlamaConfig}[kind]
    config = config_class(vocab_size=len(tokenizer), max_position_embeddings=2048, tie_word_embeddings=True,
                          pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **sizes)  # fmt: skip
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def check(dry_run: bool, steps: int, work: Path) -> dict:
    import torch
    from short_dialogues import splits

    from kardia.data import write_splits
    from kardia.models import backend_report, dialogue_texts, train_tokenizer
    from kardia.training.grpo import run_grpo
    from kardia.training.sft import run_sft

    cuda = torch.cuda.is_available()
    if not cuda and not dry_run:
        raise SystemExit("gpu_check: no CUDA device here; use --dry-run for the CPU rehearsal")
    data = splits()
    write_splits(data, work / "data")
    tokenizer = train_tokenizer(dialogue_texts(data["train"]), vocab_size=600 if dry_run else 4096)
    rows = []
    for name, (kind, sizes) in SHAPES.items():
        folder = build_backbone(kind, TOY if dry_run else sizes, tokenizer, work / name, seed=0)
        policy = {"backbone": str(folder), "finetune": "full" if dry_run else "lora", "span_tokens": "added",
                  "dtype": "float32", "mixed_precision": "bf16" if cuda else "no", "max_seq_length": 256,
                  "history_exchanges": 0}  # fmt: skip
        sft = {"seed": 0, "policy": policy, "data_dir": str(work / "data"), "out_dir": str(work / f"{name}-sft"),
               "work_dir": str(work / f"{name}-sft-work"),
               "sft": {"learning_rate": 1e-4, "batch_size": 8, "max_steps": steps, "warmup_steps": 0}}  # fmt: skip
        grpo = {"seed": 0, "policy": policy, "judge": {"kind": "lexicon"}, "data_dir": str(work / "data"),
                "sft_dir": sft["out_dir"],
                "grpo": {"rewards": {"format": 1 / 3, "emotion": 1 / 3, "rubric": 1 / 3}, "max_steps": steps,
                         "learning_rate": 1e-6, "batch_size": 8, "num_generations": 4, "max_completion_length": 64,
                         "warmup_steps": 0, "save_steps": steps, "checkpoint_dir": str(work / f"{name}-grpo")}}  # fmt: skip
        for stage, run, cfg in (("sft", run_sft, sft), ("grpo", run_grpo, grpo)):
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            summary = run(cfg)
            rows.append({
                "shape": name, "stage": stage, "steps": summary["steps"], "seconds_per_step": summary["seconds_per_step"],
                "wall_s": round(time.perf_counter() - start, 1), "backend": summary["backend"],
                "rollout": summary.get("rollout"), "bf16": summary["machine"]["bf16"],
                "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
                "parameters": summary["parameters"], "trainable": summary["trainable"],
            })  # fmt: skip
    device = torch.cuda.get_device_name(0) if cuda else "cpu (dry run)"
    return {"device": device, "dry_run": dry_run, "torch": torch.__version__, "backends": backend_report(), "rows": rows}


def table(result: dict) -> str:
    lines = [f"device: {result['device']}; torch {result['torch']}; backends {result['backends']}",
             "| shape | stage | s/step | peak GPU MB | backend | rollout | bf16 | parameters (trainable) |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        lines.append(f"| {r['shape']} | {r['stage']} | {r['seconds_per_step']:.3f} | {r['peak_gpu_mb'] or '—'} | "
                     f"{r['backend']} | {r['rollout'] or '—'} | {r['bf16']} | {r['parameters']:,} ({r['trainable']:,}) |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, toy sizes, one step each")
    parser.add_argument("--steps", type=int, default=None, help="steps per stage (default 3; dry run 1)")
    parser.add_argument("--json", default="results/benchmarks/gpu_check.json", help="where the JSON goes")
    args = parser.parse_args(argv)
    steps = args.steps or (1 if args.dry_run else 3)
    with tempfile.TemporaryDirectory() as tmp:
        result = check(args.dry_run, steps, Path(tmp))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
