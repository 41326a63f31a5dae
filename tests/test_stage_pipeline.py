"""The whole pipeline end to end — judge_fit, judge_validity, build_data, sft, grpo, evaluate,
report: real `dvc repro`,
real papermill, a tiny configuration (what CI runs of the pipeline). The evaluation judge and an
external "GPT-4o-style" system are a real OpenAI-compatible server on 127.0.0.1, so the stage's
HTTP paths, two distinct judges and their agreement all run for real.

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

from kardia import ablations
from kardia.profiles import load_profile, merge
from kardia.runner import STAGES  # in dvc.yaml's order
from kardia.spans import render_spans
from kardia.testing import ChatServer, Reply, judgement_json

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).with_name("dvc"))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # One OpenMP thread: the tiny model gains nothing from two, and two threads on a 2-core
    # machine stall whenever anything else runs.
    env = {**os.environ, "KARDIA_PYTHON": sys.executable, "DVC_NO_ANALYTICS": "1",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=500)


EXTERNAL = render_spans(
    "They feel low.", "Losing that hurts.", "sad", "I'm sorry, that sounds hard."
)


def served(payload: dict, attempt: int) -> Reply:
    if payload.get("model") == "eval-judge":  # scores that vary with the judged prompt
        return Reply(content=judgement_json(2 + len(payload["messages"][-1]["content"]) % 3))
    return Reply(content=EXTERNAL)  # the external system


@pytest.fixture(scope="module")
def server():
    with ChatServer(served) as srv:
        yield srv


@pytest.fixture(scope="module")
def repo(tmp_path_factory, server) -> Path:
    repo = tmp_path_factory.mktemp("pipeline")
    for name in ("kardia", "notebooks", "scripts", "data/seed", "data/human_ratings"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "results/human_eval/ratings", repo / "results/human_eval/ratings")
    shutil.copytree(ROOT / "results/seeds", repo / "results/seeds")  # a report dep (in git: seed runs of the default, which the smoke run sets aside)
    for name in ("dvc.yaml", "params.yaml", "README.md"):
        shutil.copy(ROOT / name, repo / name)
    (repo / "results/ablations.csv").write_text(",".join(ablations.COLUMNS) + "\n")  # none yet
    write_jsonl(records(40), repo / "data/short.jsonl")
    params = yaml.safe_load((repo / "params.yaml").read_text())  # anchors come back expanded
    # the smoke profile (tiny policy, small judges and samples), as `scripts/profile smoke` runs it
    params = merge(params, load_profile("smoke", ROOT / "configs/profiles"))
    # ...on short dialogues: with the offline builder's long prompts and replies a tiny policy
    # trained for seconds never writes four complete spans, and the judge would log nothing
    params["build_data"].update(source="data/short.jsonl")
    params["eval_judge"].update(kind="openai", base_url=server.base_url, model="eval-judge",
                                max_retries=0)  # fmt: skip
    params["evaluate"]["systems"]["gpt-test"] = {"kind": "openai", "base_url": server.base_url,
                                                 "model": "gpt-test", "max_retries": 0}  # fmt: skip
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert run(["git", "init", "-q"], repo).returncode == 0
    assert run([DVC, "init", "-q"], repo).returncode == 0
    return repo


@pytest.fixture(scope="module")
def first_run(repo) -> subprocess.CompletedProcess:
    result = run([DVC, "repro"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def test_repro_runs_every_stage_and_validates_the_judges_before_training(repo, first_run):
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first_run.stdout
    out = first_run.stdout
    assert out.index("Running stage 'judge_validity'") < out.index("Running stage 'grpo'")
    for name in (
        "00_backbone",
        "00a_judge_fit",
        "00b_judge_validity",
        "01_build_data",
        "02_sft",
        "03_grpo",
        "04_evaluate",
        "05_report",
    ):
        assert (repo / f"results/notebooks/{name}.ipynb").exists()
    assert not list((repo / "results/notebooks").glob("*.failed.ipynb"))


def test_the_judges_are_fitted_and_validated_against_people(repo, first_run):
    import pandas as pd

    fit = json.loads((repo / "results/metrics/judge_fit.json").read_text())
    assert set(fit) == {"minilm"} and (repo / "models/judges/minilm.pkl").exists()
    table = pd.read_csv(repo / "results/metrics/judge_validity.csv")
    # the offline training judge, the served evaluation judge (loopback), the baselines
    assert set(table["judge"]) == {"judge", "eval_judge", "lexicon", "length"}
    assert set(table["dataset"]) == {"diasafety", "ieval", "failed_esconv"}
    safety = table[table["human"] == "safe"].set_index("judge")
    assert safety["auc"].between(0, 1).all() and (safety["n"] > 0).all()
    summary = json.loads((repo / "results/metrics/judge_validity.json").read_text())
    assert "eval-judge" in summary["judges"]["eval_judge"]["judge"]
    assert "safety_auc" in summary["judges"]["judge"]
    assert (repo / "results/tables/judge_validity.md").exists()
    assert (repo / "results/figures/fig_judge_validity.png").stat().st_size > 5000


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


def test_evaluate_scores_every_system_with_cis_and_writes_generations(repo, first_run):
    summary = json.loads((repo / "results/metrics/evaluate.json").read_text())
    assert list(summary["systems"]) == ["raw", "sft", "kardia-r1", "gpt-test"]
    assert summary["test_items"] == 6 and summary["same_judge"] is False
    assert "eval-judge" in summary["eval_judge"] and "Offline" in summary["train_judge"]
    for name, m in summary["systems"].items():
        assert m["n"] == 6 and m["judge_failures"] == 0, name
        for key in ("emotion_accuracy", "relevance", "fluency", "empathy", "persona", "safety"):
            assert m[key]["low"] <= m[key]["mean"] <= m[key]["high"], (name, key)
        lines = (repo / f"results/generations/{name}.jsonl").read_text().splitlines()
        assert len(lines) == 6
        item = json.loads(lines[0])
        assert set(item["eval_scores"]) == {"relevance", "fluency", "empathy", "persona", "safety"}
    assert summary["human_written_items"] == 4
    for name, m in summary["systems"].items():  # first turns apart; the human-written set
        assert m["n_first_turn"] == 3 and m["n_later_turns"] == 3, name
        assert m["n_human_written"] == 4 and "mean" in m["emotion_accuracy_human_written"], name
        hw = [
            json.loads(x) for x in (repo / f"results/generations/human_written/{name}.jsonl").open()
        ]
        assert len(hw) == 4 and all(i["item_id"].startswith("ieval:") for i in hw), name
    # the raw backbone is the untrained tiny decoder: it never writes four spans
    assert summary["systems"]["raw"]["format_compliance"]["mean"] == 0.0
    external = [json.loads(x) for x in (repo / "results/generations/gpt-test.jsonl").open()]
    assert all(i["reply"] == EXTERNAL and i["format_ok"] for i in external)
    assert {i["eval_scores"]["relevance"] for i in external} <= {2, 3, 4}
    assert all(i["train_scores"] != i["eval_scores"] for i in external[:1])
    kit = repo / "results/human_eval/kit"
    assert {p.name for p in kit.iterdir()} == {"pairs.csv", "form.html", "ratings_template.csv"}
    assert len((repo / "results/human_eval/key.csv").read_text().splitlines()) == 5


def test_report_writes_the_papers_tables_figures_and_the_readme_section(repo, first_run):
    import pandas as pd

    t2 = pd.read_csv(repo / "results/tables/table2_main.csv", index_col=0)
    assert list(t2.index) == ["Raw backbone", "SFT", "Kardia-R1", "gpt-test"]
    for col in ("emotion_accuracy", "relevance", "fluency", "empathy", "persona", "safety"):
        assert (t2[f"{col}_low"] <= t2[col]).all() and (t2[col] <= t2[f"{col}_high"]).all()
    assert "emotion_accuracy_human_written" in t2 and "emotion_accuracy_first_turn" in t2
    assert "\\begin{tabular}" in (repo / "results/tables/table2_main.tex").read_text()
    deltas = pd.read_csv(repo / "results/tables/deltas.csv")
    assert set(deltas["comparison"]) == {"Kardia-R1 − SFT", "SFT − Raw backbone"}
    assert len(deltas) == 12 and deltas["paper"].notna().all()
    agreement = pd.read_csv(repo / "results/tables/judge_agreement.csv", index_col=0)
    assert list(agreement.index) == ["relevance", "fluency", "empathy", "persona", "safety"]
    assert (agreement["n"] == 24).all() and (agreement["exact"] < 1.0).any()
    probes = pd.read_csv(repo / "results/tables/reward_probes.csv", index_col=0)
    assert probes.index[0] == "honest" and "keyword_stuffing" in probes.index
    assert {"total[train]", "total[eval]", "hole[eval]"} <= set(probes.columns)
    for name in ("fig1_radar", "fig_score_distributions", "fig_per_emotion", "fig_training_curves"):
        assert (repo / f"results/figures/{name}.png").stat().st_size > 5000, name
    assert "No ablation runs" in (repo / "results/tables/ablations.md").read_text()
    readme = (repo / "README.md").read_text()
    block = readme.split("<!-- results:start -->")[1].split("<!-- results:end -->")[0]
    assert "fig1_radar.png" in block and "| Kardia-R1 |" in block and "eval-judge" in block
    assert "**Judge validity**" in block and "fig_judge_validity.png" in block
    caption = (repo / "results/tables/table2_main.md").read_text().splitlines()[0]
    assert "scored by the evaluation judge" in caption and "eval-judge" in caption
    assert "on held-out human ratings: safety AUC" in caption
    assert "| Raw backbone |" in block


def test_a_second_repro_runs_nothing(repo, first_run):
    second = run([DVC, "repro"], repo)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Running stage" not in second.stdout
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in second.stdout


def test_changing_a_report_parameter_reruns_only_the_report(repo, first_run):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["report"]["delta_resamples"] = 150
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = run([DVC, "repro"], repo)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "Running stage 'report'" in third.stdout
    for stage in STAGES[:-1]:
        assert f"Running stage '{stage}'" not in third.stdout
