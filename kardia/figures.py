"""Figures of the paper and of our runs, drawn with matplotlib/seaborn (imported lazily).

Each function takes the data, writes a PNG and returns its path; the notebooks display them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from kardia.data import SPLITS, VERDICTS
from kardia.emotions import EMOTIONS

SPLIT_COLORS = {"train": "#4C72B0", "dev": "#DD8452", "test": "#55A868"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only; notebooks show the saved PNG
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})  # no version stamp: stable bytes
    _plt().close(fig)
    return path


def _grouped_bars(ax, groups: Mapping[str, Counter], categories: Sequence, labels=None) -> None:
    """Side-by-side bars: for each category, each group's share (%) of its own total."""
    width = 0.8 / max(len(groups), 1)
    for k, (split, c) in enumerate(groups.items()):
        total = sum(c.values()) or 1
        xs = [i + (k - (len(groups) - 1) / 2) * width for i in range(len(categories))]
        ax.bar(xs, [100 * c[v] / total for v in categories], width,
               label=labels[split] if labels else split, color=SPLIT_COLORS.get(split))  # fmt: skip
    ax.set_xticks(range(len(categories)), [str(v) for v in categories])


def turns_per_dialogue(splits: Mapping[str, Sequence[dict]], path: str | Path) -> Path:
    """Bar chart: share of dialogues with each number of assistant turns, per split."""
    plt = _plt()
    counts = {s: Counter(len(r["messages"]) // 2 for r in recs) for s, recs in splits.items()}
    lengths = sorted({n for c in counts.values() for n in c})
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    labels = {s: f"{s} (n={sum(c.values())})" for s, c in counts.items()}
    _grouped_bars(ax, counts, lengths, labels)
    ax.set_xlabel("assistant turns per dialogue")
    ax.set_ylabel("% of dialogues")
    ax.set_title("Turns per dialogue")
    ax.legend(frameon=False)
    return _save(fig, path)


def emotion_distribution(splits: Mapping[str, Sequence[dict]], path: str | Path) -> Path:
    """Horizontal stacked bars: dialogues per target emotion label, split by split."""
    plt = _plt()
    totals = Counter(r["emotion"] for recs in splits.values() for r in recs)
    order = sorted(EMOTIONS, key=lambda e: (totals[e], e))
    fig, ax = plt.subplots(figsize=(6.4, 7.2))
    left = [0] * len(order)
    for split in [s for s in SPLITS if s in splits]:
        c = Counter(r["emotion"] for r in splits[split])
        values = [c[e] for e in order]
        ax.barh(order, values, left=left, label=split, color=SPLIT_COLORS.get(split))
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_xlabel("dialogues")
    ax.set_title("Emotion label distribution")
    ax.legend(frameon=False, loc="lower right")
    ax.tick_params(axis="y", labelsize=8)
    return _save(fig, path)


def verdict_distribution(splits: Mapping[str, Sequence[dict]], path: str | Path) -> Path:
    """Two panels: the evaluator's verdicts over all attempts, and attempts per turn."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.8, 3.6))
    verdicts: dict[str, Counter] = {}
    attempts: dict[str, Counter] = {}
    for split in [s for s in SPLITS if s in splits]:
        histories = [h for r in splits[split] for h in r.get("verdicts") or []]
        verdicts[split] = Counter(v for h in histories for v in h)
        attempts[split] = Counter(len(h) for h in histories if h)
    _grouped_bars(ax1, verdicts, VERDICTS)
    ax1.set_ylabel("% of verdicts")
    ax1.set_title("Evaluator verdicts (all attempts)")
    ax1.legend(frameon=False)
    _grouped_bars(ax2, attempts, sorted({n for c in attempts.values() for n in c}))
    ax2.set_xlabel("attempts per turn (1 = accepted at once)")
    ax2.set_ylabel("% of turns")
    ax2.set_title("Revisions per turn")
    return _save(fig, path)


# --- training curves ----------------------------------------------------------------------------


def _smooth(values, window: int):
    import pandas as pd

    return pd.Series(list(values), dtype=float).rolling(window, min_periods=1).mean()


def sft_curve(log, path: str | Path, window: int = 10) -> Path:
    """SFT training loss per step (raw and a rolling mean) and the learning rate."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(log["step"], log["loss"], color="#4C72B0", alpha=0.3, lw=1, label="loss")
    ax.plot(log["step"], _smooth(log["loss"], window), color="#4C72B0", lw=2,
            label=f"loss ({window}-step mean)")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (assistant tokens)")
    ax.set_title("SFT on easy turns")
    if "learning_rate" in log:
        lr = ax.twinx()
        lr.plot(log["step"], log["learning_rate"], color="#999999", ls="--", lw=1)
        lr.set_ylabel("learning rate", color="#777777")
    ax.legend(loc="upper right")
    return _save(fig, path)


REWARD_COLORS = {"format": "#4C72B0", "emotion": "#DD8452", "rubric": "#55A868", "total": "#222222"}


def grpo_curves(log, dev, path: str | Path, window: int = 5) -> Path:
    """Rubric-ERL per step: each reward's mean and the weighted total, clipped completions and
    length, judge cost, and the dev reward of every checkpoint (the kept one starred)."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0, 0]
    for col in [c for c in log.columns if c.startswith("rewards/") and c.endswith("/mean")]:
        name = col.split("/")[1].removesuffix("_reward")
        ax.plot(log["step"], _smooth(log[col], window), label=name,
                color=REWARD_COLORS.get(name))  # fmt: skip
    ax.plot(log["step"], _smooth(log["reward"], window), label="total (weighted)",
            color=REWARD_COLORS["total"], lw=2)  # fmt: skip
    ax.set(title=f"train rewards ({window}-step mean)", xlabel="step", ylabel="reward")
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    if "completions/clipped_ratio" in log:
        ax.plot(log["step"], log["completions/clipped_ratio"], color="#C44E52", label="clipped")
    ax.set(title="completions", xlabel="step", ylabel="clipped ratio")
    if "completions/mean_length" in log:
        ln = ax.twinx()
        ln.plot(log["step"], log["completions/mean_length"], color="#8172B2", alpha=0.7)
        ln.set_ylabel("mean length (tokens)", color="#8172B2")

    ax = axes[1, 0]
    if "judge/latency_s" in log:
        ax.plot(log["step"], log["judge/latency_s"], color="#937860", label="latency (s)")
    if "judge/failures" in log:
        ax.bar(log["step"], log["judge/failures"], color="#C44E52", alpha=0.6, label="failures")
    if "judge/cache_hits" in log:
        ax.plot(log["step"], log["judge/cache_hits"], color="#64B5CD", label="cache hits")
    ax.set(title="judge per step", xlabel="step")
    ax.legend(fontsize=8)

    _dev_panel(axes[1, 1], dev, "dev reward per checkpoint (greedy; step 0 = SFT)")
    return _save(fig, path)


def _dev_panel(ax, dev, title: str) -> None:
    """Each dev reward per checkpoint (``grpo_dev.csv``), the kept checkpoint starred."""
    for col in [c for c in dev.columns if c not in ("step", "checkpoint", "kept")]:
        ax.plot(dev["step"], dev[col], marker="o", label=col,
                color=REWARD_COLORS.get(col), lw=2 if col == "total" else 1)  # fmt: skip
    if "kept" in dev and dev["kept"].any():
        best = dev[dev["kept"]].iloc[0]
        ax.scatter([best["step"]], [best["total"]], marker="*", s=250, color="gold",
                   edgecolor="black", zorder=5, label="kept")  # fmt: skip
    ax.set(title=title, xlabel="step")
    ax.legend(fontsize=8)


# --- evaluation (report stage) ------------------------------------------------------------------

SYSTEM_COLORS = ("#8C8C8C", "#4C72B0", "#C44E52", "#55A868", "#8172B2", "#937860", "#DA8BC3")


def radar(table, path: str | Path, axes: Sequence[tuple[str, str]]) -> Path:
    """Figure 1 of the paper: one polygon per system over six axes (emotion accuracy 0–100 %,
    the rubric dimensions 1–5), each axis scaled to its own range, values written at the rim."""
    import numpy as np

    plt = _plt()
    keys = [k for k, _ in axes]
    angles = np.linspace(0, 2 * np.pi, len(keys), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(6.4, 6.4), subplot_kw={"polar": True})

    def scaled(key: str, value: float) -> float:
        return value / 100 if key == "emotion_accuracy" else (value - 1) / 4

    for k, (system, row) in enumerate(table.iterrows()):
        values = [scaled(key, row[key]) for key in keys]
        color = SYSTEM_COLORS[k % len(SYSTEM_COLORS)]
        ax.plot(angles + angles[:1], values + values[:1], color=color, lw=2, label=system)
        ax.fill(angles + angles[:1], values + values[:1], color=color, alpha=0.12)
    ax.set_xticks(angles, [name for _, name in axes])
    ax.set_ylim(0, 1)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["25% | 2", "50% | 3", "75% | 4", "100% | 5"],
                  fontsize=7, color="#777777")  # fmt: skip
    ax.set_title("Emo Acc (0–100 %) and rubric dimensions (1–5)", pad=24)
    ax.legend(loc="upper right", bbox_to_anchor=(1.25, 1.12), frameon=False)
    return _save(fig, path)


def score_distributions(
    frame, path: str | Path, dimensions: Sequence[str], labels: Mapping[str, str] | None = None
) -> Path:
    """Per dimension, the share of each 1–5 score per system (stacked bars), and the reply
    length distribution: where a mean hides a bimodal judge. Systems keep the frame's order and
    the radar's colours; ``labels`` renames them."""
    plt = _plt()
    systems = list(dict.fromkeys(frame["system"]))
    names = [(labels or {}).get(s, s) for s in systems]
    fig, axes = plt.subplots(1, len(dimensions) + 1, figsize=(3.0 * (len(dimensions) + 1), 3.8))
    shades = ["#C44E52", "#DD8452", "#CCB974", "#8FBC8F", "#55A868"]
    for ax, d in zip(axes, dimensions, strict=False):
        bottom = [0.0] * len(systems)
        for score, color in zip(range(1, 6), shades, strict=True):
            shares = []
            for s in systems:
                col = frame.loc[frame["system"] == s, d].dropna()
                shares.append(100 * float((col == score).mean()) if len(col) else 0.0)
            ax.bar(range(len(systems)), shares, bottom=bottom, color=color, label=str(score))
            bottom = [a + b for a, b in zip(bottom, shares, strict=True)]
        ax.set_xticks(range(len(systems)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(d)
        ax.set_ylim(0, 100)
    axes[0].set_ylabel("% of replies")
    axes[len(dimensions) - 1].legend(title="score", fontsize=7, frameon=False,
                                     bbox_to_anchor=(1.0, 1.0), loc="upper left")  # fmt: skip
    ax = axes[-1]
    for k, s in enumerate(systems):
        ax.hist(frame.loc[frame["system"] == s, "response_words"], bins=20, histtype="step",
                lw=2, color=SYSTEM_COLORS[k % len(SYSTEM_COLORS)], label=names[k])  # fmt: skip
    ax.set(title="reply length", xlabel="words")
    ax.legend(fontsize=7, frameon=False)
    return _save(fig, path)


def per_emotion_heatmap(table, path: str | Path) -> Path:
    """Emotion accuracy (%) per gold label × system (``kardia.report.per_emotion``)."""
    import numpy as np

    plt = _plt()
    values = table.drop(columns="n")
    fig, ax = plt.subplots(figsize=(1.4 * len(values.columns) + 2.6, 0.24 * len(values) + 1.4))
    im = ax.imshow(values.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(values.columns)), values.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(values)), [f"{e} (n={n})" for e, n in table["n"].items()], fontsize=7)
    if values.shape[1] <= 8:  # write the numbers where they still fit
        for (r, c), v in np.ndenumerate(values.to_numpy(dtype=float)):
            if v == v:
                ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if v < 50 else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, label="emotion accuracy (%)")
    ax.set_title("Emotion accuracy per gold label")
    return _save(fig, path)


def training_curves(sft_log, grpo_log, grpo_dev, path: str | Path, window: int = 10) -> Path:
    """The two training stages side by side: SFT loss, GRPO's rewards, and the dev reward of
    every checkpoint (step 0 = SFT) with the kept one starred."""
    plt = _plt()
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(13, 3.6))
    a1.plot(sft_log["step"], _smooth(sft_log["loss"], window), color="#4C72B0")
    a1.set(title=f"SFT loss ({window}-step mean)", xlabel="step", ylabel="cross-entropy")
    for col in [c for c in grpo_log.columns if c.startswith("rewards/") and c.endswith("/mean")]:
        name = col.split("/")[1].removesuffix("_reward")
        a2.plot(grpo_log["step"], _smooth(grpo_log[col], 5), label=name,
                color=REWARD_COLORS.get(name))  # fmt: skip
    if "reward" in grpo_log:
        a2.plot(grpo_log["step"], _smooth(grpo_log["reward"], 5), label="total", lw=2,
                color=REWARD_COLORS["total"])  # fmt: skip
    a2.set(title="GRPO train rewards (5-step mean)", xlabel="step")
    a2.legend(fontsize=8)
    _dev_panel(a3, grpo_dev, "dev reward per checkpoint (step 0 = SFT)")
    return _save(fig, path)


def judge_validity(table, path: str | Path, confidence: float = 0.95,
                   roles: Mapping[str, str] | None = None) -> Path:  # fmt: skip
    """Each judge against people: AUC or Spearman ρ (left) and pairwise accuracy (right) per
    held-out check, with bootstrap intervals; dashed lines mark chance."""
    plt = _plt()
    roles = roles or {}
    checks = list(
        dict.fromkeys(f"{r.dataset}: {r.human} → {r.dimension}" for r in table.itertuples())
    )
    judges = list(dict.fromkeys(table["judge"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(checks) + 1.8), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    step = 0.8 / max(len(judges), 1)
    for k, judge in enumerate(judges):
        rows = table[table["judge"] == judge]
        for r in rows.itertuples():
            y = (
                checks.index(f"{r.dataset}: {r.human} → {r.dimension}")
                + (k - (len(judges) - 1) / 2) * step
            )
            auc = r.auc == r.auc
            first = (
                (r.auc, r.auc_lo, r.auc_hi) if auc else (r.spearman, r.spearman_lo, r.spearman_hi)
            )
            for ax, (v, lo, hi) in zip(
                axes, (first, (r.pairwise, r.pairwise_lo, r.pairwise_hi)), strict=True
            ):
                if v != v:
                    continue
                err = [[v - lo], [hi - v]] if lo == lo else None
                ax.errorbar(
                    v,
                    y,
                    xerr=err,
                    fmt="s" if auc and ax is axes[0] else "o",
                    color=colors[k % len(colors)],
                    ms=5,
                    capsize=2,
                    label=roles.get(judge, judge) if r.Index == rows.index[0] else None,
                )
    axes[0].axvline(0, color="grey", ls="--", lw=0.8)
    axes[0].axvline(0.5, color="grey", ls=":", lw=0.8)
    axes[1].axvline(0.5, color="grey", ls="--", lw=0.8)
    axes[0].set_yticks(range(len(checks)), checks)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("Spearman ρ (■ AUC for safe / unsafe; chance: ρ 0, AUC 0.5)")
    axes[1].set_xlabel("pairwise accuracy within a context (chance 0.5)")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"Judges against held-out human ratings ({round(100 * confidence)}% intervals over contexts)")
    return _save(fig, path)
