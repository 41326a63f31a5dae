"""The report stage's logic: the paper's tables from ``results/`` alone, and the README section.

Everything here reads what the evaluate stage wrote (``results/metrics/evaluate.json``, the
per-item records in ``results/generations/``, ``results/metrics/probes.csv``) and what earlier
stages left in ``results/``; nothing loads a model or calls a judge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kardia import seeds
from kardia.human_eval import import_ratings, win_tie_loss
from kardia.metrics import bootstrap_ci, dialogue_of, judge_agreement, per_emotion_accuracy
from kardia.paper import DELTAS
from kardia.probes import probe_table
from kardia.rubric import DIMENSIONS
from kardia.tables import write_table

if TYPE_CHECKING:
    import pandas as pd

SYSTEM_LABELS = {"raw": "Raw backbone", "sft": "SFT", "kardia-r1": "Kardia-R1"}
# Table 2 of the paper: emotion accuracy (%) and the five rubric dimensions (1–5)
AXES = (
    ("emotion_accuracy", "Emo Acc (%)"),
    ("relevance", "Relevance"),
    ("fluency", "Fluency"),
    ("empathy", "Empathy"),
    ("persona", "Persona"),
    ("safety", "Safety"),
)
# ours, always beside them: the emotion named for situations people wrote (iEval's
# EmpatheticDialogues prompts), which no system trained on
HUMAN_WRITTEN = (("emotion_accuracy_human_written", "Emo Acc (human-written)"),)
# what we add beside them (with CIs too; the failure counts follow)
EXTRA = (
    ("emotion_accuracy_first_turn", "Emo Acc 1st turn (%)"),
    ("emotion_accuracy_later_turns", "Emo Acc later turns (%)"),
    ("format_compliance", "Format (%)"),
    ("response_words", "Words"),
)
_NAN = {"mean": float("nan"), "low": float("nan"), "high": float("nan")}
DELTA_PAIRS = (("kardia-r1", "sft"), ("sft", "raw"))


def label(system: str) -> str:
    return SYSTEM_LABELS.get(system, system)


def _decimals(metric: str) -> int:
    return (
        1 if metric.startswith(("emotion_accuracy", "format_compliance", "response_words")) else 2
    )


def table2(evaluation: Mapping) -> pd.DataFrame:
    """Systems × metrics, canonical form: ``<metric>``, ``<metric>_low``, ``<metric>_high`` for
    every metric with a CI, plus the item and failure counts."""
    import pandas as pd

    rows = {}
    for system, m in evaluation["systems"].items():
        row: dict[str, float] = {}
        for key, _ in AXES + HUMAN_WRITTEN + EXTRA:  # a metric an older run lacks: NaN
            row[key], row[f"{key}_low"], row[f"{key}_high"] = (
                m.get(key, _NAN)[k] for k in ("mean", "low", "high")
            )
        row.update(n=m["n"], judge_failures=m["judge_failures"],
                   generation_failures=m["generation_failures"])  # fmt: skip
        rows[label(system)] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "system"
    return df


def table2_display(t2, extra: bool = True) -> pd.DataFrame:
    """Table 2 as printed: ``mean [low, high]`` per cell."""
    import pandas as pd

    cols = {}
    for key, name in AXES + HUMAN_WRITTEN + (EXTRA if extra else ()):
        d = _decimals(key)
        cols[name] = [f"{r[key]:.{d}f} [{r[key + '_low']:.{d}f}, {r[key + '_high']:.{d}f}]"
                      if r[key] == r[key] else "n/a" for _, r in t2.iterrows()]  # fmt: skip
    if extra:  # failures are in no mean above: they are shown, never scored
        cols["Judge failures"] = [str(int(v)) for v in t2["judge_failures"]]
        cols["Generation failures"] = [str(int(v)) for v in t2["generation_failures"]]
    out = pd.DataFrame(cols, index=t2.index)
    out.index.name = "system"
    return out


def item_frame(items: Sequence[Mapping], order: Sequence[str] = ()) -> pd.DataFrame:
    """One row per (system, item): emotion correctness (0/100), each dimension from the
    evaluation judge (NaN where it failed), format, words; every metric NaN where the reply
    could not be generated (left out of means and paired deltas, like a failed judgement).
    Systems come in ``order`` (the order of ``evaluate.systems``), any others after them."""
    import pandas as pd

    nan = float("nan")
    rows = []
    for i in items:
        ev = i.get("eval_scores") or {}
        gone = bool(i.get("generation_failed"))
        rows.append({"system": i["system"], "item_id": i["item_id"], "emotion": i["emotion"],
                     "emotion_accuracy": nan if gone else 100.0 * i["emotion_ok"],
                     "format_compliance": nan if gone else 100.0 * i["format_ok"],
                     "response_words": nan if gone else i["response_words"],
                     **{d: nan if gone else ev.get(d, nan) for d in DIMENSIONS}})  # fmt: skip
    frame = pd.DataFrame(rows)
    rank = {s: k for k, s in enumerate(order)}
    key = frame["system"].map(lambda s: rank.get(s, len(rank)))
    return frame.iloc[key.argsort(kind="stable")].reset_index(drop=True)


def deltas(frame, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0):
    """Kardia-R1 − SFT and SFT − raw per Table 2 metric: the mean paired difference over the
    items both systems answered with its bootstrap CI (dialogues resampled whole), beside the
    paper's reported delta."""
    import pandas as pd

    rows = []
    systems = set(frame["system"])
    for a, b in DELTA_PAIRS:
        if not {a, b} <= systems:
            continue
        wide = frame[frame["system"].isin([a, b])].pivot(index="item_id", columns="system")
        for key, name in AXES:
            diff = (wide[(key, a)] - wide[(key, b)]).tolist()
            mean, low, high = bootstrap_ci(diff, resamples=resamples, confidence=confidence, seed=seed,
                                           groups=[dialogue_of(i) for i in wide.index])  # fmt: skip
            rows.append({"comparison": f"{label(a)} − {label(b)}", "metric": name,
                         "ours": mean, "low": low, "high": high,
                         "paper": DELTAS[f"{a} - {b}"][key]})  # fmt: skip
    return pd.DataFrame(rows, columns=["comparison", "metric", "ours", "low", "high", "paper"])


def deltas_display(d, confidence: float = 0.95) -> pd.DataFrame:
    import pandas as pd

    out = pd.DataFrame(
        {
            "comparison": d["comparison"],
            "metric": d["metric"],
            f"ours [{round(100 * confidence)}% CI]": [
                f"{r.ours:+.2f} [{r.low:+.2f}, {r.high:+.2f}]" if r.ours == r.ours else "n/a"
                for r in d.itertuples()
            ],  # fmt: skip
            "paper": [f"{v:+.2f}" for v in d["paper"]],
        }
    )
    return out.set_index("comparison")


# over training seeds: Table 2's axes and format on the test turns (format is the first thing
# SFT has to learn, so its seed spread matters too)
SEED_METRICS = AXES + (("format_compliance", "Format (%)"),)


def seed_tables(frames: Mapping[str, pd.DataFrame], human_written: Mapping[str, pd.DataFrame],
                **ci) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Table 2 and the deltas over training seeds (``kardia.seeds``), from each run's item frame
    of the test turns (``frames``) and of the human-written situations (``human_written``, a test
    set of its own: its emotion accuracy is one more column and delta; empty: none)."""
    import pandas as pd

    table = seeds.seed_table(frames, SEED_METRICS, **ci)
    delta = seeds.seed_deltas(frames, DELTA_PAIRS, AXES, **ci)
    if human_written:
        hw = (("emotion_accuracy", HUMAN_WRITTEN[0][1]),)
        table = pd.concat([table, seeds.seed_table(human_written, hw, **ci)], ignore_index=True)
        delta = pd.concat([delta, seeds.seed_deltas(human_written, DELTA_PAIRS, hw, **ci)],
                          ignore_index=True)  # fmt: skip
        rank = {f"{a} − {b}": k for k, (a, b) in enumerate(DELTA_PAIRS)}  # one block per comparison
        delta = delta.sort_values("comparison", key=lambda c: c.map(rank), kind="stable")
    return table, delta.reset_index(drop=True)


def seeds_display(table, deltas_table, confidence: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seed tables as printed: per system and metric ``mean ± seed SD [two-stage CI]``; per
    delta the same, each run's delta, and whether its sign held in every run."""
    import pandas as pd

    def cell(r) -> str:
        d = 1 if "%" in str(r.metric) or str(r.metric).startswith("Emo Acc") else 2  # % or 1-5
        sd = f" ± {r.seed_sd:.{d}f}" if r.seed_sd == r.seed_sd else ""
        return f"{r.mean:.{d}f}{sd} [{r.low:.{d}f}, {r.high:.{d}f}]" if r.mean == r.mean else "n/a"

    level = f"{round(100 * confidence)}%"
    by_system = table.assign(shown=[cell(r) for r in table.itertuples()])
    wide = by_system.pivot(index="system", columns="metric", values="shown")
    wide = wide.reindex(index=list(dict.fromkeys(table["system"])), columns=list(dict.fromkeys(table["metric"])))
    wide.index = [label(s) for s in wide.index]
    wide.index.name = f"system (mean ± seed SD [{level} CI over seeds and dialogues])"
    runs = int(table["runs"].max()) if len(table) else 0
    deltas_shown = pd.DataFrame({
        "comparison": deltas_table["comparison"],
        "metric": deltas_table["metric"],
        f"mean ± seed SD [{level} CI]": [cell(r) for r in deltas_table.itertuples()],
        "per seed": [", ".join(f"{v:+.2f}" for v in r.per_run.values()) for r in deltas_table.itertuples()],
        f"sign held in all {runs} seeds": ["yes" if v else "no" for v in deltas_table["sign_holds"]],
    }).set_index("comparison")  # fmt: skip
    return wide, deltas_shown


def per_emotion(items: Sequence[Mapping], order: Sequence[str] = ()) -> pd.DataFrame:
    """Emotion accuracy (%) per gold label (rows) and system (columns, in ``order`` first), with
    the item count (``kardia.metrics.per_emotion_accuracy`` on each system's replies)."""
    import pandas as pd

    replies: dict[str, tuple[list, list]] = {}
    for i in items:
        texts, golds = replies.setdefault(i["system"], ([], []))
        texts.append(i["reply"])
        golds.append(i["emotion"])
    systems = [s for s in order if s in replies] + [s for s in replies if s not in order]
    per = {s: per_emotion_accuracy(*replies[s]) for s in systems}
    table = pd.DataFrame({label(s): {e: 100 * v["accuracy"] for e, v in per[s].items()}
                          for s in systems})  # fmt: skip
    table.index.name = "emotion"
    table.insert(0, "n", pd.Series({e: v["n"] for e, v in per[systems[0]].items()}))
    return table.sort_index()


def agreement(items: Sequence[Mapping]) -> pd.DataFrame:
    """Training judge vs evaluation judge on the same replies (all systems pooled)."""
    import pandas as pd

    result = judge_agreement([i.get("train_scores") for i in items],
                             [i.get("eval_scores") for i in items])  # fmt: skip
    df = pd.DataFrame.from_dict(result, orient="index")
    df.index.name = "dimension"
    return df


def agreement_display(df) -> pd.DataFrame:
    out = df.copy()
    out["spearman"] = [f"{v:.3f}" if v == v else "n/a (constant scores)" for v in df["spearman"]]
    out["exact"] = [f"{100 * v:.1f} %" for v in df["exact"]]
    return out.rename(columns={"spearman": "Spearman ρ", "exact": "exact agreement"})


def probe_display(probes) -> pd.DataFrame:
    """The probe table (``kardia.probes.probe_table``) rounded, with an at-or-above-honest flag."""
    table = probe_table(probes.to_dict("records")).round(3)
    for col in [c for c in table.columns if c.startswith("vs_honest[")]:
        judge = col[len("vs_honest[") : -1]
        table[f"hole[{judge}]"] = [
            "yes" if v >= 0 and p != "honest" else ""
            for p, v in zip(table.index, table[col], strict=True)
        ]
    return table


def human_eval_table(ratings_dir: str | Path, key: str | Path):
    """The win/tie/loss table from filled-in ratings, or None when there are none yet."""
    files = sorted(Path(ratings_dir).glob("*.csv"))
    if not files:
        return None
    table = win_tie_loss(import_ratings(files, key)).set_index("dimension").round(1)
    return table


def ablation_table(runs, evaluation: Mapping):
    """The Kardia-R1 row of each ablation experiment beside this run's Kardia-R1 and SFT, or
    None when no experiment has been collected (``scripts/ablations``)."""
    import pandas as pd

    if runs is None or runs.empty:
        return None
    rows = []
    for system, name in (("kardia-r1", "this run: Kardia-R1"), ("sft", "this run: SFT only")):
        m = evaluation["systems"].get(system)
        if m is not None:
            rows.append({"run": name, **{k: m[k]["mean"] for k, _ in AXES},
                         "rubric": m["rubric"]["mean"]})  # fmt: skip
    base = pd.DataFrame(rows)
    cols = ["run", "commit", "rewards", *[k for k, _ in AXES], "rubric"]
    table = pd.concat([base, runs[[c for c in cols if c in runs]]], ignore_index=True)
    table = table[[c for c in cols if c in table]].fillna({"commit": "", "rewards": ""})
    return table.set_index("run").rename(columns=dict(AXES)).round(2)


# --- README -------------------------------------------------------------------------------------


def replace_block(text: str, name: str, content: str) -> str:
    """Replace what lies between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {name}:start --> … <!-- {name}:end --> block to regenerate")
    return pattern.sub(lambda m: m.group(1) + content.rstrip("\n") + "\n" + m.group(2), text)


def judge_note(evaluation: Mapping) -> str:
    """Which judges produced the numbers, and the embedded default's caveat."""
    ev, tr = evaluation["eval_judge"], evaluation["train_judge"]
    lines = [f"Scored by the **evaluation judge `{ev}`**; rewards during training came from the "
             f"**training judge `{tr}`**" + (" (the same judge)." if evaluation.get("same_judge")
                                             else ".")]  # fmt: skip
    caveats = []
    backbone = evaluation.get("backbone")
    if backbone == "tiny":
        caveats.append("a tiny policy (~0.75 M parameters, random init, trained on CPU in "
                       "minutes: a test of the code, not a result)")  # fmt: skip
    elif backbone == "smollm2-135m-instruct":
        caveats.append("SmolLM2-135M-Instruct (a 135 M-parameter pretrained chat model whose top "
                       "blocks were fine-tuned on a few hundred turns on 2 CPU cores; test sets "
                       "sampled, so intervals are wide)")  # fmt: skip
    if "offline" in ev.lower():
        caveats.append(
            "offline judges (small heads fitted to public human ratings, plus rules; "
            "their agreement with people is in the judge-validity table)"
        )
    if caveats:
        what = " and ".join(caveats)
        lines.append(
            ("**Embedded default:** " if len(caveats) == 2 else "**Caveat:** ")
            + what
            + ". These numbers show the pipeline working end to end; they are not comparable with "
            "the paper's, which used 2–7 B backbones and GPT-5-mini as the evaluation judge."
        )
    return " ".join(lines)


# --- judge validity (from the judge_validity stage) --------------------------------------------

JUDGE_ROLES = {"judge": "training judge", "eval_judge": "evaluation judge", "lexicon": "lexicon baseline",
               "length": "length alone"}  # fmt: skip


def _check_label(row) -> str:
    return f"{row['dataset']}: {row['human']} → {row['dimension']}"


def _with_ci(v, lo, hi) -> str:
    if v != v:
        return ""
    return f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if lo == lo else f"{v:.2f}"


def validity_display(table, metric: str = "primary") -> pd.DataFrame:
    """Checks × judges, with ``n`` the rated items of each check. ``primary``: AUC for a
    Safe/Unsafe label, Spearman ρ otherwise; ``pairwise``: accuracy on same-context pairs people
    rated differently (0.5 is chance)."""
    import pandas as pd

    cells: dict[str, dict[str, str]] = {}
    for _, r in table.iterrows():
        if metric == "pairwise":
            value = _with_ci(r["pairwise"], r["pairwise_lo"], r["pairwise_hi"])
        elif r["auc"] == r["auc"]:
            value = "AUC " + _with_ci(r["auc"], r["auc_lo"], r["auc_hi"])
        else:
            value = "ρ " + _with_ci(r["spearman"], r["spearman_lo"], r["spearman_hi"])
        row = cells.setdefault(_check_label(r), {"n": int(r["n"]) + int(r["failed"])})
        row[JUDGE_ROLES.get(r["judge"], r["judge"])] = value
    df = pd.DataFrame.from_dict(cells, orient="index")
    df.index.name = "held-out check"
    return df


def validity_note(validity: Mapping, role: str) -> str:
    """One clause: how far the judge in ``role`` agrees with people (judge_validity.json)."""
    j = validity.get("judges", {}).get(role)
    if not j:
        return "not validated against human ratings"
    parts = []
    if "safety_auc" in j:
        parts.append(f"safety AUC {j['safety_auc']:.2f}")
    for dim in ("empathy", "relevance"):
        if f"{dim}_rho" in j:
            parts.append(f"{dim} ρ {j[f'{dim}_rho']:.2f}")
    if "unseen_rho" in j:
        parts.append(f"ρ {j['unseen_rho']:.2f} on a data set no fit saw")
    return "on held-out human ratings: " + ", ".join(parts) if parts else "no validity figures"


def judge_caption(evaluation: Mapping, validity: Mapping | None) -> str:
    """Which judge scored Table 2 and how far each judge agrees with people."""
    validity = validity or {}
    return (f"scored by the evaluation judge {evaluation['eval_judge']} ({validity_note(validity, 'eval_judge')}); "
            f"rewards came from the training judge {evaluation['train_judge']} "
            f"({validity_note(validity, 'judge')})")  # fmt: skip


def write_optional(df, stem: str | Path, caption: str, empty: str) -> list[Path]:
    """Write a table that may have no rows yet: CSV header only and ``empty`` as the Markdown."""
    if df is not None and not df.empty:
        return write_table(df, stem, caption)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    columns = list(df.columns) if df is not None else []
    stem.with_suffix(".csv").write_text(",".join(["", *columns]) + "\n")
    stem.with_suffix(".md").write_text(f"{caption}\n\n{empty}\n")
    return [stem.with_suffix(".csv"), stem.with_suffix(".md")]


def stage_seconds(notebooks: Sequence[str | Path]) -> dict[str, float]:
    """Wall seconds of each stage's last successful run, from the papermill metadata of its
    executed notebook (``results/notebooks/NN_<stage>.ipynb``)."""
    out = {}
    for path in map(Path, notebooks):
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("papermill", {})
        if meta.get("duration") is None:
            raise ValueError(f"{path} has no papermill duration: not an executed stage notebook")
        out[path.stem.split("_", 1)[1]] = float(meta["duration"])
    return out


def training_block(sft: Mapping, grpo: Mapping, grpo_dev: pd.DataFrame, sft_log: pd.DataFrame,
                   seconds: Mapping[str, float]) -> str:  # fmt: skip
    """The README's training table, from the sft and grpo stages' metric files and the stage
    times: nothing in it is typed by hand (``<!-- train:start -->`` block)."""
    dev = sft.get("dev") or {}
    losses = sft_log["loss"].dropna().tolist()
    k = max(1, min(20, len(losses) // 4))
    judge = grpo.get("judge_stats") or {}
    trend = grpo.get("trend") or {}

    def change(key: str) -> str:
        t = trend.get(key)
        return f"{t['first']:.3f} → {t['last']:.3f}" if t else "n/a"

    rows_dev = "; ".join(f"step {int(r.step)}: {r.total:.3f}" + (" (kept)" if r.kept else "")
                         for r in grpo_dev.itertuples())  # fmt: skip
    total = sum(seconds.values())
    times = ", ".join(f"{name} {seconds[name]:.0f} s" for name in seconds)
    machine = sft.get("machine")
    where = (f" on {machine['device']}, {machine['cores']} cores, "
             f"{'bf16 autocast' if machine['bf16'] else 'fp32'}") if machine else ""  # fmt: skip
    # the hard turns its prompts came from (a max_steps sample of them, by grpo.first_turn_share)
    over = f" over {grpo['train_turns']:,} hard turns" if "train_turns" in grpo else ""
    lines = [
        f"| | measured (`dvc repro`{where}, backbone `{sft.get('backbone')}`, training judge `{grpo.get('judge')}`) |",
        "|---|---|",
        f"| `sft` | {sft['steps']} steps over {sft['train_turns']:,} easy turns, "
        f"{sft['seconds_per_step']:.2f} s/step, "
        f"{sft['trainable']:,} of {sft['parameters']:,} parameters trained; loss "
        f"{sum(losses[:k]) / k:.2f} → {sum(losses[-k:]) / k:.2f} (mean of the first → last {k} steps) |",
        f"| SFT dev check ({dev.get('n', 0)} dev turns of unseen situations and profiles, greedy) | "
        f"{100 * dev.get('format_compliance', float('nan')):.1f} % four-span replies; emotion accuracy "
        f"{100 * dev.get('emotion_accuracy', float('nan')):.1f} % (chance 3.1 %) |",
        f"| `grpo` | {grpo['steps']} steps{over}, {grpo['seconds_per_step']:.1f} s/step, "
        f"{judge.get('items', 0):,} judgements, {judge.get('failures', 0)} failed |",
        f"| train reward, first → last quarter of the steps | total {change('reward')}; format "
        f"{change('format')}; emotion {change('emotion')}; rubric {change('rubric')} |",
        f"| dev reward per checkpoint ({grpo.get('dev_prompts')} hard dev turns, greedy) | {rows_dev} |",
        f"| stage wall times (each stage's last run) | {times}; {total / 60:.0f} min together |",
    ]
    return "\n".join(lines) + "\n"


def results_section(evaluation: Mapping, md: Mapping[str, str], validity_confidence: float) -> str:
    """The README's results block: the judge note, Table 2, the radar, the deltas, judge
    agreement, probes, and the ablation / human tables when they have rows."""
    n = evaluation["test_items"]
    conf = round(100 * evaluation["confidence"])
    parts = [
        "_Regenerated by the `report` stage from `results/` (`dvc repro`); do not edit by hand._",
        "> " + judge_note(evaluation),
        f"**Table 2** — {n} test turns, greedy replies, mean [{conf}% bootstrap CI, dialogues "
        "resampled whole] (`results/tables/table2_main.{csv,md,tex}`)"
        + (f"; one training seed, the workspace run: all {md['seed_runs']} seeds under *Seeds* below:"
           if md.get("seeds") else ":"),
        md["table2"],
        "![Figure 1: radar of the six Table 2 axes per system](results/figures/fig1_radar.png)",
        "**Deltas** beside the paper's (mean of its four backbones; ours: paired bootstrap over "
        "the same test turns, dialogues resampled whole; `results/tables/deltas.*`):",
        md["deltas"],
        *((f"**Seeds** — {md['seed_runs']} training seeds (`scripts/seeds`; data and test turns fixed): "
           "mean ± the standard deviation between seeds, and an interval that resamples seeds and, "
           "within each, dialogues (`results/tables/seeds.*`, `results/tables/deltas_seeds.*`):",
           md["seeds"], md["seed_deltas"]) if md.get("seeds") else ()),
        *((f"**Seeds set aside** — {', '.join(md['seeds_set_aside'])} in `results/seeds/` answered other "
           "systems, test turns or prompts than this run (another configuration, an older test set or "
           "prompt shaping), so they "
           "are left out; `scripts/seeds N` re-runs them for this one.",) if md.get("seeds_set_aside") else ()),
        "**Judge validity** — every judge against held-out human ratings (DiaSafety, iEval, "
        "FailedESConv), beside the lexicon baseline and response length alone; "
        f"{round(100 * validity_confidence)}% intervals "
        "resample whole contexts (`results/tables/judge_validity.*`, from the `judge_validity` "
        "stage):",
        md.get("validity", ""),
        "Pairwise accuracy (same-context pairs people rated differently; 0.5 is chance):",
        md.get("validity_pairwise", ""),
        "![Judge validity: each judge against human ratings](results/figures/fig_judge_validity.png)",
        "**Judge agreement** — training judge vs evaluation judge on the same replies "
        "(`results/tables/judge_agreement.*`):",
        md["agreement"],
        "**Reward-hacking probes** — adversarial replies against the honest gold reply; `hole` "
        "marks a probe that earns at least the honest total (`results/tables/reward_probes.*`):",
        md["probes"],
    ]
    for key, title in (("ablations", "Ablations"), ("human_eval", "Human evaluation")):
        if md.get(key):
            parts += [f"**{title}:**", md[key]]
    parts.append(
        "Also regenerated: `results/tables/per_emotion_accuracy.*`, "
        "`results/tables/table3_dataset_stats.tex`, `results/figures/fig_score_distributions.png`, "
        "`results/figures/fig_per_emotion.png`, `results/figures/fig_training_curves.png`."
    )
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"
