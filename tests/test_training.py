"""Training: prompts, real SFT and Rubric-ERL (GRPO) runs on a tiny policy, resumable checkpoints,
the best-on-dev rule, and the launch helpers.

Every run is TRL for real on CPU: a Qwen2-style decoder with hidden size 32 and 2 layers, a
handful of steps, data from ``short_dialogues`` (short prompts and replies keep steps cheap).
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from short_dialogues import splits as short_splits
from transformers import TrainerCallback

from kardia.data import read_splits, write_splits
from kardia.generation import fold_system
from kardia.models import POLICY_FILE, SPAN_MARKERS, load_policy, read_policy_info
from kardia.prompts import prompt_rows, spread, trim_history
from kardia.rewards import build_rewards, emotion_reward, format_reward
from kardia.spans import render_spans
from kardia.training import arguments, launch, logs
from kardia.training import checkpoints as runs
from kardia.training.checkpoints import FINGERPRINT_FILE, checkpoints, fingerprint, prepare_run_dir
from kardia.training.grpo import run_grpo
from kardia.training.launch import serve
from kardia.training.logs import reward_trend, write_log
from kardia.training.selection import (
    DEV_EVAL_FILE,
    best_checkpoint,
    export_best,
    reward_table,
    score_checkpoints,
)
from kardia.training.sft import run_sft

TINY = {"vocab_size": 600, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1,
        "intermediate_size": 64, "max_positions": 512}  # fmt: skip
POLICY = {"backbone": "tiny", "finetune": "full", "history_exchanges": 0, "max_seq_length": 256,
          "tiny": TINY}  # fmt: skip
REWARDS = {"format": 1 / 3, "emotion": 1 / 3, "rubric": 1 / 3}
GEN = {"max_new_tokens": 28, "seed": 0, "progress": False}  # a short reply is 24 tokens


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # A model this small gains nothing from a second thread, and with two OpenMP threads on two
    # cores a step gets ~70x slower whenever another process holds one of them.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def turns(data_dir) -> dict[str, list[dict]]:
    return read_splits(data_dir, "turns")


def sft_config(data_dir: Path, root: Path, **sft) -> dict:
    return {
        "seed": 0,
        "policy": POLICY,
        "data_dir": str(data_dir),
        "out_dir": str(root / "sft"),
        "work_dir": str(root / "sft_work"),
        "sft": {"learning_rate": 5e-3, "batch_size": 4, "max_steps": 2, "warmup_steps": 0, **sft},
    }


JUDGE_HEADS: list = []  # the session's fitted heads (conftest.judge_heads), set by the fixture below


@pytest.fixture(scope="session", autouse=True)
def _fitted_judge(judge_heads):
    JUDGE_HEADS[:] = [judge_heads]


def grpo_config(data_dir: Path, sft_dir: Path, run_dir: Path, **grpo) -> dict:
    return {
        "seed": 0,
        "policy": POLICY,
        "judge": {"kind": "offline", "heads": str(JUDGE_HEADS[0])},
        "data_dir": str(data_dir),
        "sft_dir": str(sft_dir),
        "grpo": {
            "rewards": REWARDS, "max_steps": 2, "learning_rate": 1e-3, "batch_size": 4,
            "num_generations": 2, "max_completion_length": 28, "temperature": 0.7,
            "warmup_steps": 0, "save_steps": 1, "checkpoint_dir": str(run_dir), **grpo,
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def sft_run(data_dir, tmp_path_factory):
    cfg = sft_config(data_dir, tmp_path_factory.mktemp("sft2"))
    return cfg, run_sft(cfg)


@pytest.fixture(scope="module")
def sft_dir(data_dir, tmp_path_factory) -> Path:
    # GRPO's judge only sees replies with four complete spans, so GRPO starts from a policy that
    # has learned the format (~60 steps on the short replies; 2 steps leave it babbling).
    cfg = sft_config(data_dir, tmp_path_factory.mktemp("sft60"), max_steps=60,
                     learning_rate=1e-2, batch_size=8, lr_scheduler="constant")  # fmt: skip
    run_sft(cfg)
    return Path(cfg["out_dir"])


@pytest.fixture(scope="module")
def grpo_run(data_dir, sft_dir, tmp_path_factory):
    cfg = grpo_config(data_dir, sft_dir, tmp_path_factory.mktemp("grpo") / "run")
    return cfg, run_grpo(cfg)


def steps_logged(history: list[dict]) -> list[int]:
    return [h["step"] for h in history if "loss" in h]


# --- prompts ----------------------------------------------------------------------------------

SYSTEM = {"role": "system", "content": "be kind"}


def chat(n_exchanges: int) -> list[dict]:
    out = [SYSTEM]
    for i in range(n_exchanges):
        out += [{"role": "user", "content": f"u{i}"}, {"role": "assistant", "content": f"a{i}"}]
    return out + [{"role": "user", "content": "last"}]


@pytest.mark.parametrize("keep", [0, 1, 2])
def test_trim_history_keeps_system_last_user_turn_and_n_exchanges(keep):
    trimmed = trim_history(chat(3), keep)
    earlier = [m["content"] for m in trimmed[1:-1]]
    assert trimmed[0] == SYSTEM and trimmed[-1]["content"] == "last"
    assert earlier == [x for i in range(3 - keep, 3) for x in (f"u{i}", f"a{i}")]


def test_trim_history_none_keeps_all_and_negative_raises():
    assert trim_history(chat(3), None) == chat(3)
    assert trim_history(chat(3), 10) == chat(3)
    assert trim_history(chat(1)[1:], 0) == [{"role": "user", "content": "last"}]  # no system
    with pytest.raises(ValueError, match="history_exchanges"):
        trim_history(chat(3), -1)


def test_prompt_rows_filter_by_difficulty_and_keep_the_reward_columns(turns):
    train = turns["train"]
    easy, hard = (prompt_rows(train, difficulty=d) for d in ("easy", "hard"))
    assert len(easy) == sum(t["difficulty"] == "easy" for t in train) > 0
    assert len(hard) == sum(t["difficulty"] == "hard" for t in train) > 0
    assert len(prompt_rows(train)) == len(train)
    assert len(prompt_rows(train, limit=3)) == 3
    for row, turn in zip(hard, [t for t in train if t["difficulty"] == "hard"], strict=True):
        assert set(row) == {"prompt", "completion", "emotion", "person", "situation", "turn"}
        assert (row["emotion"], row["person"], row["situation"], row["turn"]) == \
            (turn["emotion"], turn["person"], turn["situation"], turn["turn"])  # fmt: skip
        assert row["completion"] == turn["completion"]


def test_prompt_rows_trim_history_and_fold_the_system_message(turns):
    second = next(t for t in turns["train"] if t["turn"] == 1)  # system, user, assistant, user
    row = prompt_rows([second], history_exchanges=0)[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][-1] == second["prompt"][-1]
    folded = prompt_rows([second], history_exchanges=0, system_role=False)[0]
    assert folded["prompt"] == fold_system(row["prompt"])
    assert [m["role"] for m in folded["prompt"]] == ["user"]
    assert folded["prompt"][0]["content"].startswith(second["prompt"][0]["content"])


def test_spread_is_seeded_order_preserving_and_none_returns_all():
    rows = [{"i": i} for i in range(20)]
    a, b = spread(rows, 5, seed=1), spread(rows, 5, seed=1)
    assert a == b and len(a) == 5
    assert [r["i"] for r in a] == sorted(r["i"] for r in a)
    assert spread(rows, 5, seed=2) != a
    assert spread(rows, None, 0) == rows and spread(rows, 50, 0) == rows
    assert spread(rows, 20, 0) is not rows  # a copy, never the caller's list


def _turn_rows(dialogues: int = 20, turns: int = 5) -> list[dict]:
    return [{"i": d * turns + t, "turn": t} for d in range(dialogues) for t in range(turns)]


def test_spread_reserves_a_share_for_first_turns():
    rows = _turn_rows()  # 1 in 5 is a first turn
    half = spread(rows, 16, seed=0, first_turn_share=0.5)
    assert len(half) == 16 and sum(r["turn"] == 0 for r in half) == 8
    assert [r["i"] for r in half] == sorted(r["i"] for r in half)  # input order kept
    assert half == spread(rows, 16, seed=0, first_turn_share=0.5)
    assert sum(r["turn"] == 0 for r in spread(rows, 16, seed=0, first_turn_share=0.0)) == 0
    # more first turns asked for than exist: all of them, the rest from later turns
    most = spread(rows, 40, seed=0, first_turn_share=1.0)
    assert len(most) == 40 and sum(r["turn"] == 0 for r in most) == 20
    with pytest.raises(ValueError, match="first_turn_share"):
        spread(rows, 16, seed=0, first_turn_share=1.5)


def test_sft_sample_takes_max_steps_batches_with_the_first_turn_share():
    from kardia.training.sft import sft_sample

    rows = _turn_rows()
    sft = {"max_steps": 4, "batch_size": 4, "gradient_accumulation_steps": 1, "first_turn_share": 0.5}
    picked = sft_sample(rows, sft, seed=0)
    assert len(picked) == 16 and sum(r["turn"] == 0 for r in picked) == 8
    assert sum(r["turn"] == 0 for r in sft_sample(rows, {**sft, "first_turn_share": None}, 0)) < 8
    assert sft_sample(rows, {**sft, "max_steps": None}, seed=0) == rows  # epochs: every easy turn


def test_grpo_sample_takes_the_prompts_of_max_steps_with_the_first_turn_share():
    from kardia.training.grpo import grpo_sample

    rows = _turn_rows()
    # 16 completions a step, 4 per prompt: 4 prompts a step, 20 over 5 steps
    grpo = {"max_steps": 5, "batch_size": 16, "gradient_accumulation_steps": 1,
            "num_generations": 4, "first_turn_share": 0.5}  # fmt: skip
    picked = grpo_sample(rows, grpo, seed=0)
    assert len(picked) == 20 and sum(r["turn"] == 0 for r in picked) == 10
    assert grpo_sample(rows, grpo, seed=1) != picked  # the training seed draws it
    assert len(grpo_sample(rows, {**grpo, "gradient_accumulation_steps": 2}, 0)) == 40
    assert sum(r["turn"] == 0 for r in grpo_sample(rows, {**grpo, "first_turn_share": None}, 0)) < 10
    assert grpo_sample(rows, {**grpo, "max_steps": None}, seed=0) == rows  # epochs: every hard turn


# --- fingerprints and run dirs ----------------------------------------------------------------


def test_fingerprint_ignores_key_order_and_sees_every_value():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert fingerprint({"a": 1e-3}) != fingerprint({"a": 1e-4})
    assert len(fingerprint({})) == 16 and int(fingerprint({}), 16) >= 0


def test_checkpoints_sorts_by_step_number(tmp_path):
    for name in ("checkpoint-10", "checkpoint-9", "checkpoint-100", "checkpoint-x", "other"):
        (tmp_path / name).mkdir()
    assert [p.name for p in checkpoints(tmp_path)] == \
        ["checkpoint-9", "checkpoint-10", "checkpoint-100"]  # fmt: skip
    assert checkpoints(tmp_path / "missing") == []


def make_checkpoint(run_dir: Path, step: int, state: bool = True) -> Path:
    path = run_dir / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if state:
        (path / "trainer_state.json").write_text(json.dumps({"log_history": [{"step": step}]}))
    return path


def test_prepare_run_dir_resumes_the_same_key_and_empties_another(tmp_path):
    run = tmp_path / "run"
    assert prepare_run_dir(run, "k1") is None  # created, nothing to resume
    assert json.loads((run / FINGERPRINT_FILE).read_text()) == {"key": "k1"}
    make_checkpoint(run, 2)
    make_checkpoint(run, 4)
    make_checkpoint(run, 6, state=False)  # a save interrupted before its trainer state
    assert prepare_run_dir(run, "k1") == run / "checkpoint-4"

    assert prepare_run_dir(run, "k2") is None
    assert checkpoints(run) == []
    assert json.loads((run / FINGERPRINT_FILE).read_text()) == {"key": "k2"}


def test_prepare_run_dir_empties_a_dir_without_a_fingerprint(tmp_path):
    run = tmp_path / "run"
    make_checkpoint(run, 1)
    assert prepare_run_dir(run, "k") is None and checkpoints(run) == []


def test_log_history_reads_the_last_checkpoint(tmp_path):
    make_checkpoint(tmp_path, 1)
    make_checkpoint(tmp_path, 3)
    assert logs.log_history(tmp_path) == [{"step": 3}]
    assert logs.log_history(tmp_path / "missing") == []


def test_log_history_skips_a_checkpoint_whose_save_was_interrupted(tmp_path):
    make_checkpoint(tmp_path, 2)
    make_checkpoint(tmp_path, 4, state=False)
    assert logs.log_history(tmp_path) == [{"step": 2}]


# --- SFT --------------------------------------------------------------------------------------


def test_sft_saves_a_reloadable_policy_and_reports_its_steps(sft_run, turns):
    cfg, summary = sft_run
    out = Path(cfg["out_dir"])
    info = read_policy_info(out)
    assert info["stage"] == "sft" and info["tokenizer"] == "tiny" and info["backbone"] == "tiny"
    assert info["run_id"] == summary["run_id"] and info["finetune"] == "full"
    assert summary["steps"] == 2
    assert [h["step"] for h in summary["log_history"] if "loss" in h] == [1, 2]
    assert all(h["loss"] > 0 for h in summary["log_history"] if "loss" in h)
    n_easy = sum(t["difficulty"] == "easy" for t in turns["train"])
    assert n_easy > 8
    assert summary["train_turns"] == min(n_easy, 2 * 4)  # max_steps x batch: only what is seen
    assert summary["trainable"] == summary["parameters"] > 0  # full fine-tuning

    model, tokenizer = load_policy(out, POLICY, trainable=False)
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2
    for marker in SPAN_MARKERS:
        ids = tokenizer(marker, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] not in tokenizer.all_special_ids
    text = render_spans("u", "r", "sad", "resp") + "<|im_end|>"
    decoded = tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True)
    assert decoded == render_spans("u", "r", "sad", "resp")


def test_sft_on_all_easy_turns_when_max_steps_covers_them(data_dir, turns, tmp_path):
    cfg = sft_config(data_dir, tmp_path, max_steps=1, batch_size=64)
    summary = run_sft(cfg)
    assert summary["train_turns"] == sum(t["difficulty"] == "easy" for t in turns["train"])
    assert summary["steps"] == 1


def test_sft_says_so_when_max_seq_length_cuts_off_every_reply(data_dir, tmp_path):
    cfg = sft_config(data_dir, tmp_path)
    cfg["policy"] = {**POLICY, "max_seq_length": 40}  # shorter than any prompt + reply
    with pytest.raises(ValueError, match="max_seq_length"):
        run_sft(cfg)


def test_sft_loss_covers_the_assistant_turn_only(sft_run, turns, tmp_path):
    # The trainer run_sft builds, on the rows it builds: labels are -100 on the prompt and equal
    # the input ids on the reply (and its end-of-turn token).
    from datasets import Dataset
    from trl import SFTTrainer

    cfg, _ = sft_run
    model, tokenizer = load_policy(cfg["out_dir"], POLICY, trainable=False)
    rows = prompt_rows(turns["train"], difficulty="easy", history_exchanges=0)[:4]
    trainer = SFTTrainer(
        model=model,
        args=arguments.sft_args(cfg, str(tmp_path)),
        train_dataset=Dataset.from_list(
            [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
        ),  # fmt: skip
        processing_class=tokenizer,
    )
    examples = list(trainer.train_dataset)
    assert len(examples) == len(rows)
    for row, ex in zip(rows, examples, strict=True):
        ids, labels = ex["input_ids"], ex["labels"]
        start = next(i for i, v in enumerate(labels) if v != -100)
        assert labels[start:] == ids[start:]
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False,
                                               add_generation_prompt=True)  # fmt: skip
        assert tokenizer.decode(ids[:start]) == prompt
        assert tokenizer.decode(ids[start:]).strip() == row["completion"][0]["content"] + \
            "<|im_end|>"  # fmt: skip


def test_sft_without_easy_turns_raises(tmp_path):
    splits = short_splits()
    for recs in splits.values():
        for r in recs:
            r["verdicts"] = [["FAIL"]] * len(r["verdicts"])
            r["difficulty"] = "hard"
    write_splits(splits, tmp_path / "built")
    with pytest.raises(ValueError, match="no easy train turns"):
        run_sft(sft_config(tmp_path / "built", tmp_path))


# --- GRPO -------------------------------------------------------------------------------------


def test_grpo_logs_every_reward_and_the_judge_per_step(grpo_run):
    _, summary = grpo_run
    assert summary["steps"] == 2 and summary["resumed_from"] is None
    assert summary["backend"] == "transformers" and summary["rollout"] == "hf"
    assert summary["judge"].startswith("OfflineJudge(") and "minilm.pkl" in summary["judge"]
    steps = [h for h in summary["log_history"] if "loss" in h]
    assert [h["step"] for h in steps] == [1, 2]
    for h in steps:
        for key in ("rewards/format_reward/mean", "rewards/emotion_reward/mean",
                    "rewards/rubric_reward/mean", "reward", "completions/clipped_ratio",
                    "judge/items", "judge/latency_s", "judge/failures", "judge/cache_hits"):  # fmt: skip
            assert key in h, key
        assert 0 < h["judge/items"] <= 4 and h["judge/failures"] == 0 and h["judge/latency_s"] > 0
        assert 0.0 <= h["rewards/rubric_reward/mean"] <= 1.0
        total = sum(h[f"rewards/{n}_reward/mean"] for n in ("format", "emotion", "rubric")) / 3
        assert h["reward"] == pytest.approx(total, abs=1e-5)  # TRL's weighted sum, as configured
    stats = summary["judge_stats"]
    assert stats["items"] == sum(h["judge/items"] for h in steps) and stats["failures"] == 0


def test_grpo_saves_a_checkpoint_per_save_step_and_a_fingerprint(grpo_run):
    cfg, _ = grpo_run
    run_dir = Path(cfg["grpo"]["checkpoint_dir"])
    assert [p.name for p in checkpoints(run_dir)] == ["checkpoint-1", "checkpoint-2"]
    for c in checkpoints(run_dir):
        assert (c / "trainer_state.json").exists() and (c / "model.safetensors").exists()
    key = json.loads((run_dir / FINGERPRINT_FILE).read_text())["key"]
    assert key == runs.grpo_run_key(cfg)


def test_grpo_batch_must_be_a_multiple_of_num_generations(data_dir, sft_dir, tmp_path):
    cfg = grpo_config(data_dir, sft_dir, tmp_path / "run", batch_size=3)
    with pytest.raises(ValueError, match="multiple of"):
        run_grpo(cfg)


def test_grpo_run_key_follows_the_config_and_the_sft_model(grpo_run, tmp_path):
    cfg, _ = grpo_run
    key = runs.grpo_run_key(cfg)
    assert runs.grpo_run_key(json.loads(json.dumps(cfg))) == key
    other = {**cfg, "grpo": {**cfg["grpo"], "learning_rate": 2e-3}}
    assert runs.grpo_run_key(other) != key
    # another SFT model (a new run id) is another starting point
    shutil.copytree(cfg["sft_dir"], tmp_path / "sft")
    info = read_policy_info(tmp_path / "sft")
    (tmp_path / "sft" / POLICY_FILE).write_text(json.dumps({**info, "run_id": "another"}))
    assert runs.grpo_run_key({**cfg, "sft_dir": str(tmp_path / "sft")}) != key


def test_a_refitted_judge_behind_the_same_path_is_another_run(grpo_run, tmp_path):
    """Re-fitting the judge's heads (same file name, new content) must not resume checkpoints
    trained on the old reward, nor reuse their dev scores."""
    cfg, _ = grpo_run
    heads = tmp_path / "minilm.pkl"
    shutil.copy(cfg["judge"]["heads"], heads)
    moved = {**cfg, "judge": {**cfg["judge"], "heads": str(heads)}}
    before = runs.grpo_run_key(moved)
    heads.write_bytes(heads.read_bytes() + b"refit")
    assert runs.grpo_run_key(moved) != before
    assert runs.judge_key({"kind": "openai", "model": "m"}) is None


def test_grpo_run_key_ignores_the_resume_switch(grpo_run):
    cfg, _ = grpo_run
    toggled = {**cfg, "grpo": {**cfg["grpo"], "resume": False}}
    assert runs.grpo_run_key(toggled) == runs.grpo_run_key(cfg)


class Crash(Exception):
    pass


class CrashAt(TrainerCallback):
    """Stops training with an exception at the end of one step, like a killed job."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Crash(f"crash at step {self.step}")


class OutageAfter(TrainerCallback):
    """Takes the judge server down once ``step`` optimiser steps are done."""

    def __init__(self, step: int, down: dict):
        self.step, self.down = step, down

    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= self.step:
            self.down["now"] = True


def test_a_judge_outage_mid_grpo_stops_training_before_a_failed_judgement_counts(data_dir, sft_dir, tmp_path):
    from kardia.testing import ChatServer, Reply, judgement_json

    down = {"now": False}

    def script(request, seen):  # a real judge endpoint on loopback that goes down mid-run
        return Reply(status=503, body="down") if down["now"] else Reply(judgement_json(4))

    with ChatServer(script) as srv:
        cfg = grpo_config(data_dir, sft_dir, tmp_path / "run", max_steps=8, save_steps=1)
        # max_failure_rate 0.01 over at least 100 judgements: the second failure stops training
        cfg["judge"] = {"kind": "openai", "base_url": srv.base_url, "model": "judge", "max_retries": 0,
                        "timeout_s": 5, "concurrency": 4, "cache_path": str(tmp_path / "judge.sqlite"),
                        "max_failure_rate": 0.01}  # fmt: skip
        with pytest.raises(RuntimeError, match=r"rubric reward at step (\d+), stopped before a failed judgement") as err:
            run_grpo(cfg, callbacks=[OutageAfter(2, down)])
        served = srv.requests
    stopped = int(err.value.args[0].split("at step ")[1].split(",")[0])
    assert stopped >= 3 and served > 0  # judged normally, then stopped at the first step that failed
    # no update was made from the failing step: its checkpoint, and any later one, does not exist
    assert [p.name for p in checkpoints(tmp_path / "run")] == [f"checkpoint-{s}" for s in range(1, stopped)]


def test_an_interrupted_grpo_run_resumes_from_its_last_checkpoint(data_dir, sft_dir, tmp_path):
    cfg = grpo_config(data_dir, sft_dir, tmp_path / "run", max_steps=4, save_steps=2)
    with pytest.raises(Crash, match="crash at step 3"):
        run_grpo(cfg, callbacks=[CrashAt(3)])
    run_dir = tmp_path / "run"
    assert [p.name for p in checkpoints(run_dir)] == ["checkpoint-2"]

    summary = run_grpo(cfg)
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert summary["steps"] == 4
    assert steps_logged(summary["log_history"]) == [1, 2, 3, 4]
    assert [p.name for p in checkpoints(run_dir)] == ["checkpoint-2", "checkpoint-4"]

    # another learning rate is another experiment: its checkpoints must not mix with these
    changed = grpo_config(data_dir, sft_dir, run_dir, max_steps=1, save_steps=1,
                          learning_rate=2e-3)  # fmt: skip
    summary = run_grpo(changed)
    assert summary["resumed_from"] is None and summary["steps"] == 1
    assert [p.name for p in checkpoints(run_dir)] == ["checkpoint-1"]

    # resume: false starts afresh even from checkpoints of the very same config (the second run)
    changed["grpo"]["resume"] = False
    for _ in range(2):
        (run_dir / "marker").write_text("from the run before")
        summary = run_grpo(changed)
        assert summary["resumed_from"] is None and summary["steps"] == 1
        assert not (run_dir / "marker").exists()
        assert [p.name for p in checkpoints(run_dir)] == ["checkpoint-1"]


# --- the best checkpoint on dev ---------------------------------------------------------------


@pytest.fixture(scope="module")
def dev_rows(turns) -> list[dict]:
    rows = prompt_rows(turns["dev"], difficulty="hard", history_exchanges=0)
    assert rows
    return spread(rows, 4, seed=0)


@pytest.fixture(scope="module")
def scored(grpo_run, dev_rows, offline_judge):
    cfg, _ = grpo_run
    funcs, weights = build_rewards(REWARDS, offline_judge)
    return score_checkpoints(cfg, dev_rows, funcs, weights, GEN)


def cache_files(run_dir: Path) -> list[Path]:
    return [run_dir / f"sft_{DEV_EVAL_FILE}"] + [c / DEV_EVAL_FILE for c in checkpoints(run_dir)]


def test_score_checkpoints_scores_the_sft_model_as_step_0_and_each_checkpoint(grpo_run, scored):
    cfg, _ = grpo_run
    assert [s["step"] for s in scored] == [0, 1, 2]
    assert scored[0]["checkpoint"] == cfg["sft_dir"]
    assert Path(scored[2]["checkpoint"]).name == "checkpoint-2"
    for s in scored:
        assert set(s) == {"step", "checkpoint", "format", "emotion", "rubric", "total", "unscored"}
        assert s["unscored"] == 0
        assert all(0.0 <= s[k] <= 1.0 for k in ("format", "emotion", "rubric", "total"))
        # the offline judge never fails, so the total is the weighted sum of the means
        assert s["total"] == pytest.approx((s["format"] + s["emotion"] + s["rubric"]) / 3)
    assert scored[0]["format"] > 0  # the SFT policy writes the four spans


def test_score_checkpoints_reads_its_cache_until_the_dev_rows_change(
    grpo_run, scored, dev_rows, offline_judge
):
    cfg, _ = grpo_run
    funcs, weights = build_rewards(REWARDS, offline_judge)
    files = cache_files(Path(cfg["grpo"]["checkpoint_dir"]))
    assert all(f.exists() for f in files)
    before = {f: (f.stat().st_mtime_ns, f.read_text()) for f in files}
    assert score_checkpoints(cfg, dev_rows, funcs, weights, GEN) == scored
    assert {f: (f.stat().st_mtime_ns, f.read_text()) for f in files} == before  # not rescored

    fewer = score_checkpoints(cfg, dev_rows[:2], funcs, weights, GEN)
    assert [s["step"] for s in fewer] == [0, 1, 2]
    keys = {json.loads(before[f][1])["key"] for f in files}
    assert len(keys) == 1
    assert all(json.loads(f.read_text())["key"] not in keys for f in files)  # rescored
    other_gen = score_checkpoints(cfg, dev_rows, funcs, weights, {**GEN, "max_new_tokens": 8})
    assert all(s["format"] == 0 for s in other_gen)  # 8 tokens cannot hold four spans
    assert score_checkpoints(cfg, dev_rows, funcs, weights, GEN) == scored


def test_best_checkpoint_takes_the_highest_total_after_step_0_and_the_earlier_on_ties():
    def s(step, total):
        return {"step": step, "total": total}

    assert best_checkpoint([s(0, 0.9), s(1, 0.2), s(2, 0.5), s(3, 0.4)]) == s(2, 0.5)
    assert best_checkpoint([s(0, 0.1), s(2, 0.5), s(4, 0.5), s(6, 0.3)]) == s(2, 0.5)
    assert best_checkpoint([s(4, 0.5), s(2, 0.5)]) == s(2, 0.5)  # whatever the input order
    with pytest.raises(ValueError, match="no GRPO checkpoint"):
        best_checkpoint([s(0, 1.0)])
    with pytest.raises(ValueError):
        best_checkpoint([])


def test_export_best_writes_a_loadable_policy_from_the_kept_checkpoint(grpo_run, scored, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    cfg, _ = grpo_run
    best = best_checkpoint(scored)
    out = export_best(best, cfg, tmp_path / "grpo")
    assert out == tmp_path / "grpo" and not (tmp_path / "grpo.tmp").exists()
    info = json.loads((out / POLICY_FILE).read_text())
    assert info["from_checkpoint"] == Path(best["checkpoint"]).name
    assert info["stage"] == "grpo" and info["dev_total"] == best["total"]
    assert (
        info["tokenizer"] == "tiny" and info["run_id"] != read_policy_info(cfg["sft_dir"])["run_id"]
    )
    model, tokenizer = load_policy(out, POLICY, trainable=False)
    kept = AutoModelForCausalLM.from_pretrained(best["checkpoint"])
    ids = torch.tensor([tokenizer("I miss him so much.")["input_ids"]])
    assert torch.equal(model(ids).logits, kept(ids).logits)
    # exporting again replaces the folder
    assert export_best(scored[1], cfg, out) == out
    assert read_policy_info(out)["from_checkpoint"] == "checkpoint-1"


# --- rewards on dev and the training log ------------------------------------------------------


def dev_row(emotion: str) -> dict:
    return {"prompt": [{"role": "user", "content": "My dog died."}], "emotion": emotion,
            "person": "MBTI: INFP", "situation": "My dog died."}  # fmt: skip


def not_for_the_first(completions, **kwargs):
    """A reward that does not apply to the first completion (TRL's None)."""
    return [None] + [0.5] * (len(completions) - 1)


def test_reward_table_means_each_reward_and_the_weighted_total():
    completions = [
        render_spans("They lost a pet.", "Grief.", "Sad", "I am so sorry."),  # right emotion
        render_spans("They lost a pet.", "Grief.", "proud", "Well done."),  # wrong emotion
        "<|emotion_begin|>sad oops",  # garbage
    ]
    rows = [dev_row("sad")] * 3
    table = reward_table(completions, rows, [format_reward, emotion_reward], [0.5, 0.25])
    assert table["format"] == pytest.approx(2 / 3) and table["emotion"] == pytest.approx(1 / 3)
    assert table["total"] == pytest.approx((0.75 + 0.5 + 0.0) / 3)

    table = reward_table(completions, rows, [format_reward, not_for_the_first], [1.0, 2.0])
    assert table["not_for_the_first"] == 0.5  # the None is left out of the mean
    assert table["total"] == pytest.approx((1.0 + 2.0 + 1.0) / 3)
    assert math.isnan(reward_table([], [], [format_reward], [1.0])["total"])


def test_reward_table_with_the_rubric_judge(offline_judge):
    completions = [render_spans("They lost a pet.", "Grief.", "sad",
                                "I am so sorry about your dog. That must hurt."), "garbage"]  # fmt: skip
    funcs, weights = build_rewards(REWARDS, offline_judge)
    table = reward_table(completions, [dev_row("sad")] * 2, funcs, weights)
    assert 0.0 < table["rubric"] <= 0.5  # the garbage reply scores 0 and is never judged
    assert table["total"] == pytest.approx((table["format"] + table["emotion"]
                                            + table["rubric"]) / 3)  # fmt: skip


def test_reward_trend_compares_the_first_and_last_quarter():
    import pandas as pd

    log = pd.DataFrame({
        "step": range(1, 9),
        "loss": [1.0] * 8,
        "rewards/format_reward/mean": [0.0, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 1.0],
        "rewards/format_reward/std": [0.1] * 8,
        "rewards/rubric_reward/mean": [0.5] * 8,
        "reward": [0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4],
        "judge/score_mean": [0.6, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        "completions/clipped_ratio": [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0],
    })  # fmt: skip
    trend = reward_trend(log)
    assert set(trend) == {"format", "rubric", "reward", "judge/score_mean",
                          "completions/clipped_ratio"}  # fmt: skip
    assert trend["format"] == {"first": 0.1, "last": 0.9, "change": 0.8}
    assert trend["rubric"] == {"first": 0.5, "last": 0.5, "change": 0.0}
    assert trend["completions/clipped_ratio"]["change"] == -1.0
    assert trend["judge/score_mean"]["first"] == 0.5
    short = reward_trend(log.head(3))  # fewer than four steps: one step at each end
    assert short["format"] == {"first": 0.0, "last": 0.4, "change": 0.4}


def test_write_log_has_one_row_per_step(tmp_path):
    import pandas as pd

    history = [
        {"loss": 3.0, "reward": 0.1, "step": 1},
        {"loss": 2.0, "reward": 0.2, "step": 2},
        {"loss": 2.5, "reward": 0.3, "step": 2},  # the same step again after a resume
        {"loss": 1.0, "reward": 0.4, "step": 3},
        {"train_runtime": 9.0, "train_loss": 2.0, "step": 3},
        {"note": "no step"},
    ]
    path = write_log(history, tmp_path / "metrics" / "log.csv")
    log = pd.read_csv(path)
    assert list(log["step"]) == [1, 2, 3]
    assert list(log["loss"]) == [3.0, 2.5, 1.0]  # the later entry of a step wins
    assert "train_runtime" not in log and "train_loss" not in log and "note" not in log
    assert not path.with_suffix(".tmp").exists()


def test_write_log_of_a_real_run(grpo_run, tmp_path):
    import pandas as pd

    _, summary = grpo_run
    log = pd.read_csv(write_log(summary["log_history"], tmp_path / "grpo_log.csv"))
    assert list(log["step"]) == [1, 2]
    assert {"reward", "judge/items", "rewards/rubric_reward/mean"} <= set(log.columns)


# --- launching --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(60)
def test_serve_runs_the_block_while_the_server_answers_then_stops_it(tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with serve(cmd, f"http://127.0.0.1:{port}/", timeout_s=30, poll_s=0.2) as proc:
        assert proc.poll() is None
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.status == 200
    assert proc.poll() is not None  # terminated and reaped


@pytest.mark.timeout(60)
def test_serve_fails_fast_with_the_exit_code_of_a_dead_server():
    cmd = [sys.executable, "-c", "import os; raise SystemExit(int(os.environ['KARDIA_CODE']))"]
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="code 3"):
        with serve(cmd, f"http://127.0.0.1:{free_port()}/", env={"KARDIA_CODE": "3"},
                   timeout_s=30, poll_s=0.2):  # fmt: skip
            pytest.fail("the block must not run")
    assert time.monotonic() - start < 20


@pytest.mark.timeout(60)
def test_serve_times_out_on_a_server_that_never_answers(tmp_path):
    # listens (connections are accepted by the kernel) but never reads or replies
    port = free_port()
    pid_file = tmp_path / "pid"
    code = (f"import os, socket, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
            f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)")  # fmt: skip
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="did not answer"):
        with serve([sys.executable, "-c", code], f"http://127.0.0.1:{port}/",
                   timeout_s=1, poll_s=0.2):  # fmt: skip
            pytest.fail("the block must not run")
    assert time.monotonic() - start < 20
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists()  # terminated and reaped, not left running


def test_rollout_server_is_a_no_op_without_cuda(no_cuda):
    cfg = {"sft_dir": "models/sft",
           "grpo": {"vllm_mode": "server", "vllm_server_gpus": "0"}}  # fmt: skip
    with launch.rollout_server(cfg) as proc:
        assert proc is None
    with launch.rollout_server({"grpo": {}}) as proc:
        assert proc is None


def test_launch_with_one_process_runs_in_this_process(monkeypatch):
    seen = []
    monkeypatch.setitem(launch.RUNNERS, "sft", lambda cfg: seen.append(cfg) or {"ok": 1})
    cfg = {"launch": {"num_processes": 1}, "x": 1}
    assert launch.launch("sft", cfg) == {"ok": 1}
    assert launch.launch("sft", {"x": 2}) == {"ok": 1}  # no launch section: one process
    assert seen == [cfg, {"x": 2}]


@pytest.mark.parametrize("argv", [[], ["sft"], ["train", "cfg.json"], ["sft", "a", "b", "c"]])
def test_main_with_bad_arguments_returns_2(argv, capsys):
    assert launch.main(argv) == 2
    assert "python -m kardia.training" in capsys.readouterr().err


def test_main_runs_the_stage_and_writes_the_summary_on_rank_0(monkeypatch, tmp_path):
    monkeypatch.setitem(launch.RUNNERS, "grpo", lambda cfg: {"got": cfg, "path": tmp_path})
    (tmp_path / "cfg.json").write_text(json.dumps({"seed": 3}))
    monkeypatch.delenv("RANK", raising=False)
    assert launch.main(["grpo", str(tmp_path / "cfg.json"), str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text()) == \
        {"got": {"seed": 3}, "path": str(tmp_path)}  # fmt: skip
    monkeypatch.setenv("RANK", "1")
    assert launch.main(["grpo", str(tmp_path / "cfg.json"), str(tmp_path / "s1.json")]) == 0
    assert not (tmp_path / "s1.json").exists()


def test_python_m_kardia_training_with_no_arguments_exits_2():
    out = subprocess.run([sys.executable, "-m", "kardia.training"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "summary.json" in out.stderr


def test_compact_prompt_style_rebuilds_the_system_message_from_the_turn():
    from kardia.prompts import prompt_args, prompt_rows

    turn = {"prompt": [{"role": "system", "content": "a long stored system message"},
                       {"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"},
                       {"role": "user", "content": "I lost my keys."}],
            "completion": [{"role": "assistant", "content": "x"}], "emotion": "annoyed",
            "person": "MBTI: INTP\nAbout: A coder. Likes tea.", "situation": "Keys gone."}  # fmt: skip
    args = prompt_args({"history_exchanges": 0, "prompt_style": "compact"})
    (row,) = prompt_rows([turn], **args)
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert "INTP; A coder." in row["prompt"][0]["content"]
    assert "Situation: Keys gone." in row["prompt"][0]["content"]
    (full,) = prompt_rows([turn], **prompt_args({"history_exchanges": None}))
    assert full["prompt"] == turn["prompt"]  # the default keeps the stored prompt
    with pytest.raises(ValueError, match="prompt_style"):
        prompt_rows([turn], prompt_style="short")


@pytest.mark.parametrize("style", ["compact", "full"])
def test_keep_opening_brings_the_dropped_first_user_message_back(style):
    from kardia.prompts import dropped_opening, prompt_args, prompt_rows

    opening = "I need to vent. Keys gone. It has left me furious."
    turn = {"prompt": [{"role": "system", "content": "stored\n\nSituation: Keys gone."},
                       {"role": "user", "content": opening}, {"role": "assistant", "content": "a"},
                       {"role": "user", "content": "Still looking."}],
            "completion": [{"role": "assistant", "content": "x"}], "emotion": "furious",
            "person": "MBTI: INTP\nAbout: A coder.", "situation": "Keys gone."}  # fmt: skip
    policy = {"history_exchanges": 0, "prompt_style": style, "keep_opening": True}
    (row,) = prompt_rows([turn], **prompt_args(policy))
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][0]["content"].endswith("Their first message: " + opening)
    assert "Situation:" not in row["prompt"][0]["content"]  # the opening quotes it
    assert row["prompt"][1]["content"] == "Still looking."
    (off,) = prompt_rows([turn], **prompt_args({**policy, "keep_opening": False}))
    assert opening not in off["prompt"][0]["content"]
    # nothing to bring back: a first turn, or a budget that still reaches the opening
    assert dropped_opening(turn["prompt"][:2], 0) is None
    assert dropped_opening(turn["prompt"], 1) is None and dropped_opening(turn["prompt"], None) is None
    assert dropped_opening(turn["prompt"], 0) == opening
    (kept,) = prompt_rows([turn], **prompt_args({**policy, "history_exchanges": 1}))
    assert "Their first message" not in kept["prompt"][0]["content"]
    assert kept["prompt"][1]["content"] == opening


def test_machine_info_names_the_device_the_step_times_came_from():
    from kardia.training.logs import machine_info

    info = machine_info({"mixed_precision": "no"})
    assert info["device"] and isinstance(info["device"], str) and info["cores"] >= 1
    assert info["bf16"] is False


@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_trainer_args_are_built_before_the_model_loads(stage, data_dir, sft_dir, tmp_path, monkeypatch):
    # DeepSpeed ZeRO-3 partitions weights at load time only when the TrainingArguments exist then
    from kardia.training import grpo as grpo_module
    from kardia.training import sft as sft_module

    module = sft_module if stage == "sft" else grpo_module
    build, load = ("sft_args", "create_policy") if stage == "sft" else ("grpo_args", "load_policy")
    order = []
    real = getattr(module, build)
    monkeypatch.setattr(module, build, lambda *a, **k: order.append("args") or real(*a, **k))

    def no_model(*a, **k):
        order.append("model")
        raise RuntimeError("stop here")

    monkeypatch.setattr(module, load, no_model)
    cfg = (sft_config(data_dir, tmp_path) if stage == "sft" else grpo_config(data_dir, sft_dir, tmp_path / "run"))
    with pytest.raises(RuntimeError, match="stop here"):
        getattr(module, f"run_{stage}")(cfg)
    assert order == ["args", "model"]


def test_run_configs_take_the_params_sections_whole_and_refuse_unknown_keys():
    import yaml

    from kardia.training import grpo as grpo_module
    from kardia.training import sft as sft_module

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    cfg = sft_module.run_config(params["sft"], policy=params["policy"], seed=3)
    assert cfg["sft"]["learning_rate"] == params["sft"]["learning_rate"] and cfg["seed"] == 3
    assert cfg["out_dir"] == params["sft"]["out_dir"] and cfg["launch"] == params["sft"]["launch"]
    cfg = grpo_module.run_config(params["grpo"], policy=params["policy"], judge=params["judge"],
                                 rewards=params["rewards"], seed=0)  # fmt: skip
    assert cfg["grpo"]["rewards"] == params["rewards"] and cfg["sft_dir"] == params["grpo"]["sft_dir"]
    with pytest.raises(ValueError, match=r"unknown key\(s\) sft.\{lerning_rate\}"):
        sft_module.run_config({**params["sft"], "lerning_rate": 1.0}, policy={}, seed=0)
    with pytest.raises(ValueError, match="grpo.{vllm_gpu_memory_utilization}"):
        grpo_module.run_config({**params["grpo"], "vllm_gpu_memory_utilization": 0.3}, policy={}, judge={},
                               rewards={}, seed=0)  # fmt: skip


def test_launch_on_a_cpu_machine_asks_accelerate_for_processes(monkeypatch, tmp_path, no_cuda):
    # without a config file accelerate starts several ranks only with --multi_gpu (torchrun);
    # on CPU they then join a gloo group (tests/test_training_multiprocess.py runs it for real)
    ran = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(launch.subprocess, "run", lambda cmd, **kw: ran.append(cmd))
    (tmp_path / ".cache/grpo_launch").mkdir(parents=True)
    (tmp_path / ".cache/grpo_launch/summary.json").write_text("{}")
    launch.launch("grpo", {"launch": {"num_processes": 2}})
    assert ran[0][ran[0].index("--num_processes") + 1] == "2" and "--multi_gpu" in ran[0]
    assert ran[0][-4:-2] == ["kardia.training", "grpo"]


# (policy, TRL loss_type): the chunked loss reads lm_head's weight directly, which PEFT wraps when
# LoRA trains the span markers' rows (TRL 1.14 failed at the first step, bench_smollm2's lora row)
SFT_LOSSES = [
    ({"finetune": "full"}, "chunked_nll"),
    ({"finetune": "full", "span_tokens": "added"}, "chunked_nll"),
    ({"finetune": "lora"}, "nll"),
    ({"finetune": "lora", "span_tokens": "added"}, "nll"),
    ({"finetune": "qlora", "span_tokens": "added"}, "nll"),
    ({"finetune": "lora", "span_tokens": "text"}, "chunked_nll"),
]


@pytest.mark.parametrize("policy,loss_type", SFT_LOSSES)
def test_sft_loss_sees_the_wrapped_output_layer_of_lora_with_added_markers(policy, loss_type, tmp_path):
    assert arguments.sft_loss_type(policy) == loss_type
    cfg = {"seed": 0, "policy": policy, "sft": {"max_steps": 1, "batch_size": 2, "learning_rate": 1e-4}}
    assert arguments.sft_args(cfg, str(tmp_path)).loss_type == loss_type
