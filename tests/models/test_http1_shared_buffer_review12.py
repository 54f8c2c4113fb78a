"""Review of 77eb1f9: a poster's connections share one read buffer. Many connections answering
at once, over plain TCP and TLS, with large, chunked and read-to-close bodies written in odd
pieces, each get their own answer, whole; a body returned earlier is not changed by later
reads; two posters on two loops in two threads do not mix answers."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.models.test_http1 import RawServer, _self_signed, poster


def _payload(i: int) -> bytes:
    size = [10, 3000, 70_000, 300_000, 1_100_000][i % 5]
    seed = hashlib.sha256(str(i).encode()).hexdigest()
    return json.dumps({"id": i, "pad": (seed * (size // 64 + 1))[:size]}).encode()


def _answer(req: dict[str, Any], _n: int) -> list[bytes]:
    i = req["id"]
    body = _payload(i)
    form = i % 3
    if form == 0:  # Content-Length, in uneven pieces
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        data = head + body
        cut = sorted({0, 7, len(head) + 3, len(data) // 2 + 1, len(data)})
        return [data[a:b] for a, b in itertools.pairwise(cut) if b > a]
    if form == 1:  # chunked, many chunks
        pieces = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
        step = 40_000 + i
        for a in range(0, len(body), step):
            chunk = body[a : a + step]
            pieces.append(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        pieces.append(b"0\r\n\r\n")
        return pieces
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return [head + body]


@pytest.mark.parametrize("tls", [False, True])
async def test_many_connections_at_once_each_get_their_own_whole_body(
    tls: bool, tmp_path: Path
) -> None:
    server_ctx = client_ctx = None
    if tls:
        server_ctx, client_ctx = _self_signed(tmp_path)
    server = RawServer(_answer)
    url = await server.start(server_ctx)
    p = poster(url, pool=32, ssl_context=client_ctx) if tls else poster(url, pool=32)
    try:
        for _round in range(2):
            got = await asyncio.gather(*(p.post({"id": i}, 1) for i in range(24)))
            kept = list(got)
            for i, body in enumerate(got):
                assert isinstance(body, bytes)
                assert body == _payload(i), i
            # bodies already returned stay what they were after more reads on the buffer
            await asyncio.gather(*(p.post({"id": i + 100}, 1) for i in range(8)))
            for i, body in enumerate(kept):
                assert body == _payload(i), i
    finally:
        await p.close()
        await server.stop()


def test_two_loops_in_two_threads_do_not_mix_answers() -> None:
    errors: list[BaseException] = []

    def run(offset: int) -> None:
        async def main() -> None:
            server = RawServer(_answer)
            url = await server.start()
            p = poster(url, pool=16)
            try:
                for _ in range(3):
                    ids = [offset + i for i in range(12)]
                    got = await asyncio.gather(*(p.post({"id": i}, 1) for i in ids))
                    for i, body in zip(ids, got, strict=True):
                        assert body == _payload(i), i
            finally:
                await p.close()
                await server.stop()

        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k * 1000,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
