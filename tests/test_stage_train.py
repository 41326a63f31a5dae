"""The sft and grpo stages end to end: real `dvc repro`, real papermill, a tiny configuration.

As in test_stage_build_data.py, the pipeline files are copied into a fresh Git + DVC repository
under tmp_path. build_data loads a small file of short dialogues (``short_dialogues``): with the
offline builder's long prompts and replies a tiny policy trained for seconds never writes four
complete spans, and then the Rubric-ERL judge is never called and logs nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from short_dialogues import records, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).with_name("dvc"))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TINY = {"vocab_size": 600, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1,
        "intermediate_size": 64, "max_positions": 512}  # fmt: skip


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # One OpenMP thread: the tiny model gains nothing from two, and two threads on a 2-core
    # machine stall whenever anything else runs.
    env = {**os.environ, "KARDIA_PYTHON": sys.executable, "DVC_NO_ANALYTICS": "1",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=500)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("pipeline")
    for name in ("kardia", "notebooks", "scripts", "data/seed"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    write_jsonl(records(40), repo / "data/short.jsonl")
    params = yaml.safe_load((repo / "params.yaml").read_text())  # anchors come back expanded
    params["build_data"].update(source="data/short.jsonl", n_dialogues=40, dev_fraction=0.2,
                                test_fraction=0.1)  # fmt: skip
    params["policy"].update(backbone="tiny", finetune="full", history_exchanges=0,
                            max_seq_length=256, tiny=TINY)  # fmt: skip
    # ~60 steps teach the tiny policy the span format on these replies (a couple of seconds)
    params["sft"].update(max_steps=60, learning_rate=0.01, lr_scheduler="constant",
                         warmup_steps=0, batch_size=8, eval_prompts=8, max_new_tokens=32)  # fmt: skip
    params["grpo"].update(max_steps=2, batch_size=4, num_generations=2, save_steps=1,
                          max_completion_length=28, temperature=0.7, learning_rate=0.001,
                          warmup_steps=0, dev_prompts=4, max_new_tokens=28)  # fmt: skip
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert run(["git", "init", "-q"], repo).returncode == 0
    assert run([DVC, "init", "-q"], repo).returncode == 0
    return repo


@pytest.fixture(scope="module")
def first_run(repo) -> subprocess.CompletedProcess:
    result = run([DVC, "repro", "grpo"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def test_repro_grpo_runs_build_data_sft_and_grpo(repo, first_run):
    for stage in ("build_data", "sft", "grpo"):
        assert f"Running stage '{stage}'" in first_run.stdout
    for name in ("01_build_data", "02_sft", "03_grpo"):
        assert (repo / f"results/notebooks/{name}.ipynb").exists()
    assert not list((repo / "results/notebooks").glob("*.failed.ipynb"))


def test_the_sft_stage_saves_the_policy_its_log_and_a_dev_check(repo, first_run):
    import pandas as pd

    info = json.loads((repo / "models/sft/kardia_policy.json").read_text())
    assert info["stage"] == "sft" and info["tokenizer"] == "tiny"
    log = pd.read_csv(repo / "results/metrics/sft_log.csv")
    assert list(log["step"]) == list(range(1, 61)) and log["loss"].notna().all()
    summary = json.loads((repo / "results/metrics/sft.json").read_text())
    assert summary["steps"] == 60 and summary["run_id"] == info["run_id"]
    assert summary["dev"]["n"] == 8 and 0.0 <= summary["dev"]["format_compliance"] <= 1.0
    assert (repo / "results/figures/sft_loss.png").stat().st_size > 5000


def test_the_grpo_stage_logs_rewards_and_judge_and_keeps_the_best_checkpoint(repo, first_run):
    import pandas as pd

    info = json.loads((repo / "models/grpo/kardia_policy.json").read_text())
    assert info["stage"] == "grpo" and info["from_checkpoint"] in ("checkpoint-1", "checkpoint-2")
    log = pd.read_csv(repo / "results/metrics/grpo_log.csv")
    assert list(log["step"]) == [1, 2]
    for col in ("rewards/format_reward/mean", "rewards/emotion_reward/mean",
                "rewards/rubric_reward/mean", "reward", "completions/clipped_ratio",
                "judge/items", "judge/latency_s", "judge/failures", "judge/cache_hits"):  # fmt: skip
        assert col in log, col
    assert (log["judge/items"] > 0).all() and (log["judge/failures"] == 0).all()
    dev = pd.read_csv(repo / "results/metrics/grpo_dev.csv")
    assert list(dev["step"]) == [0, 1, 2] and dev["kept"].sum() == 1
    kept = dev[dev["kept"]].iloc[0]
    assert f"checkpoint-{kept['step']}" == info["from_checkpoint"]
    assert kept["total"] == dev[dev["step"] > 0]["total"].max()
    summary = json.loads((repo / "results/metrics/grpo.json").read_text())
    assert summary["steps"] == 2 and summary["kept_step"] == kept["step"]
    assert summary["dev_prompts"] == 4 and summary["resumed_from"] is None
    assert set(summary["trend"]) >= {"format", "emotion", "rubric", "reward"}
    assert (repo / "results/figures/grpo_rewards.png").stat().st_size > 5000
    assert [p.name for p in sorted((repo / "checkpoints/grpo").glob("checkpoint-*"))] == \
        ["checkpoint-1", "checkpoint-2"]  # fmt: skip


def test_a_second_repro_runs_nothing(repo, first_run):
    second = run([DVC, "repro", "grpo"], repo)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Running stage" not in second.stdout
    for stage in ("build_data", "sft", "grpo"):
        assert f"Stage '{stage}' didn't change, skipping" in second.stdout
