"""A scripted OpenAI-compatible judge on 127.0.0.1, for tests and benchmarks.

Why a real server instead of a mocked transport: the judge backend's hard parts (connection pool
sizing, timeouts, retries on 429/5xx, garbage bodies, loop affinity of the HTTP client) only show
up on a real socket. This module serves the chat-completions wire format with ``aiohttp.web``
(cheap on a 2-core box, where the client shares the CPU) and can inject, per request:

* latency (fixed, or a function of the request),
* ``429`` with a ``Retry-After`` header, ``500`` (or any status), a hang that never answers
  until the client gives up (or the server stops),
* garbage: a non-JSON body, JSON that is not a completion, empty ``choices``, a null content,
* any answer text, with OpenAI-shaped token logprobs when the request asks for them; a reply can
  give the probability distribution at a token position (e.g. the score digit).

What a request gets, in order: the next scripted reply (:meth:`JudgeServer.script`), else a
random fault with probability ``fault_rate`` (seeded), else ``responder(request_json)``.

Usage::

    with JudgeServer(lambda body: Reply("Score: 4", logprobs={-1: {"4": 0.7, "5": 0.3}})) as srv:
        client = AsyncOpenAI(base_url=srv.base_url, api_key="x")
        srv.script(Reply.rate_limited(0.2), Reply.server_error())
        ...
        assert srv.stats.peak_in_flight == 64

The server runs on its own event loop in a daemon thread, so sync and async tests use it alike
(``with`` or ``async with``). ``python -m tests.judge_server`` serves it from a separate process
(for benchmarks, so the server's CPU is not billed to the client): it prints ``READY <base_url>``
and serves until stdin closes. ``GET /_mock/stats`` returns the counters as JSON.

Tokens are approximated: prompt tokens are whitespace-separated words of the messages; the
answer is split Qwen-style (letter runs with an optional leading space, single digits,
punctuation runs, whitespace runs), so a score digit is always a token of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import pytest
from aiohttp import web

__all__ = [
    "DEFAULT_RATE_FAULTS",
    "FAULTS",
    "FaultKind",
    "JudgeServer",
    "Reply",
    "Responder",
    "ServerStats",
    "judge_server",
    "tokenize",
]

FaultKind = Literal[
    "rate_limit",
    "server_error",
    "hang",
    "not_json",
    "not_completion",
    "empty_choices",
    "no_content",
]
"""The named faults, usable in ``fault_kinds`` and as ``Reply.kind`` in ``stats.by_kind``."""

_TOKEN = re.compile(r" ?[^\W\d_]+|\d| ?[^\s\w]+|\s+|_+")
_UNLISTED_LOGPROB = -30.0  # the sampled token's logprob when a reply's distribution omits it


def tokenize(text: str) -> list[str]:
    """Split ``text`` into pseudo-tokens whose concatenation is ``text`` (digits stand alone)."""
    return _TOKEN.findall(text)


def _error_body(message: str, type_: str, code: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "code": code}}).encode()


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request.

    Attributes:
        text: the answer's content (for status 200 and no ``body``).
        status: the HTTP status.
        latency: seconds to wait before answering; ``None`` uses the server's latency.
        headers: extra response headers (e.g. ``Retry-After``).
        body: a raw body sent verbatim instead of a completion (garbage, error JSON).
        content_type: the body's content type.
        hang: never answer; the handler waits until the client disconnects or the server stops.
        logprobs: per answer-token position (negative counts from the end) a distribution
            ``{token: probability}``; used when the request asks for logprobs. Positions without
            one report the sampled token with logprob 0.
        finish_reason: overrides ``stop`` / ``length``.
        kind: the label counted in ``ServerStats.by_kind``.
    """

    text: str = "5"
    status: int = 200
    latency: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str = "application/json"
    hang: bool = False
    logprobs: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    finish_reason: str | None = None
    kind: str = "ok"

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = 0.2) -> Reply:
        """A 429; ``retry_after`` is sent as the ``Retry-After`` header (seconds or HTTP-date)."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        body = _error_body("Rate limit reached", "requests", "rate_limit_exceeded")
        return cls(status=429, headers=headers, body=body, kind="rate_limit")

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        """A 5xx with an OpenAI-style error body."""
        return cls(
            status=status, body=_error_body("internal error", "server_error"), kind="server_error"
        )

    @classmethod
    def error(cls, status: int, message: str = "bad request") -> Reply:
        """Any status with an OpenAI-style error body (400, 401, 404, ...)."""
        body = _error_body(message, "invalid_request_error")
        return cls(status=status, body=body, kind=f"http_{status}")

    @classmethod
    def hang_forever(cls) -> Reply:
        """Never answer (bounded by the server's lifetime and ``max_hang_s``)."""
        return cls(hang=True, kind="hang")

    @classmethod
    def garbage(
        cls, kind: Literal["not_json", "not_completion", "empty_choices", "no_content"]
    ) -> Reply:
        """A 200 whose body is not a usable completion."""
        if kind == "not_json":
            return cls(body=b"<html>upstream exploded {", content_type="text/html", kind=kind)
        if kind == "not_completion":
            return cls(body=b'{"object": "error", "message": "model is loading"}', kind=kind)
        shell: dict[str, Any] = {"id": "chatcmpl-x", "object": "chat.completion", "model": "m"}
        if kind == "empty_choices":
            shell["choices"] = []
        else:
            message = {"role": "assistant", "content": None}
            shell["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
        return cls(body=json.dumps(shell).encode(), kind=kind)


FAULTS: dict[str, Reply] = {
    "rate_limit": Reply.rate_limited(0.05),
    "server_error": Reply.server_error(),
    "hang": Reply.hang_forever(),
    "not_json": Reply.garbage("not_json"),
    "not_completion": Reply.garbage("not_completion"),
    "empty_choices": Reply.garbage("empty_choices"),
    "no_content": Reply.garbage("no_content"),
}
"""One ready-made reply per :data:`FaultKind`."""

DEFAULT_RATE_FAULTS: tuple[str, ...] = ("rate_limit", "server_error", "not_json", "empty_choices")
"""Faults drawn in ``fault_rate`` mode unless told otherwise (no hang: each costs a timeout)."""

Responder = Callable[[dict[str, Any]], "Reply | str"]
"""Builds the reply to one request from its JSON body; a plain string is the answer text."""


@dataclass
class ServerStats:
    """Counters the server keeps; mutated only on the server's loop, read from anywhere.

    Attributes:
        requests: chat-completion requests received.
        in_flight: requests being handled now (hangs included).
        peak_in_flight: the most handled at once since the last reset.
        by_kind: requests by ``Reply.kind`` (``ok``, ``rate_limit``, ``hang``, ...).
        bodies: the last request bodies (bounded).
        arrivals: ``time.monotonic()`` of the last requests' arrival (bounded).
        authorization: the last ``Authorization`` header seen.
        errors: exceptions raised by the responder (answered as 500s).
    """

    requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    bodies: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=64))
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    authorization: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def last_body(self) -> dict[str, Any]:
        """The most recent request body (``KeyError``-free: ``{}`` before any request)."""
        return self.bodies[-1] if self.bodies else {}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot of the counters (without bodies)."""
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "by_kind": dict(self.by_kind),
            "errors": list(self.errors),
        }


def _prompt_tokens(messages: Any) -> int:
    count = 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            count += len(content.split())
        elif isinstance(content, list):  # content parts
            count += sum(
                len(str(p.get("text", "")).split()) for p in content if isinstance(p, dict)
            )
    return count


def _token_logprobs(
    tokens: Sequence[str], dists: Mapping[int, Mapping[str, float]], top_k: int
) -> list[dict[str, Any]]:
    n = len(tokens)
    by_pos = {(i if i >= 0 else n + i): d for i, d in dists.items()}
    out: list[dict[str, Any]] = []
    for i, tok in enumerate(tokens):
        dist = by_pos.get(i)
        if dist is None:
            logprob, top = 0.0, [(tok, 0.0)]
        else:
            top = sorted(((t, math.log(p)) for t, p in dist.items() if p > 0), key=lambda x: -x[1])
            p = dist.get(tok, 0.0)
            logprob = math.log(p) if p > 0 else _UNLISTED_LOGPROB
        out.append(
            {
                "token": tok,
                "logprob": logprob,
                "bytes": list(tok.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top[:top_k]
                ],
            }
        )
    return out


class LoopbackServer:
    """An aiohttp app on ``127.0.0.1``, served from a daemon thread with its own event loop: the
    lifecycle the mock servers share (this judge, ``tests/rm_server.py``'s reward model).
    Subclasses add their routes in :meth:`_routes`.

    Args:
        port: the port to bind; 0 picks a free one.
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self._port

    max_hang_s: float = 60.0  # the longest a hang lasts if nobody stops the server

    @staticmethod
    def _respond(
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> web.Response:
        return web.Response(
            status=status, body=body, headers=dict(headers or {}), content_type=content_type
        )

    async def _play(
        self, reply: Reply, latency: float, *, stopping: bytes, error: bytes
    ) -> web.Response | None:
        """Play a scripted reply's faults: wait ``latency``, hang until the server stops (then
        503 with ``stopping``), or answer its status and body (``error`` when it has none).
        ``None``: no fault, answer normally."""
        if latency > 0:
            await asyncio.sleep(latency)
        if reply.hang:
            assert self._stopping is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.max_hang_s)
            return self._respond(503, stopping)
        if reply.body is not None or reply.status != 200:
            body = reply.body if reply.body is not None else error
            return self._respond(reply.status, body, reply.headers, reply.content_type)
        return None

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        """Bind, serve in a daemon thread, and return once the socket accepts connections."""
        name = type(self).__name__
        if self._thread is not None:
            raise RuntimeError(f"{name} already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        sock.listen(1024)
        self._port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"{name}-{self._port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{name} did not start within 10 s")
        if self._start_error is not None:
            raise RuntimeError(f"{name} failed to start") from self._start_error
        return self

    def stop(self) -> None:
        """Stop serving: pending hangs end at once, open handlers get 0.5 s to finish."""
        loop, thread = self._loop, self._thread
        if loop is not None and self._stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stopping.set)
        if thread is not None:
            thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def _run(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as exc:  # pragma: no cover - surfaced by start()
            self._start_error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024**2)
        self._routes(app)
        # handler_cancellation: a client that gives up cancels its handler, so in-flight counts
        # drop when a hang is abandoned, as they would on a real server.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()


class JudgeServer(LoopbackServer):
    """An OpenAI-compatible chat-completions server on ``127.0.0.1`` in a background thread.

    Args:
        responder: builds the normal reply from the request JSON; default answers ``"5"``.
        latency: seconds before each answer, or a function of the request JSON.
        fault_rate: probability that a request (with no scripted reply queued) gets a fault.
        fault_kinds: names from :data:`FAULTS` (or replies) drawn uniformly in rate mode.
        seed: seeds the fault draw, so a run's fault sequence is reproducible.
        model: the ``model`` reported in answers; ``None`` echoes the request's.
        port: 0 picks a free port.
        max_hang_s: upper bound of a hang even if nobody stops the server.
        record: how many request bodies to keep in ``stats.bodies``.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency: float | Callable[[dict[str, Any]], float] = 0.0,
        fault_rate: float = 0.0,
        fault_kinds: Sequence[str | Reply] = DEFAULT_RATE_FAULTS,
        seed: int = 0,
        model: str | None = None,
        port: int = 0,
        max_hang_s: float = 60.0,
        record: int = 64,
    ) -> None:
        self.responder: Responder = responder or (lambda body: Reply())
        self.latency = latency
        self.fault_rate = fault_rate
        self.faults = [FAULTS[f] if isinstance(f, str) else f for f in fault_kinds]
        self.model = model
        self.max_hang_s = max_hang_s
        self.stats = ServerStats(bodies=deque(maxlen=record))
        self._record = record
        self._rng = random.Random(seed)
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._ids = 0
        super().__init__(port)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, the value for ``base_url=``."""
        return f"http://127.0.0.1:{self._port}/v1"

    # -- scripting -----------------------------------------------------------------------------

    def script(self, *replies: Reply | str) -> None:
        """Queue replies for the next requests, in order (strings are answer texts)."""
        with self._lock:
            self._script.extend(Reply(text=r) if isinstance(r, str) else r for r in replies)

    def reset_stats(self) -> None:
        """Zero every counter (e.g. after a warm-up)."""
        self.stats = ServerStats(bodies=deque(maxlen=self._record))

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self.fault_rate and self.faults and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.faults)
        reply = self.responder(body)
        return Reply(text=reply) if isinstance(reply, str) else reply

    # -- serving -------------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/_mock/stats", self._stats)

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": self.model or "mock-judge", "object": "model", "owned_by": "tests"}]
        return web.json_response({"object": "list", "data": data})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict())

    async def _chat(self, request: web.Request) -> web.Response:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        stats.arrivals.append(time.monotonic())
        stats.authorization = request.headers.get("Authorization")
        try:
            try:
                body = json.loads(await request.read())
            except ValueError:
                stats.by_kind["bad_json_request"] += 1
                return self._respond(400, _error_body("request is not JSON", "invalid_request"))
            stats.bodies.append(body)
            try:
                reply = self._next_reply(body)
                latency = self.latency(body) if callable(self.latency) else self.latency
            except Exception as exc:
                stats.errors.append(repr(exc))
                stats.by_kind["responder_error"] += 1
                return self._respond(500, _error_body(repr(exc), "responder_error"))
            stats.by_kind[reply.kind] += 1
            faulted = await self._play(
                reply,
                latency if reply.latency is None else reply.latency,
                stopping=_error_body("server stopping", "server_error"),
                error=_error_body("error", "error"),
            )
            if faulted is not None:
                return faulted
            payload = json.dumps(self._completion(body, reply)).encode()
            return self._respond(200, payload, reply.headers)
        finally:
            stats.in_flight -= 1

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        tokens = tokenize(reply.text)
        finish = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and len(tokens) > limit:
            tokens, finish = tokens[:limit], "length"
        logprobs = None
        if body.get("logprobs"):
            top_k = int(body.get("top_logprobs") or 0)
            content = _token_logprobs(tokens, reply.logprobs, top_k)
            logprobs = {"content": content, "refusal": None}
        self._ids += 1
        completion_tokens = len(tokens)
        prompt_tokens = _prompt_tokens(body.get("messages"))
        message = {"role": "assistant", "content": "".join(tokens), "refusal": None}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": reply.finish_reason or finish,
        }
        return {
            "id": f"chatcmpl-mock{self._ids}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model or body.get("model", "mock-judge"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": None,
        }


@pytest.fixture
def judge_server() -> Iterator[JudgeServer]:
    """A fresh :class:`JudgeServer` answering ``"5"``; set ``.responder`` or ``.script()``."""
    with JudgeServer() as server:
        yield server


def spawn(latency: float = 0.0, text: str = "5") -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m tests.judge_server`` in its own process (a benchmark's judge, whose CPU
    is not billed to the client): ``(process, base_url)``. Close its stdin to stop it.

    Raises:
        RuntimeError: it did not say ``READY``.
    """
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.judge_server", "--latency", str(latency), "--text", text],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"judge server did not start: {line!r}")
    return proc, line.split()[1]


def main(argv: Sequence[str] | None = None) -> None:
    """Serve from this process until stdin closes (for benchmarks)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text", default="5", help="the answer text")
    args = parser.parse_args(argv)
    text = args.text
    server = JudgeServer(
        lambda body: Reply(text), latency=args.latency, fault_rate=args.fault_rate, seed=args.seed
    )
    with server:
        print(f"READY {server.base_url}", flush=True)
        sys.stdin.read()  # returns at EOF: the parent closed our stdin


if __name__ == "__main__":
    main()
