"""SFT and GRPO on two CPU processes under ``accelerate launch`` (gloo), through ``launch`` — the
path the paper profile takes on GPUs — on the tiny policy: one model trained by both ranks and
saved once, the checkpoint folder intact, and a run killed mid-way resumes from its last
checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kardia.models import load_policy, read_policy_info
from kardia.training.checkpoints import FINGERPRINT_FILE, checkpoints
from kardia.training.launch import launch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TINY = {"vocab_size": 600, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1,
        "intermediate_size": 64, "max_positions": 512}  # fmt: skip
POLICY = {"backbone": "tiny", "finetune": "full", "history_exchanges": 0, "max_seq_length": 256, "tiny": TINY}
TWO = {"num_processes": 2, "config_file": None, "gpus": None}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A working directory of its own: ``launch`` writes ``.cache/<stage>_launch`` there."""
    path = tmp_path_factory.mktemp("two_processes")
    before, threads = Path.cwd(), os.environ.get("OMP_NUM_THREADS")
    os.chdir(path)
    os.environ["OMP_NUM_THREADS"] = "1"  # two ranks on two cores
    yield path
    os.chdir(before)
    if threads is None:
        os.environ.pop("OMP_NUM_THREADS")
    else:
        os.environ["OMP_NUM_THREADS"] = threads


def sft_cfg(data_dir: Path, root: Path) -> dict:
    return {"seed": 0, "policy": POLICY, "launch": TWO, "data_dir": str(data_dir), "out_dir": str(root / "sft"),
            "work_dir": str(root / "sft_work"),
            "sft": {"learning_rate": 1e-2, "batch_size": 4, "max_steps": 8, "warmup_steps": 0,
                    "lr_scheduler": "constant"}}  # fmt: skip


def grpo_cfg(data_dir: Path, sft_dir: Path, run_dir: Path, heads: Path, **grpo) -> dict:
    return {"seed": 0, "policy": POLICY, "launch": TWO, "judge": {"kind": "offline", "heads": str(heads)},
            "data_dir": str(data_dir), "sft_dir": str(sft_dir),
            "grpo": {"rewards": {"format": 1 / 3, "emotion": 1 / 3, "rubric": 1 / 3}, "max_steps": 3,
                     "learning_rate": 1e-3, "batch_size": 4, "num_generations": 2, "max_completion_length": 16,
                     "temperature": 0.7, "warmup_steps": 0, "save_steps": 1, "checkpoint_dir": str(run_dir),
                     **grpo}}  # fmt: skip


@pytest.fixture(scope="module")
def sft(work, data_dir):
    cfg = sft_cfg(data_dir, work)
    return cfg, launch("sft", cfg)


def test_two_processes_train_one_sft_model_saved_once(sft, work):
    cfg, summary = sft
    assert summary["processes"] == 2 and summary["steps"] == 8
    assert summary["backend"] == "transformers"
    out = Path(cfg["out_dir"])
    assert read_policy_info(out)["stage"] == "sft"
    assert not out.with_name("sft.unmerged").exists()  # merged (moved) once, by one process
    assert len(list(out.glob("*.safetensors"))) == 1
    model, _ = load_policy(out, POLICY, trainable=False)
    assert sum(p.numel() for p in model.parameters()) == summary["parameters"]


def test_two_processes_grpo_keeps_one_intact_checkpoint_folder(sft, work, data_dir, judge_heads):
    cfg = grpo_cfg(data_dir, Path(sft[0]["out_dir"]), work / "grpo", judge_heads)
    summary = launch("grpo", cfg)
    assert summary["processes"] == 2 and summary["steps"] == 3 and summary["resumed_from"] is None
    run_dir = work / "grpo"
    assert [p.name for p in checkpoints(run_dir)] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    assert (run_dir / FINGERPRINT_FILE).exists()
    for c in checkpoints(run_dir):
        assert (c / "trainer_state.json").exists() and list(c.glob("*.safetensors"))
    state = json.loads((run_dir / "checkpoint-3/trainer_state.json").read_text())
    assert state["global_step"] == 3 and [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3]


def test_a_killed_two_process_grpo_run_resumes_from_its_last_checkpoint(sft, work, data_dir, judge_heads):
    run_dir = work / "killed"
    cfg = grpo_cfg(data_dir, Path(sft[0]["out_dir"]), run_dir, judge_heads, max_steps=12)
    (work / "killed.json").write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--multi_gpu",
           "-m", "kardia.training", "grpo", str(work / "killed.json")]  # what launch() runs
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while not (run_dir / "checkpoint-1/trainer_state.json").exists():
            assert proc.poll() is None, f"the run ended (code {proc.returncode}) before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.2)
    finally:  # every rank, mid-run (torchrun starts each rank in a session of its own)
        import psutil  # accelerate's dependency

        ranks = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
        for p in ranks:
            p.send_signal(signal.SIGKILL)
        proc.wait()
        psutil.wait_procs(ranks, timeout=30)
    done = [c for c in checkpoints(run_dir) if (c / "trainer_state.json").exists()]
    assert done and done[-1].name != "checkpoint-12"  # killed before the end
    summary = launch("grpo", cfg)
    assert summary["resumed_from"] == str(done[-1])
    assert summary["steps"] == 12 and summary["processes"] == 2
    assert checkpoints(run_dir)[-1].name == "checkpoint-12"
