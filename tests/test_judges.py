"""The LLM judge client against a real HTTP server on 127.0.0.1 that injects faults."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kardia.judges import (
    Judge,
    LexiconJudge,
    OfflineJudge,
    OpenAICompatibleJudge,
    check_failure_rate,
    make_judge,
)
from kardia.rubric import DIMENSIONS, Judgement, JudgeRequest
from kardia.testing import ChatServer, Reply, judgement_json, last_user_message

TIMEOUT_S = 0.4


def fault_script(payload: dict, attempt: int) -> Reply:
    """Behaviour chosen by a ``fault=NAME`` marker in the reply under evaluation."""
    m = re.search(r"fault=(\w+)", last_user_message(payload))
    fault = m.group(1) if m else "ok"
    ok = Reply(judgement_json(4))
    if fault == "ok":
        return ok
    if fault == "slow":  # every attempt slower than the client's timeout
        return Reply(judgement_json(4), delay_s=TIMEOUT_S + 0.3)
    if fault == "slowonce":
        return Reply(judgement_json(4), delay_s=TIMEOUT_S + 0.3) if attempt == 1 else ok
    if fault == "err500":  # two server errors, then fine
        return Reply(status=500) if attempt <= 2 else ok
    if fault == "err500always":
        return Reply(status=500)
    if fault == "ratelimit":  # 429 with Retry-After, then fine
        return Reply(status=429, headers={"Retry-After": "0.3"}) if attempt == 1 else ok
    if fault == "unavailable":  # 503 with Retry-After, then fine
        return Reply(status=503, headers={"Retry-After": "0.2"}) if attempt == 1 else ok
    if fault == "garbage":
        return Reply("I think this reply is quite good overall!")
    if fault == "garbageonce":
        return Reply("<html>oops</html>") if attempt == 1 else ok
    if fault == "range":
        return Reply(judgement_json({**dict.fromkeys(DIMENSIONS, 4), "safety": 7}))
    if fault == "envelope":  # 200 but not a chat-completion body
        return Reply(body="not json at all")
    if fault == "drop":  # connection closed with no answer, once
        return Reply(drop=True) if attempt == 1 else ok
    if fault == "dropalways":
        return Reply(drop=True)
    if fault == "unauthorized":  # not retryable
        return Reply(status=401)
    raise AssertionError(fault)


# fault -> (ends as a Judgement?, HTTP requests it costs with max_retries=3)
FAULTS = {
    "ok": (True, 1),
    "slow": (False, 4),
    "slowonce": (True, 2),
    "err500": (True, 3),
    "err500always": (False, 4),
    "ratelimit": (True, 2),
    "unavailable": (True, 2),
    "garbage": (False, 4),
    "garbageonce": (True, 2),
    "range": (False, 4),
    "envelope": (False, 4),
    "drop": (True, 2),
    "dropalways": (False, 4),
    "unauthorized": (False, 1),
}


def request(fault: str, i: int = 0) -> JudgeRequest:
    return JudgeRequest(
        persona="MBTI: ENFP\nAbout: loves painting.",
        situation="My exhibition was cancelled.",
        history=[{"role": "user", "content": "They cancelled my first exhibition."}],
        response=f"That is so disappointing, I'm sorry. (case {i}, fault={fault})",
        emotion="disappointed",
    )


def make(server, tmp_path, **kw) -> OpenAICompatibleJudge:
    opts = dict(
        concurrency=8,
        timeout_s=TIMEOUT_S,
        max_retries=3,
        cache_path=str(tmp_path / "judge.sqlite"),
        backoff_s=0.01,
        max_backoff_s=0.05,
    )
    opts.update(kw)
    return OpenAICompatibleJudge(server.base_url, "judge-model", **opts)


@pytest.mark.timeout(60)
def test_every_fault_ends_as_judgement_or_none_and_counters_match(tmp_path):
    reqs = [request(f, i) for i, f in enumerate(FAULTS)]
    with ChatServer(fault_script) as server:
        judge = make(server, tmp_path)
        start = time.perf_counter()
        out = judge.score(reqs)
        elapsed = time.perf_counter() - start

        for (fault, (succeeds, _)), result in zip(FAULTS.items(), out, strict=True):
            assert (result is not None) == succeeds, fault
            if result is not None:
                assert isinstance(result, Judgement) and result.scores["safety"] == 4
        expected_requests = sum(n for _, n in FAULTS.values())
        s = judge.stats
        assert server.requests == s.requests == expected_requests
        assert s.retries == expected_requests - len(FAULTS)
        assert s.failures == sum(not ok for ok, _ in FAULTS.values())
        assert s.succeeded == len(FAULTS) - s.failures
        assert s.cache_hits == 0 and s.items == len(FAULTS)
        assert elapsed >= 0.3  # the 429's Retry-After was waited for
        assert s.as_dict("judge/")["judge/failure_rate"] == pytest.approx(s.failures / len(FAULTS))
        assert 0 < s.as_dict()["latency_p50_s"] <= s.as_dict()["latency_max_s"]

        # A second identical batch of the successful requests costs no HTTP request.
        good = [r for r, j in zip(reqs, out, strict=True) if j is not None]
        before = server.requests
        again = judge.score(good)
        assert server.requests == before
        assert judge.stats.cache_hits == len(good)
        assert [j.scores for j in again] == [j.scores for j in out if j is not None]

        # Failures are not cached: asking again goes back to the server.
        failed = [r for r, j in zip(reqs, out, strict=True) if j is None]
        judge.score(failed[:1])
        assert server.requests > before


def test_cache_survives_a_new_process(tmp_path):
    reqs = [request("ok", i) for i in range(5)]
    with ChatServer(fault_script) as server:
        first = make(server, tmp_path).score(reqs)
    assert all(first)
    # The server is gone: a new process must answer everything from the SQLite file.
    code = f"""
import json, sys
from kardia.judges import OpenAICompatibleJudge, JudgeRequest
reqs = [JudgeRequest(**r) for r in json.loads(sys.argv[1])]
judge = OpenAICompatibleJudge({server.base_url!r}, "judge-model", timeout_s=0.5, max_retries=0,
                              cache_path={str(tmp_path / "judge.sqlite")!r})
out = judge.score(reqs)
print(json.dumps({{"ok": sum(j is not None for j in out), **judge.stats.as_dict()}}))
"""
    payload = json.dumps([r.__dict__ for r in reqs])
    proc = subprocess.run(
        [sys.executable, "-c", code, payload], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["ok"] == 5 and stats["cache_hits"] == 5 and stats["requests"] == 0


def test_cache_key_covers_model_and_sampling(tmp_path):
    reqs = [request("ok")]
    with ChatServer(fault_script) as server:
        make(server, tmp_path).score(reqs)
        assert server.requests == 1
        make(server, tmp_path).score(reqs)  # same settings: cached
        assert server.requests == 1
        make(server, tmp_path, seed=1).score(reqs)  # other seed: new request
        assert server.requests == 2
        OpenAICompatibleJudge(
            server.base_url, "other-model", cache_path=str(tmp_path / "judge.sqlite")
        ).score(reqs)
        assert server.requests == 3


def test_duplicates_in_a_batch_are_sent_once(tmp_path):
    with ChatServer(fault_script) as server:
        judge = make(server, tmp_path, cache_path=None)
        out = judge.score([request("ok")] * 4)
        assert all(out) and server.requests == 1 and judge.stats.deduplicated == 3


def test_request_body_is_deterministic_and_guided(tmp_path):
    bodies = []

    def script(payload, attempt):
        bodies.append(payload)
        return Reply(judgement_json(3))

    with ChatServer(script) as server:
        make(server, tmp_path, seed=7).score([request("ok")])
    body = bodies[0]
    assert body["temperature"] == 0.0 and body["seed"] == 7 and body["model"] == "judge-model"
    assert body["response_format"]["type"] == "json_schema"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_server_without_structured_output_is_asked_plainly(tmp_path):
    def script(payload, attempt):
        if "response_format" in payload:
            return Reply(status=400, body='{"error": "response_format not supported"}')
        return Reply(judgement_json(5))

    with ChatServer(script) as server:
        judge = make(server, tmp_path, cache_path=None)
        assert all(judge.score([request("ok", i) for i in range(3)]))
        assert judge.client.response_format_downgrades == 1


def test_api_key_comes_from_the_environment_and_is_not_stored(tmp_path, monkeypatch):
    seen = []

    def script(payload, attempt):
        return Reply(judgement_json(4))

    monkeypatch.setenv("KARDIA_TEST_KEY", "sk-secret-123")
    with ChatServer(script) as server:
        judge = make(server, tmp_path, api_key_env="KARDIA_TEST_KEY")
        assert judge.client._headers()["Authorization"] == "Bearer sk-secret-123"
        judge.score([request("ok")])
        seen.append(repr(judge))
    assert "sk-secret" not in seen[0]
    assert b"sk-secret" not in (tmp_path / "judge.sqlite").read_bytes()
    monkeypatch.delenv("KARDIA_TEST_KEY")
    with pytest.raises(ValueError, match="KARDIA_TEST_KEY is not set"):
        OpenAICompatibleJudge("http://127.0.0.1:9/v1", "m", api_key_env="KARDIA_TEST_KEY")


def test_score_works_inside_a_running_event_loop(tmp_path):
    import asyncio

    async def inside():  # as in a Jupyter kernel, which already runs a loop
        with ChatServer(fault_script) as server:
            return make(server, tmp_path).score([request("ok")])

    assert asyncio.run(inside())[0] is not None


def test_make_judge(judge_heads):
    offline = make_judge({"kind": "offline", "heads": str(judge_heads), "max_failure_rate": 0.1})
    assert isinstance(offline, OfflineJudge) and isinstance(offline, Judge)
    lexicon = make_judge({"kind": "lexicon", "heads": "ignored"})
    assert isinstance(lexicon, LexiconJudge) and isinstance(lexicon, Judge)
    judge = make_judge(
        {
            "kind": "openai",
            "base_url": "http://127.0.0.1:9/v1",
            "model": "m",
            "api_key_env": None,
            "concurrency": 2,
            "max_failure_rate": 0.1,
        }
    )
    assert isinstance(judge, OpenAICompatibleJudge) and isinstance(judge, Judge)
    assert judge.client.concurrency == 2
    with pytest.raises(ValueError, match="unknown judge kind"):
        make_judge({"kind": "magic"})
    with pytest.raises(ValueError, match="needs model"):
        make_judge({"kind": "openai", "base_url": "http://x"})
    with pytest.raises(ValueError, match="response_format"):
        make_judge(
            {"kind": "openai", "base_url": "http://x", "model": "m", "response_format": "xml"}
        )


def test_failure_rate_threshold_stops_with_a_clear_message():
    check_failure_rate({"items": 100, "failures": 5, "failure_rate": 0.05}, 0.05, "grpo")
    with pytest.raises(RuntimeError, match=r"grpo: 6 of 100 judgements failed"):
        check_failure_rate({"items": 100, "failures": 6, "failure_rate": 0.06}, 0.05, "grpo")


def test_default_params_never_score_table2_with_the_training_judge():
    """As in the paper (Qwen3-8B trains, GPT-5-mini evaluates): the default evaluation judge is
    built from more than the training judge, so the two are different judges."""
    import yaml

    from kardia.evaluation import judge_identity

    params = yaml.safe_load(open("params.yaml"))
    assert judge_identity(params["judge"]) != judge_identity(params["eval_judge"])
    fitted = set(params["judge_fit"]["representations"])
    for role in ("judge", "eval_judge"):
        cfg = params[role]
        assert cfg["kind"] == "offline"
        assert cfg["heads"] == f"{params['judge_fit']['out_dir']}/{Path(cfg['heads']).stem}.pkl"
        assert Path(cfg["heads"]).stem in fitted  # judge_fit writes what the params use
