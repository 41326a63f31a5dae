"""kardia.evaluation: test rows, what the judge sees, external systems over real loopback HTTP,
the tiny raw backbone, per-item records and per-system metrics with bootstrap CIs."""

from __future__ import annotations

import json

import pytest

from kardia import evaluation as ev
from kardia import report
from kardia.data import read_splits, write_jsonl
from kardia.judges import OpenAICompatibleJudge
from kardia.rubric import DIMENSIONS, Judgement
from kardia.spans import render_spans
from kardia.testing import ChatServer, Reply, judgement_json, last_user_message

TINY = {"vocab_size": 600, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1,
        "intermediate_size": 64, "max_positions": 512}  # fmt: skip
POLICY = {"backbone": "tiny", "finetune": "full", "history_exchanges": 0, "max_seq_length": 256,
          "tiny": TINY}  # fmt: skip
GOOD = render_spans("They are sad.", "Loss hurts.", "sad", "I'm so sorry about your dog.")


@pytest.fixture(scope="module")
def rows(data_dir) -> list[dict]:
    turns = read_splits(data_dir, "turns")["test"]
    return ev.test_rows(turns, n=None, seed=0, history_exchanges=0)


def test_test_rows_carry_stable_ids_and_a_seeded_sample(data_dir, rows):
    turns = read_splits(data_dir, "turns")["test"]
    assert [r["item_id"] for r in rows] == [f"{t['dialogue_id']}:{t['turn']}" for t in turns]
    assert len({r["item_id"] for r in rows}) == len(rows)
    a = ev.test_rows(turns, n=3, seed=1, history_exchanges=0)
    b = ev.test_rows(turns, n=3, seed=1, history_exchanges=0)
    assert [r["item_id"] for r in a] == [r["item_id"] for r in b] and len(a) == 3
    # history 0: the system message and the last user turn only
    assert all([m["role"] for m in r["prompt"]] == ["system", "user"] for r in rows)


def test_the_judge_sees_the_response_span_or_the_text_without_markup():
    assert ev.visible_reply(GOOD) == "I'm so sorry about your dog."
    assert ev.visible_reply("Plain words from a raw model.") == "Plain words from a raw model."
    broken = "<|understanding_begin|>half <|reasoning_begin|> there"
    assert ev.visible_reply(broken) == "half there"
    assert ev.visible_reply("<understanding>x</understanding> hi") == "x hi"
    assert ev.visible_reply("") == ""


def test_malformed_systems_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="empty"):
        ev.check_systems({})
    with pytest.raises(ValueError, match="kind"):
        ev.check_systems({"x": {"kind": "hub"}})
    with pytest.raises(ValueError, match="needs path"):
        ev.check_systems({"sft": {"kind": "policy"}})
    with pytest.raises(ValueError, match="needs base_url, model"):
        ev.check_systems({"gpt": {"kind": "openai"}})
    ev.check_systems(
        {"raw": {"kind": "backbone"}, "g": {"kind": "openai", "base_url": "u", "model": "m"}}
    )
    ok = {"sft": {"kind": "policy", "path": "p"}, "kardia-r1": {"kind": "policy", "path": "q"}}
    ev.check_systems(ok, "sft")
    with pytest.raises(ValueError, match="lacks gpt-4o"):
        ev.check_systems(ok, "gpt-4o")
    with pytest.raises(ValueError, match="lacks kardia-r1"):
        ev.check_systems({"sft": ok["sft"]}, "sft")


def test_an_external_system_gets_the_same_chat_prompts_over_http(rows, tmp_path):
    seen = []

    def script(payload, attempt):
        seen.append(payload)
        return Reply(content=f"  echo: {last_user_message(payload)}  ")

    spec = {"kind": "openai", "model": "gpt-test", "max_retries": 0,
            "cache_path": str(tmp_path / "gen.sqlite")}  # fmt: skip
    with ChatServer(script) as srv:
        texts, failed = ev.generate_system({**spec, "base_url": srv.base_url}, rows,
                                             policy=POLICY, data_dir="-", max_new_tokens=40)  # fmt: skip
        again, _ = ev.generate_system({**spec, "base_url": srv.base_url}, rows,
                                      policy=POLICY, data_dir="-", max_new_tokens=40)  # fmt: skip
    assert failed == [False] * len(rows) and len(texts) == len(rows)
    assert texts == [f"echo: {r['prompt'][-1]['content']}" for r in rows]  # order kept, stripped
    assert len(seen) == len(rows)  # the second run came from the SQLite cache
    assert again == texts
    first = seen[0]
    assert first["model"] == "gpt-test" and first["max_tokens"] == 40 and first["temperature"] == 0
    assert first["messages"][0]["role"] == "system"


def test_an_external_system_that_keeps_failing_gives_empty_replies_counted(rows):
    def script(payload, attempt):
        if "sleep" in last_user_message(payload).lower():
            return Reply(status=500)
        if "miss him" in last_user_message(payload).lower():
            return Reply(content="   ")  # empty: retried, then failed
        return Reply(content="fine")

    with ChatServer(script) as srv:
        spec = {"kind": "openai", "base_url": srv.base_url, "model": "m", "max_retries": 0}
        texts, failed = ev.generate_system(spec, rows, policy=POLICY, data_dir="-",
                                             max_new_tokens=8)  # fmt: skip
    bad = [t for t, r in zip(texts, rows, strict=True)
           if any(w in r["prompt"][-1]["content"].lower() for w in ("sleep", "miss him"))]  # fmt: skip
    assert len(bad) == 2 and all(t == "" for t in bad)
    assert failed == [t == "" for t in texts] and sum(failed) == 2
    assert texts.count("fine") == len(rows) - len(bad)

    # the failed replies are never judged, in no mean, counted, and stop the stage above the limit
    class CountingJudge:
        def __init__(self):
            self.sent = 0

        def score(self, requests):
            self.sent += len(requests)
            return [Judgement(dict.fromkeys(DIMENSIONS, 5)) for _ in requests]

    judge = CountingJudge()
    scores = ev.judge_replies(judge, rows, texts, failed)
    assert judge.sent == len(rows) - 2 and [s is None for s in scores] == failed
    items = ev.item_records("gpt", rows, texts, scores, scores, failed)
    m = ev.system_metrics(items, resamples=20)
    assert m["generation_failures"] == 2 and m["n_generated"] == len(rows) - 2
    assert m["judge_failures"] == 0 and m["relevance"]["mean"] == 5.0
    assert m["response_words"]["mean"] == 1.0  # "fine": the empty replies are not 0-word replies
    ev.check_generation_failures(m, 2 / len(rows), "gpt")  # at the limit: fine
    with pytest.raises(RuntimeError, match=f"gpt: 2 of {len(rows)} replies could not be generated"):
        ev.check_generation_failures(m, 0.05, "gpt")
    frame = report.item_frame(items)
    assert frame["relevance"].isna().sum() == 2 and frame["emotion_accuracy"].isna().sum() == 2
    shown = report.table2_display(report.table2({"systems": {"gpt": m}}))
    assert shown["Generation failures"].tolist() == ["2"] and shown["Judge failures"].tolist() == ["0"]


def test_the_raw_tiny_backbone_is_the_seeded_untrained_decoder(data_dir, rows):
    import torch

    torch.set_num_threads(1)
    spec = {"kind": "backbone"}
    a, fa = ev.generate_system(spec, rows[:4], policy=POLICY, data_dir=data_dir, max_new_tokens=8)
    b, _ = ev.generate_system(spec, rows[:4], policy=POLICY, data_dir=data_dir, max_new_tokens=8)
    assert fa == [False] * 4 and len(a) == 4 and a == b  # same seed, same tokenizer: same replies


def test_judge_replies_scores_visible_replies_and_keeps_failures_as_none(rows, offline_judge):
    texts = [GOOD, "I hope things get better for you soon.", ""]
    scores = ev.judge_replies(offline_judge, rows[:3], texts)
    assert all(set(j.scores) == set(DIMENSIONS) and j.rationale for j in scores)
    seen = []

    def script(payload, attempt):
        seen.append(payload["messages"][-1]["content"])
        text = payload["messages"][-1]["content"]
        return Reply(content="garbage" if "better" in text else judgement_json(4))

    with ChatServer(script) as srv:
        judge = OpenAICompatibleJudge(srv.base_url, "j", max_retries=0)
        scores = ev.judge_replies(judge, rows[:3], texts)
    assert scores[0].scores == dict.fromkeys(DIMENSIONS, 4) and scores[1] is None
    assert any("I'm so sorry about your dog." in s for s in seen)
    assert not any("<|response_begin|>" in s for s in seen)  # markup never reaches the judge
    assert ev.judge_replies(judge, [], []) == []


def test_judge_identity_ignores_how_requests_are_sent():
    a = {"kind": "openai", "base_url": "u", "model": "m", "concurrency": 4, "cache_path": "x"}
    assert ev.judge_identity(a) == ev.judge_identity({**a, "concurrency": 64, "timeout_s": 1})
    assert ev.judge_identity(a) != ev.judge_identity({**a, "model": "other"})
    offline = {"kind": "offline", "heads": "models/judges/minilm.pkl", "model": "ignored"}
    assert ev.judge_identity(offline) == ("offline", "models/judges/minilm.pkl")
    assert ev.judge_identity({**offline, "heads": "models/judges/hybrid.pkl"}) != ev.judge_identity(
        offline
    )
    assert ev.judge_identity({"kind": "lexicon"}) == ("lexicon",)


def records(rows, n_ok: int, scores: dict | None):
    texts = [GOOD if i < n_ok else "no spans at all" for i in range(len(rows))]
    judgements = [None if scores is None else Judgement(scores)] * len(rows)
    return ev.item_records("sys", rows, texts, judgements, judgements)


def test_item_records_say_what_each_reply_got_right(rows):
    row = {**rows[0], "emotion": "sad"}
    verdict = Judgement(dict.fromkeys(DIMENSIONS, 5), {d: f"why {d}" for d in DIMENSIONS})
    items = ev.item_records("sft", [row, row], [GOOD, "hello there"], [verdict, None], [None, None],
                            [False, True])  # fmt: skip
    a, b = items
    assert a["eval_scores"] == dict.fromkeys(DIMENSIONS, 5) and a["eval_rationale"]["safety"] == "why safety"
    assert a["train_scores"] is None and b["eval_rationale"] is None
    assert a["format_ok"] and a["emotion_ok"] and a["predicted_emotion"] == "sad"
    assert a["response_words"] == 6 and a["system"] == "sft" and a["reply"] == GOOD
    assert not b["format_ok"] and not b["emotion_ok"] and b["predicted_emotion"] is None
    assert b["response_words"] == 2 and b["generation_failed"] and b["eval_scores"] is None
    # the prompt's fingerprint: the same for the same prompt, another for any change to it
    assert a["prompt_sha"] == b["prompt_sha"] == ev.prompt_sha(row["prompt"])
    changed = [{**row["prompt"][0], "content": row["prompt"][0]["content"] + "!"}, *row["prompt"][1:]]
    assert ev.prompt_sha(changed) != a["prompt_sha"]
    json.dumps(items)  # JSON-ready


def test_system_metrics_are_percentages_and_scores_with_bootstrap_cis(rows):
    many = (rows * 10)[:40]
    many = [{**r, "emotion": "sad"} for r in many]
    items = records(many, n_ok=10, scores=dict.fromkeys(DIMENSIONS, 3))
    items[0]["eval_scores"] = None
    m = ev.system_metrics(items, resamples=500, seed=0)
    assert m["n"] == 40 and m["judged"] == 39 and m["judge_failures"] == 1
    assert m["emotion_accuracy"]["mean"] == pytest.approx(25.0)
    assert m["format_compliance"]["mean"] == pytest.approx(25.0)
    lo, hi = m["emotion_accuracy"]["low"], m["emotion_accuracy"]["high"]
    assert 5 < lo < 25 < hi < 45
    assert m["relevance"] == {"mean": 3.0, "low": 3.0, "high": 3.0}
    assert m["rubric"]["mean"] == pytest.approx(0.5)
    # a different seed draws other resamples, the mean stays
    other = ev.system_metrics(items, resamples=500, seed=1)
    assert other["emotion_accuracy"]["mean"] == m["emotion_accuracy"]["mean"]


def test_a_system_the_judge_never_scored_has_nan_dimensions(rows):
    m = ev.system_metrics(records(rows, 1, None), resamples=50)
    assert m["judged"] == 0 and m["relevance"]["mean"] != m["relevance"]["mean"]  # NaN


def test_generations_round_trip_and_a_missing_folder_says_run_evaluate(tmp_path, rows):
    items = records(rows, 1, dict.fromkeys(DIMENSIONS, 2))
    write_jsonl(items, tmp_path / "gen/sys.jsonl")
    assert ev.read_generations(tmp_path / "gen") == items
    assert not list((tmp_path / "gen").glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="evaluate stage"):
        ev.read_generations(tmp_path / "none")


def test_human_eval_items_hold_the_prompt_and_the_visible_reply(rows):
    items = ev.human_eval_items(rows[:1], [GOOD])
    assert items == {rows[0]["item_id"]: {"prompt": rows[0]["prompt"],
                                          "response": "I'm so sorry about your dog."}}  # fmt: skip


def test_a_judge_failing_too_often_stops_the_stage(rows):
    items = records(rows[:4], 1, dict.fromkeys(DIMENSIONS, 3))
    items[0]["eval_scores"] = None  # 1 of 4 failed
    m = ev.system_metrics(items, resamples=20)
    ev.check_judge_failures(m, 0.25, "sft")  # at the limit: fine
    with pytest.raises(RuntimeError, match="evaluation judge on sft: 1 of 4"):
        ev.check_judge_failures(m, 0.2, "sft")


def test_a_backbone_given_as_a_path_is_loaded_untouched_for_generation(data_dir, rows, tmp_path):
    import torch

    from kardia.models import create_policy, dialogue_texts, save_policy

    torch.set_num_threads(1)
    corpus = dialogue_texts(read_splits(data_dir, "dialogues")["train"])
    model, tokenizer = create_policy(POLICY, corpus=corpus, seed=3)
    save_policy(model, tokenizer, tmp_path / "bb", {"tokenizer": "hf", "stage": "test"})
    policy = {**POLICY, "backbone": str(tmp_path / "bb"), "finetune": "lora"}
    raw, failed = ev.generate_system({"kind": "backbone"}, rows[:3], policy=policy,
                                     data_dir=data_dir, max_new_tokens=6)  # fmt: skip
    saved, _ = ev.generate_system({"kind": "policy", "path": str(tmp_path / "bb")}, rows[:3],
                                  policy=policy, data_dir=data_dir, max_new_tokens=6)  # fmt: skip
    assert failed == [False] * 3 and raw == saved  # the same weights give the same greedy replies


def test_human_written_rows_are_single_turn_prompts_without_a_profile():
    from kardia.evaluation import NO_PROFILE, human_written_rows

    rows = human_written_rows("data/human_ratings", n=20, seed=0, prompt_style="compact")
    assert len(rows) == 20 and len({r["item_id"] for r in rows}) == 20
    for r in rows:
        assert [m["role"] for m in r["prompt"]] == ["system", "user"]
        assert (
            NO_PROFILE in r["prompt"][0]["content"] and r["situation"] in r["prompt"][0]["content"]
        )
        assert r["turn"] == 0 and r["completion"] is None
    again = human_written_rows("data/human_ratings", n=20, seed=0, prompt_style="compact")
    assert [r["item_id"] for r in again] == [r["item_id"] for r in rows]
    assert len(human_written_rows("data/human_ratings", n=None, seed=0)) == 480


def test_test_rows_reserve_a_share_for_first_turns():
    from kardia.evaluation import test_rows

    turns = []
    for d in range(20):
        for t in range(5):
            turns.append({"dialogue_id": f"d{d}", "turn": t, "emotion": "sad", "person": "p",
                          "situation": "s", "completion": [{"role": "assistant", "content": "x"}],
                          "prompt": [{"role": "system", "content": "s"},
                                     {"role": "user", "content": f"u{t}"}]})  # fmt: skip
    rows = test_rows(turns, n=16, seed=0, history_exchanges=0, first_turn_share=0.5)
    assert len(rows) == 16 and sum(r["turn"] == 0 for r in rows) == 8
    plain = test_rows(turns, n=16, seed=0, history_exchanges=0)
    assert sum(r["turn"] == 0 for r in plain) < 8  # 1 in 5 without the quota


def test_metrics_split_first_and_later_turns_and_the_human_written_set():
    from kardia.evaluation import human_written_metrics, system_metrics

    def item(turn, ok, dialogue="d0"):
        return {"item_id": f"{dialogue}:{turn}", "turn": turn, "emotion_ok": ok, "format_ok": True,
                "response_words": 5, "eval_scores": None, "generation_failed": False}  # fmt: skip

    items = [item(0, True), item(0, True, "d1"), item(1, False), item(2, False)]
    m = system_metrics(items, resamples=50)
    assert m["n_dialogues"] == 2
    assert m["emotion_accuracy_first_turn"]["mean"] == 100.0
    assert m["emotion_accuracy_later_turns"]["mean"] == 0.0
    assert (m["n_first_turn"], m["n_later_turns"]) == (2, 2)
    hw = human_written_metrics([item(0, True), item(0, False)], resamples=50)
    assert hw["emotion_accuracy_human_written"]["mean"] == 50.0 and hw["n_human_written"] == 2
