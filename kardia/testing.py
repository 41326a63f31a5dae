"""A real OpenAI-compatible chat server on 127.0.0.1 for tests and benchmarks.

It listens on loopback only, answers ``POST /v1/chat/completions``, and lets the caller script
each reply — including faults: latency, HTTP errors with ``Retry-After``, garbage, dropped
connections. Nothing here is a mock of the client: the client under test speaks real HTTP.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kardia.rubric import DIMENSIONS, last_user_turn
from kardia.spans import render_spans


@dataclass
class Reply:
    """What the server does with one request."""

    content: str | None = None  # assistant message content (status 200)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering
    drop: bool = False  # close the connection without answering
    body: str | None = None  # raw body instead of the chat-completion envelope


Script = Callable[
    [dict, int], Reply
]  # (request JSON, how often this same request was seen) -> Reply


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # the default listen backlog (5) drops bursts of connections
    daemon_threads = True


class ChatServer:
    """``with ChatServer(script) as srv: srv.base_url`` — a threaded loopback HTTP server."""

    def __init__(self, script: Script, latency_s: float = 0.0):
        self.script = script
        self.latency_s = latency_s
        self.requests = 0
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like real servers
            # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
            # and delayed ACKs add ~40 ms to every reply.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = {}
                key = hashlib.sha256(
                    json.dumps(payload.get("messages"), sort_keys=True).encode()
                ).hexdigest()
                with server._lock:
                    server.requests += 1
                    server.seen[key] += 1
                    attempt = server.seen[key]
                reply = server.script(payload, attempt)
                if server.latency_s:
                    time.sleep(server.latency_s)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.drop:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                body = reply.body
                if body is None and reply.status == 200:
                    body = json.dumps(
                        {
                            "id": "chatcmpl-local",
                            "object": "chat.completion",
                            "model": payload.get("model", ""),
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": reply.content},
                                    "finish_reason": "stop",
                                }
                            ],
                        }
                    )
                data = (body if body is not None else json.dumps({"error": "scripted"})).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout) before we answered
                    self.close_connection = True

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def last_user_message(payload: dict) -> str:
    """The content of the last user message of a chat request."""
    return last_user_turn(payload.get("messages") or [])


def judgement_json(scores: dict[str, int] | int = 4) -> str:
    """A judge reply with the given scores (one int for every dimension)."""
    if isinstance(scores, int):
        scores = dict.fromkeys(DIMENSIONS, scores)
    return json.dumps({**scores, "rationale": {d: "scripted" for d in scores}})


def builder_role(payload: dict) -> str:
    """Which builder role a chat request is for: ``user``, ``respond`` or ``evaluate``."""
    messages = payload.get("messages") or [{}]
    system = str(messages[0].get("content", ""))
    if system.startswith("You are role-playing"):
        return "user"
    if system.startswith("You are the rubric evaluator"):
        return "evaluate"
    return "respond"


def builder_script(close_after: int = 3, fail_first: bool = True) -> Script:
    """A scripted LLM playing U, A and R for the dialogue builder, over real HTTP.

    U closes with thanks after ``close_after`` of its own turns; A writes a valid four-span turn
    (a first draft without the user's MBTI type when ``fail_first``); R fails a turn whose
    understanding names no MBTI type, says SOLVED after the user's thanks, PASS otherwise.
    """
    def script(payload: dict, attempt: int) -> Reply:
        role = builder_role(payload)
        messages = payload["messages"]
        if role == "user":
            own_turns = sum(m["role"] == "assistant" for m in messages)
            if own_turns >= close_after:
                return Reply("Thanks, that really helps. I feel better now.")
            return Reply(f"It still bothers me, this is day {own_turns + 1} of thinking about it.")
        if role == "respond":
            revising = messages[-1]["role"] == "user" and "evaluator rejected" in str(
                messages[-1]["content"]
            )
            who = "The user" if fail_first and not revising else "The INFJ user"
            return Reply(
                render_spans(
                    f"{who} keeps thinking about what happened.",
                    "Dwelling on it is a sign it matters.",
                    "sad",
                    "That sounds heavy; I'm here with you.",
                )
            )
        case = messages[-1]["content"]
        if '"understanding": "The user' in case:
            return Reply(json.dumps({"verdict": "FAIL", "feedback": "name who the user is"}))
        last_user = last_user_turn(json.loads(_case_json(case))["dialogue_so_far"])
        verdict = "SOLVED" if last_user.startswith("Thanks") else "PASS"
        return Reply(json.dumps({"verdict": verdict, "feedback": "fine"}))

    return script


def _case_json(user_message: str) -> str:
    """The JSON inside an evaluator request's <case> block."""
    return user_message.split("<case>\n", 1)[1].split("\n</case>", 1)[0]
