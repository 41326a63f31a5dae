import json

import pytest

from kardia.data import (
    FIELDS,
    KardiaDataError,
    assign_difficulty,
    difficulty,
    ensure_ids,
    expand_turns,
    load_dialogues,
    load_kardiabench,
    read_dialogues,
    read_splits,
    split_by_profile,
    validate_record,
    write_splits,
)
from kardia.spans import render_spans

TURN = render_spans(
    "She feels let down.", "Effort unrewarded hurts.", "Disappointed", "That really stings."
)
TURN_XML = render_spans(
    "Still hurting.", "Needs comfort.", "disappointed", "I'm here with you.", "xml"
)


def dialogue(user="u1", **over):
    rec = {
        "person": "MBTI: INFP\nAbout: cellist.",
        "mbti": "INFP",
        "emotion": "disappointed",
        "situation": "Rejected from the orchestra.",
        "anon_username": user,
        "messages": [
            {"role": "system", "content": "profile and situation"},
            {"role": "user", "content": "I didn't get in."},
            {"role": "assistant", "content": TURN},
            {"role": "user", "content": "I practised for months."},
            {"role": "assistant", "content": TURN_XML},
        ],
    }
    rec.update(over)
    return rec


def msgs(*pairs):
    return [{"role": "system", "content": "s"}] + [{"role": r, "content": c} for r, c in pairs]


def test_valid_record_in_both_tag_styles():
    rec = validate_record(dialogue(emotion="Disappointed."))
    assert rec["emotion"] == "disappointed"


# (change to a valid record, field named in the error, fragment of the problem) — one bad class per row
BAD = [
    ({"person": None}, "person", "expected str"),
    ({"mbti": 16}, "mbti", "expected str"),
    ({"messages": "hi"}, "messages", "expected list"),
    ({"emotion": "happy"}, "emotion", "not one of the 32"),
    (
        {"messages": msgs(("user", "hi"), ("assistant", TURN))[1:]},
        "messages[0].role",
        "system prompt",
    ),
    ({"messages": msgs(("user", "hi"))}, "messages", "at least one user turn"),
    (
        {"messages": msgs(("assistant", TURN), ("user", "hi"))},
        "messages[1].role",
        "roles alternate",
    ),
    ({"messages": msgs(("user", "a"), ("user", "b"))}, "messages[2].role", "roles alternate"),
    (
        {"messages": msgs(("user", "a"), ("assistant", TURN), ("user", "b"))},
        "messages[3].role",
        "end with an assistant",
    ),
    (
        {"messages": msgs(("user", "a"), ("assistant", "no spans"))},
        "messages[2].content",
        "four complete spans",
    ),
    (
        {"messages": msgs(("user", "a"), ("assistant", TURN.replace("<|emotion_end|>", "")))},
        "messages[2].content",
        "four complete spans",
    ),
    (
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user"},
                {"role": "assistant", "content": TURN},
            ]
        },
        "messages[1].content",
        "string",
    ),
    (
        {
            "messages": [
                {"role": "system", "content": "s"},
                "hi",
                {"role": "assistant", "content": TURN},
            ]
        },
        "messages[1]",
        "object",
    ),
    ({"verdicts": [["PASS"]]}, "verdicts", "one verdict history per assistant turn"),
    ({"verdicts": [["PASS"], ["MAYBE"]]}, "verdicts[1]", "expected a list of"),
    ({"verdicts": [["PASS"], "PASS"]}, "verdicts[1]", "expected a list of"),
]


@pytest.mark.parametrize("change,field,problem", BAD)
def test_bad_record_names_its_field(change, field, problem):
    with pytest.raises(KardiaDataError) as err:
        validate_record(dialogue(**change), "f.jsonl", 7)
    assert err.value.field == field and err.value.line == 7
    assert problem in str(err.value) and str(err.value).startswith("f.jsonl:7: field")


@pytest.mark.parametrize(
    "missing", ["person", "mbti", "emotion", "situation", "anon_username", "messages"]
)
def test_missing_field(missing):
    rec = dialogue()
    del rec[missing]
    with pytest.raises(KardiaDataError, match=f"field '{missing}': missing"):
        validate_record(rec)


def test_not_an_object():
    with pytest.raises(KardiaDataError, match="expected a JSON object"):
        validate_record(["x"])


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")


def test_jsonl_error_names_file_and_line_and_skip_counts(tmp_path):
    path = tmp_path / "d.jsonl"
    write_jsonl(path, [dialogue("a"), dialogue("b", emotion="meh"), dialogue("c")])
    with pytest.raises(KardiaDataError, match=r"d\.jsonl:2: field 'emotion'"):
        read_dialogues(path)
    records, skipped = read_dialogues(path, on_error="skip")
    assert [r["anon_username"] for r in records] == ["a", "c"] and skipped == 1


def test_invalid_json_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(dialogue()) + "\n{not json\n")
    with pytest.raises(KardiaDataError, match=r"d\.jsonl:2: field '<json>': invalid JSON"):
        read_dialogues(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_load_dialogues_formats(tmp_path, suffix):
    records = [dialogue("a"), dialogue("b")]
    path = tmp_path / f"d{suffix}"
    if suffix == ".jsonl":
        write_jsonl(path, records)
    elif suffix == ".json":
        path.write_text(json.dumps(records))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), path)
    counts = {}
    ds = load_dialogues(path, counts=counts)
    assert len(ds) == 2 and counts == {"loaded": 2, "skipped": 0}
    assert ds[0]["messages"][2]["content"] == TURN


def test_unsupported_file_and_on_error(tmp_path):
    (tmp_path / "d.csv").write_text("x")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_dialogues(tmp_path / "d.csv")
    with pytest.raises(ValueError, match="on_error"):
        read_dialogues(tmp_path / "d.csv", on_error="ignore")


def test_expand_turns():
    rows = expand_turns([dialogue("a")])
    assert len(rows) == 2
    first, second = rows
    assert [m["role"] for m in first["prompt"]] == ["system", "user"]
    assert first["completion"] == [{"role": "assistant", "content": TURN}]
    assert len(second["prompt"]) == 4 and second["turn"] == 1
    assert first["emotion"] == "disappointed" and first["person"].startswith("MBTI")


def test_split_is_profile_disjoint_and_seeded():
    records = [dialogue(f"user{i % 40}", situation=f"Situation {i % 40}.") for i in range(400)]
    splits = split_by_profile(records, dev_fraction=0.1, test_fraction=0.1, seed=3)
    users = {k: {r["anon_username"] for r in v} for k, v in splits.items()}
    assert (
        not users["train"] & users["dev"]
        and not users["train"] & users["test"]
        and not users["dev"] & users["test"]
    )
    assert len(users["dev"]) == 4 and len(users["test"]) == 4
    assert sum(map(len, splits.values())) == 400
    again = split_by_profile(records, 0.1, 0.1, seed=3)
    assert {k: [id(r) for r in v] for k, v in again.items()} == {
        k: [id(r) for r in v] for k, v in splits.items()
    }
    other = split_by_profile(records, 0.1, 0.1, seed=4)
    assert {r["anon_username"] for r in other["test"]} != users["test"]
    with pytest.raises(ValueError):
        split_by_profile(records, 0.6, 0.5, seed=0)


# (verdict histories per turn, expected) — hand-computed frequencies
RULE = [
    ([["PASS"]], "easy"),  # p_F=0 < p_P=1
    ([["FAIL", "PASS"]], "hard"),  # p_F=.5, p_P+p_S=.5: not <, and p_F+p_P=1 > p_S=0
    ([["FAIL", "FAIL", "PASS"], ["SOLVED"]], "hard"),  # p_F=.5 = p_P+p_S=.5; p_F+p_P=.75 > .25
    ([["FAIL", "PASS"], ["PASS"]], "easy"),  # p_F=1/3 < 2/3
    ([["FAIL", "FAIL", "FAIL", "SOLVED"]], "hard"),  # p_F=.75
    ([["FAIL"], ["FAIL", "SOLVED"], ["SOLVED"]], "hard"),  # p_F=.5 = p_S=.5: neither clause holds
    ([["SOLVED"]], "easy"),  # p_S=1
]


@pytest.mark.parametrize("verdicts,expected", RULE)
def test_easy_hard_rule(verdicts, expected):
    assert difficulty(verdicts) == expected


def test_easy_hard_needs_verdicts():
    with pytest.raises(ValueError):
        difficulty([[]])


# --- the released-schema fixture, whole-dataset loading and writing --------------------------

FIXTURE = "tests/fixtures/kardiabench_sample.jsonl"


def test_fixture_in_the_published_schema_loads_in_both_tag_styles():
    ds = load_dialogues(FIXTURE)
    assert ds.num_rows == 12
    assert set(ds.column_names) == set(FIELDS)  # exactly the released fields, no verdicts
    assistant = [m["content"] for r in ds for m in r["messages"] if m["role"] == "assistant"]
    assert any("<understanding>" in a for a in assistant)
    assert any("<|understanding_begin|>" in a for a in assistant)


@pytest.mark.filterwarnings("ignore:situations link most profiles")
def test_load_kardiabench_from_a_file_splits_by_profile():
    splits, counts = load_kardiabench(FIXTURE, dev_fraction=0.2, test_fraction=0.2, seed=0)
    assert counts == {"loaded": 12, "skipped": 0}
    who = {s: {r["anon_username"] for r in recs} for s, recs in splits.items()}
    assert all(who[s] for s in who) and not (who["train"] & (who["dev"] | who["test"]))
    assert sum(len(v) for v in splits.values()) == 12


def test_load_kardiabench_from_a_folder_keeps_its_test_split(tmp_path):
    lines = open(FIXTURE).read().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(lines[:8]) + "\n")
    (tmp_path / "test.json").write_text("[" + ",".join(lines[8:]) + "]")
    splits, counts = load_kardiabench(tmp_path, dev_fraction=0.25, seed=0)
    assert len(splits["test"]) == 4 and counts["loaded"] == 12
    assert len(splits["train"]) + len(splits["dev"]) == 8 and splits["dev"]


def test_load_kardiabench_missing_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="train and test"):
        load_kardiabench(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_kardiabench(tmp_path / "nope.jsonl")


def test_write_and_read_splits_round_trip(tmp_path):
    splits, _ = load_kardiabench(FIXTURE, dev_fraction=0.2, test_fraction=0.2, seed=0)
    ensure_ids(splits)
    for recs in splits.values():
        for r in recs:
            r["verdicts"] = [["FAIL", "PASS"]] + [["PASS"]] * (len(r["messages"]) // 2 - 1)
    counts = {s: assign_difficulty(recs) for s, recs in splits.items()}
    assert sum(c["easy"] for c in counts.values()) == 12
    (tmp_path / "built").mkdir()
    (tmp_path / "built" / "stale.txt").write_text("old")
    write_splits(splits, tmp_path / "built")
    assert not (tmp_path / "built" / "stale.txt").exists()  # the folder is replaced whole
    back = read_splits(tmp_path / "built")
    assert {s: len(v) for s, v in back.items()} == {s: len(v) for s, v in splits.items()}
    assert back["train"][0]["difficulty"] == "easy"
    turns = read_splits(tmp_path / "built", "turns")
    assert sum(len(v) for v in turns.values()) == sum(
        len(r["messages"]) // 2 for v in splits.values() for r in v
    )
    assert {"prompt", "completion", "emotion", "difficulty"} <= set(turns["train"][0])
    csv = (tmp_path / "built" / "difficulty.csv").read_text().splitlines()
    assert csv[0] == "dialogue_id,split,difficulty,turns,p_fail,p_pass,p_solved"
    assert len(csv) == 13


def test_ensure_ids_makes_ids_unique():
    splits = {"train": [{"dialogue_id": "a"}, {"dialogue_id": "a"}], "dev": [{}], "test": []}
    ensure_ids(splits)
    ids = [r["dialogue_id"] for v in splits.values() for r in v]
    assert len(set(ids)) == 3


def test_assign_difficulty_leaves_unjudged_dialogues_unassigned():
    recs = [{"verdicts": [[], []]}, {"verdicts": [["FAIL"], ["FAIL"], ["PASS"]]}]
    assert assign_difficulty(recs) == {"easy": 0, "hard": 1, "unjudged": 1}
    assert recs[0]["difficulty"] is None


def test_split_keeps_situations_apart_too_and_reports_overlap():
    from kardia.data import split_overlap

    # each situation is told by two profiles: they must land in the same split
    records = []
    for i in range(60):
        for user in (f"a{i}", f"b{i}"):
            r = dialogue(user)
            r["situation"] = f"Situation number {i}."
            records.append(r)
    splits = split_by_profile(records, 0.1, 0.1, seed=0)
    assert split_overlap(splits) == {"dev_profiles_in_train": 0, "dev_situations_in_train": 0,
                                     "test_profiles_in_train": 0, "test_situations_in_train": 0}  # fmt: skip
    assert splits["dev"] and splits["test"]
    leaky = {"train": records[:2], "dev": records[1:3], "test": []}
    assert split_overlap(leaky)["dev_profiles_in_train"] == 1
    assert split_overlap(leaky)["dev_situations_in_train"] == 1


def test_a_fully_linked_dataset_is_split_by_profile_with_a_warning():
    from kardia.data import split_overlap

    records = [dialogue(f"user{i}") for i in range(10)]  # one situation for everyone
    with pytest.warns(UserWarning, match="profile alone"):
        splits = split_by_profile(records, 0.1, 0.1, seed=0)
    assert len(splits["test"]) == 1 and split_overlap(splits)["test_situations_in_train"] == 1
