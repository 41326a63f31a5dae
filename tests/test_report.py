"""kardia.report: Table 2, paired deltas beside the paper's, per-emotion accuracy, judge
agreement, probes, the optional ablation and human tables, figures, and the README block."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from kardia import figures, report
from kardia.evaluation import item_records, system_metrics
from kardia.human_eval import export_pairs
from kardia.paper import DELTAS
from kardia.rubric import DIMENSIONS, Judgement
from kardia.spans import render_spans

PROMPT = [{"role": "system", "content": "profile"}, {"role": "user", "content": "My dog died."}]


def reply(emotion: str) -> str:
    return render_spans("They are sad.", "Loss hurts.", emotion, "I'm so sorry.")


def items_for(system: str, n: int, *, right: int, score: int, train_shift: int = 0) -> list[dict]:
    """``n`` items; the first ``right`` name the gold emotion; every dimension gets ``score``."""
    rows = [{"item_id": f"d{i}:0", "emotion": "sad" if i % 2 else "proud", "prompt": PROMPT}
            for i in range(n)]  # fmt: skip
    texts = [reply(r["emotion"] if i < right else "angry") for i, r in enumerate(rows)]
    ev = [Judgement({d: score if i % 3 else max(1, score - 1) for d in DIMENSIONS}) for i in range(n)]
    tr = [Judgement({d: min(5, j.scores[d] + train_shift) for d in DIMENSIONS}) for j in ev]
    return item_records(system, rows, texts, ev, tr)


@pytest.fixture(scope="module")
def items() -> list[dict]:
    return (items_for("raw", 30, right=0, score=1) + items_for("sft", 30, right=15, score=3)
            + items_for("kardia-r1", 30, right=18, score=4))  # fmt: skip


@pytest.fixture(scope="module")
def evaluation(items) -> dict:
    systems = {}
    for s in ("raw", "sft", "kardia-r1"):
        systems[s] = system_metrics([i for i in items if i["system"] == s], resamples=200)
    return {"systems": systems, "test_items": 30, "confidence": 0.95, "same_judge": False,
            "eval_judge": "OpenAICompatibleJudge(model='gpt-5-mini')",
            "train_judge": "OpenAICompatibleJudge(model='Qwen3-8B')", "backbone": "Qwen/x",
            "probe_cases": 2}  # fmt: skip


def test_table2_has_every_axis_with_its_ci_in_system_order(evaluation):
    t2 = report.table2(evaluation)
    assert list(t2.index) == ["Raw backbone", "SFT", "Kardia-R1"]
    assert t2.loc["SFT", "emotion_accuracy"] == pytest.approx(50.0)
    assert t2.loc["Kardia-R1", "emotion_accuracy"] == pytest.approx(60.0)
    for key, _ in report.AXES:
        assert (t2[f"{key}_low"] <= t2[key]).all() and (t2[key] <= t2[f"{key}_high"]).all()
    shown = report.table2_display(t2)
    assert list(shown.columns)[:6] == [name for _, name in report.AXES]
    assert shown.loc["SFT", "Emo Acc (%)"].startswith("50.0 [")
    assert shown.loc["Raw backbone", "Judge failures"] == "0"


def test_deltas_are_paired_differences_beside_the_papers(items):
    d = report.deltas(report.item_frame(items), resamples=300)
    assert list(d["comparison"].unique()) == ["Kardia-R1 − SFT", "SFT − Raw backbone"]
    row = d[(d["comparison"] == "Kardia-R1 − SFT") & (d["metric"] == "Relevance")].iloc[0]
    # every item moved by exactly +1: the paired CI has no width
    assert (row["ours"], row["low"], row["high"]) == (1.0, 1.0, 1.0)
    assert row["paper"] == DELTAS["kardia-r1 - sft"]["relevance"]
    emo = d[(d["comparison"] == "SFT − Raw backbone") & (d["metric"] == "Emo Acc (%)")].iloc[0]
    assert emo["ours"] == pytest.approx(50.0) and emo["low"] < 50 < emo["high"]
    assert emo["paper"] == 59.3
    shown = report.deltas_display(d)
    assert shown.iloc[0]["ours [95% CI]"].startswith("+")


def test_deltas_skip_a_comparison_whose_systems_were_not_evaluated(items):
    only = [i for i in items if i["system"] in ("sft", "kardia-r1")]
    d = report.deltas(report.item_frame(only), resamples=50)
    assert set(d["comparison"]) == {"Kardia-R1 − SFT"} and len(d) == 6


def test_per_emotion_accuracy_per_label_and_system(items):
    t = report.per_emotion(items, order=["raw", "sft", "kardia-r1"])
    assert list(t.columns) == ["n", "Raw backbone", "SFT", "Kardia-R1"]
    assert t.loc["sad", "n"] == 15 and (t["Raw backbone"] == 0).all()
    # sft: items 0..14 right; odd ids are sad -> 7 of 15 sad right
    assert t.loc["sad", "SFT"] == pytest.approx(100 * 7 / 15)


def test_agreement_pools_all_systems_and_sees_a_shift(items):
    a = report.agreement(items)
    assert list(a.index) == list(DIMENSIONS) and (a["n"] == 90).all()
    assert (a["spearman"] > 0.9).all() and (a["exact"] == 1.0).all()
    shifted = items_for("sft", 30, right=0, score=3, train_shift=1)
    b = report.agreement(shifted)
    assert (b["exact"] == 0.0).all() and b["spearman"].tolist() == pytest.approx([1.0] * 5)
    shown = report.agreement_display(b)
    assert shown["exact agreement"].iloc[0] == "0.0 %"


def test_probe_display_flags_probes_at_or_above_honest():
    rows = [{"case": 0, "probe": "honest", "format": 1, "total[train]": 0.5},
            {"case": 0, "probe": "keyword_stuffing", "format": 1, "total[train]": 0.6},
            {"case": 0, "probe": "no_spans", "format": 0, "total[train]": 0.0}]  # fmt: skip
    t = report.probe_display(pd.DataFrame(rows))
    assert list(t["hole[train]"]) == ["", "yes", ""]
    assert t.loc["keyword_stuffing", "vs_honest[train]"] == pytest.approx(0.1)


def test_human_table_is_none_without_ratings_and_counts_them_with(tmp_path):
    a = {f"t{i}": {"prompt": PROMPT, "response": f"A{i}"} for i in range(6)}
    b = {f"t{i}": {"prompt": PROMPT, "response": f"B{i}"} for i in range(6)}
    kit = export_pairs(a, b, tmp_path / "kit", n=6, names=("kardia-r1", "sft"),
                       key_path=tmp_path / "key.csv")  # fmt: skip
    (tmp_path / "ratings").mkdir()
    assert report.human_eval_table(tmp_path / "ratings", kit["key"]) is None
    with kit["key"].open() as f:
        key = list(csv.DictReader(f))
    with (tmp_path / "ratings/ratings_r1.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["pair_id", "rater", *DIMENSIONS])
        w.writeheader()
        for k in key:  # always prefer kardia-r1
            ours = "1" if k["reply_1_system"] == "kardia-r1" else "2"
            w.writerow({"pair_id": k["pair_id"], "rater": "r1", **dict.fromkeys(DIMENSIONS, ours)})
    t = report.human_eval_table(tmp_path / "ratings", kit["key"])
    assert (t["win"] == 100.0).all() and (t["ratings"] == 6).all() and (t["raters"] == 1).all()


def test_ablation_table_only_when_runs_exist(evaluation):
    from kardia.ablations import COLUMNS

    assert report.ablation_table(pd.DataFrame(columns=list(COLUMNS)), evaluation) is None
    runs = pd.DataFrame([{"run": "no-rubric", "rewards": "format=0.33, emotion=0.33, rubric=0",
                          "emotion_accuracy": 40.0, **dict.fromkeys(DIMENSIONS, 2.0),
                          "rubric": 0.25}])  # fmt: skip
    t = report.ablation_table(runs, evaluation)
    assert list(t.index) == ["this run: Kardia-R1", "this run: SFT only", "no-rubric"]
    assert t.loc["no-rubric", "Emo Acc (%)"] == 40.0
    assert t.loc["this run: Kardia-R1", "Emo Acc (%)"] == pytest.approx(60.0)


def test_replace_block_regenerates_between_markers_only():
    text = "intro\n<!-- results:start -->\nold\n<!-- results:end -->\noutro\n"
    once = report.replace_block(text, "results", "new table\n")
    assert once == "intro\n<!-- results:start -->\nnew table\n<!-- results:end -->\noutro\n"
    assert report.replace_block(once, "results", "new table") == once  # idempotent
    with pytest.raises(ValueError, match="results:start"):
        report.replace_block("no markers", "results", "x")


def test_the_results_section_names_the_judges_and_flags_the_embedded_default(evaluation):
    md = {k: f"| {k} |" for k in ("table2", "deltas", "agreement", "probes")}
    section = report.results_section(evaluation, {**md, "ablations": "", "human_eval": ""}, 0.95)
    assert "gpt-5-mini" in section and "Qwen3-8B" in section and "fig1_radar.png" in section
    assert "Embedded default" not in section and "Ablations" not in section
    offline = {**evaluation, "eval_judge": "OfflineJudge()", "train_judge": "OfflineJudge()",
               "same_judge": True, "backbone": "tiny"}  # fmt: skip
    section = report.results_section(offline, {**md, "ablations": "| a |"}, 0.95)
    assert "Embedded default" in section and "the same judge" in section
    assert "**Ablations:**" in section and "| a |" in section
    section = report.results_section({**offline, "backbone": "smollm2-135m-instruct"}, md, 0.95)
    assert "Embedded default" in section and "SmolLM2-135M-Instruct" in section and "tiny" not in section
    assert "one training seed" not in section  # no seed runs: Table 2 is all there is
    seeded = report.results_section(evaluation, {**md, "seeds": "| s |", "seed_deltas": "| d |", "seed_runs": 3}, 0.95)
    assert "one training seed, the workspace run: all 3 seeds under *Seeds* below" in seeded
    assert seeded.index("| table2 |") < seeded.index("**Seeds** — 3 training seeds") < seeded.index("| d |")
    assert "set aside" not in seeded
    aside = report.results_section(evaluation, {**md, "seed_runs": 1, "seeds_set_aside": ["seed-1", "seed-2"]}, 0.95)
    assert "**Seeds set aside** — seed-1, seed-2" in aside and "one training seed" not in aside


def test_write_optional_writes_a_note_when_there_are_no_rows(tmp_path):
    paths = report.write_optional(None, tmp_path / "t", "Caption", "Nothing yet.")
    assert paths[1].read_text() == "Caption\n\nNothing yet.\n"
    df = pd.DataFrame({"x": [1]}, index=pd.Index(["a"], name="run"))
    paths = report.write_optional(df, tmp_path / "u", "Caption", "Nothing yet.")
    assert "| a | 1 |" in paths[1].read_text()


def test_the_report_figures_are_written(tmp_path, evaluation, items):
    frame = report.item_frame(items)
    t2 = report.table2(evaluation)
    paths = [
        figures.radar(t2, tmp_path / "radar.png", report.AXES),
        figures.score_distributions(frame, tmp_path / "dist.png", DIMENSIONS),
        figures.per_emotion_heatmap(report.per_emotion(items), tmp_path / "emo.png"),
    ]
    sft = pd.DataFrame({"step": range(1, 21), "loss": [5 - i / 10 for i in range(20)]})
    grpo = pd.DataFrame({"step": [1, 2, 3], "reward": [0.1, 0.2, 0.3],
                         "rewards/format_reward/mean": [0.5, 0.6, 0.7]})  # fmt: skip
    dev = pd.DataFrame({"step": [0, 2], "total": [0.3, 0.4], "rubric": [0.2, 0.3],
                        "kept": [False, True]})  # fmt: skip
    paths.append(figures.training_curves(sft, grpo, dev, tmp_path / "train.png"))
    for p in paths:
        assert p.stat().st_size > 5000, p


def validity_frame() -> pd.DataFrame:
    rows = []
    for judge, auc_, rho in (
        ("judge", 0.84, 0.4),
        ("eval_judge", 0.86, 0.45),
        ("length", 0.55, 0.3),
    ):
        rows.append({"judge": judge, "dataset": "diasafety", "human": "safe", "dimension": "safety",
                     "n": 100, "failed": 0, "spearman": 0.5, "spearman_lo": 0.4, "spearman_hi": 0.6, "auc": auc_,
                     "auc_lo": auc_ - 0.02, "auc_hi": auc_ + 0.02, "pairwise": 0.8,
                     "pairwise_lo": 0.7, "pairwise_hi": 0.9})  # fmt: skip
        rows.append({"judge": judge, "dataset": "ieval", "human": "EU", "dimension": "empathy",
                     "n": 50, "failed": 2, "spearman": rho, "spearman_lo": rho - 0.1, "spearman_hi": rho + 0.1,
                     "auc": float("nan"), "auc_lo": float("nan"), "auc_hi": float("nan"),
                     "pairwise": 0.7, "pairwise_lo": 0.6, "pairwise_hi": 0.8})  # fmt: skip
    return pd.DataFrame(rows)


def test_validity_display_is_checks_by_judges_with_intervals():
    primary = report.validity_display(validity_frame())
    assert list(primary.columns) == ["n", "training judge", "evaluation judge", "length alone"]
    safety, empathy = "diasafety: safe → safety", "ieval: EU → empathy"
    assert primary.loc[safety, "evaluation judge"] == "AUC 0.86 [0.84, 0.88]"
    assert primary.loc[empathy, "length alone"] == "ρ 0.30 [0.20, 0.40]"
    assert primary.loc[empathy, "n"] == 52  # rated items, failed judgements included
    pairwise = report.validity_display(validity_frame(), "pairwise")
    assert pairwise.loc[empathy, "training judge"] == "0.70 [0.60, 0.80]"


def test_the_table2_caption_names_the_judge_and_its_agreement_with_people(evaluation):
    validity = {"judges": {"eval_judge": {"safety_auc": 0.858, "empathy_rho": 0.39, "relevance_rho": 0.43},
                           "judge": {"safety_auc": 0.839}}}  # fmt: skip
    caption = report.judge_caption(evaluation, validity)
    assert "evaluation judge OpenAICompatibleJudge(model='gpt-5-mini')" in caption
    assert "safety AUC 0.86, empathy ρ 0.39, relevance ρ 0.43" in caption
    assert (
        "training judge OpenAICompatibleJudge(model='Qwen3-8B') (on held-out human ratings: safety AUC 0.84)"
        in caption
    )
    assert "not validated against human ratings" in report.judge_caption(evaluation, None)


def test_the_validity_figure_and_the_readme_block(tmp_path, evaluation):
    path = figures.judge_validity(validity_frame(), tmp_path / "v.png", 0.9, report.JUDGE_ROLES)
    assert path.stat().st_size > 5000
    md = {k: f"| {k} |" for k in ("table2", "deltas", "agreement", "probes", "validity")}
    section = report.results_section(evaluation, md, 0.95)
    assert "**Judge validity**" in section and "fig_judge_validity.png" in section


def test_the_training_table_comes_from_the_metric_files(tmp_path):
    sft = {"backbone": "smollm2-135m-instruct", "steps": 90, "train_turns": 720, "seconds_per_step": 17.26,
           "trainable": 30_000_000, "parameters": 134_515_008,
           "dev": {"n": 32, "format_compliance": 0.9375, "emotion_accuracy": 0.0625}}  # fmt: skip
    grpo = {"judge": "OfflineJudge('m.pkl')", "steps": 30, "seconds_per_step": 104.9, "dev_prompts": 16,
            "judge_stats": {"items": 431, "failures": 0},
            "trend": {"reward": {"first": 0.4, "last": 0.45}}}  # fmt: skip
    dev = pd.DataFrame({"step": [0, 15, 30], "total": [0.5, 0.55, 0.52], "kept": [False, True, False]})
    log = pd.DataFrame({"loss": [4.0] * 20 + [0.5] * 70})
    nb = tmp_path / "02_sft.ipynb"
    nb.write_text(json.dumps({"metadata": {"papermill": {"duration": 1800.4}}, "cells": []}))
    block = report.training_block(sft, grpo, dev, log, report.stage_seconds([nb]))
    assert "90 steps over 720 easy turns, 17.26 s/step" in block and "`dvc repro`, backbone" in block
    with_machine = {**sft, "machine": {"device": "Xeon", "cores": 2, "bf16": True}}
    block_m = report.training_block(with_machine, grpo, dev, log, report.stage_seconds([nb]))
    assert "`dvc repro` on Xeon, 2 cores, bf16 autocast, backbone" in block_m
    assert "loss 4.00 → 0.50" in block and "93.8 % four-span replies; emotion accuracy 6.2 %" in block
    assert "30 steps, 104.9 s/step, 431 judgements, 0 failed" in block and "total 0.400 → 0.450" in block
    with_turns = report.training_block(sft, {**grpo, "train_turns": 120}, dev, log, report.stage_seconds([nb]))
    assert "| `grpo` | 30 steps over 120 hard turns, 104.9 s/step" in with_turns
    assert "format n/a" in block  # a reward the run did not log says so
    assert "step 15: 0.550 (kept)" in block and "sft 1800 s; 30 min together" in block
    (tmp_path / "x.ipynb").write_text(json.dumps({"metadata": {}, "cells": []}))
    with pytest.raises(ValueError, match="no papermill duration"):
        report.stage_seconds([tmp_path / "x.ipynb"])


def test_the_seed_tables_show_the_seed_sd_and_whether_each_sign_held():
    from kardia import seeds

    items = {"workspace": items_for("sft", 20, right=10, score=3) + items_for("kardia-r1", 20, right=12, score=4),
             "seed-1": items_for("sft", 20, right=8, score=3) + items_for("kardia-r1", 20, right=6, score=4)}  # fmt: skip
    frames = {k: report.item_frame(v, order=["sft", "kardia-r1"]) for k, v in items.items()}
    table = seeds.seed_table(frames, report.AXES, resamples=200)
    deltas = seeds.seed_deltas(frames, report.DELTA_PAIRS, report.AXES, resamples=200)
    wide, shown = report.seeds_display(table, deltas, 0.9)
    assert list(wide.index) == ["SFT", "Kardia-R1"] and "90% CI" in wide.index.name
    assert wide.loc["SFT", "Emo Acc (%)"].startswith("45.0 ± 7.1 [")  # 50 % and 40 % in the two seeds
    emo = shown[shown["metric"] == "Emo Acc (%)"].iloc[0]
    assert emo["per seed"] == "+10.00, -10.00" and emo["sign held in all 2 seeds"] == "no"
    rel = shown[shown["metric"] == "Relevance"].iloc[0]
    assert rel["sign held in all 2 seeds"] == "yes"


def test_the_seed_tables_add_format_and_the_human_written_situations():
    def run(sft_right: int, r1_right: int, n: int) -> list[dict]:
        return (items_for("raw", n, right=0, score=2) + items_for("sft", n, right=sft_right, score=3)
                + items_for("kardia-r1", n, right=r1_right, score=4))  # fmt: skip

    order = ["raw", "sft", "kardia-r1"]
    frames = {k: report.item_frame(v, order=order) for k, v in
              {"workspace": run(10, 12, 20), "seed-1": run(8, 6, 20)}.items()}  # fmt: skip
    hw = {k: report.item_frame(v, order=order) for k, v in
          {"workspace": run(1, 5, 10), "seed-1": run(3, 4, 10)}.items()}  # fmt: skip
    table, deltas = report.seed_tables(frames, hw, resamples=200)
    wide, shown = report.seeds_display(table, deltas, 0.95)
    assert list(wide.columns)[-2:] == ["Format (%)", "Emo Acc (human-written)"]
    assert wide.loc["SFT", "Emo Acc (human-written)"].startswith("20.0 ± 14.1 [")  # 10 % and 30 %
    hw_delta = deltas[(deltas["metric"] == "Emo Acc (human-written)") & (deltas["comparison"] == "kardia-r1 − sft")]
    assert hw_delta.iloc[0]["per_run"] == pytest.approx({"workspace": 40.0, "seed-1": 10.0})
    assert hw_delta.iloc[0]["sign_holds"]
    # one block per comparison, in DELTA_PAIRS order, the human-written delta last in each
    blocks = deltas.groupby("comparison", sort=False)["metric"].apply(list)
    assert list(blocks.index) == ["kardia-r1 − sft", "sft − raw"]
    assert all(b[-1] == "Emo Acc (human-written)" and len(b) == len(report.AXES) + 1 for b in blocks)
    plain, _ = report.seed_tables(frames, {}, resamples=200)
    assert "Emo Acc (human-written)" not in set(plain["metric"])
