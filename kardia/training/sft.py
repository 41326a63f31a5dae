"""SFT on the easy train turns (loss on the assistant turn only), as TRL's ``sft.py`` reads:
config → model → data → trainer → train → save.

    cfg = run_config(params["sft"], policy=params["policy"], seed=params["train_seed"])
    summary = run_sft(cfg)    # or kardia.training.launch.launch("sft", cfg) for several processes
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from kardia.data import read_splits
from kardia.generation import free_accelerator_memory
from kardia.models import (
    POLICY_FILE,
    count_parameters,
    create_policy,
    dialogue_texts,
    loaded_backend,
    save_policy,
    training_backend,
)
from kardia.prompts import spread, train_rows
from kardia.training.arguments import COMMON_KEYS, check_section, sft_args
from kardia.training.logs import log_history, machine_info, step_printer

WORK_DIR = ".cache/sft_run"  # the trainer's output_dir (SFT saves no checkpoints; the stage saves the model)
SECTION_KEYS = COMMON_KEYS | {"sampling", "eval_prompts", "first_turn_share"}  # params.yaml's sft section


def run_config(section: Mapping, *, policy: dict, seed: int, work_dir: str = WORK_DIR) -> dict:
    """The config ``run_sft`` takes, from params.yaml's ``sft`` section as one dict."""
    sft = check_section("sft", section, SECTION_KEYS)
    return {"seed": seed, "policy": policy, "launch": sft.get("launch"), "data_dir": sft["data_dir"],
            "out_dir": sft["out_dir"], "work_dir": work_dir, "sft": sft}  # fmt: skip


def sft_sample(rows: Sequence[dict], sft: Mapping, seed: int) -> list[dict]:
    """The easy turns SFT's steps see: all of them without ``max_steps``; with it, a seeded sample
    of ``max_steps`` batches, ``first_turn_share`` of it dialogues' first turns (null: drawn like
    any turn, ~13 % of easy turns). First turns are where the user says what happened and how they
    feel, so they teach the emotion span; later turns mostly the reply's style."""
    if not sft.get("max_steps"):
        return list(rows)
    n = int(sft["max_steps"]) * int(sft["batch_size"]) * int(sft.get("gradient_accumulation_steps", 1))
    return spread(rows, n, seed, sft.get("first_turn_share"))


def run_sft(cfg: dict, callbacks: Sequence = ()) -> dict:
    """Train the SFT policy on the easy train turns and save it to ``cfg['out_dir']``."""
    preferred = training_backend()  # on CUDA this imports Unsloth, which must precede trl
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    seed, policy, sft = cfg["seed"], cfg["policy"], cfg["sft"]
    torch.manual_seed(seed)
    args = sft_args(cfg, str(cfg.get("work_dir", WORK_DIR)))  # before the model (ZeRO-3)
    dialogues = read_splits(cfg["data_dir"], "dialogues")["train"]
    model, tokenizer = create_policy(policy, corpus=dialogue_texts(dialogues), seed=seed, backend=preferred)
    backend = loaded_backend(model)
    rows = sft_sample(train_rows(cfg["data_dir"], policy, tokenizer, "easy"), sft, seed)
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]}
                                 for r in rows])  # fmt: skip
    trainer = SFTTrainer(
        model=model,
        args=args,
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
    processes = trainer.accelerator.num_processes
    if processes > 1:
        # every rank takes part (DeepSpeed gathers ZeRO-3 shards; the Trainer writes once, on the
        # main process); launch() merges afterwards, in one process
        raw = Path(cfg["out_dir"]).with_name(Path(cfg["out_dir"]).name + ".unmerged")
        trainer.save_model(str(raw))
        if trainer.accelerator.is_main_process:
            tokenizer.save_pretrained(str(raw))
            (raw / POLICY_FILE).write_text(json.dumps(info, indent=1) + "\n")
        trainer.accelerator.wait_for_everyone()
    else:
        save_policy(trainer.model, tokenizer, cfg["out_dir"], info)
    summary = {
        **info,
        "processes": processes,
        "train_turns": len(trainer.train_dataset),
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / max(result.global_step, 1), 4),
        "machine": machine_info(policy),
        **count_parameters(trainer.model),
        "log_history": log_history(trainer),
    }
    del trainer, model
    free_accelerator_memory()  # the dev check (vLLM) runs next in the same kernel
    return summary
