"""Parameter profiles: every shipped profile resolves against params.yaml into `dvc exp run -S`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kardia import profiles

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
SHIPPED = sorted(p.stem for p in (ROOT / "configs" / "profiles").glob("paper-*.yaml"))
ABLATIONS = sorted(p.stem for p in (ROOT / "configs" / "profiles").glob("ablation-*.yaml"))


def test_the_four_paper_backbones_have_a_profile():
    assert SHIPPED == ["paper-gemma-2b", "paper-gemma-7b", "paper-qwen2.5-3b", "paper-qwen2.5-7b"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_profile_key_exists_in_params(name):
    flat = profiles.flatten(profiles.load_profile(name, ROOT / "configs/profiles"), PARAMS)
    assert flat["policy.backbone"] != "tiny" and flat["judge.kind"] == "openai"
    assert flat["grpo.vllm_mode"] == "server" and flat["build_data.source"] == "Jhcircle/KadiaBench"


def test_default_is_smollm2_and_the_cpu_choices_stay_out_of_gpu_and_smoke_runs():
    # the default trains the packaged SmolLM2 with the CPU choices; CI's smoke profile goes back
    # to the tiny decoder (no 513 MB build), and the paper profiles undo every CPU-only choice
    assert PARAMS["policy"]["backbone"] == "smollm2-135m-instruct"
    assert PARAMS["policy"]["train_layers"] and PARAMS["policy"]["prompt_style"] == "compact"
    # later turns see the last user message only, so the opening (where the feeling is named) rides along
    assert PARAMS["policy"]["history_exchanges"] == 0 and PARAMS["policy"]["keep_opening"] is True
    smoke = profiles.merge(PARAMS, profiles.load_profile("smoke", ROOT / "configs/profiles"))
    assert smoke["policy"]["backbone"] == "tiny" and smoke["policy"]["train_layers"] is None
    for name in SHIPPED:
        paper = profiles.merge(PARAMS, profiles.load_profile(name, ROOT / "configs/profiles"))
        assert paper["policy"]["train_layers"] is None and paper["policy"]["prompt_style"] == "full"
        assert paper["policy"]["dtype"] == "auto"
        assert paper["policy"]["history_exchanges"] is None  # whole dialogues: keep_opening has no effect
        assert paper["evaluate"]["test_prompts"] is None and paper["evaluate"]["human_written"]["prompts"] is None


def test_extends_merges_and_the_child_wins():
    base = profiles.load_profile("paper-qwen2.5-7b", ROOT / "configs/profiles")
    child = profiles.load_profile("paper-gemma-2b", ROOT / "configs/profiles")
    assert child["policy"]["backbone"] == "google/gemma-2b-it"
    assert child["policy"]["lora"] == base["policy"]["lora"] and child["sft"] == base["sft"]
    assert "extends" not in child


def test_paper_batch_sizes_add_up():
    p = profiles.load_profile("paper-qwen2.5-7b", ROOT / "configs/profiles")
    sft, grpo = p["sft"], p["grpo"]
    # SPEC §2.2: SFT global batch 128; GRPO 8 completions per prompt, global batch 32
    assert (
        sft["batch_size"] * sft["gradient_accumulation_steps"] * sft["launch"]["num_processes"]
        == 128
    )
    completions = (
        grpo["batch_size"] * grpo["gradient_accumulation_steps"] * grpo["launch"]["num_processes"]
    )
    assert completions == 32 and grpo["num_generations"] == 8 and grpo["batch_size"] % 8 == 0
    assert grpo["vllm_server_gpus"] not in grpo["launch"]["gpus"].split(",")
    assert (sft["learning_rate"], grpo["learning_rate"]) == (1e-4, 1e-6)


def test_a_key_params_yaml_lacks_stops_the_profile(tmp_path):
    (tmp_path / "typo.yaml").write_text("sft:\n  learnin_rate: 0.1\n")
    with pytest.raises(KeyError, match="sft.learnin_rate"):
        profiles.flatten(profiles.load_profile(tmp_path / "typo.yaml"), PARAMS)


def test_values_travel_as_yaml_parsable_json():
    args = profiles.set_args({"a.b": None, "c": "x/y", "d": 1e-6, "e": [1, 2]})
    pairs = dict(a.split("=", 1) for a in args[1::2])
    assert args[::2] == ["-S"] * 4
    assert {k: yaml.safe_load(v) for k, v in pairs.items()} == {
        "a.b": None,
        "c": "x/y",
        "d": 1e-6,
        "e": [1, 2],
    }
    assert json.loads(pairs["d"]) == 1e-6 and pairs["d"] == "1.0e-06"


def test_main_dry_prints_the_dvc_command(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert profiles.main(["paper-qwen2.5-7b", "--dry"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dvc exp run -n paper-qwen2.5-7b -S ")
    assert '-S policy.backbone="Qwen/Qwen2.5-7B-Instruct"' in out


def test_main_unknown_profile_exits_2(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert profiles.main(["no-such-profile", "--dry"]) == 2
    assert "paper-gemma-2b" in capsys.readouterr().err


@pytest.mark.parametrize("stage", [2, 3])
def test_accelerate_configs_are_deepspeed_zero(stage):
    cfg = yaml.safe_load((ROOT / f"configs/accelerate/zero{stage}.yaml").read_text())
    assert cfg["distributed_type"] == "DEEPSPEED"
    assert cfg["deepspeed_config"]["zero_stage"] == stage and cfg["mixed_precision"] == "bf16"


def test_the_ablations_change_one_thing_each():
    assert ABLATIONS == ["ablation-no-emotion", "ablation-no-format", "ablation-no-rubric",
                         "ablation-sft-only"]  # fmt: skip
    flat = {n: profiles.flatten(profiles.load_profile(n, ROOT / "configs/profiles"), PARAMS)
            for n in ABLATIONS}  # fmt: skip
    assert flat["ablation-no-rubric"] == {"rewards.rubric": 0}
    assert flat["ablation-no-emotion"] == {"rewards.emotion": 0}
    assert flat["ablation-no-format"] == {"rewards.format": 0}
    assert flat["ablation-sft-only"] == {"grpo.learning_rate": 0.0}
    cmd = profiles.command(ROOT / "configs/profiles/ablation-no-rubric.yaml", ROOT / "params.yaml",
                           ["--temp"])  # fmt: skip
    assert cmd == ["dvc", "exp", "run", "-n", "ablation-no-rubric", "-S", "rewards.rubric=0",
                   "--temp"]  # fmt: skip


def test_every_profile_gives_training_sections_the_entry_points_accept():
    import yaml

    from kardia.profiles import load_profile, merge
    from kardia.training import grpo, sft

    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "params.yaml").read_text())
    for profile in sorted((root / "configs/profiles").glob("*.yaml")):
        p = merge(params, load_profile(profile.stem, root / "configs/profiles"))
        assert sft.run_config(p["sft"], policy=p["policy"], seed=0)["sft"] == p["sft"]
        grpo.run_config(p["grpo"], policy=p["policy"], judge=p["judge"], rewards=p["rewards"], seed=0)
