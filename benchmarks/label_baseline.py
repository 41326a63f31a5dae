"""How recoverable is the emotion label from what the policy reads? Two classifier baselines.

    .venv/bin/python benchmarks/label_baseline.py [--data-dir data/built] [--model nb|minilm|phrase] [--json PATH]

Fitted on the built train turns (each turn's situation and last user message, and with
``opening`` a later turn's dialogue opening too, as the default policy's prompt shows them:
``policy.keep_opening``), each predicts the emotion of the test turns (all, dialogues' first
turns, later turns) and of iEval's 480 human-written situations:

- ``nb``: a multinomial naive Bayes over unigrams and bigrams (the words);
- ``minilm``: a logistic regression over all-MiniLM-L6-v2 sentence embeddings (the meaning: a
  pretrained encoder knows that "a bear on the trail" is frightening without seeing the word);
- ``phrase``: no fitting; the label whose feeling phrase from the offline builder's bank
  (``data/seed/language.json``, ``feelings``) the user's message contains (the longest match; a
  phrase two labels share counts half). A dialogue's opening states how the user feels, so this
  is the ceiling of reading the label off the first turn; a later turn rarely contains such a
  phrase unless its prompt carries the opening, people's own words rarely do, and a turn without
  one counts as a miss.

They put the policies' emotion accuracy in context: on situation-disjoint splits a test
situation's label cannot be looked up from train, and with 4 train situations per emotion a
classifier has little to learn from. Chance is 1/32 = 3.1 %. Also reported: the share of misses
that name a label of the same valence (``kardia.emotions.valence``), i.e. a near miss such as
"terrified" for "afraid".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def user_text(row: dict, opening: bool = False) -> str:
    """The user's words a turn's prompt shows: the last message, after the dialogue's opening
    when ``opening`` and the turn is a later one (``kardia.prompts.dropped_opening``)."""
    from kardia.prompts import dropped_opening

    first = dropped_opening(row["prompt"], 0) if opening else None
    return row["prompt"][-1]["content"] if first is None else f"{first} {row['prompt'][-1]['content']}"


def text(row: dict, opening: bool = False) -> str:
    return f"{row['situation']} {user_text(row, opening)}"


MODELS = ("nb", "minilm", "phrase")
SEED_LANGUAGE = ROOT / "data/seed/language.json"


def phrase_lookup(texts: list[str]) -> list[list[str]]:
    """The labels whose feeling phrase (the offline builder's own, ``phrase`` above) each text
    contains: one label, the labels sharing the longest phrase found, or none."""
    import re

    owners: dict[str, list[str]] = {}
    for emotion, phrases in json.loads(SEED_LANGUAGE.read_text())["feelings"].items():
        for p in phrases:
            owners.setdefault(p, []).append(emotion)
    found = []
    for t in texts:
        hits = [p for p in owners if re.search(rf"\b{re.escape(p)}\b", t, flags=re.IGNORECASE)]
        found.append(owners[max(hits, key=len)] if hits else [])
    return found


def classifier(model: str):
    """``(fit, predict)`` over lists of texts for one baseline."""
    if model == "nb":
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.naive_bayes import MultinomialNB
        from sklearn.pipeline import make_pipeline

        pipe = make_pipeline(CountVectorizer(ngram_range=(1, 2)), MultinomialNB())
        return pipe.fit, pipe.predict
    if model == "minilm":
        from sklearn.linear_model import LogisticRegression

        from kardia.encoder import Encoder

        encoder, head = Encoder(), LogisticRegression(C=10.0, max_iter=2000)
        return (lambda x, y: head.fit(encoder.encode(x), y)), (lambda x: head.predict(encoder.encode(x)))
    if model == "phrase":
        return (lambda x, y: None), phrase_lookup
    raise ValueError(f"unknown model {model!r}; known: {MODELS}")


def label_baseline(data_dir: str | Path, ratings_dir: str | Path, model: str = "nb",
                   opening: bool = False) -> dict:  # fmt: skip
    from kardia.data import read_splits
    from kardia.emotions import EMOTIONS, valence
    from kardia.evaluation import human_written_rows

    turns = read_splits(data_dir, "turns")
    fit, predict = classifier(model)
    words = user_text if model == "phrase" else text  # the lookup reads the user's words only

    def reads(row: dict) -> str:
        return words(row, opening)

    fit([reads(r) for r in turns["train"]], [r["emotion"] for r in turns["train"]])

    def accuracy(rows: list[dict]) -> dict:
        guess = list(predict([reads(r) for r in rows])) if rows else []
        # the phrase lookup may name several labels (a shared phrase: each counts 1/k) or none
        guess = [g if isinstance(g, list) else [g] for g in guess]
        hits = sum(r["emotion"] in g and 1 / len(g) for g, r in zip(guess, rows, strict=True))
        misses = [(g[0] if g else None, r["emotion"]) for g, r in zip(guess, rows, strict=True)
                  if r["emotion"] not in g]  # fmt: skip
        near = sum(g is not None and valence(g) == valence(e) for g, e in misses)
        return {"n": len(rows), "accuracy": hits / len(rows) if rows else None,
                "near_miss_share": near / len(misses) if misses else None}  # fmt: skip

    test = turns["test"]
    return {
        "model": model,
        "opening": opening,
        "train_turns": len(turns["train"]),
        "train_situations": len({r["situation"] for r in turns["train"]}),
        "test": accuracy(test),
        "test_first_turns": accuracy([r for r in test if r.get("turn") == 0]),
        "test_later_turns": accuracy([r for r in test if r.get("turn", 0) > 0]),
        "human_written": accuracy(human_written_rows(ratings_dir, n=None, seed=0)),
        "chance": 1 / len(EMOTIONS),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(ROOT / "data/built"))
    ap.add_argument("--ratings-dir", default=str(ROOT / "data/human_ratings"))
    ap.add_argument("--model", choices=MODELS, action="append",
                    help="baseline(s) to fit (default: all)")  # fmt: skip
    ap.add_argument("--json", help="also write the results (one object per model) to this file")
    args = ap.parse_args()
    names = {"nb": "naive Bayes (word n-grams)", "minilm": "logistic regression (MiniLM embeddings)",
             "phrase": "the builder's feeling phrase in the user's message (no fit)"}
    # each baseline twice: on the last user message alone, and with later turns' opening in front
    # (what the default policy reads: policy.keep_opening)
    results = [label_baseline(args.data_dir, args.ratings_dir, m, opening)
               for m in args.model or MODELS for opening in (False, True)]  # fmt: skip
    first = results[0]
    print(f"Fitted on {first['train_turns']} train turns ({first['train_situations']} situations); "
          f"chance {first['chance']:.1%}. Accuracy, and the share of misses that name a label of the "
          "same valence:\n")  # fmt: skip
    print("| baseline | test turns | first turns | later turns | human-written |")
    print("|---|---|---|---|---|")
    for r in results:
        cells = [f"{r[k]['accuracy']:.1%} of {r[k]['n']} ({r[k]['near_miss_share'] or 0:.0%} same valence)"
                 for k in ("test", "test_first_turns", "test_later_turns", "human_written")]  # fmt: skip
        name = names[r["model"]] + (", later turns with the opening" if r["opening"] else "")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
