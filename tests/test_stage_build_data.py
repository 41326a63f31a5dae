"""The build_data stage end to end: real `dvc repro`, real papermill, small configuration.

The project's pipeline files are copied into a fresh Git + DVC repository under tmp_path, so the
run cannot touch the working tree; the kardia package itself comes from the installed checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kardia.data import load_dialogues

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).with_name("dvc"))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KARDIA_PYTHON": sys.executable, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=500)


def set_params(repo: Path, **build_data) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["build_data"].update(build_data)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory, judge_heads) -> Path:
    repo = tmp_path_factory.mktemp("pipeline")
    for name in ("kardia", "notebooks", "scripts", "data/seed", "tests/fixtures"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    assert run(["git", "init", "-q"], repo).returncode == 0
    assert run([DVC, "init", "-q"], repo).returncode == 0
    set_params(repo, n_dialogues=60, dev_fraction=0.15, test_fraction=0.15)
    # build_data re-judges loaded data with the training judge (a judge_fit output, a declared
    # dependency): the session's fitted heads stand in, and the stage runs alone (`-s`)
    (repo / "models/judges").mkdir(parents=True)
    shutil.copy(judge_heads, repo / "models/judges/minilm.pkl")
    return repo


def test_build_writes_splits_table_figures_and_a_second_run_does_nothing(repo):
    first = run([DVC, "repro", "-s", "build_data"], repo)
    assert first.returncode == 0, first.stdout + first.stderr
    sizes = {}
    for split in ("train", "dev", "test"):
        ds = load_dialogues(repo / "data/built/dialogues" / f"{split}.jsonl")
        sizes[split] = ds.num_rows
        assert ds.num_rows > 0 and set(ds.unique("difficulty")) <= {"easy", "hard"}
    assert sum(sizes.values()) >= 50  # 60 built, a few filtered
    table = (repo / "results/tables/table3_dataset_stats.csv").read_text().splitlines()
    assert table[0] == "statistic,train,dev,test,all,paper_train,paper_test"
    assert table[1] == f"Dialogues,{sizes['train']},{sizes['dev']},{sizes['test']}," \
        f"{sum(sizes.values())},19533,2547"  # fmt: skip
    for fig in ("turns_per_dialogue", "emotion_distribution", "verdict_distribution"):
        assert (repo / f"results/figures/data_{fig}.png").stat().st_size > 5000
    assert (repo / "results/notebooks/01_build_data.ipynb").exists()

    assert "judge_fit" not in first.stdout  # -s: this stage alone
    second = run([DVC, "repro", "-s", "build_data"], repo)
    assert second.returncode == 0
    assert "didn't change, skipping" in second.stdout
    assert "Running stage" not in second.stdout


def test_a_kardiabench_file_goes_through_the_same_stage(repo):
    set_params(repo, source="tests/fixtures/kardiabench_sample.jsonl",
               dev_fraction=0.2, test_fraction=0.2)  # fmt: skip
    result = run([DVC, "repro", "-s", "build_data"], repo)
    assert result.returncode == 0, result.stdout + result.stderr
    total = sum(
        load_dialogues(repo / "data/built/dialogues" / f"{s}.jsonl").num_rows
        for s in ("train", "dev", "test")
    )
    assert total == 12
    metrics = yaml.safe_load((repo / "results/metrics/build_data.json").read_text())
    assert metrics["load"] == {"loaded": 12, "skipped": 0}
    # the released data has no verdicts: every dialogue was re-judged by the offline judge
    assert metrics["rejudged"]["dialogues"] == 12 and metrics["rejudged"]["failures"] == 0
    assert sum(c["unjudged"] for c in metrics["difficulty"].values()) == 0


def test_an_undeclared_parameter_stops_the_stage(repo):
    set_params(repo, n_dialogs=5)
    result = run([DVC, "repro", "-s", "build_data"], repo)
    assert result.returncode != 0
    assert "n_dialogs" in result.stderr + result.stdout
