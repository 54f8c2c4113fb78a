"""One HTTP request to an ASGI app, in process: no socket and no client, so a bench measures the
server's own CPU (``bench/grade_path.py``) or compares two trees' answers byte for byte
(``bench/grade_path_differential.py``).

Imports nothing of the service: the scope comes from ``tests.app`` of whichever tree the caller
imported the app from, so the differential can run it against an older checkout."""

from __future__ import annotations

import asyncio
from typing import Any


async def asgi_call(
    app: Any, method: str, path: str, body: bytes, *, host: bytes = b"bench"
) -> tuple[int, list[list[str]], bytes]:
    """The status, headers and body of ``method path`` with ``body`` (JSON) through ``app``."""
    from tests.app import http_scope

    sent = False
    status = 0
    headers: list[list[str]] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # a disconnect watcher waits here, as on a live socket
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.extend(
                [k.decode("latin-1"), v.decode("latin-1")] for k, v in message["headers"]
            )
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    hdrs = [(b"host", host), (b"content-type", b"application/json")]
    if body:
        hdrs.append((b"content-length", str(len(body)).encode()))
    scope = http_scope(path, hdrs)
    scope["method"] = method
    await app(scope, receive, send)
    return status, headers, b"".join(chunks)
