"""Rubric-ERL: GRPO on the hard train turns from the SFT model, rewarded by format, emotion and
the judge's rubric (``kardia.rewards``), as TRL's ``grpo.py`` reads: config → rewards → model →
data → trainer → train.

Checkpoints live outside DVC's outputs (``grpo.checkpoint_dir``) with a fingerprint of the config,
the judge and the SFT model (``kardia.training.checkpoints``): re-running an interrupted stage
resumes from the last checkpoint; a changed config or SFT model starts afresh. The stage then
keeps the best checkpoint on dev (``kardia.training.selection``).

    cfg = run_config(params["grpo"], policy=..., judge=..., rewards=..., seed=params["train_seed"])
    summary = run_grpo(cfg)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kardia.generation import free_accelerator_memory
from kardia.judges import make_judge, max_failure_rate
from kardia.models import (
    count_parameters,
    load_policy,
    loaded_backend,
    rollout_backend,
    training_backend,
)
from kardia.prompts import spread, train_rows
from kardia.rewards import build_rewards
from kardia.training.arguments import COMMON_KEYS, check_section, grpo_args
from kardia.training.checkpoints import (
    allow_cpu_rank_locations,
    grpo_run_key,
    prepare_run_dir,
    step_of,
)
from kardia.training.logs import log_history, machine_info, step_printer

SECTION_KEYS = COMMON_KEYS | {  # params.yaml's grpo section
    "num_generations", "max_completion_length", "temperature", "beta", "loss_type", "save_steps",
    "checkpoint_dir", "resume", "dev_prompts", "vllm_mode", "vllm_server_base_url", "vllm_server_gpus",
    "sft_dir", "first_turn_share",
}  # fmt: skip


def grpo_sample(rows: Sequence[dict], grpo: Mapping, seed: int) -> list[dict]:
    """The hard turns GRPO's steps draw prompts from: all of them without ``max_steps``; with it,
    a seeded sample of the prompts ``max_steps`` steps take (``batch_size`` completions a step,
    ``num_generations`` per prompt), ``first_turn_share`` of it dialogues' first turns (null:
    drawn like any turn, ~13 %). As in SFT's sample: the first turn is where the user names the
    feeling, and a short run drawn like any turn would hardly see one, so the emotion span the
    test asks of first turns would go unrewarded."""
    if not grpo.get("max_steps"):
        return list(rows)
    completions = int(grpo["batch_size"]) * int(grpo.get("gradient_accumulation_steps", 1))
    n = int(grpo["max_steps"]) * max(completions // int(grpo["num_generations"]), 1)
    return spread(rows, n, seed, grpo.get("first_turn_share"))


def run_config(section: Mapping, *, policy: dict, judge: dict, rewards: dict, seed: int) -> dict:
    """The config ``run_grpo`` takes, from params.yaml's ``grpo`` section as one dict (the reward
    weights of the ``rewards`` section ride in it)."""
    grpo = check_section("grpo", section, SECTION_KEYS)
    return {"seed": seed, "policy": policy, "launch": grpo.get("launch"), "judge": judge,
            "data_dir": grpo["data_dir"], "sft_dir": grpo["sft_dir"],
            "grpo": {**grpo, "rewards": rewards}}  # fmt: skip


def run_grpo(cfg: dict, callbacks: Sequence = ()) -> dict:
    """Rubric-ERL on the hard train turns, from the SFT model, checkpointing to
    ``cfg['grpo']['checkpoint_dir']`` and resuming from its last checkpoint when allowed."""
    preferred, rollout = training_backend(), rollout_backend()  # Unsloth (CUDA) before trl
    import torch
    from datasets import Dataset
    from trl import GRPOTrainer

    seed, policy, grpo = cfg["seed"], cfg["policy"], cfg["grpo"]
    torch.manual_seed(seed)
    run_dir = Path(grpo["checkpoint_dir"])
    last = prepare_run_dir(run_dir, grpo_run_key(cfg), fresh=not grpo.get("resume", True))
    judge = make_judge(cfg["judge"])
    # above this share of failed judgements the rubric reward stops training, at the step it happens
    funcs, weights = build_rewards(grpo["rewards"], judge, max_failure_rate(cfg["judge"]))
    args = grpo_args(cfg, str(run_dir), rollout, weights)  # before the model (ZeRO-3)
    model, tokenizer = load_policy(cfg["sft_dir"], policy, seed=seed, backend=preferred,
                                   fast_inference=rollout == "vllm")  # fmt: skip
    rows = grpo_sample(train_rows(cfg["data_dir"], policy, tokenizer, "hard"), grpo, seed)
    dataset = Dataset.from_list([{k: r[k] for k in ("prompt", "emotion", "person", "situation")}
                                 for r in rows])  # fmt: skip
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[step_printer("grpo"), *callbacks],
    )
    if last is not None:
        print(f"resuming from {last}")
        allow_cpu_rank_locations()
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    seconds = time.perf_counter() - start
    # transformers saves the last step too (save_strategy "steps"), so it is a candidate.
    stats = judge.stats.as_dict() if hasattr(judge, "stats") else {}
    summary = {
        "stage": "grpo",
        "backend": loaded_backend(model),
        "rollout": rollout,
        "processes": trainer.accelerator.num_processes,
        "judge": repr(judge),
        "resumed_from": str(last) if last else None,
        "train_turns": len(rows),
        "steps": result.global_step,
        "seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / max(result.global_step - step_of(last), 1), 4),
        "machine": machine_info(cfg["policy"]),
        "judge_stats": stats,
        **count_parameters(trainer.model),
        "log_history": log_history(trainer),
    }
    del trainer, model
    free_accelerator_memory()  # checkpoint scoring and evaluation generate next
    return summary
