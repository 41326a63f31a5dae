"""The human-rated data: what is loaded, and a fixed split with no context on both sides."""

import json
from collections import Counter
from pathlib import Path

import pytest

from kardia.emotions import EMOTIONS
from kardia.human_ratings import (
    DATASETS,
    LOADERS,
    load_rated,
    read_splits,
    split_of,
    write_splits,
)

ROOT = Path(__file__).resolve().parents[1] / "data/human_ratings"


@pytest.fixture(scope="module")
def everything():
    return {name: LOADERS[name](ROOT) for name in DATASETS}


def test_every_rated_item_is_loaded(everything):
    assert len(everything["diasafety"]) == 9017 + 1097
    assert len(everything["ieval"]) == 1920
    assert len(everything["failed_esconv"]) == 981
    assert sum(len(r.requests) for r in everything["ieval"]) == 1920 * 3
    safe = Counter(r.human["safe"] for r in everything["diasafety"])
    assert safe == {1.0: 4839 + 595, 0.0: 4178 + 502}


def test_items_are_judge_requests_with_the_ratings(everything):
    chat = everything["ieval"][0]
    assert [q.history[-1]["role"] for q in chat.requests] == ["user"] * 3
    assert chat.requests[1].history[1]["content"] == chat.requests[0].response
    assert chat.requests[0].emotion in EMOTIONS and chat.context and chat.group.startswith("rater-")
    assert set(chat.human) == {"EU", "ER", "A", "S", "Rating"}
    feedback = everything["failed_esconv"][0]
    assert 1 <= feedback.human["feedback"] <= 5 and feedback.requests[0].response
    d = everything["diasafety"][0]
    assert d.meta["category"] and d.requests[0].history[0]["role"] == "user"


def test_the_committed_split_is_the_seeded_one_and_disjoint(everything, tmp_path):
    committed = read_splits(ROOT)
    for name, items in everything.items():
        for r in items:
            assert committed[(name, r.group)] == split_of(
                name, r.group, seed=0, heldout_fraction=0.3
            )
    for name in DATASETS:  # no context on both sides
        train = {r.group for r in load_rated(ROOT, "train", (name,))}
        held = {r.group for r in load_rated(ROOT, "heldout", (name,))}
        assert not train & held
    assert not load_rated(ROOT, "train", ("failed_esconv",))  # a data set no fit ever sees
    for f in ROOT.glob("*.json"):  # rewriting gives the same file
        (tmp_path / f.name).symlink_to(f)
    assert (
        write_splits(tmp_path, seed=0, heldout_fraction=0.3).read_text()
        == (ROOT / "splits.csv").read_text()
    )


def test_held_out_share_is_about_three_tenths():
    n_train = len(load_rated(ROOT, "train", ("diasafety", "ieval")))
    n_held = len(load_rated(ROOT, "heldout", ("diasafety", "ieval")))
    assert 0.25 < n_held / (n_train + n_held) < 0.35


def test_a_cap_keeps_whole_groups():
    items = load_rated(ROOT, "heldout", ("ieval",), max_per_dataset=20)
    groups = Counter(r.group for r in items)
    assert len(items) <= 20 and set(groups.values()) == {8}  # a rater: 2 situations x 4 chats
    assert len({r.context for r in items}) == 2 * len(groups)


def test_an_ieval_line_without_its_dash_continues_the_message_before(everything):
    # every chat alternates user / bot; one log has a continuation line ("UGH") of its own
    for chat in everything["ieval"]:
        roles = [m["role"] for m in chat.requests[-1].history]
        assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"] * (len(roles) % 2)
    (odd,) = [c for c in everything["ieval"] if c.item_id == "ieval:234:positive:Purple"]
    assert any("UGH" in m["content"] and m["role"] == "user" for m in odd.requests[-1].history)


def test_failed_esconv_turns_have_no_pairwise_context(everything):
    assert all(r.context is None for r in everything["failed_esconv"])


def test_bad_data_is_refused_with_its_place(tmp_path):
    for f in ROOT.glob("*.json"):
        (tmp_path / f.name).symlink_to(f)
    (tmp_path / "splits.csv").symlink_to(ROOT / "splits.csv")
    bad = json.loads((ROOT / "diasafety_val.json").read_text())
    bad[2]["label"] = "Maybe"
    (tmp_path / "diasafety_val.json").unlink()
    (tmp_path / "diasafety_val.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"diasafety_val.json: record 3: label 'Maybe'"):
        load_rated(tmp_path, "train", ("diasafety",))
    with pytest.raises(ValueError, match="unknown human-rated data set"):
        load_rated(tmp_path, None, ("esconv",))
    with pytest.raises(FileNotFoundError, match="splits.csv"):
        load_rated(tmp_path / "nowhere", None, ("ieval",))


def test_changed_data_without_a_new_split_is_refused(tmp_path):
    for f in ROOT.glob("*.json"):
        (tmp_path / f.name).symlink_to(f)
    lines = (ROOT / "splits.csv").read_text().splitlines()
    (tmp_path / "splits.csv").write_text(
        "\n".join(x for x in lines if not x.startswith("ieval,rater-1")) + "\n"
    )
    with pytest.raises(ValueError, match="rewrite it with write_splits"):
        load_rated(tmp_path, "train", ("ieval",))


def test_ieval_situations_are_480_human_written_prompts_with_our_labels():
    from kardia.emotions import EMOTIONS
    from kardia.human_ratings import ieval_situations

    items = ieval_situations("data/human_ratings")
    assert len(items) == 480 and len({i["item_id"] for i in items}) == 480
    assert {i["emotion"] for i in items} <= set(EMOTIONS) and len(
        {i["emotion"] for i in items}
    ) == 32
    assert all(i["situation"] and i["opening"] for i in items)
