"""Human evaluation kit: blinded A/B pairs out, ratings in, a win/tie/loss table per dimension.

The paper had 3 experts compare Kardia-R1 with a baseline on 160 test cases, per rubric
dimension. ``export_pairs`` writes N pairs with the two systems' replies in a seeded random order
(``pairs.csv`` and a static ``form.html`` that needs no server), and the order in a separate
``key.csv`` that raters never see. ``import_ratings`` reads the filled-in files back, un-blinds
them with the key and ``win_tie_loss`` counts, per dimension, how often system A won, tied or lost.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from kardia.rubric import DEFINITIONS, DIMENSIONS

CHOICES = ("1", "tie", "2")  # reply 1 better | equal | reply 2 better
PAIR_FIELDS = ("pair_id", "context", "reply_1", "reply_2")
KEY_FIELDS = ("pair_id", "item_id", "reply_1_system", "reply_2_system")


class RatingsError(ValueError):
    """A ratings file that cannot be read back: names the file, row and field."""


def _context(messages: Sequence[dict]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def export_pairs(
    a: dict[str, dict],
    b: dict[str, dict],
    out_dir: str | Path,
    *,
    n: int = 160,
    seed: int = 0,
    names: tuple[str, str] = ("kardia-r1", "baseline"),
    key_path: str | Path | None = None,
) -> dict[str, Path]:
    """Write ``n`` blinded pairs of the items both systems answered.

    ``a`` and ``b`` map an item id to ``{"prompt": [messages], "response": str}`` (the reply the
    rater sees: the response span). Items are sampled and each pair's order drawn with ``seed``.
    The key goes to ``key_path`` (default: ``out_dir/key.csv``) — keep it away from raters. A
    pair id carries a hash of what the rater saw, so ratings of an older kit never match a new
    key silently.
    """
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two systems share no item ids")
    rng = random.Random(seed)
    items = rng.sample(common, min(n, len(common)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs, key = [], []
    for k, item in enumerate(items, start=1):
        first_a = rng.random() < 0.5
        r1, r2 = (a[item], b[item]) if first_a else (b[item], a[item])
        seen = json.dumps([item, r1["response"], r2["response"]], ensure_ascii=False)
        pid = f"p{k:04d}-{hashlib.sha256(seen.encode()).hexdigest()[:6]}"
        pairs.append({"pair_id": pid, "context": _context(a[item]["prompt"]),
                      "reply_1": r1["response"], "reply_2": r2["response"]})  # fmt: skip
        key.append({"pair_id": pid, "item_id": item,
                    "reply_1_system": names[0] if first_a else names[1],
                    "reply_2_system": names[1] if first_a else names[0]})  # fmt: skip
    paths = {
        "pairs": _write_csv(out / "pairs.csv", PAIR_FIELDS, pairs),
        "key": _write_csv(Path(key_path or out / "key.csv"), KEY_FIELDS, key),
        "template": _write_csv(
            out / "ratings_template.csv",
            ("pair_id", "rater", *DIMENSIONS),
            [{"pair_id": p["pair_id"]} for p in pairs],
        ),
    }
    paths["form"] = out / "form.html"
    paths["form"].write_text(render_form(pairs))
    return paths


def _write_csv(path: Path, fields: Sequence[str], rows: Iterable[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    return path


def render_form(pairs: Sequence[dict]) -> str:
    """A self-contained HTML form: one card per pair, one choice per dimension, and a button
    that downloads the answers as ``ratings_<rater>.csv`` (nothing is sent anywhere)."""
    cards = []
    for p in pairs:
        rows = "".join(
            f"<tr><th title='{html.escape(DEFINITIONS[d], quote=True)}'>{d}</th>"
            + "".join(
                f"<td><label><input type='radio' name='{p['pair_id']}.{d}' value='{c}'>"
                f"{'Reply 1' if c == '1' else 'Reply 2' if c == '2' else 'Tie'}</label></td>"
                for c in CHOICES
            )
            + "</tr>"
            for d in DIMENSIONS
        )
        cards.append(
            f"<section id='{p['pair_id']}'><h2>{p['pair_id']}</h2>"
            f"<pre class='ctx'>{html.escape(p['context'])}</pre>"
            f"<div class='replies'><div><h3>Reply 1</h3><p>{html.escape(p['reply_1'])}</p></div>"
            f"<div><h3>Reply 2</h3><p>{html.escape(p['reply_2'])}</p></div></div>"
            f"<table>{rows}</table></section>"
        )
    ids = json.dumps([p["pair_id"] for p in pairs])
    dims = json.dumps(list(DIMENSIONS))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kardia human evaluation</title>
<style>
body {{ font-family: sans-serif; max-width: 60rem; margin: auto; padding: 1rem; }}
section {{ border: 1px solid #ccc; border-radius: 6px; padding: 1rem; margin: 1rem 0; }}
.ctx {{ white-space: pre-wrap; background: #f6f6f6; padding: .5rem; max-height: 14rem; overflow: auto; }}
.replies {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }}
th {{ text-align: left; padding-right: 1rem; }}
</style></head><body>
<h1>Which reply is better?</h1>
<p>For each dialogue, compare the two replies to the user's last message on each dimension
(hover a dimension for its definition). The replies come from two systems in random order.</p>
<p><label>Your rater id: <input id="rater" required></label></p>
{"".join(cards)}
<p><button onclick="save()">Download my ratings (CSV)</button> <span id="status"></span></p>
<script>
const IDS = {ids}, DIMS = {dims};
function save() {{
  const rater = document.getElementById('rater').value.trim();
  if (!rater) {{ alert('Enter your rater id first.'); return; }}
  let missing = 0, lines = ['pair_id,rater,' + DIMS.join(',')];
  for (const id of IDS) {{
    const row = [id, rater];
    for (const d of DIMS) {{
      const c = document.querySelector(`input[name="${{id}}.${{d}}"]:checked`);
      if (!c) missing++;
      row.push(c ? c.value : '');
    }}
    lines.push(row.join(','));
  }}
  const blob = new Blob([lines.join('\\n') + '\\n'], {{type: 'text/csv'}});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob); a.download = `ratings_${{rater}}.csv`; a.click();
  document.getElementById('status').textContent = missing ? `${{missing}} answers left blank` : 'complete';
}}
</script></body></html>
"""


def import_ratings(ratings: Sequence[str | Path], key: str | Path, system: str = "kardia-r1"):
    """Filled-in ratings files → one row per (rater, pair, dimension) with the outcome for
    ``system``: ``win``, ``tie`` or ``loss``. Blank answers are skipped; anything else that is
    not 1 / tie / 2, or a pair the key does not know, raises ``RatingsError``."""
    import pandas as pd

    with Path(key).open(newline="") as f:
        blind = {r["pair_id"]: r for r in csv.DictReader(f)}
    rows = []
    for path in ratings:
        with Path(path).open(newline="") as f:
            for line, r in enumerate(csv.DictReader(f), start=2):
                pid = r.get("pair_id", "")
                if pid not in blind:
                    raise RatingsError(f"{path}:{line}: pair_id {pid!r} is not in {key}")
                if system not in (blind[pid]["reply_1_system"], blind[pid]["reply_2_system"]):
                    raise RatingsError(f"{key}: pair {pid} does not involve {system!r}")
                ours = "1" if blind[pid]["reply_1_system"] == system else "2"
                for d in DIMENSIONS:
                    choice = (r.get(d) or "").strip().lower()
                    if not choice:
                        continue
                    if choice not in CHOICES:
                        raise RatingsError(
                            f"{path}:{line}: field {d!r} is {choice!r}; expected 1, tie or 2"
                        )
                    outcome = "tie" if choice == "tie" else ("win" if choice == ours else "loss")
                    rows.append({"rater": r.get("rater") or Path(path).stem, "pair_id": pid,
                                 "item_id": blind[pid]["item_id"], "dimension": d,
                                 "outcome": outcome})  # fmt: skip
    return pd.DataFrame(rows, columns=["rater", "pair_id", "item_id", "dimension", "outcome"])


def win_tie_loss(outcomes):
    """Per dimension: win / tie / loss shares (%) over every rating, and the number of ratings
    and raters — the paper's human-evaluation table."""
    import pandas as pd

    table = []
    for d in DIMENSIONS:
        sub = outcomes[outcomes["dimension"] == d]
        n = len(sub)
        counts = sub["outcome"].value_counts()
        table.append({"dimension": d,
                      **{k: 100 * counts.get(k, 0) / n if n else float("nan")
                         for k in ("win", "tie", "loss")},
                      "ratings": n, "raters": sub["rater"].nunique()})  # fmt: skip
    return pd.DataFrame(table)
