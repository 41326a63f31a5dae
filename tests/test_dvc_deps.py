"""dvc.yaml lists, for every stage, exactly the kardia modules its notebook runs: an edit to any of
them re-runs the stage, and DVC never calls stale results up to date."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kardia.runner import STAGES, kardia_imports, stage_modules

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", STAGES)
def test_stage_deps_are_the_modules_it_imports(stage):
    listed = sorted(d for d in DVC[stage]["deps"] if d.startswith("kardia/"))
    needed = stage_modules(stage, ROOT)
    missing = sorted(set(needed) - set(listed))
    assert not missing, f"dvc.yaml stage {stage!r} misses {missing}: editing them leaves stale results"
    assert listed == needed, f"dvc.yaml stage {stage!r} lists modules it does not import"


def _notebook(path: Path, *sources: str) -> None:
    cells = [{"cell_type": "code", "source": s, "metadata": {}, "outputs": []} for s in sources]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def test_stage_modules_follows_lazy_and_indirect_imports(tmp_path):
    pkg = tmp_path / "kardia"
    pkg.mkdir()
    (tmp_path / "notebooks").mkdir()
    (pkg / "runner.py").write_text("import os\n")
    (pkg / "top.py").write_text("def f():\n    from kardia.lazy import g\n    return g()\n")
    (pkg / "lazy.py").write_text("from kardia import leaf\n")
    (pkg / "leaf.py").write_text("import json\n")
    (pkg / "unused.py").write_text("")
    _notebook(tmp_path / "notebooks" / "02_sft.ipynb", "%matplotlib inline\nimport kardia.top as t", "x = 1")
    assert stage_modules("sft", tmp_path) == ["kardia/lazy.py", "kardia/leaf.py", "kardia/runner.py",
                                              "kardia/top.py"]  # fmt: skip


def test_kardia_imports_reads_every_import_form(tmp_path):
    pkg = tmp_path / "kardia"
    pkg.mkdir()
    for name in ("a", "b", "c", "d"):
        (pkg / f"{name}.py").write_text("")
    source = "import kardia.a\nfrom kardia.b import x\nfrom kardia import c, missing\nimport numpy\n"
    assert kardia_imports(source, pkg) == {"kardia/a.py", "kardia/b.py", "kardia/c.py"}


def test_the_replies_behind_table_2_are_kept_in_git():
    outs = {next(iter(o)) if isinstance(o, dict) else o: o for o in DVC["evaluate"]["outs"]}
    generations = outs["results/generations"]
    assert isinstance(generations, dict) and generations["results/generations"]["cache"] is False
