"""Project-level contracts: light imports, params.yaml that builds what the stages need."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kardia.judges import OfflineJudge, make_judge
from kardia.rewards import build_rewards

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "torch",
    "transformers",
    "trl",
    "unsloth",
    "vllm",
    "sentence_transformers",
    "datasets",
    "pandas",
    "matplotlib",
    "papermill",
)


def test_importing_kardia_stays_light():
    code = (  # every module of the package, subpackages included (not a `python -m` entry)
        "import importlib, pkgutil, sys, kardia\n"
        "for m in pkgutil.walk_packages(kardia.__path__, 'kardia.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _kardia_imports(path: Path) -> tuple[set[str], list[int]]:
    """The kardia modules a file imports at its top level, and the lines of any it imports
    inside a function or class."""
    modules = {_module_name(p) for p in (ROOT / "kardia").rglob("*.py")}
    tree = ast.parse(path.read_text())
    top, nested = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kardia"):
            names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names = {a.name for a in node.names if a.name.startswith("kardia")}
        else:
            continue
        if names and node not in tree.body:
            nested.append(node.lineno)
        top |= names & modules
    return top, nested


def test_kardia_modules_import_each_other_at_the_top_and_in_one_direction():
    """Light kardia modules are imported at the top (the dependency graph stays visible; only
    heavy libraries are lazy), and no module imports one that imports it back."""
    graph, nested = {}, []
    for path in sorted((ROOT / "kardia").rglob("*.py")):
        name = _module_name(path)
        graph[name], lines = _kardia_imports(path)
        graph[name].discard(name)
        nested += [f"{path.relative_to(ROOT)}:{n}" for n in lines]
    assert not nested, f"kardia imported inside a function: {nested}"
    assert graph["kardia.build.offline"] >= {"kardia.build.loop", "kardia.text"}  # the graph is read
    done, stack = set(), []

    def visit(module):  # depth-first: a module met again on the current path closes a cycle
        if module in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(module):] + [module]))
        if module in done:
            return
        stack.append(module)
        for dep in sorted(graph.get(module, ())):
            visit(dep)
        stack.pop()
        done.add(module)

    for module in graph:
        visit(module)


@pytest.fixture(scope="module")
def params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_params_judge_builds(params, judge_heads):
    # params name a judge_fit output; a fresh clone has none yet, so the session's heads stand in
    assert isinstance(make_judge({**params["judge"], "heads": str(judge_heads)}), OfflineJudge)
    assert 0 <= params["judge"]["max_failure_rate"] < 1
    assert params["judge"]["api_key_env"] is None or params["judge"]["api_key_env"].isupper()


def test_params_rewards_are_the_papers(params):
    funcs, weights = build_rewards(params["rewards"], judge=object())
    assert len(funcs) == 3
    assert weights == pytest.approx([1 / 3] * 3)


def test_dvc_pipeline_file_is_valid_yaml():
    assert "stages" in yaml.safe_load((ROOT / "dvc.yaml").read_text())


def test_params_build_backends_construct(params, tmp_path):
    from kardia.build.backends import make_backend
    from kardia.build.llm import LLMBackend
    from kardia.build.offline import OfflineBackend
    from kardia.seed import load_seed_bank

    cfg = params["build_data"]
    bank = load_seed_bank(ROOT / cfg["seed_dir"])
    assert isinstance(make_backend("offline", bank=bank, offline=cfg["offline"]), OfflineBackend)
    llm = {**cfg["llm"], "cache_path": str(tmp_path / "build.sqlite")}  # builds, sends nothing
    backend = make_backend("llm", llm=llm, seed=params["seed"])
    assert isinstance(backend, LLMBackend)
    assert backend.evaluator.sampling["temperature"] == 0.0
    assert backend.generator.sampling["temperature"] == cfg["llm"]["temperature"]


def test_setup_script_names_its_options_and_refuses_others():
    import subprocess

    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--cpu-torch" in text and "https://download.pytorch.org/whl/cpu" in text
    out = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), "--bogus"], capture_output=True,
                         text=True, timeout=30)  # fmt: skip
    assert out.returncode == 2 and "unknown option --bogus" in out.stderr


def test_readme_module_table_names_every_module():
    """The README's module table follows the package: every module (package maps and entry points
    aside) has a row, and every row names a module that exists."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Modules", 1)[1].split("\n\n", 2)[1]
    named = set(re.findall(r"`(kardia/[\w/]+\.py)`", table))
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "kardia").rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")}  # fmt: skip
    assert modules - named == set(), "modules without a row in the README's table"
    assert named - modules == set(), "README rows for modules that do not exist"
