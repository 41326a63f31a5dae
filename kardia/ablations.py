"""Ablations: DVC experiments of the whole pipeline, collected into one file the report reads.

An ablation is ``dvc exp run --temp -n NAME -S key=value`` (``scripts/profile ablation-…``
writes that command from ``configs/profiles/ablation-*.yaml``). Each experiment keeps its
params and its ``results/metrics/evaluate.json`` (a DVC metric), so ``dvc exp show --json
--all-commits`` holds everything needed; ``collect`` turns it into ``results/ablations.csv``: one
row per experiment name (the newest run of it, on whichever commit), its reward weights, the
commit it ran from and its Kardia-R1 metrics. The report adds an ablation table when that file
has rows.

    python -m kardia.ablations            # = scripts/ablations; then `dvc repro report`
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from kardia.rubric import DIMENSIONS

METRICS_FILE = "results/metrics/evaluate.json"
OUT = Path("results/ablations.csv")
COLUMNS = ("run", "commit", "timestamp", "rewards", "grpo_learning_rate", "emotion_accuracy", *DIMENSIONS, "rubric",
           "format_compliance")  # fmt: skip
SYSTEM = "kardia-r1"


def _experiments(entries: Sequence[Mapping]) -> Iterator[Mapping]:
    for entry in entries:
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                if rev.get("error") is None and rev.get("data"):
                    name = rev.get("name") or exp.get("name") or rev["rev"][:7]
                    yield {**rev, "name": name, "baseline": str(entry.get("rev", ""))[:7]}


def rows_from_exp_show(entries: Sequence[Mapping], system: str = SYSTEM) -> list[dict]:
    """``dvc exp show --json`` → one row per experiment name that has evaluated ``system`` (the
    newest when a name ran more than once)."""
    rows: dict[str, dict] = {}
    for exp in _experiments(entries):
        params = exp["data"].get("params", {}).get("params.yaml", {}).get("data", {})
        metrics = exp["data"].get("metrics", {}).get(METRICS_FILE, {}).get("data", {})
        m = (metrics.get("systems") or {}).get(system)
        if not m:
            continue
        grpo = params.get("grpo") or {}
        rewards = params.get("rewards") or {}
        row = {
            "run": exp["name"],
            "commit": exp["baseline"],
            "timestamp": exp["data"].get("timestamp") or "",
            "rewards": ", ".join(f"{k}={float(v):.2g}" for k, v in rewards.items()),
            "grpo_learning_rate": grpo.get("learning_rate"),
            **{k: (m.get(k) or {}).get("mean") for k in COLUMNS[5:]},
        }
        if row["timestamp"] >= rows.get(row["run"], {}).get("timestamp", ""):
            rows[row["run"]] = row
    return sorted(rows.values(), key=lambda r: r["run"])


def collect(out: str | Path = OUT, dvc: str = "dvc") -> Path:
    """Run ``dvc exp show --json`` here and write the rows (header only when there are none)."""
    import pandas as pd

    proc = subprocess.run([dvc, "exp", "show", "--json", "--all-commits"], capture_output=True,
                          text=True)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"dvc exp show failed: {proc.stderr.strip()[-2000:]}")
    rows = rows_from_exp_show(json.loads(proc.stdout or "[]"))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(out, index=False)
    print(f"{len(rows)} ablation run(s) -> {out}")
    return out


def read_runs(path: str | Path = OUT):
    """The collected rows (an empty frame when the file is missing or has none)."""
    import pandas as pd

    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.read_csv(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/ablations", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(OUT), help="where the rows go")
    venv_dvc = Path(sys.executable).with_name("dvc")
    parser.add_argument("--dvc", default=str(venv_dvc) if venv_dvc.exists() else "dvc")
    args = parser.parse_args(argv)
    collect(args.out, args.dvc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
