"""kardia.ablations: real `dvc exp run --temp` experiments collected from `dvc exp show --json`.

The pipeline here is one trivial stage that writes ``results/metrics/evaluate.json`` from the
reward weights, so the DVC machinery (params, metrics, named experiments) is real and fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kardia import ablations

DVC = str(Path(sys.executable).with_name("dvc"))
pytestmark = pytest.mark.timeout(180)

STAGE = """\
stages:
  evaluate:
    cmd: {python} make_metrics.py
    deps: [make_metrics.py]
    params: [rewards, grpo]
    metrics:
      - results/metrics/evaluate.json: {{cache: false}}
"""
MAKE_METRICS = """\
import json, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))
acc = 10 + 100 * p["rewards"]["emotion"]
m = {"emotion_accuracy": {"mean": acc}, "relevance": {"mean": 3.0}, "rubric": {"mean": 0.5}}
out = pathlib.Path("results/metrics"); out.mkdir(parents=True, exist_ok=True)
(out / "evaluate.json").write_text(json.dumps({"systems": {"kardia-r1": m}}))
"""
PARAMS = """\
rewards:
  format: 0.3333333333333333
  emotion: 0.3333333333333333
  rubric: 0.3333333333333333
grpo:
  learning_rate: 0.0005
"""


def run(cmd, cwd):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("exps")
    (repo / "dvc.yaml").write_text(STAGE.format(python=sys.executable))
    (repo / "make_metrics.py").write_text(MAKE_METRICS)
    (repo / "params.yaml").write_text(PARAMS)
    run(["git", "init", "-q"], repo)
    run([DVC, "init", "-q"], repo)
    run([DVC, "repro", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline"], repo)
    run([DVC, "exp", "run", "--temp", "-n", "no-emotion", "-S", "rewards.emotion=0"], repo)
    run([DVC, "exp", "run", "--temp", "-n", "sft-only", "-S", "grpo.learning_rate=0"], repo)
    # the same ablation again on a later commit: the newer run is the one reported
    (repo / "NOTES").write_text("later\n")
    run(["git", "add", "NOTES"], repo)
    run(["git", "commit", "-qm", "later"], repo)
    run([DVC, "exp", "run", "--temp", "-n", "no-emotion", "-S", "rewards.emotion=0.1"], repo)
    return repo


def test_collect_writes_one_row_per_named_experiment(repo, monkeypatch):
    monkeypatch.chdir(repo)
    out = ablations.collect(repo / "results/ablations.csv", DVC)
    runs = ablations.read_runs(out).set_index("run")
    assert list(runs.index) == ["no-emotion", "sft-only"]
    head = run(["git", "rev-parse", "--short=7", "HEAD"], repo).stdout.strip()
    first = run(["git", "rev-parse", "--short=7", "HEAD~1"], repo).stdout.strip()
    assert runs.loc["no-emotion", "emotion_accuracy"] == pytest.approx(20.0)  # the newer run
    assert (runs.loc["no-emotion", "commit"], runs.loc["sft-only", "commit"]) == (head, first)
    assert runs.loc["sft-only", "emotion_accuracy"] == pytest.approx(10 + 100 / 3)
    assert runs.loc["no-emotion", "rewards"] == "format=0.33, emotion=0.1, rubric=0.33"
    assert runs.loc["sft-only", "grpo_learning_rate"] == 0
    assert runs.loc["no-emotion", "relevance"] == 3.0 and pd_isna(runs.loc["sft-only", "fluency"])
    # --temp left the workspace as it was
    assert "emotion: 0.3333333333333333" in (repo / "params.yaml").read_text()


def pd_isna(v) -> bool:
    return v != v


def test_no_experiments_give_a_header_only_file(tmp_path, monkeypatch):
    repo = tmp_path / "empty"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run([DVC, "init", "-q"], repo)
    monkeypatch.chdir(repo)
    out = ablations.collect("results/ablations.csv", DVC)
    assert out.read_text().strip() == ",".join(ablations.COLUMNS)
    assert ablations.read_runs(out).empty
    assert ablations.read_runs(tmp_path / "missing.csv").empty


def test_rows_skip_failed_experiments_and_ones_without_the_system():
    entries = [{"rev": "workspace", "experiments": None},
               {"rev": "abc", "experiments": [
                   {"name": "broken", "revs": [{"rev": "1" * 40, "name": "broken", "error": {"msg": "x"},
                                                "data": {}}]},
                   {"name": "other", "revs": [{"rev": "2" * 40, "name": "other", "error": None, "data": {
                       "params": {"params.yaml": {"data": {"rewards": {"format": 1}}}},
                       "metrics": {ablations.METRICS_FILE: {"data": {"systems": {"sft": {}}}}}}}]},
               ]}]  # fmt: skip
    assert ablations.rows_from_exp_show(entries) == []


def test_a_failing_dvc_is_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not a DVC repository
    with pytest.raises(RuntimeError, match="dvc exp show failed"):
        ablations.collect("x.csv", DVC)
