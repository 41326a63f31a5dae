"""The best-on-dev rule: after GRPO, the SFT model (step 0) and every checkpoint are scored on the
same dev prompts by the same weighted reward (a failed judgement is never a score), and the best
RL checkpoint becomes ``models/grpo``."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from kardia.generation import hf_generate
from kardia.models import (
    for_generation,
    load_policy,
    load_policy_tokenizer,
    read_policy_info,
    save_policy,
)
from kardia.rewards import weighted_total
from kardia.training.checkpoints import checkpoints, fingerprint, judge_key, step_of

DEV_EVAL_FILE = "kardia_dev_eval.json"


def reward_table(completions: Sequence[str], rows: Sequence[dict], funcs, weights) -> dict:
    """Mean of each reward and of the weighted total over ``completions``, by TRL's rules: a None
    reward is left out of the sum, and a completion with no reward at all (its judgement failed:
    ``build_rewards`` masks the others) is left out of the means and counted in ``unscored``."""
    columns = {k: [r[k] for r in rows] for k in ("emotion", "person", "situation")}
    prompts = [r["prompt"] for r in rows]
    completions = list(completions)  # one object for every function: the rubric judges once
    per_func = [f(completions=completions, prompts=prompts, **columns) for f in funcs]
    scored = [i for i in range(len(completions)) if any(v[i] is not None for v in per_func)]
    total = [weighted_total([v[i] for v in per_func], weights) for i in scored]
    out = {}
    for f, values in zip(funcs, per_func, strict=True):
        ok = [v for v in values if v is not None]
        out[f.__name__.removesuffix("_reward")] = sum(ok) / len(ok) if ok else float("nan")
    out["total"] = sum(total) / len(total) if total else float("nan")
    out["unscored"] = len(completions) - len(scored)
    return out


def load_checkpoint(checkpoint: str | Path, sft_dir: str | Path, policy: dict):
    """A checkpoint as a policy for generation: full weights, or LoRA adapters on the SFT model."""
    checkpoint = Path(checkpoint)
    if (checkpoint / "adapter_config.json").exists():
        from peft import PeftModel

        base, tokenizer = load_policy(sft_dir, policy, trainable=False)
        return PeftModel.from_pretrained(base, str(checkpoint)), tokenizer
    from transformers import AutoModelForCausalLM

    model = for_generation(AutoModelForCausalLM.from_pretrained(str(checkpoint)), policy)
    return model, load_policy_tokenizer(sft_dir)


def dev_rewards(model, tokenizer, rows: Sequence[dict], funcs, weights, gen: dict) -> dict:
    texts = hf_generate(model, tokenizer, [r["prompt"] for r in rows], **gen)
    return reward_table(texts, rows, funcs, weights)


def score_checkpoints(cfg: dict, rows: Sequence[dict], funcs, weights, gen: dict) -> list[dict]:
    """Dev rewards of the SFT model (step 0) and of every checkpoint, each cached in its folder
    (``kardia_dev_eval.json``) so a resumed stage does not score a checkpoint twice."""
    from tqdm.auto import tqdm

    run_dir = Path(cfg["grpo"]["checkpoint_dir"])
    # the cached scores hold only for the same dev prompts, rewards, judge and decoding settings
    key = fingerprint([[r["prompt"] for r in rows], [f.__name__ for f in funcs], weights, gen,
                       cfg.get("judge"), judge_key(cfg.get("judge"))])  # fmt: skip
    out = []
    candidates = [(0, Path(cfg["sft_dir"]))] + [(step_of(c), c) for c in checkpoints(run_dir)]
    for step, path in tqdm(candidates, desc="dev reward per checkpoint"):
        cache = (run_dir if step == 0 else path) / (
            DEV_EVAL_FILE if step else f"sft_{DEV_EVAL_FILE}"
        )
        if cache.exists():
            cached = json.loads(cache.read_text())
            if cached.pop("key", None) == key:
                out.append(cached)
                continue
        if step == 0:
            model, tokenizer = load_policy(path, cfg["policy"], trainable=False)
        else:
            model, tokenizer = load_checkpoint(path, cfg["sft_dir"], cfg["policy"])
        scores = {"step": step, "checkpoint": str(path),
                  **dev_rewards(model, tokenizer, rows, funcs, weights, gen)}  # fmt: skip
        cache.write_text(json.dumps({**scores, "key": key}) + "\n")
        out.append(scores)
    return out


def best_checkpoint(scored: Sequence[dict]) -> dict:
    """The RL checkpoint (step > 0) with the highest dev total reward; ties go to the earlier."""
    rl = [s for s in scored if s["step"] > 0]
    if not rl:
        raise ValueError("no GRPO checkpoint to choose from")
    return max(rl, key=lambda s: (s["total"], -s["step"]))


def export_best(best: dict, cfg: dict, out_dir: str | Path) -> Path:
    model, tokenizer = load_checkpoint(best["checkpoint"], cfg["sft_dir"], cfg["policy"])
    info = {**read_policy_info(cfg["sft_dir"]), "stage": "grpo", "run_id": uuid.uuid4().hex,
            "from_checkpoint": Path(best["checkpoint"]).name, "dev_total": best["total"]}  # fmt: skip
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_policy(model, tokenizer, tmp, info)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir
