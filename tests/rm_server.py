"""A scripted reward-model server on 127.0.0.1, for the remote reward-model tests.

It speaks the three wire forms :class:`rm_service.models._rm_client.RemoteRMClient` talks to, on
a real socket (the hard parts, batching into one request, retries, deadlines, pool reuse across
event loops, only show up there), with ``aiohttp.web`` in a daemon thread like
:mod:`tests.judge_server`:

* ``POST /classify`` (and ``/v1/classify``), vLLM's classification form: ``{"model", "input":
  [texts]}`` or ``{"model", "messages": [...]}`` → ``{"data": [{"index", "label", "probs",
  "num_classes"}], "usage"}``; ``probs`` are ``[sigmoid(raw)]`` (one class, as vLLM gives for a
  one-label model), or ``[1 - p, p]`` with ``num_classes=2``.
* ``POST /pooling`` (and ``/v1/pooling``), vLLM's pooling form: the same input →
  ``{"data": [{"index", "object": "pooling", "data": [raw]}]}``, the raw logit when the request
  says ``"use_activation": false``, else ``sigmoid(raw)`` (vLLM's default activation).
* ``POST /get_reward``, OpenRLHF's ``serve_rm`` form: ``{"query": [texts], "prompts"}`` →
  ``{"rewards": [raw], "scores": [raw], "extra_logs": {"dummy_scores": [raw]}}``.

A request's texts are scored by ``raw(text)`` (default :func:`raw_score`, a deterministic
function of the text), so a test can compute what each record must get. A chat request
(``messages``) is rendered by :func:`render_chat` first, standing in for the model's chat template.

Faults reuse :class:`tests.judge_server.Reply`: :meth:`RMServer.script` queues replies (a 429
with ``Retry-After``, a 500, a hang, a garbage body, latency) that the next requests get instead
of a normal answer; ``Reply(kind="wrong_count")`` answers with one item too few. ``stats`` counts
requests, the items in each (``batch_sizes``), and the peak in flight.
"""

from __future__ import annotations

import json
import math
import threading
import zlib
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.judge_server import LoopbackServer, Reply

__all__ = ["RMServer", "RMStats", "Reply", "raw_score", "render_chat", "sigmoid"]


def raw_score(text: str) -> float:
    """A deterministic 'logit' in [-4, 4] for ``text`` (CRC32-based, so any two texts differ)."""
    return ((zlib.crc32(text.encode()) % 8001) - 4000) / 1000.0


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def render_chat(messages: Any) -> str:
    """The mock's chat template: ``<|role|>content`` per message, newline-separated."""
    return "\n".join(f"<|{m['role']}|>{m['content']}" for m in messages)


@dataclass
class RMStats:
    """What the server saw; mutated on the server's loop, read from anywhere.

    Attributes:
        requests: scoring requests received (every path).
        batch_sizes: the number of items in each request, in arrival order.
        by_path: requests by path.
        by_kind: requests by the reply's kind (``ok``, ``rate_limit``, ``hang``, ...).
        in_flight / peak_in_flight: requests being handled now, and the most at once.
        bodies: the last request bodies (bounded).
    """

    requests: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    by_path: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    peak_in_flight: int = 0
    bodies: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=64))

    @property
    def items(self) -> int:
        return sum(self.batch_sizes)


class RMServer(LoopbackServer):
    """The mock reward-model server in a background thread.

    Args:
        raw: the raw score of one text (default :func:`raw_score`).
        latency: seconds before every answer (a reply's own latency wins).
        num_classes: 1 (``probs == [p]``) or 2 (``probs == [1 - p, p]``) on ``/classify``.
        max_hang_s: the longest a hang lasts if nobody stops the server.
    """

    def __init__(
        self,
        raw: Callable[[str], float] = raw_score,
        *,
        latency: float = 0.0,
        num_classes: int = 1,
        max_hang_s: float = 30.0,
    ) -> None:
        self.raw = raw
        self.latency = latency
        self.num_classes = num_classes
        self.max_hang_s = max_hang_s
        self.stats = RMStats()
        self.healthy = True  # what GET /health says
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        super().__init__()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; the endpoints are ``/classify``, ``/pooling``,
        ``/get_reward``."""
        return f"http://127.0.0.1:{self._port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._script.extend(replies)

    def reset_stats(self) -> None:
        self.stats = RMStats()

    # -- serving -------------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        for path in ("/classify", "/v1/classify", "/pooling", "/v1/pooling", "/get_reward"):
            app.router.add_post(path, self._handle)
        app.router.add_get("/health", self._health)

    async def _health(self, request: web.Request) -> web.Response:
        """vLLM's ``GET /health``: 200 once the model is loaded (``healthy``), else 503."""
        return web.Response(status=200 if self.healthy else 503)

    async def _handle(self, request: web.Request) -> web.Response:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        path = request.path.removeprefix("/v1")
        stats.by_path[path] += 1
        try:
            try:
                body = json.loads(await request.read())
                texts = self._texts(path, body)
            except (ValueError, KeyError, TypeError) as exc:
                stats.by_kind["bad_request"] += 1
                return web.json_response({"error": repr(exc)}, status=400)
            stats.bodies.append(body)
            stats.batch_sizes.append(len(texts))
            with self._lock:
                reply = self._script.popleft() if self._script else Reply()
            stats.by_kind[reply.kind] += 1
            faulted = await self._play(
                reply,
                self.latency if reply.latency is None else reply.latency,
                stopping=b'{"error": "server stopping"}',
                error=b"{}",
            )
            if faulted is not None:
                return faulted
            if reply.kind == "wrong_count":
                texts = texts[:-1]
            answer = self._answer(path, body, [self.raw(t) for t in texts])
            return web.Response(body=json.dumps(answer).encode(), content_type="application/json")
        finally:
            stats.in_flight -= 1

    @staticmethod
    def _texts(path: str, body: Mapping[str, Any]) -> list[str]:
        if path == "/get_reward":
            return [str(q) for q in body["query"]]
        if "messages" in body:
            return [render_chat(body["messages"])]
        got = body["input"]
        return [got] if isinstance(got, str) else [str(t) for t in got]

    def _answer(self, path: str, body: Mapping[str, Any], raws: list[float]) -> dict[str, Any]:
        if path == "/get_reward":
            return {"rewards": raws, "scores": raws, "extra_logs": {"dummy_scores": raws}}
        usage = {"prompt_tokens": 7 * len(raws), "total_tokens": 7 * len(raws)}
        if path == "/pooling":
            activate = body.get("use_activation") is not False
            data = [
                {"index": i, "object": "pooling", "data": [sigmoid(r) if activate else r]}
                for i, r in enumerate(raws)
            ]
            return {"id": "pool-1", "object": "list", "model": "m", "data": data, "usage": usage}
        items = []
        for i, r in enumerate(raws):
            p = sigmoid(r)
            probs = [p] if self.num_classes == 1 else [1.0 - p, p]
            label = "LABEL_0" if self.num_classes == 1 or p < 0.5 else "LABEL_1"
            items.append({"index": i, "label": label, "probs": probs, "num_classes": len(probs)})
        return {"id": "classify-1", "object": "list", "model": "m", "data": items, "usage": usage}
