"""Seed variation: how much of a result is the training seed's, next to how much is the items'.

``scripts/seeds N`` runs the pipeline for ``train_seed`` 1..N-1 as DVC experiments (the data, the
judges and the dev/test samples keep ``seed``; only SFT and GRPO change) and saves each run's
replies under ``results/seeds/<run>/generations/`` (``export_experiment``); the workspace run is
the ``train_seed`` of ``params.yaml``. The report then gives, per system and metric, the mean over
runs, the standard deviation between runs, and an interval that resamples both runs and, within
each, whole dialogues (``two_stage_ci``); per delta, whether its sign held in every run.

    python -m kardia.seeds export seed-1 results/seeds/seed-1   # a finished `dvc exp run -n seed-1`
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from kardia.metrics import dialogue_of

SEEDS_DIR = "results/seeds"
WORKSPACE = "workspace"  # the run dvc repro left in results/generations


def read_runs(generations: str | Path, seeds_dir: str | Path = SEEDS_DIR,
              part: str = "") -> tuple[dict[str, list[dict]], list[str]]:  # fmt: skip
    """``({run: items}, set_aside)``: the workspace run's per-item records
    (``generations/<part>/*.jsonl``) and those of every exported run in
    ``seeds_dir/<run>/generations/<part>/`` that answered the same systems, test items and
    prompts (``prompt_sha``), in name order after the workspace; ``set_aside`` names the exported
    runs that did not (another configuration, e.g. the smoke profile beside the default's seed
    runs, or an export from an older test set or prompt shaping). They are never mixed in, and
    the report says they were left out.
    ``part`` is a test set of its own (``human_written``); "" is the test turns."""

    def read(folder: Path) -> list[dict]:
        files = sorted((folder / part).glob("*.jsonl"))
        return [json.loads(line) for f in files for line in f.open(encoding="utf-8") if line.strip()]

    runs = {WORKSPACE: read(Path(generations))}
    for folder in sorted(Path(seeds_dir).glob("*/generations")):
        runs[folder.parent.name] = read(folder)
    empty = [name for name, items in runs.items() if not items]
    if empty:
        raise FileNotFoundError(f"no replies for run(s) {empty}: run evaluate (or scripts/seeds) first")
    # the same prompts too: a run from before a change of prompt shaping asked the same item ids
    asked = {name: {(i["system"], i["item_id"], i.get("prompt_sha")) for i in items}
             for name, items in runs.items()}  # fmt: skip
    set_aside = [name for name, keys in asked.items() if keys != asked[WORKSPACE]]
    return {k: v for k, v in runs.items() if k not in set_aside}, set_aside


def two_stage_ci(
    runs: Sequence[tuple[Sequence[float], Sequence]],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Mean over runs of each run's mean, the standard deviation between runs, and a percentile
    interval from a two-stage bootstrap (``runs``: one ``(values, dialogue labels)`` per run).

    The runs answer the *same* test dialogues (only the training seed differs), so dialogues are
    crossed with runs, not nested in them: each resample draws runs with replacement and one set
    of dialogues with replacement, applied to every drawn run. (Drawing dialogues anew per run
    would shrink the dialogues' share of the variance by the number of runs.) With 2–3 runs the
    runs' share of the interval is rough: a bootstrap cannot reach beyond the runs' own range.
    NaN values (failures) are left out of their run.
    """
    import numpy as np

    nan = float("nan")
    cleaned = [[(g, v) for g, v in zip(groups, values, strict=True) if v == v] for values, groups in runs]
    cleaned = [c for c in cleaned if c]
    if not cleaned:
        return {"mean": nan, "seed_sd": nan, "low": nan, "high": nan, "runs": 0}
    labels = {g: k for k, g in enumerate(dict.fromkeys(g for c in cleaned for g, _ in c))}
    sums = np.zeros((len(cleaned), len(labels)))
    counts = np.zeros((len(cleaned), len(labels)))
    for j, c in enumerate(cleaned):
        index = np.asarray([labels[g] for g, _ in c])
        np.add.at(sums[j], index, [v for _, v in c])
        np.add.at(counts[j], index, 1.0)
    means = sums.sum(axis=1) / counts.sum(axis=1)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(labels), size=(resamples, len(labels)))
    weight = np.zeros((resamples, len(labels)))  # how often each dialogue is drawn, per resample
    np.add.at(weight, (np.arange(resamples)[:, None], draw), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # a run may miss every drawn dialogue
        run_means = (weight @ sums.T) / (weight @ counts.T)  # resamples x runs
    pick = rng.integers(0, len(cleaned), size=(resamples, len(cleaned)))
    stats = np.nanmean(run_means[np.arange(resamples)[:, None], pick], axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(stats, [alpha, 1 - alpha])
    return {"mean": float(means.mean()), "seed_sd": float(means.std(ddof=1)) if len(means) > 1 else nan,
            "low": float(low), "high": float(high), "runs": len(cleaned)}  # fmt: skip


def seed_table(frames: Mapping[str, object], metrics: Sequence[tuple[str, str]], **ci) -> object:
    """Per system and metric over the runs' item frames (``kardia.report.item_frame`` of each run):
    mean, seed SD, the two-stage interval and the number of runs."""
    import pandas as pd

    systems = list(dict.fromkeys(s for f in frames.values() for s in f["system"]))
    rows = []
    for system in systems:
        for key, name in metrics:
            per_run = [(f.loc[f["system"] == system, key].tolist(),
                        [dialogue_of(i) for i in f.loc[f["system"] == system, "item_id"]])
                       for f in frames.values() if (f["system"] == system).any()]  # fmt: skip
            rows.append({"system": system, "metric": name, **two_stage_ci(per_run, **ci)})
    return pd.DataFrame(rows)


def seed_deltas(frames: Mapping[str, object], pairs: Sequence[tuple[str, str]],
                metrics: Sequence[tuple[str, str]], **ci) -> object:  # fmt: skip
    """Paired deltas ``a − b`` per metric in every run: the mean over runs, the seed SD, the
    two-stage interval, each run's own delta, and whether the sign held in every run."""
    import pandas as pd

    rows = []
    for a, b in pairs:
        for key, name in metrics:
            per_run, each = [], {}
            for run, f in frames.items():
                wide = f[f["system"].isin([a, b])].pivot(index="item_id", columns="system", values=key)
                if not {a, b} <= set(wide.columns):
                    continue
                diff = (wide[a] - wide[b]).tolist()
                per_run.append((diff, [dialogue_of(i) for i in wide.index]))
                kept = [d for d in diff if d == d]
                each[run] = sum(kept) / len(kept) if kept else float("nan")
            if not per_run:
                continue
            stats = two_stage_ci(per_run, **ci)
            signs = {(v > 0) - (v < 0) for v in each.values()}
            rows.append({"comparison": f"{a} − {b}", "metric": name, **stats,
                         "per_run": each, "sign_holds": len(signs) == 1 and 0 not in signs})  # fmt: skip
    return pd.DataFrame(rows)


def export_experiment(name: str, out_dir: str | Path, repo: str | Path = ".") -> Path:
    """Copy the replies of the DVC experiment ``name`` (``results/generations/`` is in git, so it
    is in the experiment's commit) to ``out_dir/generations/``: the test turns' files and, in
    ``human_written/``, the human-written situations'. The experiment is looked for under HEAD
    (DVC files experiments under their baseline commit), then under any baseline, so a commit
    made after the runs does not lose them; an ambiguous or missing name is refused."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                              text=True).stdout  # fmt: skip

    def named(prefix: str) -> list[str]:
        return [r for r in git("for-each-ref", "--format=%(refname)", prefix).split()
                if r.rsplit("/", 1)[-1] == name]  # fmt: skip

    head = git("rev-parse", "HEAD").strip()
    refs = named(f"refs/exps/{head[:2]}/{head[2:]}/") or named("refs/exps/")
    if len(refs) != 1:
        raise ValueError(f"expected one DVC experiment named {name!r} (on HEAD {head[:7]} or any "
                         f"baseline), found {len(refs)}: {refs}")  # fmt: skip
    ref = refs[0]
    files = git("ls-tree", "-r", "--name-only", ref, "results/generations").split()
    files = [f for f in files if f.endswith(".jsonl") and f.count("/") in (2, 3)
             and (f.count("/") == 2 or f.split("/")[2] == "human_written")]  # fmt: skip
    if not any(f.count("/") == 2 for f in files):
        raise FileNotFoundError(f"experiment {name!r} has no results/generations/*.jsonl in git")
    out = Path(out_dir) / "generations"
    shutil.rmtree(out, ignore_errors=True)  # a re-export replaces the old files, never mixes
    for f in files:
        target = out / Path(f).relative_to("results/generations")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(git("show", f"{ref}:{f}"), encoding="utf-8")
    params = git("show", f"{ref}:params.yaml")
    baseline = ref.split("/")[2] + ref.split("/")[3]  # refs/exps/ab/cdef…/name
    source = {"experiment": name, "ref": ref, "commit": git("rev-parse", ref).strip(),
              "baseline": baseline, "train_seed": next((line.split(":")[1].split("#")[0].strip()
                                                    for line in params.splitlines()
                                                    if line.startswith("train_seed:")), None)}  # fmt: skip
    (Path(out_dir) / "source.json").write_text(json.dumps(source, indent=1) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "export":
        print("usage: python -m kardia.seeds export <experiment name> <out dir>", file=sys.stderr)
        return 2
    print(export_experiment(args[1], args[2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
