"""SFT and Rubric-ERL (GRPO) with TRL: datasets, configs, checkpoints, the best-on-dev rule.

The stages call ``run_sft`` / ``run_grpo`` with one JSON-able config (their params.yaml sections
plus ``seed``, ``policy`` and ``judge``). ``launch`` runs the same function in this process, or,
when ``launch.num_processes`` > 1, under ``accelerate launch`` (DeepSpeed ZeRO configs in
``configs/accelerate/``) as ``python -m kardia.training <stage> <config.json>``.

Checkpoints of a GRPO run live outside DVC's outputs (``grpo.checkpoint_dir``) with a fingerprint
of the config and of the SFT model they start from: re-running an interrupted stage resumes from
the last checkpoint; a changed config or SFT model starts afresh. After training, every checkpoint
is scored on dev prompts by the same weighted reward and the best one becomes ``models/grpo``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

from kardia.build import PROMPT_STYLES, system_prompt
from kardia.generation import fold_system
from kardia.rewards import weighted_total

FINGERPRINT_FILE = "kardia_fingerprint.json"
DEV_EVAL_FILE = "kardia_dev_eval.json"
DEFAULT_VLLM_URL = "http://127.0.0.1:8001"  # trl vllm-serve in server mode (8000 is the judge's)


# --- prompts and datasets ---------------------------------------------------------------------


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


def prompt_args(policy: dict) -> dict:
    """How ``policy`` shapes a prompt: the keyword arguments of ``prompt_rows`` it sets (the same
    for training, dev checks and evaluation, so every system sees the same prompts)."""
    return {"history_exchanges": policy.get("history_exchanges"),
            "prompt_style": policy.get("prompt_style", "full")}  # fmt: skip


def shape_prompt(turn: dict, history_exchanges: int | None, prompt_style: str = "full"):
    """A turn's prompt trimmed to the history budget, its system message in ``prompt_style``
    (rebuilt from the turn's ``person`` and ``situation``; ``full`` keeps the stored one)."""
    if prompt_style not in PROMPT_STYLES:
        raise ValueError(f"policy.prompt_style must be one of {PROMPT_STYLES}, got {prompt_style!r}")
    prompt = trim_history(turn["prompt"], history_exchanges)
    if prompt_style != "full" and prompt and prompt[0].get("role") == "system":
        content = system_prompt(str(turn.get("person") or ""), str(turn.get("situation") or ""),
                                prompt_style)  # fmt: skip
        prompt = [{"role": "system", "content": content}, *prompt[1:]]
    return prompt


def prompt_rows(
    turns: Iterable[dict],
    *,
    difficulty: str | None = None,
    history_exchanges: int | None = None,
    prompt_style: str = "full",
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
        prompt = shape_prompt(t, history_exchanges, prompt_style)
        rows.append(
            {
                "prompt": prompt if system_role else fold_system(prompt),
                "completion": t["completion"],
                "emotion": t["emotion"],
                "person": t["person"],
                "situation": t["situation"],
            }
        )
        if limit is not None and len(rows) >= limit:
            break
    return rows


def spread(rows: Sequence[dict], n: int | None, seed: int) -> list[dict]:
    """A seeded sample of ``n`` rows (all when ``n`` is None or covers them), in input order."""
    import random

    if n is None or n >= len(rows):
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


# --- configs ----------------------------------------------------------------------------------


def _device_args(policy: dict) -> dict:
    """bf16 autocast as ``policy.mixed_precision`` resolves it (on a CPU too: accelerate autocasts
    there); CPU needs ``use_cpu=True`` (TRL's defaults raise without a GPU)."""
    import torch

    from kardia.models import mixed_precision

    bf16 = mixed_precision(policy)
    return {"bf16": bf16} if torch.cuda.is_available() else {"use_cpu": True, "bf16": bf16}


def _common_args(section: dict, out_dir: str, seed: int) -> dict:
    return {
        "output_dir": out_dir,
        "num_train_epochs": float(section.get("epochs", 1)),
        "max_steps": int(section.get("max_steps") or -1),
        "learning_rate": float(section["learning_rate"]),
        "per_device_train_batch_size": int(section["batch_size"]),
        "gradient_accumulation_steps": int(section.get("gradient_accumulation_steps", 1)),
        "lr_scheduler_type": section.get("lr_scheduler", "linear"),
        "warmup_steps": int(section.get("warmup_steps", 0)),
        "weight_decay": float(section.get("weight_decay", 0.0)),
        "gradient_checkpointing": bool(section.get("gradient_checkpointing", False)),
        "logging_steps": 1,
        "report_to": "none",
        "seed": seed,
        "data_seed": seed,
        "dataloader_num_workers": 0,
    }


def sft_args(cfg: dict, out_dir: str, backend: str):
    from trl import SFTConfig

    sft = cfg["sft"]
    return SFTConfig(
        **_common_args(sft, out_dir, cfg["seed"]),
        **_device_args(cfg["policy"]),
        max_length=int(cfg["policy"].get("max_seq_length", 1024)),
        completion_only_loss=True,  # loss on the assistant turn only (SPEC §2.2 default)
        save_strategy="no",  # SFT is short; the stage saves the final model
        # batches of similar length pad less (the prompts' profiles vary in length)
        train_sampling_strategy=sft.get("sampling", "group_by_length"),
        packing=False,
    )


def grpo_args(cfg: dict, out_dir: str, backend: str, rollout: str, weights: Sequence[float]):
    from trl import GRPOConfig

    grpo = cfg["grpo"]
    batch, k = int(grpo["batch_size"]), int(grpo["num_generations"])
    if batch % k:
        raise ValueError(
            f"grpo.batch_size ({batch}) counts completions and must be a multiple of "
            f"grpo.num_generations ({k})"
        )
    extra = {}
    if rollout == "vllm":
        extra = {
            "use_vllm": True,
            "vllm_mode": grpo.get("vllm_mode", "colocate"),
            "vllm_gpu_memory_utilization": float(grpo.get("vllm_gpu_memory_utilization", 0.3)),
        }
        if extra["vllm_mode"] == "server":
            extra["vllm_server_base_url"] = grpo.get("vllm_server_base_url") or DEFAULT_VLLM_URL
    return GRPOConfig(
        **_common_args(grpo, out_dir, cfg["seed"]),
        **_device_args(cfg["policy"]),
        **extra,
        num_generations=k,
        max_completion_length=int(grpo["max_completion_length"]),
        temperature=float(grpo.get("temperature", 1.0)),
        beta=float(grpo.get("beta", 0.0)),
        loss_type=grpo.get("loss_type", "dapo"),
        reward_weights=list(weights),
        save_strategy="steps",
        save_steps=int(grpo["save_steps"]),
        save_total_limit=None,  # every checkpoint is a candidate for the best-on-dev rule
        log_completions=False,
    )


def machine_info(policy: dict) -> dict:
    """What a run's step times were measured on: the GPU or CPU model, the cores this process may
    use, and whether its products ran in bf16 (``policy.mixed_precision``)."""
    import platform

    import torch

    from kardia.models import mixed_precision

    if torch.cuda.is_available():
        device = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    else:
        cpuinfo = Path("/proc/cpuinfo")
        names = [line.split(":", 1)[1].strip() for line in
                 (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
                 if line.startswith("model name")]  # fmt: skip
        device = names[0] if names else platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"device": device, "cores": cores, "bf16": mixed_precision(policy)}


def step_printer(label: str, every: int | None = None):
    """A TrainerCallback printing one plain line every ``every`` optimiser steps (default: ~20
    lines a run): step, loss or reward, seconds per step and the time left. Notebook progress
    bars are widgets papermill cannot show; these lines reach the terminal (``kardia.runner``)."""
    from transformers import TrainerCallback

    class _Printer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.start, self.first = time.perf_counter(), state.global_step

        def on_log(self, args, state, control, logs=None, **kw):
            n, step = max(state.max_steps, 1), state.global_step
            k = every or max(1, n // 20)
            if not logs or (step % k and step != n) or "train_runtime" in logs:
                return
            done = max(step - self.first, 1)
            per = (time.perf_counter() - self.start) / done
            shown = {key: logs[key] for key in ("loss", "reward", "rewards/format_reward/mean",
                                                 "rewards/emotion_reward/mean",
                                                 "rewards/rubric_reward/mean") if key in logs}  # fmt: skip
            values = " ".join(f"{key.split('/')[-2] if '/' in key else key} {v:.3f}"
                              for key, v in shown.items())  # fmt: skip
            print(
                f"{label} step {step}/{n}: {values}; {per:.1f} s/step, "
                f"~{per * (n - step) / 60:.1f} min left",
                flush=True,
            )

    return _Printer()


# --- fingerprints and checkpoints ---------------------------------------------------------------


def fingerprint(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoints(run_dir: str | Path) -> list[Path]:
    """``checkpoint-<step>`` folders of a run, by step."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=_step)


def prepare_run_dir(run_dir: str | Path, key: str) -> Path | None:
    """Return the last checkpoint of a run made with the same ``key``, or None.

    A run dir written with another key (changed params, another SFT model) is emptied first:
    resuming it would silently mix two experiments.
    """
    run_dir = Path(run_dir)
    marker = run_dir / FINGERPRINT_FILE
    if run_dir.exists():
        old = json.loads(marker.read_text()).get("key") if marker.exists() else None
        if old != key:
            print(f"checkpoints in {run_dir} belong to another config ({old}); starting afresh")
            shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"key": key}) + "\n")
    found = [c for c in checkpoints(run_dir) if (c / "trainer_state.json").exists()]
    return found[-1] if found else None


def log_history(run_dir_or_trainer) -> list[dict]:
    """The trainer's per-step log (restored from the checkpoint on resume)."""
    state = getattr(run_dir_or_trainer, "state", None)
    if state is not None:
        return list(state.log_history)
    saved = [c for c in checkpoints(run_dir_or_trainer) if (c / "trainer_state.json").exists()]
    if not saved:  # a checkpoint without its state was cut off while saving
        return []
    return json.loads((saved[-1] / "trainer_state.json").read_text())["log_history"]


def write_log(history: Sequence[dict], path: str | Path) -> Path:
    """Per-step training log as CSV: one row per optimiser step, one column per metric."""
    import pandas as pd

    rows = [h for h in history if "step" in h and "train_runtime" not in h]
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.groupby("step", as_index=False).last()  # a resumed run may log a step twice
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


# --- SFT ----------------------------------------------------------------------------------------


def train_rows(cfg: dict, tokenizer, difficulty: str) -> list[dict]:
    """The train turns of one difficulty (SFT: easy, GRPO: hard), shaped for the tokenizer."""
    from kardia.data import read_splits
    from kardia.generation import supports_system_role

    rows = prompt_rows(
        read_splits(cfg["data_dir"], "turns")["train"],
        difficulty=difficulty,
        system_role=supports_system_role(tokenizer),
        **prompt_args(cfg["policy"]),
    )
    if not rows:
        raise ValueError(f"no {difficulty} train turns in {cfg['data_dir']}: run build_data first")
    return rows


def run_sft(cfg: dict, callbacks: Sequence = ()) -> dict:
    """Train the SFT policy on the easy train turns and save it to ``cfg['out_dir']``."""
    from kardia.models import training_backend

    backend = training_backend()  # on CUDA this imports Unsloth, which must precede trl
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    from kardia.data import read_splits
    from kardia.models import (
        POLICY_FILE,
        count_parameters,
        create_policy,
        dialogue_texts,
        save_policy,
    )

    seed, policy, sft = cfg["seed"], cfg["policy"], cfg["sft"]
    torch.manual_seed(seed)
    dialogues = read_splits(cfg["data_dir"], "dialogues")["train"]

    model, tokenizer = create_policy(
        policy, corpus=dialogue_texts(dialogues), seed=seed, backend=backend
    )
    rows = train_rows(cfg, tokenizer, "easy")
    if sft.get("max_steps"):  # tokenise only the turns the steps will see (a seeded sample)
        rows = spread(rows, int(sft["max_steps"]) * int(sft["batch_size"])
                      * int(sft.get("gradient_accumulation_steps", 1)), seed)  # fmt: skip
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]}
                                 for r in rows])  # fmt: skip
    work_dir = Path(cfg.get("work_dir", ".cache/sft_run"))
    trainer = SFTTrainer(
        model=model,
        args=sft_args(cfg, str(work_dir), backend),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[step_printer("sft"), *callbacks],
    )
    if len(trainer.train_dataset) == 0:  # TRL drops examples whose reply max_length cuts off
        raise ValueError(
            f"no SFT example left after tokenising: policy.max_seq_length "
            f"({policy.get('max_seq_length')}) cuts off every reply; raise it or lower "
            "policy.history_exchanges"
        )
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    info = {
        "stage": "sft",
        "run_id": uuid.uuid4().hex,
        "backbone": policy["backbone"],
        "tokenizer": "tiny" if policy["backbone"] == "tiny" else "auto",
        "finetune": policy.get("finetune", "full"),
        "backend": backend,
    }
    if trainer.accelerator.num_processes > 1:
        # every rank takes part (DeepSpeed gathers ZeRO-3 shards); launch() merges afterwards
        raw = Path(cfg["out_dir"]).with_name(Path(cfg["out_dir"]).name + ".unmerged")
        trainer.save_model(str(raw))
        if trainer.accelerator.is_main_process:
            tokenizer.save_pretrained(str(raw))
            (raw / POLICY_FILE).write_text(json.dumps(info, indent=1) + "\n")
    elif trainer.accelerator.is_main_process:
        save_policy(trainer.model, tokenizer, cfg["out_dir"], info)
    return {
        **info,
        "train_turns": len(trainer.train_dataset),
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / max(result.global_step, 1), 4),
        "machine": machine_info(policy),
        **count_parameters(trainer.model),
        "log_history": log_history(trainer),
    }


# --- GRPO ---------------------------------------------------------------------------------------


def judge_key(judge_cfg: dict | None) -> str | None:
    """What a judge's verdicts depend on beyond its config: for an offline judge, the content of
    its heads file (a re-fit behind the same path is a different judge)."""
    import hashlib

    if not judge_cfg or judge_cfg.get("kind") != "offline":
        return None
    from kardia.offline_judge import DEFAULT_HEADS

    path = Path(judge_cfg.get("heads") or DEFAULT_HEADS)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def grpo_run_key(cfg: dict) -> str:
    """What a GRPO checkpoint depends on: the config, the judge's heads and the SFT model's run
    id."""
    from kardia.models import read_policy_info

    keep = {**cfg, "grpo": {k: v for k, v in cfg["grpo"].items() if k != "resume"}}
    return fingerprint({"cfg": keep, "sft": read_policy_info(cfg["sft_dir"]).get("run_id"),
                        "judge": judge_key(cfg.get("judge"))})  # fmt: skip


def run_grpo(cfg: dict, callbacks: Sequence = ()) -> dict:
    """Rubric-ERL on the hard train turns, from the SFT model, checkpointing to
    ``cfg['grpo']['checkpoint_dir']`` and resuming from its last checkpoint when allowed."""
    from kardia.models import rollout_backend, training_backend

    backend, rollout = training_backend(), rollout_backend()  # Unsloth (CUDA) before trl
    import torch
    from datasets import Dataset
    from trl import GRPOTrainer

    from kardia.judges import make_judge, max_failure_rate
    from kardia.models import count_parameters, load_policy
    from kardia.rewards import build_rewards

    seed, policy, grpo = cfg["seed"], cfg["policy"], cfg["grpo"]
    torch.manual_seed(seed)
    run_dir, key = Path(grpo["checkpoint_dir"]), grpo_run_key(cfg)
    last = prepare_run_dir(run_dir, key)
    if last is not None and not grpo.get("resume", True):
        shutil.rmtree(run_dir)
        last = prepare_run_dir(run_dir, key)
    judge = make_judge(cfg["judge"])
    # above this share of failed judgements the rubric reward stops training, at the step it happens
    funcs, weights = build_rewards(grpo["rewards"], judge, max_failure_rate(cfg["judge"]))
    model, tokenizer = load_policy(
        cfg["sft_dir"], policy, seed=seed, backend=backend, fast_inference=rollout == "vllm"
    )
    rows = train_rows(cfg, tokenizer, "hard")
    dataset = Dataset.from_list([{k: r[k] for k in ("prompt", "emotion", "person", "situation")}
                                 for r in rows])  # fmt: skip
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=grpo_args(cfg, str(run_dir), backend, rollout, weights),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[step_printer("grpo"), *callbacks],
    )
    if last is not None:
        print(f"resuming from {last}")
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    seconds = time.perf_counter() - start
    # transformers saves the last step too (save_strategy "steps"), so it is a candidate.
    stats = judge.stats.as_dict() if hasattr(judge, "stats") else {}
    return {
        "stage": "grpo",
        "backend": backend,
        "rollout": rollout,
        "judge": repr(judge),
        "resumed_from": str(last) if last else None,
        "train_turns": len(rows),
        "steps": result.global_step,
        "seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / max(result.global_step - _step(last), 1), 4),
        "machine": machine_info(cfg["policy"]),
        "judge_stats": stats,
        **count_parameters(trainer.model),
        "log_history": log_history(trainer),
    }


def _step(checkpoint: Path | None) -> int:
    return int(checkpoint.name.split("-")[-1]) if checkpoint else 0


# --- choosing the best checkpoint on dev --------------------------------------------------------


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
    from kardia.models import load_policy, load_policy_tokenizer

    checkpoint = Path(checkpoint)
    if (checkpoint / "adapter_config.json").exists():
        from peft import PeftModel

        base, tokenizer = load_policy(sft_dir, policy, trainable=False)
        return PeftModel.from_pretrained(base, str(checkpoint)), tokenizer
    from transformers import AutoModelForCausalLM

    from kardia.models import for_generation

    model = for_generation(AutoModelForCausalLM.from_pretrained(str(checkpoint)), policy)
    return model, load_policy_tokenizer(sft_dir)


def dev_rewards(model, tokenizer, rows: Sequence[dict], funcs, weights, gen: dict) -> dict:
    from kardia.generation import hf_generate

    texts = hf_generate(model, tokenizer, [r["prompt"] for r in rows], **gen)
    return reward_table(texts, rows, funcs, weights)


def score_checkpoints(cfg: dict, rows: Sequence[dict], funcs, weights, gen: dict) -> list[dict]:
    """Dev rewards of the SFT model (step 0) and of every checkpoint, each cached in its folder
    (``kardia_dev_eval.json``) so a resumed stage does not score a checkpoint twice."""
    from tqdm.auto import tqdm

    from kardia.models import load_policy

    run_dir = Path(cfg["grpo"]["checkpoint_dir"])
    # the cached scores hold only for the same dev prompts, rewards, judge and decoding settings
    key = fingerprint([[r["prompt"] for r in rows], [f.__name__ for f in funcs], weights, gen,
                       cfg.get("judge"), judge_key(cfg.get("judge"))])  # fmt: skip
    out = []
    candidates = [(0, Path(cfg["sft_dir"]))] + [(_step(c), c) for c in checkpoints(run_dir)]
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
    from kardia.models import read_policy_info, save_policy

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


def reward_trend(log, share: float = 0.25) -> dict[str, dict[str, float]]:
    """Mean of each logged reward over the first and the last ``share`` of the steps: the
    "did the total rise, did the rubric hold" numbers of the closing check."""
    cols = [c for c in log.columns if c.startswith("rewards/") and c.endswith("/mean")]
    cols += [c for c in ("reward", "judge/score_mean", "completions/clipped_ratio") if c in log]
    n = max(1, int(len(log) * share))
    out = {}
    for c in cols:
        name = c.split("/")[1].removesuffix("_reward") if c.startswith("rewards/") else c
        first, last = float(log[c].iloc[:n].mean()), float(log[c].iloc[-n:].mean())
        out[name] = {"first": round(first, 4), "last": round(last, 4),
                     "change": round(last - first, 4)}  # fmt: skip
    return out


# --- launching ----------------------------------------------------------------------------------


@contextmanager
def serve(cmd: Sequence[str], health_url: str, *, env: dict | None = None,
          timeout_s: float = 600.0, poll_s: float = 1.0):  # fmt: skip
    """Run a server process for the duration of a block: wait until ``health_url`` answers 200,
    fail fast (with its exit code) if it dies first, terminate it afterwards."""
    proc = subprocess.Popen(list(cmd), env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with code {proc.returncode} before it was up")
            try:
                with urllib.request.urlopen(health_url, timeout=poll_s) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{health_url} did not answer within {timeout_s:.0f} s")
            time.sleep(poll_s)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def rollout_server(cfg: dict):
    """TRL's vLLM server (``trl vllm-serve``) on ``grpo.vllm_server_gpus`` for server-mode rollouts
    (the paper profile); a no-op in colocate mode or without CUDA + vLLM."""
    from urllib.parse import urlparse

    from kardia.models import rollout_backend

    grpo = cfg["grpo"]
    gpus = grpo.get("vllm_server_gpus")
    if grpo.get("vllm_mode") != "server" or not gpus or rollout_backend() != "vllm":
        yield None
        return
    url = grpo.get("vllm_server_base_url") or DEFAULT_VLLM_URL
    parsed = urlparse(url)
    # one replica per GPU (data parallel): a 7B policy fits on one card
    cmd = ["trl", "vllm-serve", "--model", str(cfg["sft_dir"]), "--host", parsed.hostname or "127.0.0.1",
           "--port", str(parsed.port or 8001), "--data_parallel_size", str(len(str(gpus).split(",")))]  # fmt: skip
    with serve(cmd, f"{url.rstrip('/')}/health", env={"CUDA_VISIBLE_DEVICES": str(gpus)}) as proc:
        yield proc


RUNNERS = {"sft": run_sft, "grpo": run_grpo}


def launch(stage: str, cfg: dict) -> dict:
    """Run ``stage`` here, or under ``accelerate launch`` when ``cfg['launch']`` asks for more
    than one process (the summary comes back through a JSON file)."""
    launch_cfg = cfg.get("launch") or {}
    n = int(launch_cfg.get("num_processes", 1))
    if n <= 1:
        return RUNNERS[stage](cfg)
    work = Path(".cache") / f"{stage}_launch"
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.json").write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(n)]
    if launch_cfg.get("config_file"):
        cmd += ["--config_file", str(launch_cfg["config_file"])]
    cmd += ["-m", "kardia.training", stage, str(work / "config.json"), str(work / "summary.json")]
    env = dict(os.environ)
    if launch_cfg.get("gpus") is not None:  # e.g. the GPUs the vLLM server does not hold
        env["CUDA_VISIBLE_DEVICES"] = str(launch_cfg["gpus"])
    print("launching:", " ".join(cmd))
    subprocess.run(cmd, check=True, env=env)
    if stage == "sft":
        merge_unmerged(cfg)
    return json.loads((work / "summary.json").read_text())


def merge_unmerged(cfg: dict) -> Path:
    """After a multi-process SFT: fold the saved LoRA adapters into the backbone (one process)
    and write ``out_dir`` as ``save_policy`` would; full weights are moved as they are."""
    from peft import PeftModel

    from kardia.models import (
        POLICY_FILE,
        _load_backbone,
        backbone_source,
        read_policy_info,
        save_policy,
    )

    out = Path(cfg["out_dir"])
    raw = out.with_name(out.name + ".unmerged")
    info = read_policy_info(raw)
    shutil.rmtree(out, ignore_errors=True)
    if not (raw / "adapter_config.json").exists():
        os.replace(raw, out)
        return out
    (raw / POLICY_FILE).unlink()
    base, tokenizer = _load_backbone(  # the same start as create_policy: span tokens included
        backbone_source(cfg["policy"]), cfg["policy"], seed=0, backend="transformers",
        trainable=False, add_spans=cfg["policy"].get("span_tokens", "added") == "added",
    )  # fmt: skip
    save_policy(PeftModel.from_pretrained(base, str(raw)), tokenizer, out, info)
    shutil.rmtree(raw)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m kardia.training <sft|grpo> <config.json> [summary.json]`` (what ``launch``
    runs under accelerate on every rank; the main rank writes the summary)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3) or argv[0] not in RUNNERS:
        print(main.__doc__, file=sys.stderr)
        return 2
    summary = RUNNERS[argv[0]](json.loads(Path(argv[1]).read_text()))
    if len(argv) == 3 and int(os.environ.get("RANK", "0")) == 0:
        Path(argv[2]).write_text(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
