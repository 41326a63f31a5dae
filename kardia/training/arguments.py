"""TRL's ``SFTConfig`` and ``GRPOConfig`` from a run config (``kardia.training.sft.run_config``).

They are built *before* the model is loaded, as TRL's scripts do: under DeepSpeed ZeRO-3 the
``TrainingArguments`` must exist when ``from_pretrained`` runs so the weights are partitioned as
they load instead of materialised whole on every rank.
"""

from __future__ import annotations

from collections.abc import Sequence

from kardia.models import gpu_memory_utilization, mixed_precision

DEFAULT_VLLM_URL = "http://127.0.0.1:8001"  # trl vllm-serve in server mode (8000 is the judge's)


def device_args(policy: dict) -> dict:
    """bf16 autocast as ``policy.mixed_precision`` resolves it (on a CPU too: accelerate autocasts
    there); CPU needs ``use_cpu=True`` (TRL's defaults raise without a GPU, and under ``accelerate
    launch`` it is what makes the ranks join a gloo process group)."""
    import torch

    bf16 = mixed_precision(policy)
    return {"bf16": bf16} if torch.cuda.is_available() else {"use_cpu": True, "bf16": bf16}


# the keys of a training section that common_args reads, and those both stages' notebooks read
COMMON_KEYS = frozenset({
    "epochs", "max_steps", "learning_rate", "batch_size", "gradient_accumulation_steps", "lr_scheduler",
    "warmup_steps", "weight_decay", "gradient_checkpointing", "launch", "max_new_tokens", "data_dir", "out_dir",
})  # fmt: skip


def check_section(name: str, section: dict, known: frozenset[str]) -> dict:
    """``section`` as a dict, or a clear error naming the keys no code reads (a typo must not
    silently fall back to a default)."""
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(f"params.yaml: unknown key(s) {name}.{{{', '.join(unknown)}}}; "
                         f"known: {', '.join(sorted(known))}")  # fmt: skip
    return dict(section)


def common_args(section: dict, out_dir: str, seed: int) -> dict:
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


def sft_loss_type(policy: dict) -> str:
    """TRL's SFT loss for ``policy``. Its default, ``chunked_nll``, reads the output layer's weight
    directly; with LoRA and the span markers as added tokens PEFT wraps that layer (a
    ``TrainableTokensWrapper``, tied to the embeddings), which the chunked path neither sees
    through (TRL 1.14: "no attribute 'bias'" at the first step) nor trains (the markers' rows). Those
    runs take ``nll``: the same loss over full logits. Full fine-tuning keeps the default."""
    adapted = policy.get("finetune", "full") != "full"
    return "nll" if adapted and policy.get("span_tokens", "added") == "added" else "chunked_nll"


def sft_args(cfg: dict, out_dir: str):
    from trl import SFTConfig

    sft = cfg["sft"]
    return SFTConfig(
        loss_type=sft_loss_type(cfg["policy"]),
        **common_args(sft, out_dir, cfg["seed"]),
        **device_args(cfg["policy"]),
        max_length=int(cfg["policy"].get("max_seq_length", 1024)),
        completion_only_loss=True,  # loss on the assistant turn only (SPEC §2.2 default)
        save_strategy="no",  # SFT is short; the stage saves the final model
        # batches of similar length pad less (the prompts' profiles vary in length)
        train_sampling_strategy=sft.get("sampling", "group_by_length"),
        packing=False,
    )


def grpo_args(cfg: dict, out_dir: str, rollout: str, weights: Sequence[float]):
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
            "vllm_gpu_memory_utilization": gpu_memory_utilization(cfg["policy"]),
        }
        if extra["vllm_mode"] == "server":
            extra["vllm_server_base_url"] = grpo.get("vllm_server_base_url") or DEFAULT_VLLM_URL
    return GRPOConfig(
        **common_args(grpo, out_dir, cfg["seed"]),
        **device_args(cfg["policy"]),
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
