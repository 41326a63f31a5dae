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


def write_table(df, stem: str | Path, caption: str | None = None) -> list[Path]:
    """Write ``<stem>.csv`` and ``<stem>.md``; return their paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    df.to_csv(csv)
    md.write_text(to_markdown(df, caption), encoding="utf-8")
    return [csv, md]
