"""How recoverable is the emotion label from the words alone? A bag-of-words baseline.

    .venv/bin/python benchmarks/label_baseline.py [--data-dir data/built] [--json]

A multinomial naive Bayes over unigrams and bigrams of each turn's situation and last user message,
fitted on the built train turns, predicts the emotion of the test turns (all, and dialogues' first
turns) and of iEval's 480 human-written situations. It puts the policies' emotion accuracy in
context: on situation-disjoint splits a test situation's label cannot be looked up from train, and
with 4 train situations per emotion the words carry only part of it. Chance is 1/32 = 3.1 %.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def text(row: dict) -> str:
    return f"{row['situation']} {row['prompt'][-1]['content']}"


def label_baseline(data_dir: str | Path, ratings_dir: str | Path) -> dict:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB

    from kardia.data import read_splits
    from kardia.emotions import EMOTIONS
    from kardia.evaluation import human_written_rows

    turns = read_splits(data_dir, "turns")
    vec = CountVectorizer(ngram_range=(1, 2))
    model = MultinomialNB().fit(vec.fit_transform([text(r) for r in turns["train"]]),
                                [r["emotion"] for r in turns["train"]])  # fmt: skip

    def accuracy(rows: list[dict]) -> dict:
        guess = list(model.predict(vec.transform([text(r) for r in rows]))) if rows else []
        hits = sum(g == r["emotion"] for g, r in zip(guess, rows, strict=True))
        return {"n": len(rows), "accuracy": hits / len(rows) if rows else None}

    test = turns["test"]
    return {
        "train_turns": len(turns["train"]),
        "train_situations": len({r["situation"] for r in turns["train"]}),
        "test": accuracy(test),
        "test_first_turns": accuracy([r for r in test if r.get("turn") == 0]),
        "human_written": accuracy(human_written_rows(ratings_dir, n=None, seed=0)),
        "chance": 1 / len(EMOTIONS),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(ROOT / "data/built"))
    ap.add_argument("--ratings-dir", default=str(ROOT / "data/human_ratings"))
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    result = label_baseline(args.data_dir, args.ratings_dir)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"naive Bayes fitted on {result['train_turns']} train turns "
          f"({result['train_situations']} situations); chance {result['chance']:.1%}")  # fmt: skip
    for key in ("test", "test_first_turns", "human_written"):
        r = result[key]
        print(f"  {key:<17} {r['accuracy']:.1%} of {r['n']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
