"""Seed variation: two-stage intervals, seed SD, signs that hold in every run, and the export of a
DVC experiment's replies from its git ref (a real repository, not a mock)."""

from __future__ import annotations

import json
import random
import subprocess

import pandas as pd
import pytest

from kardia import seeds
from kardia.metrics import bootstrap_ci


def run(level: float, n_dialogues: int = 30, spread: float = 0.3, seed: int = 0):
    rng = random.Random(seed)
    values, groups = [], []
    for d in range(n_dialogues):
        base = level + rng.gauss(0, spread)
        values += [base + rng.gauss(0, 0.05) for _ in range(4)]
        groups += [f"d{d}"] * 4
    return values, groups


def test_one_run_is_the_dialogue_bootstrap_and_more_runs_add_their_spread():
    values, groups = run(1.0)
    one = seeds.two_stage_ci([(values, groups)], resamples=4000, seed=0)
    mean, low, high = bootstrap_ci(values, groups=groups, resamples=4000, seed=0)
    assert one["mean"] == pytest.approx(mean) and one["runs"] == 1 and one["seed_sd"] != one["seed_sd"]
    assert one["high"] - one["low"] == pytest.approx(high - low, rel=0.15)
    # the same dialogues answered alike by 8 seeds (a greedy, untrained system): no new information,
    # so no narrower interval — the dialogues are crossed with the seeds, not nested in them
    copies = seeds.two_stage_ci([(values, groups)] * 8, resamples=4000, seed=0)
    assert copies["seed_sd"] == 0.0
    assert copies["high"] - copies["low"] == pytest.approx(one["high"] - one["low"], rel=0.15)
    agree = seeds.two_stage_ci([run(1.0, seed=s) for s in range(3)], resamples=4000, seed=0)
    apart = seeds.two_stage_ci([run(level, seed=s) for s, level in enumerate((0.0, 1.0, 2.0))],
                               resamples=4000, seed=0)  # fmt: skip
    assert apart["seed_sd"] == pytest.approx(1.0, abs=0.15) and agree["seed_sd"] < 0.2
    assert apart["high"] - apart["low"] > 3 * (agree["high"] - agree["low"])
    empty = seeds.two_stage_ci([([float("nan")], ["d"])])
    assert empty["runs"] == 0 and empty["mean"] != empty["mean"]


def frame(run_shift: float) -> pd.DataFrame:
    rows = []
    for d in range(10):
        for t in range(2):
            for system, score in (("sft", 3.0), ("kardia-r1", 3.0 + run_shift)):
                rows.append({"system": system, "item_id": f"d{d}:{t}", "relevance": score + 0.1 * (d % 3)})
    return pd.DataFrame(rows)


def test_a_delta_whose_sign_flips_between_seeds_says_so():
    metrics = [("relevance", "Relevance")]
    held = seeds.seed_deltas({"workspace": frame(0.3), "seed-1": frame(0.2)}, [("kardia-r1", "sft")], metrics)
    flips = seeds.seed_deltas({"workspace": frame(0.3), "seed-1": frame(-0.2)}, [("kardia-r1", "sft")], metrics)
    assert held.loc[0, "sign_holds"] and not flips.loc[0, "sign_holds"]
    assert held.loc[0, "per_run"] == pytest.approx({"workspace": 0.3, "seed-1": 0.2})
    assert held.loc[0, "mean"] == pytest.approx(0.25) and held.loc[0, "seed_sd"] == pytest.approx(0.0707, abs=1e-3)
    table = seeds.seed_table({"workspace": frame(0.3), "seed-1": frame(0.2)}, metrics)
    assert list(table["system"]) == ["sft", "kardia-r1"] and list(table["runs"]) == [2, 2]


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def test_export_copies_an_experiments_replies_from_its_git_ref(tmp_path):
    repo = tmp_path / "repo"
    (repo / "results/generations/human_written").mkdir(parents=True)
    git(repo.parent, "init", "-q", str(repo))
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "base")
    head = git(repo, "rev-parse", "HEAD").strip()
    item = {"system": "sft", "item_id": "d0:0"}
    (repo / "results/generations/sft.jsonl").write_text(json.dumps(item) + "\n")
    written = {"system": "sft", "item_id": "ieval:hit:1_conv:2"}
    (repo / "results/generations/human_written/sft.jsonl").write_text(json.dumps(written) + "\n")
    (repo / "params.yaml").write_text("seed: 0\ntrain_seed: 1  # varied\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "exp")
    git(repo, "update-ref", f"refs/exps/{head[:2]}/{head[2:]}/seed-1", "HEAD")
    git(repo, "reset", "-q", "--hard", head)  # the workspace is back at the baseline
    (tmp_path / "seeds/seed-1/generations/stale.jsonl").parent.mkdir(parents=True)
    (tmp_path / "seeds/seed-1/generations/stale.jsonl").write_text("{}\n")  # an older export's file
    out = seeds.export_experiment("seed-1", tmp_path / "seeds/seed-1", repo)
    # the test turns beside the human-written situations, a test set of its own; nothing stale
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.jsonl")) == ["human_written/sft.jsonl", "sft.jsonl"]
    source = json.loads((tmp_path / "seeds/seed-1/source.json").read_text())
    assert source["train_seed"] == "1" and source["baseline"] == head
    runs, set_aside = seeds.read_runs(tmp_path / "seeds/seed-1/generations", tmp_path / "seeds")
    assert runs["workspace"] == [item] and runs["seed-1"] == [item] and set_aside == []
    hw, _ = seeds.read_runs(tmp_path / "seeds/seed-1/generations", tmp_path / "seeds", part="human_written")
    assert hw["workspace"] == [written] and hw["seed-1"] == [written]
    # a commit after the runs moves HEAD off the experiments' baseline: they are still found
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "later")
    again = seeds.export_experiment("seed-1", tmp_path / "again", repo)
    assert (again / "sft.jsonl").read_text() == json.dumps(item) + "\n"
    assert json.loads((tmp_path / "again/source.json").read_text())["baseline"] == head
    other = tmp_path / "other"
    other.mkdir()
    (other / "sft.jsonl").write_text(json.dumps({**item, "item_id": "d9:0"}) + "\n")
    # a workspace run of other test items (another profile): the seed run is set aside, not mixed in
    runs, set_aside = seeds.read_runs(other, tmp_path / "seeds")
    assert list(runs) == ["workspace"] and set_aside == ["seed-1"]
    # the same items asked with other prompts (a run from before a prompt change): set aside too
    (other / "sft.jsonl").write_text(json.dumps({**item, "prompt_sha": "0123abcd"}) + "\n")
    runs, set_aside = seeds.read_runs(other, tmp_path / "seeds")
    assert list(runs) == ["workspace"] and set_aside == ["seed-1"]
    with pytest.raises(FileNotFoundError, match="no replies"):
        seeds.read_runs(tmp_path / "nothing", tmp_path / "seeds")
    with pytest.raises(ValueError, match="one DVC experiment named 'seed-2'"):
        seeds.export_experiment("seed-2", tmp_path / "x", repo)


def test_scripts_seeds_refuses_a_bad_count():
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "seeds"
    out = subprocess.run(["bash", str(script), "zero"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "usage: scripts/seeds N" in out.stderr
