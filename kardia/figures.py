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
