"""The benchmarks run (quick sizes) and print their measurements; numbers are not asserted."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_rewards_quick(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_rewards.py"), "--quick",
         "--json", str(tmp_path / "bench.json")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line[:3] in ("(a)", "(b)")]
    assert len(lines) == 2, out.stdout
    assert "0 server requests" in lines[1] and "cache hit rate 100%" in lines[1]
    assert (tmp_path / "bench.json").stat().st_size > 0


def test_bench_build_quick():
    import json

    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_build.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    positive = ("validation_memory_per_s", "validation_file_per_s", "offline_build_per_s",
                "offline_filter_per_s", "llm_conc1_s", "llm_conc32_s", "llm_speedup",
                "llm_requests", "validation_dialogues", "offline_seeds", "llm_dialogues")  # fmt: skip
    for key in positive:
        assert results[key] > 0, (key, results)
    assert results["llm_same_dialogues"] is True
    lines = [line for line in out.stderr.splitlines() if line[:3] in ("(a)", "(b)", "(c)")]
    assert len(lines) == 3, out.stderr


def quick_json(script: str):
    """Run ``benchmarks/<script> --quick --json``: its JSON rows and its stderr (the table)."""
    import json

    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout), out.stderr


@pytest.mark.bench  # minutes: `pytest -m bench`, outside CI's 20-minute budget
@pytest.mark.timeout(360)  # two training workers and a small judge fit, in subprocesses
def test_bench_train_quick():
    results, stderr = quick_json("bench_train.py")
    rows = {(r["kind"], r["model"]): r for r in results}
    for kind in ("sft", "grpo"):
        row = rows[(kind, "tiny")]
        assert row["steps"] == 3 and row["s_per_step"] > 0 and row["peak_memory_mb"] > 100
        assert row["backend_used"] == "transformers" and row["parameters"] > 100_000
    assert "s/step" in stderr  # the table goes to stderr with --json


@pytest.mark.bench  # minutes: `pytest -m bench`
@pytest.mark.timeout(300)  # fits two small judges first
def test_bench_judge_quick():
    results, stderr = quick_json("bench_judge.py")
    rows = {r["judge"]: r for r in results}
    assert set(rows) == {"lexicon", "offline:minilm", "offline:ngram"}
    for row in rows.values():
        assert row["warm_per_s"] > 0 and row["cold_per_s"] > 0 and row["replies"] == 128
    assert "warm / target" in stderr


def test_bench_smollm2_says_what_is_missing_without_the_built_backbone(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_smollm2.py"), "--quick",
         "--backbones-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0 and "smollm2-135m-instruct is missing" in out.stderr


def _turn(situation: str, user: str, emotion: str, turn: int = 0, opening: str = "") -> dict:
    earlier = [{"role": "user", "content": opening}, {"role": "assistant", "content": "ok"}] if opening else []
    return {
        "situation": situation,
        "prompt": [*earlier, {"role": "user", "content": user}],
        "emotion": emotion,
        "turn": turn,
    }


def test_label_baseline_reads_the_words_and_nothing_else(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from label_baseline import label_baseline

    from kardia.data import write_jsonl

    train = [
        _turn("my dog died", "I miss him so", "sad"),
        _turn("I won the cup", "best day ever", "joyful"),
    ] * 5
    test = [
        _turn("my dog died last week", "I miss him", "sad"),
        _turn("we won the cup", "best day", "joyful", 1),
    ]
    for split, rows in {"train": train, "dev": [], "test": test}.items():
        write_jsonl(rows, tmp_path / "turns" / f"{split}.jsonl")
    for model in ("nb", "minilm"):
        result = label_baseline(tmp_path, ROOT / "data/human_ratings", model)
        assert result["test"] == {"n": 2, "accuracy": 1.0, "near_miss_share": None}, model
        assert result["test_first_turns"]["accuracy"] == 1.0
        assert result["human_written"]["n"] == 480  # iEval's situations, labelled among our 32

    swapped = [{**r, "emotion": "sad" if r["emotion"] == "joyful" else "joyful"} for r in test]
    write_jsonl(swapped, tmp_path / "turns" / "test.jsonl")
    wrong = label_baseline(tmp_path, ROOT / "data/human_ratings")["test"]
    assert wrong["accuracy"] == 0.0 and wrong["near_miss_share"] == 0.0  # sad for joyful: valence flipped
    with pytest.raises(ValueError, match="unknown model"):
        label_baseline(tmp_path, ROOT / "data/human_ratings", "bert")


def test_label_baseline_phrase_reads_the_builders_feeling_phrases(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from label_baseline import label_baseline, phrase_lookup

    from kardia.data import write_jsonl

    # "fed up" belongs to angry and annoyed; "so angry" is angry's alone; a turn without a phrase
    assert phrase_lookup(["I am so angry.", "I'm fed up with it", "We talked."]) == [
        ["angry"], ["angry", "annoyed"], []]  # fmt: skip
    test = [
        _turn("s1", "Honestly, I'm scared.", "afraid"),
        _turn("s2", "I'm fed up with it.", "annoyed"),
        _turn("s3", "Then we drove home.", "sad", 1, opening="Our cat died. I feel so sad."),
    ]
    for split, rows in {"train": test, "dev": [], "test": test}.items():
        write_jsonl(rows, tmp_path / "turns" / f"{split}.jsonl")
    result = label_baseline(tmp_path, ROOT / "data/human_ratings", "phrase")
    assert result["test_first_turns"]["accuracy"] == pytest.approx(0.75)  # 1 + 1/2 of 2
    assert result["test_later_turns"] == {"n": 1, "accuracy": 0.0, "near_miss_share": 0.0}
    # with the dialogue's opening in front (policy.keep_opening), the later turn's phrase is found
    with_opening = label_baseline(tmp_path, ROOT / "data/human_ratings", "phrase", opening=True)
    assert with_opening["test_later_turns"]["accuracy"] == 1.0
    assert with_opening["test_first_turns"] == result["test_first_turns"]


def test_record_puts_what_a_benchmark_printed_into_the_readme(tmp_path):
    bench = tmp_path / "bench_fake.py"
    bench.write_text(
        "import json, sys\n"
        "print('| row | s/step |')\nprint('| sft | 1.25 |')\n"
        "json.dump({'sft': 1.25}, open(sys.argv[sys.argv.index('--json') + 1], 'w'))\n"
        "sys.exit(3 if 'fail' in sys.argv else 0)\n"
    )
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench-fake:start -->\ntyped by hand: 9.99\n<!-- bench-fake:end -->\nend\n")
    record = [sys.executable, str(ROOT / "benchmarks" / "record.py"), "fake", "--readme", str(readme),
              "--out-dir", str(tmp_path / "out"), "--"]  # fmt: skip
    out = subprocess.run([*record, sys.executable, str(bench)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text = readme.read_text()
    assert "| sft | 1.25 |" in text and "9.99" not in text and text.endswith("end\n")
    saved = json.loads((tmp_path / "out" / "fake.json").read_text())
    assert saved["results"] == {"sft": 1.25} and saved["run"]["seconds"] > 0
    failed = subprocess.run([*record, sys.executable, str(bench), "fail"], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert failed.returncode == 3 and readme.read_text() == text  # a failed run records nothing


def test_peak_memory_counts_the_children_of_the_command(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from peak_memory import measure

    # a child that holds ~200 MB for a second, under a parent that holds almost nothing
    child = "import time; b = bytearray(200_000_000); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    result = measure([sys.executable, "-c", parent], every=0.2)
    assert result["returncode"] == 0 and result["samples"] >= 3
    assert result["peak_rss_bytes"] > 200_000_000
    failed = measure([sys.executable, "-c", "raise SystemExit(3)"], every=0.2)
    assert failed["returncode"] == 3


def test_record_wraps_a_command_under_peak_memory(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- bench-repro:start -->\nold\n<!-- bench-repro:end -->\n")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "record.py"), "repro", "--readme", str(readme),
           "--out-dir", str(tmp_path / "out"), "--", sys.executable, str(ROOT / "benchmarks" / "peak_memory.py"),
           "--every", "0.2", "--", sys.executable, "-c", "print('pipeline output')"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # the command's output on stderr, only the table on stdout
    assert "pipeline output" in out.stderr.splitlines() and "pipeline output" not in out.stdout.splitlines()
    text = readme.read_text()
    assert "| peak resident memory, summed over the process tree |" in text and "old" not in text
    saved = json.loads((tmp_path / "out" / "repro.json").read_text())
    assert saved["results"]["returncode"] == 0 and saved["results"]["peak_rss_bytes"] > 0


def test_every_recorded_benchmark_has_a_script_and_a_readme_block():
    import re

    makefile = (ROOT / "Makefile").read_text()
    pairs = re.search(r"^BENCH := (.+)$", makefile, re.M).group(1).split()
    readme = (ROOT / "README.md").read_text()
    for name, script in (p.split(":") for p in [*pairs, "repro:peak_memory"]):
        assert (ROOT / "benchmarks" / f"{script}.py").is_file(), script
        assert f"<!-- bench-{name}:start -->" in readme and f"<!-- bench-{name}:end -->" in readme, name
    assert "record.py repro --" in makefile  # make repro-measured fills the repro block


def test_the_gpu_check_dry_run_trains_both_shapes_and_writes_its_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    script = ROOT / "scripts/gpu_check"
    run = subprocess.run(["bash", str(script), "--dry-run", "--json", str(out)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["dry_run"] and [(r["shape"], r["stage"]) for r in result["rows"]] == [
        (s, stage) for s in ("qwen2.5-0.5b-shape", "smollm2-135m-shape") for stage in ("sft", "grpo")]
    assert all(r["steps"] == 1 and r["seconds_per_step"] > 0 for r in result["rows"])
    assert "| qwen2.5-0.5b-shape | grpo |" in run.stdout
