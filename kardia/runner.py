"""Run one pipeline stage: its notebook, executed by papermill with its ``params.yaml`` values.

    python -m kardia.runner build_data [--params params.yaml] [--kernel kardia]

Stage ``S`` runs ``notebooks/NN_S.ipynb`` (``NN`` two digits, optionally a letter: ``00a``). Every name in the notebook's ``parameters`` cell takes
its value from the ``S`` section of ``params.yaml``, or else from a top-level key (``seed``,
``judge``); a parameter named ``S`` itself takes the whole section as one dict (the training
stages pass it on to ``kardia.training``, which refuses keys it does not know). papermill only
warns about parameters a notebook does not declare, so this runner refuses them — and refuses a
declared parameter that ``params.yaml`` does not provide: the notebook's literal defaults never
stand in silently for the single source of truth.

The executed copy goes to ``results/notebooks/`` and appears there only when the run succeeds; a
failed run is kept beside it as ``*.failed.ipynb`` for inspection.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

STAGES = (
    "backbone",
    "judge_fit",
    "judge_validity",
    "build_data",
    "sft",
    "grpo",
    "evaluate",
    "report",
)


class StageParamsError(ValueError):
    """params.yaml and the notebook's parameters cell disagree."""


def notebook_for(stage: str, notebooks: str | Path = "notebooks") -> Path:
    if stage not in STAGES:
        raise SystemExit(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    pattern = re.compile(rf"\d\d[a-z]?_{re.escape(stage)}\.ipynb")
    found = sorted(p for p in Path(notebooks).glob(f"*_{stage}.ipynb") if pattern.fullmatch(p.name))
    if len(found) != 1:
        raise FileNotFoundError(
            f"expected one notebook {notebooks}/NN_{stage}.ipynb, found {found}"
        )
    return found[0]


def kardia_imports(source: str, package: Path) -> set[str]:
    """The ``kardia`` modules a piece of Python imports, anywhere in it (top level or inside a
    function), as file names relative to the package's parent: ``{"kardia/data.py", ...}``; a
    module of a subpackage brings the subpackage's ``__init__.py`` (Python runs it first)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from kardia import figures` names a module; `from kardia.data import x` a module's name
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != "kardia":
                continue
            folder = package
            for part in parts[1:]:  # kardia.training.sft -> training/__init__.py, training/sft.py
                if (folder / f"{part}.py").is_file():
                    found.add((folder / f"{part}.py").relative_to(package.parent).as_posix())
                    break
                if not (folder / part / "__init__.py").is_file():
                    break
                folder = folder / part
                found.add((folder / "__init__.py").relative_to(package.parent).as_posix())
    return found


def stage_modules(stage: str, root: str | Path = ".") -> list[str]:
    """Every ``kardia`` module stage ``stage`` runs: the runner, what its notebook imports, and what
    those import in turn (lazy imports included). These are the code deps its DVC stage needs so
    that an edit re-runs it (``tests/test_dvc_deps.py`` holds dvc.yaml to this)."""
    import json

    root = Path(root)
    package = root / "kardia"
    cells = json.loads(notebook_for(stage, root / "notebooks").read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
    todo, seen = kardia_imports(code, package) | {"kardia/runner.py"}, set()
    while todo:
        module = todo.pop()
        seen.add(module)
        todo |= kardia_imports((root / module).read_text(encoding="utf-8"), package) - seen
    return sorted(seen)


def declared_parameters(notebook: str | Path) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (exactly one such cell)."""
    import nbformat
    import papermill

    nb = nbformat.read(str(notebook), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise StageParamsError(f"{notebook}: needs exactly one cell tagged 'parameters'")
    return list(papermill.inspect_notebook(str(notebook)))


def resolve_parameters(stage: str, params: dict, declared: list[str]) -> dict:
    """The values papermill injects; raises ``StageParamsError`` on any mismatch."""
    section = params.get(stage) or {}
    if not isinstance(section, dict):
        raise StageParamsError(f"params.yaml: section {stage!r} must be a mapping")
    whole = stage in declared  # the section as one dict: its code checks the keys
    undeclared = [] if whole else sorted(set(section) - set(declared))
    if undeclared:
        raise StageParamsError(
            f"params.yaml sets {stage}.{{{', '.join(undeclared)}}} but the {stage} notebook does "
            "not declare them in its parameters cell (a typo, or a notebook that is out of date)"
        )
    values, missing = {}, []
    for name in declared:
        if whole and name == stage and stage in params:
            values[name] = dict(section)
        elif not whole and name in section:
            values[name] = section[name]
        elif name in params and name not in STAGES:
            values[name] = params[name]
        else:
            missing.append(name)
    if missing:
        raise StageParamsError(
            f"the {stage} notebook declares {', '.join(missing)} but params.yaml provides no "
            f"value (add them under {stage}: or at the top level)"
        )
    return values


def run_stage(
    stage: str,
    params_path: str | Path = "params.yaml",
    *,
    kernel: str = "kardia",
    output_dir: str | Path = "results/notebooks",
    progress: bool = True,
) -> Path:
    """Execute the stage notebook with its parameters; return the executed copy's path."""
    import papermill
    import yaml

    params = yaml.safe_load(Path(params_path).read_text()) or {}
    notebook = notebook_for(stage)
    values = resolve_parameters(stage, params, declared_parameters(notebook))
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / notebook.name
    running = out_dir / f"{notebook.stem}.running.ipynb"
    failed = out_dir / f"{notebook.stem}.failed.ipynb"
    final.unlink(missing_ok=True)
    failed.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook), str(running), parameters=values, kernel_name=kernel,
            cwd=os.getcwd(), progress_bar=progress, log_output=False,
            # the kernel's printed lines (step progress, timings) reach the terminal as they come
            stdout_file=sys.stdout if progress else None,
        )  # fmt: skip
    except BaseException:
        if running.exists():
            running.replace(failed)
            print(f"stage {stage} failed; executed notebook kept at {failed}", file=sys.stderr)
        raise
    running.replace(final)
    print(f"stage {stage}: done in {time.perf_counter() - start:.1f} s -> {final}")
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--params", default="params.yaml", help="parameters file")
    parser.add_argument("--kernel", default="kardia", help="Jupyter kernel name")
    parser.add_argument("--check", action="store_true", help="check parameters, run nothing")
    args = parser.parse_args(argv)
    if args.check:
        import yaml

        params = yaml.safe_load(Path(args.params).read_text()) or {}
        nb = notebook_for(args.stage)
        print(resolve_parameters(args.stage, params, declared_parameters(nb)))
        return 0
    try:
        run_stage(args.stage, args.params, kernel=args.kernel)
    except StageParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
