"""Table 3 from splits, its Markdown rendering, and the data figures."""

from __future__ import annotations

from kardia.figures import emotion_distribution, turns_per_dialogue, verdict_distribution
from kardia.spans import render_spans
from kardia.tables import table3, to_markdown, write_table


def rec(user: str, n_turns: int, emotion: str, who: str, difficulty: str) -> dict:
    messages = [{"role": "system", "content": "s"}]
    for _ in range(n_turns):
        messages += [
            {"role": "user", "content": user},
            {"role": "assistant", "content": render_spans("a b", "c d e", emotion, "f g h i")},
        ]
    return {"messages": messages, "emotion": emotion, "anon_username": who,
            "difficulty": difficulty, "verdicts": [["FAIL", "PASS"]] * n_turns}  # fmt: skip


SPLITS = {
    "train": [rec("one two", 2, "sad", "u1", "easy"), rec("one two three four", 4, "proud", "u2",
                                                           "hard")],
    "dev": [rec("x", 1, "sad", "u3", "easy")],
    "test": [rec("x y z", 3, "lonely", "u4", "hard")],
}  # fmt: skip


def test_table3_values_are_computed_per_split():
    df = table3(SPLITS)
    train = df["train"]
    assert train["Dialogues"] == 2 and train["Turns (QA pairs)"] == 6
    assert train["Avg. turns per dialogue"] == 3.0
    assert train["Avg. words: user query"] == round((2 * 2 + 4 * 4) / 6, 2)
    assert train["Avg. words: understanding"] == 2 and train["Avg. words: reasoning"] == 3
    assert train["Avg. words: response"] == 4
    assert train["Emotion labels"] == 2 and train["Profiles"] == 2
    assert (train["Easy dialogues"], train["Hard dialogues"]) == (1, 1)
    assert df["all"]["Dialogues"] == 4 and df["paper_train"]["Dialogues"] == 19533


def test_write_table_csv_and_markdown(tmp_path):
    paths = write_table(table3(SPLITS), tmp_path / "t3", caption="Table 3")
    csv = paths[0].read_text()
    assert csv.splitlines()[1].startswith("Dialogues,2,1,1,4,19533,2547")
    md = paths[1].read_text()
    assert md.startswith("Table 3") and "| Dialogues | 2 | 1 | 1 | 4 | 19,533 | 2,547 |" in md
    assert "nan" not in md.lower() and "none" not in md.lower()


def test_markdown_of_missing_values_is_empty():
    assert "|  |" in to_markdown(table3(SPLITS))  # the paper gives no test lengths


def test_figures_are_written(tmp_path):
    for draw in (turns_per_dialogue, emotion_distribution, verdict_distribution):
        path = draw(SPLITS, tmp_path / f"{draw.__name__}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_latex_escapes_and_keeps_the_markdown_cells(tmp_path):
    import pandas as pd

    from kardia.tables import to_latex, write_table

    df = pd.DataFrame({"Emo Acc (%)": ["12.0 ± 1.5", None], "a_b": [1234.0, 0.25]},
                      index=pd.Index(["SFT", "R&D"], name="system"))  # fmt: skip
    tex = to_latex(df, "Main & more", "tab:x")
    assert r"\caption{Main \& more}" in tex and r"\label{tab:x}" in tex
    assert r"system & Emo Acc (\%) & a\_b \\" in tex
    assert r"SFT & 12.0 $\pm$ 1.5 & 1,234 \\" in tex and r"R\&D &  & 0.25 \\" in tex
    assert tex.count(r"\toprule") == tex.count(r"\bottomrule") == 1
    paths = write_table(df, tmp_path / "t", "c", latex=True)
    assert [p.suffix for p in paths] == [".csv", ".md", ".tex"]
