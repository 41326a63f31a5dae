"""The stage runner: params.yaml and a notebook's parameters cell must agree exactly."""

from __future__ import annotations

import nbformat
import pytest
import yaml

from kardia.runner import (
    STAGES,
    StageParamsError,
    declared_parameters,
    main,
    notebook_for,
    resolve_parameters,
)

DECLARED = ["seed", "judge", "n", "source"]
PARAMS = {"seed": 0, "judge": {"kind": "offline"}, "build_data": {"n": 3, "source": "build"}}

# (params, error fragment or None)
CASES = [
    (PARAMS, None),
    # a typo in params.yaml is refused, not silently ignored as papermill would
    ({**PARAMS, "build_data": {"n": 3, "source": "build", "n_dialogs": 9}}, "n_dialogs"),
    # a declared parameter params.yaml does not provide: the notebook default must not win
    ({"seed": 0, "judge": {}, "build_data": {"n": 3}}, "source"),
    ({"judge": {}, "build_data": {"n": 3, "source": "x"}}, "seed"),
    ({**PARAMS, "build_data": ["n"]}, "must be a mapping"),
]


@pytest.mark.parametrize("params,error", CASES)
def test_resolve_parameters(params, error):
    if error is None:
        assert resolve_parameters("build_data", params, DECLARED) == {
            "seed": 0, "judge": {"kind": "offline"}, "n": 3, "source": "build"
        }  # fmt: skip
    else:
        with pytest.raises(StageParamsError, match=error):
            resolve_parameters("build_data", params, DECLARED)


def test_stage_sections_are_not_passed_as_top_level_values():
    with pytest.raises(StageParamsError, match="grpo"):
        resolve_parameters("build_data", {"grpo": {}, "build_data": {}}, ["grpo"])


def test_a_parameter_named_for_the_stage_takes_its_section_whole():
    params = {"seed": 1, "policy": {"b": 1}, "sft": {"lr": 2, "anything": 3}}
    assert resolve_parameters("sft", params, ["seed", "policy", "sft"]) == {
        "seed": 1, "policy": {"b": 1}, "sft": {"lr": 2, "anything": 3}}  # fmt: skip
    with pytest.raises(StageParamsError, match="declares sft"):
        resolve_parameters("sft", {"seed": 1}, ["seed", "sft"])
    for stage in ("sft", "grpo"):  # the training notebooks take theirs whole
        values = resolve_parameters(stage, yaml.safe_load(open("params.yaml")),
                                    declared_parameters(notebook_for(stage)))  # fmt: skip
        assert values[stage] == yaml.safe_load(open("params.yaml"))[stage]


def test_imports_of_a_subpackage_name_its_module_and_its_init(tmp_path):
    from pathlib import Path

    from kardia.runner import kardia_imports

    package = Path("kardia").resolve()
    found = kardia_imports("from kardia.training.sft import run_sft\nfrom kardia import prompts", package)
    assert found == {"kardia/training/__init__.py", "kardia/training/sft.py", "kardia/prompts.py"}


def test_the_real_notebook_matches_params_yaml():
    params = yaml.safe_load(open("params.yaml"))
    nb = notebook_for("build_data")
    values = resolve_parameters("build_data", params, declared_parameters(nb))
    assert set(values) == set(params["build_data"]) | {"seed", "judge"}


def test_notebooks_are_committed_without_outputs():
    for stage in STAGES:
        try:
            path = notebook_for(stage)
        except FileNotFoundError:
            continue  # stages of later issues
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path
        assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1


def test_main_refuses_a_mismatch_with_exit_code_2(tmp_path, capsys):
    params = yaml.safe_load(open("params.yaml"))
    params["build_data"]["not_a_param"] = 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main(["build_data", "--params", str(path)]) == 2
    assert "not_a_param" in capsys.readouterr().err


def test_unknown_stage():
    with pytest.raises(SystemExit):
        notebook_for("train")


def test_a_stage_notebook_may_carry_a_letter_but_names_match_whole():
    assert notebook_for("judge_fit").name == "00a_judge_fit.ipynb"
    assert notebook_for("judge_validity").name == "00b_judge_validity.ipynb"
    assert notebook_for("build_data").name == "01_build_data.ipynb"
