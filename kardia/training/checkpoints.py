"""Run folders of a GRPO run: a fingerprint of what its checkpoints depend on, resume or start
afresh. Every rank of an ``accelerate launch`` run calls these; only the main process writes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from kardia.models import read_policy_info
from kardia.offline_judge import DEFAULT_HEADS

FINGERPRINT_FILE = "kardia_fingerprint.json"


def fingerprint(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def step_of(checkpoint: Path | None) -> int:
    return int(checkpoint.name.split("-")[-1]) if checkpoint else 0


def checkpoints(run_dir: str | Path) -> list[Path]:
    """``checkpoint-<step>`` folders of a run, by step."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=step_of)


def process_state():
    """accelerate's view of this process (rank, world size, barrier), as the trainer will see it:
    on a machine without CUDA the ranks join a gloo group (``use_cpu``, as ``device_args`` sets)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


_CPU_RANKS_REGISTERED: list[bool] = []  # registered once per process


def _cpu_rank_deserialize(obj, location: str):
    return obj if location.startswith("cpu:") and location[4:].isdigit() else None


def allow_cpu_rank_locations() -> None:
    """Let ``torch.load`` read storages mapped to ``cpu:<rank>``. With several processes,
    transformers resumes the optimizer with ``map_location=args.device``, which on CPU ranks
    (accelerate's MULTI_CPU) is ``cpu:0`` / ``cpu:1`` — a location torch's own CPU deserializer
    does not accept, so every multi-process CPU resume failed. Registered through torch's public
    hook, idempotent, and a no-op for every other location."""
    import torch.serialization as serialization

    if not _CPU_RANKS_REGISTERED:
        serialization.register_package(99, lambda obj: None, _cpu_rank_deserialize)
        _CPU_RANKS_REGISTERED.append(True)


def prepare_run_dir(run_dir: str | Path, key: str, *, fresh: bool = False) -> Path | None:
    """Return the last checkpoint of a run made with the same ``key``, or None.

    A run dir written with another key (changed params, another SFT model), or any run dir when
    ``fresh``, is emptied first: resuming it would silently mix two experiments. Under
    ``accelerate launch`` only the main process empties and marks the folder (two ranks removing
    the same tree race), and every rank waits for it before reading the last checkpoint.
    """
    run_dir = Path(run_dir)
    state = process_state()
    if state.is_main_process:
        marker = run_dir / FINGERPRINT_FILE
        if run_dir.exists():
            old = json.loads(marker.read_text()).get("key") if marker.exists() else None
            if fresh or old != key:
                reason = "resume is off" if fresh and old == key else f"another config ({old})"
                print(f"checkpoints in {run_dir}: {reason}; starting afresh")
                shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"key": key}) + "\n")
    state.wait_for_everyone()
    found = [c for c in checkpoints(run_dir) if (c / "trainer_state.json").exists()]
    return found[-1] if found else None


def judge_key(judge_cfg: dict | None) -> str | None:
    """What a judge's verdicts depend on beyond its config: for an offline judge, the content of
    its heads file (a re-fit behind the same path is a different judge)."""
    if not judge_cfg or judge_cfg.get("kind") != "offline":
        return None
    path = Path(judge_cfg.get("heads") or DEFAULT_HEADS)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def grpo_run_key(cfg: dict) -> str:
    """What a GRPO checkpoint depends on: the config, the judge's heads and the SFT model's run
    id (the number of processes too: it sets the global batch)."""
    keep = {**cfg, "grpo": {k: v for k, v in cfg["grpo"].items() if k != "resume"}}
    return fingerprint({"cfg": keep, "sft": read_policy_info(cfg["sft_dir"]).get("run_id"),
                        "judge": judge_key(cfg.get("judge"))})  # fmt: skip
