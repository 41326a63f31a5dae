"""ChatClient pieces not covered through the judge: the cache across processes, Retry-After, back-off."""

import email.utils
import multiprocessing as mp
import time

import pytest

from kardia.client import ChatClient, ReplyCache, _retry_after_s, run_sync


def _writer(path: str, worker: int, n: int) -> None:
    cache = ReplyCache(path)
    for i in range(n):  # many small transactions, interleaved with the other process
        cache.put_many([(f"{worker}-{i}", "ns", "model", f"reply {worker} {i}")])
    cache.close()


def test_cache_is_safe_across_concurrent_processes(tmp_path):
    path = str(tmp_path / "cache.sqlite")
    ReplyCache(path).close()  # create the table once
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 200)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = ReplyCache(path)
    assert len(cache) == 600
    assert cache.get_many(["0-0", "2-199", "missing"]) == {
        "0-0": "reply 0 0",
        "2-199": "reply 2 199",
    }
    assert cache._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    "header,expected",
    [
        (None, None),  # absent
        ("", None),  # empty
        ("2", 2.0),  # delta-seconds
        ("0.5", 0.5),  # fractional seconds (some servers send them)
        ("-3", 0.0),  # negative is clamped
        ("soon", None),  # garbage
    ],
)
def test_retry_after(header, expected):
    assert _retry_after_s(header) == expected


def test_retry_after_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= _retry_after_s(when) <= 31


def test_backoff_grows_with_jitter_and_is_capped():
    client = ChatClient("http://127.0.0.1:9/v1", "m", backoff_s=1.0, max_backoff_s=8.0)
    for attempt, cap in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 8.0)]:
        waits = {client._backoff(attempt) for _ in range(20)}
        assert all(cap / 2 <= w <= cap for w in waits)
        assert len(waits) > 1  # jittered


@pytest.mark.parametrize(
    "kw,message", [({"concurrency": 0}, "concurrency"), ({"max_retries": -1}, "max_retries")]
)
def test_client_rejects_bad_settings(kw, message):
    with pytest.raises(ValueError, match=message):
        ChatClient("http://127.0.0.1:9/v1", "m", **kw)


def test_unreachable_server_ends_as_none_and_is_counted():
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    client = ChatClient("http://127.0.0.1:9/v1", "m", max_retries=1, backoff_s=0.01, timeout_s=1)
    assert client.complete([[{"role": "user", "content": "hi"}]], str, namespace="t") == [None]
    assert client.stats.failures == 1 and client.stats.requests == 2 and client.stats.retries == 1


def test_run_sync_outside_and_inside_a_loop():
    import asyncio

    async def answer():
        return 42

    assert run_sync(answer()) == 42

    async def inside():
        return run_sync(answer())

    assert asyncio.run(inside()) == 42


def test_an_in_process_batch_is_counted_as_answered():
    from kardia.client import ClientStats

    stats = ClientStats()
    stats.count_batch(3, time.perf_counter())
    stats.count_batch(0, time.perf_counter())  # an empty batch has no latency
    d = stats.as_dict()
    assert (d["items"], d["succeeded"], d["failures"], d["requests"]) == (3, 3, 0, 0)
    assert len(stats.latencies_s) == 1 and stats.latencies_s[0] >= 0
