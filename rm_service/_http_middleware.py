"""Pure ASGI middleware: auth, body size, request metrics, and query redaction for the access log.

Why pure ASGI and not ``BaseHTTPMiddleware``: the latter runs the app in a separate task and
buffers through memory streams, which breaks disconnect detection (a client that goes away must
cancel its grading) and costs a task per request. Each class here takes ``app`` first and wraps
``receive``/``send`` only where it must.

:class:`RedactQueryFilter` keeps secrets out of uvicorn's access log, which prints each request's
path with its query string: a key sent as ``?api_key=...`` was written there in clear.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

__all__ = [
    "BearerAuthMiddleware",
    "BodyLimitMiddleware",
    "RedactQueryFilter",
    "RequestMetricsMiddleware",
    "install_access_log_redaction",
    "redact_query",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_json(
    send: Send, status: int, body: Any, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Send a complete JSON response (used where a middleware answers by itself)."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BearerAuthMiddleware:
    """Require ``Authorization: Bearer <api_key>`` on every HTTP path but ``exempt``.

    The key is compared with :func:`hmac.compare_digest` (constant time), so response timing does
    not leak how much of a guessed key was right. The scheme is matched in any case
    (``bearer``, ``BEARER``): RFC 7235 makes it case-insensitive, and some clients lower it.
    """

    def __init__(self, app: ASGIApp, api_key: str, exempt: Iterable[str] = ("/healthz",)) -> None:
        if not api_key:
            raise ValueError("api_key must be a non-empty string")
        self.app = app
        self._expected = api_key.encode()
        self._exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        given = b""
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                given = value
                break
        if not hmac.compare_digest(_bearer_token(given), self._expected):
            detail = "missing bearer token" if not given else "invalid bearer token"
            await send_json(
                send,
                401,
                {"detail": f"{detail}: send 'Authorization: Bearer <RM_SERVICE_API_KEY>'"},
                [(b"www-authenticate", b"Bearer")],
            )
            return
        await self.app(scope, receive, send)


def _bearer_token(header: bytes) -> bytes:
    """The credentials of an ``Authorization: Bearer <token>`` header, the scheme matched in any
    case (RFC 7235) and the spaces after it skipped; ``b""`` for another scheme or none."""
    scheme, _, token = header.partition(b" ")
    return token.lstrip(b" ") if scheme.lower() == b"bearer" else b""


def redact_query(target: str) -> str:
    """``target`` (a path with its query) with every query value written as ``***``.

    Every value, not only those named like keys (``api_key``, ``token``): the service reads no
    query parameters, so no value is needed in a log, and a list of names would miss ``?k=``.
    Names stay, for debugging; a bare ``?value`` is a value.
    """
    path, sep, query = target.partition("?")
    if not sep or not query:
        return target
    items = []
    for item in query.split("&"):
        name, eq, _ = item.partition("=")
        items.append(f"{name}=***" if eq else ("***" if item else ""))
    return f"{path}?{'&'.join(items)}"


class RedactQueryFilter(logging.Filter):
    """Redact query values (:func:`redact_query`) in a log record's string arguments; uvicorn's
    access log passes the path with its query as one of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "?" in a for a in args):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in args)
        return True


def install_access_log_redaction(logger_name: str = "uvicorn.access") -> None:
    """Add a :class:`RedactQueryFilter` to ``logger_name`` (once; idempotent).

    Called from the app's start-up, after uvicorn has configured logging in this process (each
    ``--workers`` child configures its own), so whatever runs the app gets it.
    """
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactQueryFilter) for f in logger.filters):
        logger.addFilter(RedactQueryFilter())


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, before they are parsed.

    A declared ``Content-Length`` over the limit is refused without reading anything; a chunked
    body is counted as it streams and refused once it crosses the limit, so memory stays bounded
    either way.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _detail(self, size: str) -> dict[str, str]:
        return {
            "detail": f"request body is {size} bytes; the limit is max_body_bytes="
            f"{self.max_bytes} bytes: send fewer or smaller records per request"
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_json(send, 400, {"detail": "invalid Content-Length header"})
                    return
                if declared > self.max_bytes:
                    await send_json(send, 413, self._detail(str(declared)))
                    return
        seen = 0
        started = False  # the app began its response
        refused = False  # we answered 413 ourselves

        async def limited_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer now and tell the app the client is gone: raising here would be
                    # caught by the framework's body parsing and turned into a 400.
                    if not started:
                        refused = True
                        await send_json(send, 413, self._detail(f"more than {self.max_bytes}"))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's reply to the "disconnect"; the client already has its 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


class RequestMetricsMiddleware:
    """Count requests and time them by endpoint and status.

    Only the app's own paths are labels (others count as ``other``), so a scanner probing random
    URLs cannot blow up the metric cardinality.
    """

    def __init__(
        self, app: ASGIApp, observe: Callable[[str, int, float], None], paths: Iterable[str]
    ) -> None:
        self.app = app
        self.observe = observe
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"] if scope["path"] in self.paths else "other"
        status = 500
        start = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.observe(endpoint, status, time.perf_counter() - start)
