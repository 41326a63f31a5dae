"""What a training run prints and leaves behind: progress lines, its per-step log as CSV, the
reward trend, and the machine its step times came from."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from kardia.models import mixed_precision
from kardia.training.checkpoints import checkpoints


def machine_info(policy: dict) -> dict:
    """What a run's step times were measured on: the GPU or CPU model, the cores this process may
    use, and whether its products ran in bf16 (``policy.mixed_precision``)."""
    import platform

    import torch

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
