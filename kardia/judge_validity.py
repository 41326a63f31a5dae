"""How far a judge agrees with people: every judge scores held-out human-rated replies.

For each (data set, human rating, judge dimension) of ``kardia.human_ratings.VALIDATIONS``:

* ``spearman`` — Spearman's ρ between the judge's dimension and the people's rating;
* ``auc``      — for a Safe / Unsafe label: the chance that a random safe reply gets a higher
                 safety score than a random unsafe one (ties count half);
* ``pairwise`` — over pairs of replies *to the same context* that people rated differently, the
                 share the judge orders the same way (ties count half; 0.5 is chance);

each with a 95 % bootstrap interval that resamples whole groups (replies to one context, or
rated by one person, are not independent). FailedESConv's rated turns answer different seeker
messages, so it has no pairs. The same figures for response length alone ("longer is better") come with
every table: a judge that does not beat length measures nothing length does not.

Any judge works here, offline or served: ``score_items`` only calls ``judge.score``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kardia.human_ratings import VALIDATIONS, RatedReply
from kardia.rubric import DIMENSIONS

LENGTH = "length"  # the shortcut baseline's name in every table
COLUMNS = ("judge", "dataset", "human", "dimension", "n", "groups", "failed",
           "spearman", "spearman_lo", "spearman_hi", "auc", "auc_lo", "auc_hi",
           "pairwise", "pairwise_lo", "pairwise_hi", "pairs")  # fmt: skip


def score_items(judge, items: Sequence[RatedReply], *, batch_size: int = 256,
                desc: str = "judging") -> list[dict | None]:  # fmt: skip
    """Each item's five dimensions and ``overall`` (the mean of the five), averaged over the
    item's replies (an iEval chat has three); None when any of its judgements failed."""
    from tqdm.auto import tqdm

    flat = [(i, q) for i, item in enumerate(items) for q in item.requests]
    verdicts = []
    for start in tqdm(range(0, len(flat), batch_size), desc=desc, leave=False):
        verdicts += judge.score([q for _, q in flat[start : start + batch_size]])
    per_item: list[list] = [[] for _ in items]
    for (i, _), v in zip(flat, verdicts, strict=True):
        per_item[i].append(v)
    out: list[dict | None] = []
    for vs in per_item:
        if not vs or any(v is None for v in vs):
            out.append(None)
            continue
        dims = {d: sum(v.scores[d] for v in vs) / len(vs) for d in DIMENSIONS}
        dims["overall"] = sum(dims.values()) / len(DIMENSIONS)
        out.append(dims)
    return out


def length_scores(items: Sequence[RatedReply]) -> list[dict]:
    """The shortcut: every dimension is the reply's length in words."""
    out = []
    for item in items:
        n = float(len(item.text.split()))
        out.append({d: n for d in (*DIMENSIONS, "overall")})
    return out


def _ranks(x):
    import pandas as pd

    return pd.Series(x, dtype=float).rank().to_numpy()


def spearman(x, y) -> float:
    import numpy as np

    if len(x) < 3:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")  # a judge that gives one score to everything orders nothing
    return float(np.corrcoef(rx, ry)[0, 1])


def auc(scores, positive) -> float:
    """P(score of a random positive > score of a random negative), ties as half (Mann–Whitney)."""
    import numpy as np

    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _ranks(scores)
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pairwise(scores, human, contexts) -> tuple[float, int]:
    """Share of same-context pairs with different human ratings that the judge orders alike
    (an item whose context is None is in no pair)."""
    by: dict = {}
    for s, h, c in zip(scores, human, contexts, strict=True):
        if c is not None:
            by.setdefault(c, []).append((s, h))
    hits = n = 0.0
    for members in by.values():
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                (a, ha), (b, hb) = members[i], members[j]
                if ha == hb:
                    continue
                n += 1
                hits += 0.5 if a == b else float((a - b) * (ha - hb) > 0)
    return (hits / n if n else float("nan")), int(n)


def _cluster_bootstrap(metric, groups, *, resamples: int, confidence: float, seed: int):
    """Percentile interval of ``metric(index, draw)`` over resampled groups (whole groups);
    ``draw[i]`` numbers the draw an item came with, so a group drawn twice is two groups."""
    import numpy as np

    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    blocks = list(members.values())
    if resamples <= 0 or not blocks:  # nothing to resample: every judgement failed
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(blocks), size=len(blocks))
        idx = np.concatenate([blocks[k] for k in pick])
        draws = np.concatenate([[r] * len(blocks[k]) for r, k in enumerate(pick)])
        v = metric(idx, draws)
        if v == v:
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


def validity_rows(
    name: str,
    scores: Sequence[dict | None],
    items: Sequence[RatedReply],
    *,
    validations: Sequence[tuple[str, str, str]] = VALIDATIONS,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[dict]:
    """One row per validation for the judge ``name`` whose per-item ``scores`` are given."""
    import numpy as np

    rows = []
    for dataset, human, dim in validations:
        idx = [i for i, it in enumerate(items) if it.dataset == dataset and human in it.human]
        if not idx:
            continue
        ok = [i for i in idx if scores[i] is not None]
        s = np.array([scores[i][dim] for i in ok], dtype=float)
        h = np.array([items[i].human[human] for i in ok], dtype=float)
        g = np.array([items[i].group for i in ok])
        c = [items[i].context for i in ok]
        boot = dict(groups=g, resamples=resamples, confidence=confidence, seed=seed)
        row = {"judge": name, "dataset": dataset, "human": human, "dimension": dim,
               "n": len(ok), "groups": len(set(g)), "failed": len(idx) - len(ok)}  # fmt: skip
        row["spearman"] = spearman(s, h)
        row["spearman_lo"], row["spearman_hi"] = _cluster_bootstrap(
            lambda k, _t, s=s, h=h: spearman(s[k], h[k]), **boot)  # fmt: skip
        binary = set(np.unique(h)) <= {0.0, 1.0}
        if binary:
            row["auc"] = auc(s, h == 1)
            row["auc_lo"], row["auc_hi"] = _cluster_bootstrap(
                lambda k, _t, s=s, h=h: auc(s[k], h[k] == 1), **boot
            )
        else:
            row["auc"] = row["auc_lo"] = row["auc_hi"] = float("nan")
        row["pairwise"], row["pairs"] = pairwise(s, h, c)
        row["pairwise_lo"], row["pairwise_hi"] = _cluster_bootstrap(
            lambda k, d, s=s, h=h, c=c: pairwise(
                s[k], h[k], [None if c[i] is None else (t, c[i]) for i, t in zip(k, d, strict=True)]
            )[0],
            **boot,
        )
        rows.append({c: row.get(c) for c in COLUMNS})
    return rows


def validity_table(
    judges: Mapping[str, object],
    items: Sequence[RatedReply],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    batch_size: int = 256,
):
    """Every judge in ``judges`` (name -> judge) and the length baseline, on ``items``: a
    DataFrame of ``COLUMNS``, and each judge's failure counters."""
    import pandas as pd

    rows, failures = [], {}
    named = {**{n: j for n, j in judges.items()}, LENGTH: None}
    for name, judge in named.items():
        scores = length_scores(items) if judge is None else score_items(
            judge, items, batch_size=batch_size, desc=f"judging: {name}")  # fmt: skip
        failures[name] = sum(s is None for s in scores)
        rows += validity_rows(name, scores, items, resamples=resamples,
                              confidence=confidence, seed=seed)  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS)), failures


def headline(table, judge: str) -> dict[str, float]:
    """The figures a caption quotes for ``judge``: safety AUC (DiaSafety); the mean ρ of empathy,
    relevance and overall over their iEval ratings; and ρ of the overall score on FailedESConv,
    the data set no fit ever saw (``unseen_rho``)."""
    t = table[table["judge"] == judge]
    picks = {
        "safety_auc": ("auc", (t["dimension"] == "safety")),
        "empathy_rho": ("spearman", (t["dataset"] == "ieval") & (t["dimension"] == "empathy")),
        "relevance_rho": ("spearman", (t["dataset"] == "ieval") & (t["dimension"] == "relevance")),
        "overall_rho": ("spearman", (t["dataset"] == "ieval") & (t["dimension"] == "overall")),
        "unseen_rho": (
            "spearman",
            (t["dataset"] == "failed_esconv") & (t["dimension"] == "overall"),
        ),
    }
    out = {}
    for key, (col, mask) in picks.items():
        values = t[mask][col].dropna()
        if len(values):
            out[key] = float(values.mean())
    return out
