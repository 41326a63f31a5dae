"""Result tables: CSV is canonical, Markdown is rendered from it (STYLE §4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from kardia.paper import TABLE3
from kardia.spans import parse_spans

TABLE3_ROWS = (
    ("dialogues", "Dialogues"),
    ("turns", "Turns (QA pairs)"),
    ("avg_turns", "Avg. turns per dialogue"),
    ("avg_words_user", "Avg. words: user query"),
    ("avg_words_understanding", "Avg. words: understanding"),
    ("avg_words_reasoning", "Avg. words: reasoning"),
    ("avg_words_response", "Avg. words: response"),
    ("emotion_labels", "Emotion labels"),
    ("profiles", "Profiles"),
    ("easy", "Easy dialogues"),
    ("hard", "Hard dialogues"),
)


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def split_stats(records: Sequence[dict]) -> dict:
    """The Table 3 statistics of one split."""
    users, spans = [], {"understanding": [], "reasoning": [], "response": []}
    turns = 0
    for rec in records:
        for m in rec["messages"][1:]:
            if m["role"] == "user":
                users.append(len(m["content"].split()))
            elif m["role"] == "assistant":
                turns += 1
                s = parse_spans(m["content"])
                for name, lengths in spans.items():
                    lengths.append(len((getattr(s, name) or "").split()))
    return {
        "dialogues": len(records),
        "turns": turns,
        "avg_turns": round(turns / len(records), 2) if records else None,
        "avg_words_user": _mean(users),
        **{f"avg_words_{k}": _mean(v) for k, v in spans.items()},
        "emotion_labels": len({r["emotion"] for r in records}),
        "profiles": len({r["anon_username"] for r in records}),
        "easy": sum(r.get("difficulty") == "easy" for r in records),
        "hard": sum(r.get("difficulty") == "hard" for r in records),
    }


def table3(splits: Mapping[str, Sequence[dict]]):
    """Table 3 as a DataFrame: one row per statistic; columns train, dev, test, all, and the
    paper's train and test values where it reports them."""
    import pandas as pd

    columns = {name: split_stats(recs) for name, recs in splits.items()}
    columns["all"] = split_stats([r for recs in splits.values() for r in recs])
    columns["paper_train"] = TABLE3["train"]
    columns["paper_test"] = TABLE3["test"]
    df = pd.DataFrame(
        {col: [stats.get(key) for key, _ in TABLE3_ROWS] for col, stats in columns.items()},
        index=pd.Index([label for _, label in TABLE3_ROWS], name="statistic"),
        dtype=object,  # keep counts as integers beside averages; a missing value stays empty
    )
    return df


def to_markdown(df, caption: str | None = None) -> str:
    """A GitHub Markdown table (no extra dependency); empty cells for missing values."""

    def cell(v) -> str:
        if v is None or v != v:  # None or NaN
            return ""
        if isinstance(v, float) and v.is_integer():
            return f"{int(v):,}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    head = [df.index.name or "", *map(str, df.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx), *(cell(v) for v in row.tolist())]) + " |")
    text = "\n".join(lines) + "\n"
    return f"{caption}\n\n{text}" if caption else text


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                  "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "\\": r"\textbackslash{}", "±": r"$\pm$", "−": "$-$", "ρ": r"$\rho$"}  # fmt: skip


def latex_escape(text: object) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_latex(df, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``); cells as in ``to_markdown``."""
    md_rows = to_markdown(df).splitlines()[2:]  # reuse its cell formatting, skip header + rule
    head = [df.index.name or "", *map(str, df.columns)]
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{l{'r' * len(df.columns)}}}", r"\toprule",
              " & ".join(latex_escape(h) for h in head) + r" \\", r"\midrule"]  # fmt: skip
    for row in md_rows:
        cells = [c.strip() for c in row.strip().strip("|").split(" | ")]
        lines.append(" & ".join(latex_escape(c) for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(
    df, stem: str | Path, caption: str | None = None, *, latex: bool = False,
    label: str | None = None,
) -> list[Path]:  # fmt: skip
    """Write ``<stem>.csv`` and ``<stem>.md`` (and ``<stem>.tex`` with ``latex``); return the
    paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    df.to_csv(csv)
    md.write_text(to_markdown(df, caption), encoding="utf-8")
    paths = [csv, md]
    if latex:
        tex = stem.with_suffix(".tex")
        tex.write_text(to_latex(df, caption, label or f"tab:{stem.name}"), encoding="utf-8")
        paths.append(tex)
    return paths
