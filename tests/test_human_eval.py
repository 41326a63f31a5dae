"""Human evaluation kit: blinded export, the static form, and un-blinded win/tie/loss."""

from __future__ import annotations

import csv

import pytest

from kardia.human_eval import RatingsError, export_pairs, import_ratings, win_tie_loss
from kardia.rubric import DIMENSIONS

PROMPT = [{"role": "system", "content": "profile"}, {"role": "user", "content": "I lost my job."}]


def systems(n: int = 40):
    a = {f"t{i}": {"prompt": PROMPT, "response": f"KARDIA reply {i}"} for i in range(n)}
    b = {f"t{i}": {"prompt": PROMPT, "response": f"BASE reply {i}"} for i in range(n + 5)}
    return a, b


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def kit(tmp_path):
    a, b = systems()
    return export_pairs(a, b, tmp_path / "kit", n=30, seed=3)


def test_export_is_blind_and_keyed(kit):
    pairs, key = read(kit["pairs"]), read(kit["key"])
    assert len(pairs) == len(key) == 30 and len({p["pair_id"] for p in pairs}) == 30
    text = kit["pairs"].read_text() + kit["form"].read_text()
    assert "kardia-r1" not in text and "baseline" not in text  # raters never see the systems
    firsts = {k["reply_1_system"] for k in key}
    assert firsts == {"kardia-r1", "baseline"}  # the order is randomised per pair
    for p, k in zip(pairs, key, strict=True):
        ours = p["reply_1"] if k["reply_1_system"] == "kardia-r1" else p["reply_2"]
        assert ours == f"KARDIA reply {k['item_id'][1:]}"
        assert "user: I lost my job." in p["context"]
    assert [r["pair_id"] for r in read(kit["template"])] == [p["pair_id"] for p in pairs]


def test_export_is_seeded_and_samples_only_shared_items(tmp_path):
    a, b = systems()
    one = read(export_pairs(a, b, tmp_path / "1", n=10, seed=7)["key"])
    two = read(export_pairs(a, b, tmp_path / "2", n=10, seed=7)["key"])
    assert one == two and all(int(k["item_id"][1:]) < 40 for k in one)
    assert len(read(export_pairs(a, b, tmp_path / "3", n=500)["key"])) == 40
    with pytest.raises(ValueError, match="share no item"):
        export_pairs({"x": a["t0"]}, {"y": b["t0"]}, tmp_path / "4")


def test_form_has_one_choice_per_pair_and_dimension_and_escapes_text(tmp_path):
    a = {"t0": {"prompt": PROMPT, "response": "<script>alert(1)</script>"}}
    b = {"t0": {"prompt": PROMPT, "response": "fine"}}
    kit = export_pairs(a, b, tmp_path)
    form, pid = kit["form"].read_text(), read(kit["key"])[0]["pair_id"]
    assert "<script>alert(1)</script>" not in form and "&lt;script&gt;" in form
    for d in DIMENSIONS:
        assert form.count(f"name='{pid}.{d}'") == 3  # reply 1 / tie / reply 2
    assert "Download my ratings" in form and "ratings_${rater}.csv" in form


def rate(kit, path, rater, prefer=("empathy",), blank=()):
    """A rater who prefers Kardia-R1 on ``prefer``, ties elsewhere, leaves ``blank`` empty."""
    rows = []
    for k in read(kit["key"]):
        ours = "1" if k["reply_1_system"] == "kardia-r1" else "2"
        row = {"pair_id": k["pair_id"], "rater": rater}
        for d in DIMENSIONS:
            row[d] = "" if d in blank else ours if d in prefer else "tie"
        rows.append(row)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["pair_id", "rater", *DIMENSIONS])
        w.writeheader()
        w.writerows(rows)
    return path


def test_ratings_unblind_to_win_tie_loss(kit, tmp_path):
    files = [rate(kit, tmp_path / "r1.csv", "r1"),
             rate(kit, tmp_path / "r2.csv", "r2", prefer=("empathy", "persona"), blank=("safety",))]  # fmt: skip
    table = win_tie_loss(import_ratings(files, kit["key"])).set_index("dimension")
    assert table.loc["empathy", "win"] == 100 and table.loc["empathy", "ratings"] == 60
    assert table.loc["persona", "win"] == 50 and table.loc["persona", "tie"] == 50
    assert table.loc["relevance", "tie"] == 100 and table.loc["relevance", "loss"] == 0
    assert table.loc["safety", "ratings"] == 30 and table.loc["safety", "raters"] == 1
    # seen from the baseline, the same ratings are losses
    other = win_tie_loss(import_ratings(files, kit["key"], system="baseline")).set_index(
        "dimension"
    )
    assert other.loc["empathy", "loss"] == 100


def test_bad_ratings_name_file_row_and_field(kit, tmp_path):
    path = rate(kit, tmp_path / "bad.csv", "r1")
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("tie", "maybe", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RatingsError, match=r"bad.csv:4: field '\w+' is 'maybe'"):
        import_ratings([path], kit["key"])
    path.write_text("pair_id,rater,relevance\np9999,r1,1\n")
    with pytest.raises(RatingsError, match="p9999"):
        import_ratings([path], kit["key"])


def test_the_key_can_live_apart_and_ratings_of_another_kit_do_not_match(tmp_path):
    a, b = systems()
    kit = export_pairs(a, b, tmp_path / "kit", n=5, key_path=tmp_path / "secret/key.csv")
    assert kit["key"] == tmp_path / "secret/key.csv" and not (tmp_path / "kit/key.csv").exists()
    other = {k: {**v, "response": v["response"] + " (new run)"} for k, v in b.items()}
    new = export_pairs(a, other, tmp_path / "new", n=5)
    assert {r["pair_id"] for r in read(kit["key"])}.isdisjoint(
        r["pair_id"] for r in read(new["key"])
    )
