"""Http1Poster, the ``direct`` transport's HTTP/1.1 client, against a scripted raw server.

The server is a real asyncio TCP (and TLS) server on 127.0.0.1 that reads each request and
answers with bytes the test chooses, written in pieces of any size, so framing, keep-alive,
closes and malformed answers are exercised as they arrive on a real socket.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import json
import selectors
import socket
import ssl
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from rm_service.models import JudgeConnectionError, JudgeHTTPError, JudgeRateLimited
from rm_service.models import _http1 as http1
from rm_service.models import _session as session
from rm_service.models._http1 import Http1Poster, json_poster, supports
from rm_service.models._session import JsonPoster

Answer = Callable[[dict[str, Any], int], list[bytes] | None]
"""(request body, request number on its connection) -> the pieces to write ([]: close the
connection without answering), or None to hang."""


RESET = b"<reset>"
"""A piece that makes the server abort the connection with an RST."""


def ok(body: bytes, *extra: str) -> list[bytes]:
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    head += "".join(f"{h}\r\n" for h in extra) + f"Content-Length: {len(body)}\r\n\r\n"
    return [head.encode(), body]


def echo(req: dict[str, Any], _n: int) -> list[bytes]:
    return ok(json.dumps({"echo": req["id"]}).encode())


class RawServer:
    """Counts connections, records raw requests, answers each with ``answer``'s pieces."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.close_after_answer = False
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self, ssl_ctx: ssl.SSLContext | None = None) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_ctx)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_ctx else 'http'}://127.0.0.1:{port}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                n += 1
                pieces = self.answer(json.loads(body), n)
                if pieces is None:
                    await asyncio.sleep(3600)
                if not pieces:
                    break  # close without answering
                for piece in pieces:
                    if piece is RESET:
                        sock = writer.get_extra_info("socket")
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        writer.transport.abort()  # an RST, not a clean close
                        return
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def drop_idle(self) -> None:
        """Close every connection from the server side, as a keep-alive timeout does."""
        for w in self.writers:
            w.close()
        await asyncio.sleep(0.05)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()
        await self.server.wait_closed()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    servers: list[RawServer] = []

    async def start(answer: Answer = echo, ssl_ctx: ssl.SSLContext | None = None) -> Any:
        server = RawServer(answer)
        url = await server.start(ssl_ctx)
        servers.append(server)
        return server, url

    yield start
    for s in servers:
        await s.stop()


def poster(url: str, **kw: Any) -> Http1Poster:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-test"}
    return Http1Poster(url, headers, pool=kw.pop("pool", 8), who="judge", **kw)


async def test_keep_alive_serves_many_requests_on_one_connection(serve: Any) -> None:
    server, url = await serve()
    p = poster(url)
    for i in range(5):
        assert json.loads(await p.post({"id": i}, 1)) == {"echo": i}
    assert server.connections == 1
    head = server.requests[0].split(b"\r\n\r\n")[0].decode().lower().split("\r\n")
    assert head[0] == "post /v1/chat/completions http/1.1"
    assert "accept-encoding: gzip, deflate" in head  # never an encoding it cannot read
    assert sorted(h.split(":")[0] for h in head[1:]) == [
        "accept-encoding",
        "authorization",
        "content-length",
        "content-type",
        "host",
    ]
    await p.close()


async def test_concurrent_requests_each_get_their_own_answer(serve: Any) -> None:
    server, url = await serve()
    p = poster(url, pool=4)
    got = await asyncio.gather(*(p.post({"id": i}, 1) for i in range(40)))
    assert [json.loads(g)["echo"] for g in got] == list(range(40))
    assert server.connections <= 40
    again = await asyncio.gather(*(p.post({"id": i}, 1) for i in range(4)))
    assert [json.loads(g)["echo"] for g in again] == list(range(4))
    await p.close()


def chunked(req: dict[str, Any], _n: int) -> list[bytes]:
    body = json.dumps({"echo": req["id"], "pad": "x" * 300}).encode()
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += b"".join(
        b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in (body[:7], body[7:200], body[200:])
    )
    raw += b"0\r\nX-Trailer: t\r\n\r\n"
    return [raw[i : i + 5] for i in range(0, len(raw), 5)]  # five bytes per write


async def test_a_chunked_answer_in_small_pieces_is_joined(serve: Any) -> None:
    server, url = await serve(chunked)
    p = poster(url)
    for i in range(3):
        assert json.loads(await p.post({"id": i}, 1))["echo"] == i
    assert server.connections == 1
    await p.close()


def http10(req: dict[str, Any], _n: int) -> list[bytes]:
    return [
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n",
        b'{"echo": ',
        b"%d}" % req["id"],
    ]


async def test_an_answer_without_length_is_read_to_the_close(serve: Any) -> None:
    server, url = await serve(http10)
    server.close_after_answer = True
    p = poster(url)
    assert json.loads(await p.post({"id": 1}, 1)) == {"echo": 1}
    assert json.loads(await p.post({"id": 2}, 1)) == {"echo": 2}
    assert server.connections == 2
    await p.close()


async def test_connection_close_and_idle_drops_open_a_new_connection(serve: Any) -> None:
    server, url = await serve(lambda req, n: ok(b'{"a": 1}', "Connection: close"))
    server.close_after_answer = True
    p = poster(url)
    await p.post({"id": 0}, 1)
    await p.post({"id": 1}, 1)
    assert server.connections == 2
    keep, keep_url = await serve()
    q = poster(keep_url)
    await q.post({"id": 0}, 1)
    await keep.drop_idle()  # the server's keep-alive timeout
    assert json.loads(await q.post({"id": 1}, 1)) == {"echo": 1}
    assert keep.connections == 2
    await p.close()
    await q.close()


async def test_an_interim_100_continue_is_skipped(serve: Any) -> None:
    _, url = await serve(lambda req, n: [b"HTTP/1.1 100 Continue\r\n\r\n", *echo(req, n)])
    assert json.loads(await poster(url).post({"id": 7}, 1)) == {"echo": 7}


def status(code: int, body: bytes, *extra: str) -> Answer:
    def answer(req: dict[str, Any], n: int) -> list[bytes]:
        head = f"HTTP/1.1 {code} X\r\n" + "".join(f"{h}\r\n" for h in extra)
        return [f"{head}Content-Length: {len(body)}\r\n\r\n".encode(), body]

    return answer


async def test_statuses_map_onto_the_judge_errors(serve: Any) -> None:
    _, url = await serve(status(429, b"slow down", "Retry-After: 7"))
    with pytest.raises(JudgeRateLimited, match="slow down") as limited:
        await poster(url).post({"id": 0}, 2)
    assert (limited.value.retry_after, limited.value.attempts) == (7.0, 2)
    _, url = await serve(status(503, b"overloaded"))
    with pytest.raises(JudgeHTTPError, match="HTTP 503: overloaded") as failed:
        await poster(url).post({"id": 0}, 1)
    assert failed.value.status == 503
    _, url = await serve(status(307, b"", "Location: https://elsewhere/v1"))
    with pytest.raises(JudgeHTTPError, match="redirected to https://elsewhere/v1"):
        await poster(url).post({"id": 0}, 1)


async def test_compressed_answers_are_inflated_or_refused(serve: Any) -> None:
    packed = gzip.compress(b'{"echo": 1}')
    _, url = await serve(lambda req, n: ok(packed, "Content-Encoding: gzip"))
    assert json.loads(await poster(url).post({"id": 1}, 1)) == {"echo": 1}
    _, url = await serve(lambda req, n: ok(b"not gzip", "Content-Encoding: gzip"))
    with pytest.raises(JudgeHTTPError, match="does not inflate"):
        await poster(url).post({"id": 1}, 1)
    _, url = await serve(lambda req, n: ok(b"x", "Content-Encoding: br"))
    with pytest.raises(JudgeHTTPError, match="cannot read"):
        await poster(url).post({"id": 1}, 1)


def both_clients(url: str) -> list[Any]:
    """The direct transport's two posters: its own HTTP/1.1 client and aiohttp's fallback."""
    return [poster(url), JsonPoster(url, {"Content-Type": "application/json"}, pool=1, who="m")]


async def test_an_inflated_answer_is_whole_and_bounded(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every gzip member is read (a stream may hold several; the first alone was returned, cut),
    bytes after the stream or a stream cut short are errors (they were dropped silently), and
    what a body inflates to is bounded like a body (a 4 kB bomb inflated without limit, on both
    of the direct transport's posters)."""
    whole = b'{"echo": "a verdict split over two gzip members"}'
    two = gzip.compress(whole[:20]) + gzip.compress(whole[20:])
    _, url = await serve(lambda req, n: ok(two, "Content-Encoding: gzip"))
    for client in both_clients(url):
        assert await client.post({"id": 1}, 1) == whole
        await client.close()
    for bad, why in [
        (gzip.compress(whole) + b"junk", "bytes after|does not inflate"),
        (gzip.compress(whole)[:-12], "cut short"),
        (zlib.compress(whole)[:-3], "does not inflate"),
    ]:
        coding = "deflate" if bad[:1] == b"x" else "gzip"
        _, url = await serve(
            lambda req, n, bad=bad, coding=coding: ok(bad, f"Content-Encoding: {coding}")
        )
        for client in both_clients(url):
            with pytest.raises(JudgeHTTPError, match=why):
                await client.post({"id": 1}, 1)
            await client.close()
    monkeypatch.setattr(http1, "_MAX_BODY", 1 << 20)
    monkeypatch.setattr(session, "MAX_BODY", 1 << 20)
    bomb = gzip.compress(b"\0" * (4 << 20))  # 4 MiB of zeros in about 4 kB
    _, url = await serve(lambda req, n: ok(bomb, "Content-Encoding: gzip"))
    for client in both_clients(url):
        with pytest.raises(JudgeHTTPError, match="inflates to more than 1048576 bytes"):
            await client.post({"id": 1}, 1)
        await client.close()
    _, url = await serve(lambda req, n: ok(b"x" * ((1 << 20) + 1)))
    for client in both_clients(url):
        with pytest.raises(JudgeHTTPError, match=r"out of range|longer than"):
            await client.post({"id": 1}, 1)
        await client.close()


async def test_an_error_status_survives_a_body_that_will_not_inflate(serve: Any) -> None:
    """A 429 whose body claims gzip but is not: still a rate limit with its Retry-After (the
    inflate error used to replace it, and the retry policy then read "malformed")."""
    _, url = await serve(status(429, b"slow down", "Retry-After: 30", "Content-Encoding: gzip"))
    with pytest.raises(JudgeRateLimited, match="slow down") as limited:
        await poster(url).post({"id": 0}, 1)
    assert limited.value.retry_after == 30.0
    _, url = await serve(status(401, b"bad key", "Content-Encoding: deflate"))
    with pytest.raises(JudgeHTTPError, match="HTTP 401: bad key") as failed:
        await poster(url).post({"id": 0}, 1)
    assert failed.value.status == 401


async def test_a_body_read_to_the_close_and_cut_by_a_reset_is_an_error(serve: Any) -> None:
    """Only a clean close ends a body that has no length: a reset may cut it anywhere (it was
    returned as the whole answer)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
    _, url = await serve(lambda req, n: [head, b'{"choices": [{"score": 1', RESET])
    with pytest.raises(JudgeConnectionError, match="middle of the answer"):
        await asyncio.wait_for(poster(url).post({"id": 0}, 1), 5)


async def test_framing_edge_cases_neither_hang_nor_reuse_a_doubtful_connection(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 204 has no body whatever its headers say (it waited for the 5 bytes until the deadline).
    server, url = await serve(
        lambda req, n: (
            [b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"]
            if req["id"] == 0
            else echo(req, n)
        )
    )
    p = poster(url)
    assert await asyncio.wait_for(p.post({"id": 0}, 1), 5) == b""
    assert json.loads(await p.post({"id": 1}, 1)) == {"echo": 1}
    assert server.connections == 2  # its framing was doubtful: not kept for another answer
    # Content-Length and chunked together: read as chunked, and the connection not reused.
    both = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n"
    server, url = await serve(lambda req, n: [both + b"2\r\nok\r\n0\r\n\r\n"])
    p = poster(url)
    assert await p.post({"id": 0}, 1) == b"ok"
    assert await p.post({"id": 1}, 1) == b"ok"
    assert server.connections == 2
    # An endless trailer section is refused at the head's limit (it grew until the deadline).
    monkeypatch.setattr(http1, "_MAX_HEAD", 1024)
    chunked_head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
    _, url = await serve(lambda req, n: [chunked_head, *[b"X-Pad: " + b"a" * 100 + b"\r\n"] * 40])
    with pytest.raises(JudgeHTTPError, match="trailer section is too long"):
        await asyncio.wait_for(poster(url).post({"id": 0}, 1), 5)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef",
        # Lenient readings that could misframe an answer: each is refused.
        b"HTTP/1.7 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 2\xb20 OK\r\nContent-Length: 2\r\n\r\nok",  # a digit to isdigit(), not int()
        b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0_2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        # Bare LF line ends: the head never ends with CRLF CRLF (it hung until the deadline).
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        # Endless interim answers in one read (it recursed once per answer).
        b"HTTP/1.1 100 Continue\r\n\r\n" * 3000 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ],
)
async def test_malformed_answers_are_errors_and_the_connection_is_dropped(
    serve: Any, raw: bytes
) -> None:
    calls: list[int] = []

    def answer(req: dict[str, Any], n: int) -> list[bytes]:
        calls.append(n)
        return [raw] if req["id"] == 0 else echo(req, n)

    server, url = await serve(answer)
    p = poster(url)
    with pytest.raises(JudgeHTTPError, match="malformed HTTP answer"):
        await asyncio.wait_for(p.post({"id": 0}, 1), 5)
    assert json.loads(await p.post({"id": 1}, 1)) == {"echo": 1}
    assert server.connections == 2


@pytest.mark.parametrize(
    ("pieces", "where"),
    [([], "before any answer"), ([b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"], "middle")],
)
async def test_a_dropped_or_refused_connection_is_a_connection_error(
    serve: Any, pieces: list[bytes], where: str
) -> None:
    server, url = await serve(lambda req, n: pieces)
    server.close_after_answer = True
    with pytest.raises(JudgeConnectionError, match=where):
        await poster(url).post({"id": 0}, 1)
    with pytest.raises(JudgeConnectionError, match="cannot reach"):
        await poster("http://127.0.0.1:9/v1/chat/completions").post({"id": 0}, 1)


async def test_an_abandoned_request_never_hands_its_answer_to_the_next(serve: Any) -> None:
    """A request cut off by its deadline closes its connection: the late answer is never read
    as the next request's."""

    def slow_first(req: dict[str, Any], n: int) -> list[bytes] | None:
        return None if req["id"] == "slow" else echo(req, n)

    server, url = await serve(slow_first)
    p = poster(url, pool=1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(p.post({"id": "slow"}, 1), 0.2)
    assert json.loads(await p.post({"id": "next"}, 1)) == {"echo": "next"}
    assert server.connections == 2


def _self_signed(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and a client
    context that trusts exactly it."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = tmp / "cert.pem"
    key_pem = tmp / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_pem, key_pem)
    client = ssl.create_default_context(cafile=str(cert_pem))
    return server, client


async def test_https_verifies_the_server_and_keeps_alive(serve: Any, tmp_path: Path) -> None:
    server_ctx, client_ctx = _self_signed(tmp_path)
    server, url = await serve(echo, server_ctx)
    p = poster(url, ssl_context=client_ctx)
    for i in range(3):
        assert json.loads(await p.post({"id": i}, 1)) == {"echo": i}
    assert server.connections == 1
    await p.close()
    untrusting = poster(url)  # the system's roots do not trust a self-signed certificate
    with pytest.raises(JudgeConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusting.post({"id": 0}, 1)


async def test_the_direct_transport_picks_the_client_by_url() -> None:
    assert supports("http://127.0.0.1:8000/v1/chat/completions")
    assert supports("https://api.openai.com/v1/chat/completions")
    assert not supports("unix:///tmp/sock")
    assert not supports("http://user:pw@host/v1")
    headers = {"Content-Type": "application/json"}
    assert isinstance(json_poster("https://h/v1", headers, pool=1, who="m"), Http1Poster)
    with pytest.raises(ValueError, match="http"):
        Http1Poster("ftp://h/x", headers, pool=1, who="m")
    fallback = json_poster("http://u:p@h/v1", headers, pool=1, who="m")
    assert isinstance(fallback, JsonPoster)
    await fallback.close()


async def test_a_kept_alive_connection_closed_by_the_server_is_retried_once_afresh(
    serve: Any,
) -> None:
    """The server's idle timeout can close a connection just as a request goes out on it: no
    answer came, so the request goes once more on a new connection, without an error. A new
    connection that closes before answering is an error (the retry policy's to handle)."""

    def drop_second(req: dict[str, Any], n: int) -> list[bytes]:
        return [] if n == 2 else echo(req, n)

    server, url = await serve(drop_second)
    p = poster(url)
    assert json.loads(await p.post({"id": 1}, 1)) == {"echo": 1}
    # The server reads the next request on the kept connection and closes it unanswered.
    assert json.loads(await p.post({"id": 2}, 1)) == {"echo": 2}
    assert server.connections == 2
    assert len(server.requests) == 3  # the dropped one, then the same request afresh
    assert server.requests[1] == server.requests[2]
    await p.close()


async def test_bodies_go_out_as_ascii_json_whatever_the_text(serve: Any) -> None:
    """Non-ASCII text is escaped, and a lone surrogate (which UTF-8 cannot encode) goes as
    U+FFFD, on both of the direct transport's clients; the text "\\ud800" stays as written."""
    texts = ["Zürich, 東京 \ud800 end", "plain", "a backslash: \\ud800"]
    sent = ["Zürich, 東京 \ufffd end", "plain", "a backslash: \\ud800"]
    server, url = await serve(lambda req, n: ok(json.dumps({"echo": req["id"]}).encode()))
    for client in (
        poster(url),
        JsonPoster(url, {"Content-Type": "application/json"}, pool=1, who="m"),
    ):
        for text, want in zip(texts, sent, strict=True):
            assert json.loads(await client.post({"id": text}, 1)) == {"echo": want}
        await client.close()
    bodies = [r.split(b"\r\n\r\n", 1)[1] for r in server.requests]
    assert all(b.isascii() for b in bodies)
    assert [json.loads(b)["id"] for b in bodies] == sent * 2


def test_a_header_with_a_line_break_is_refused() -> None:
    """An API key read from a file with its newline would end the request head early (and let
    the rest of the value pose as headers); it is refused, naming the header."""
    url = "http://127.0.0.1:1/v1/chat/completions"
    for bad in ("sk-abc\n", "sk-abc\r\nX-Evil: 1", "sk\0"):
        with pytest.raises(ValueError, match="Authorization header"):
            Http1Poster(url, {"Authorization": f"Bearer {bad}"}, pool=1, who="m")


# --- deadlines -----------------------------------------------------------------------------------


async def test_a_deadline_fails_the_request_on_time_and_drops_its_connection(
    serve: Callable[..., Any],
) -> None:
    """``until`` is kept by timers shared between requests: a hung answer fails with
    ``TimeoutError`` after its deadline (never before it, and at most a slot late), the
    connection it was on is dropped, and the next request goes out on a fresh one."""
    server, url = await serve(lambda req, n: None if req["id"] == "hang" else echo(req, n))
    p = poster(url)
    loop = asyncio.get_running_loop()
    assert json.loads(await p.post({"id": 1}, 1, until=loop.time() + 30)) == {"echo": 1}
    until = loop.time() + 0.25
    with pytest.raises(TimeoutError):
        await p.post({"id": "hang"}, 1, until=until)
    late = loop.time() - until
    assert 0 <= late < 0.2
    assert json.loads(await p.post({"id": 2}, 1, until=loop.time() + 30)) == {"echo": 2}
    assert server.connections == 2  # the hung connection was not reused
    await p.close()


async def test_finished_requests_leave_no_deadline_timers_behind(
    serve: Callable[..., Any],
) -> None:
    """A request that finishes before its deadline takes itself out of its timer slot, and the
    slot's timer goes when its last request does: a long deadline (an hour) on thousands of
    requests must not pile up timers or keep finished requests alive."""
    _, url = await serve()
    p = poster(url, pool=16)
    loop = asyncio.get_running_loop()
    got = await asyncio.gather(
        *(p.post({"id": i}, 1, until=loop.time() + 3600 + i / 1000) for i in range(200))
    )
    assert [json.loads(g)["echo"] for g in got] == list(range(200))
    deadlines = p._deadlines
    assert deadlines is not None and deadlines._slots == {}
    live = [
        h
        for h in loop._scheduled  # type: ignore[attr-defined]
        if not h.cancelled() and h.when() > loop.time() + 1000
    ]
    assert live == []
    await p.close()


# --- found by the review of the request path ------------------------------------------------------


def _writing_sockets(loop: asyncio.AbstractEventLoop) -> int:
    """Sockets the loop still waits to write to (a connection closing after its buffer drains)."""
    selector = loop._selector  # type: ignore[attr-defined]
    return sum(1 for key in selector.get_map().values() if key.events & selectors.EVENT_WRITE)


async def test_a_request_the_server_never_reads_is_dropped_not_left_draining() -> None:
    """A request that fails with part of its body unsent (the server stopped reading) drops its
    connection at once: a close would wait for the buffer to drain, forever, holding the socket
    and megabytes of body per failed call."""
    held: list[asyncio.StreamWriter] = []

    async def never_read(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)
        await asyncio.sleep(3600)

    mute = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = mute.sockets[0].getsockname()[1]
    p = poster(f"http://127.0.0.1:{port}/v1/chat/completions")
    loop = asyncio.get_running_loop()
    big = "x" * (16 * 1024 * 1024)  # more than the kernel's socket buffers hold
    for _ in range(3):
        with pytest.raises(TimeoutError):
            await p.post({"id": big}, 1, until=loop.time() + 0.3)
    await asyncio.sleep(0.1)
    assert _writing_sockets(loop) == 0
    await p.close()
    for w in held:
        w.close()
    mute.close()


async def test_a_request_whose_deadline_passed_is_never_sent(serve: Any) -> None:
    """A deadline that has passed by the time a connection is free (a rate limiter's wait, a
    busy loop) fails the request before it is written: nothing goes on the wire late."""
    server, url = await serve()
    p = poster(url)
    loop = asyncio.get_running_loop()
    assert json.loads(await p.post({"id": 1}, 1, until=loop.time() + 30)) == {"echo": 1}
    with pytest.raises(TimeoutError):
        await p.post({"id": 2}, 1, until=loop.time() - 1)
    await asyncio.sleep(0.05)
    assert len(server.requests) == 1
    assert json.loads(await p.post({"id": 3}, 1, until=loop.time() + 30)) == {"echo": 3}
    assert server.connections == 1  # the unused connection stayed good
    await p.close()


@pytest.mark.parametrize("value", ["keep-alive, close", "close, Upgrade", "Close"])
async def test_connection_close_among_other_tokens_is_honoured(serve: Any, value: str) -> None:
    """``Connection`` is a list of tokens: ``close`` anywhere in it means the server will close,
    so the next request goes on a new connection rather than on one about to be closed."""
    server, url = await serve(lambda req, n: ok(b'{"x": 1}', f"Connection: {value}"))
    p = poster(url)
    for i in range(2):
        await p.post({"id": i}, 1)
    assert server.connections == 2
    await p.close()


async def test_a_path_with_spaces_or_non_ascii_is_percent_encoded(serve: Any) -> None:
    """The request line carries the path percent-encoded (UTF-8); what the URL already encodes
    stays as it is. Raw, a space split the request line and a CJK name failed the encoding."""
    server, url = await serve()
    base = url.rsplit("/v1/", 1)[0]
    for path, line in [
        ("/v1/modèle/chat/completions", b"POST /v1/mod%C3%A8le/chat/completions HTTP/1.1"),
        ("/v1/模型/chat/completions", b"POST /v1/%E6%A8%A1%E5%9E%8B/chat/completions HTTP/1.1"),
        ("/my models/v1?a=b c", b"POST /my%20models/v1?a=b%20c HTTP/1.1"),
        ("/v1/a%2Fb", b"POST /v1/a%2Fb HTTP/1.1"),
    ]:
        p = poster(base + path)
        await p.post({"id": 1}, 1)
        assert server.requests[-1].split(b"\r\n", 1)[0] == line
        await p.close()


def test_surrogates_in_keys_are_sent_as_replacement_characters() -> None:
    """A lone surrogate goes as U+FFFD wherever it is, a dict key included (an ``extra_body``
    key, a message's key), in the plain and the pre-framed encodings alike."""
    from rm_service.models._body import ChatBody, encode_json

    body = {"k\ud800": "v\ud800", "messages": [{"role": "user", "n\udc00": "y"}]}
    want = {"k\ufffd": "v\ufffd", "messages": [{"role": "user", "n\ufffd": "y"}]}
    assert json.loads(encode_json(body)) == want
    fields = {"model": "m", "k\ud800": 1, "messages": []}
    framed = ChatBody.framed(fields, ChatBody.frame_of(fields))
    framed["messages"] = [{"role": "user", "n\udc00": "y"}]
    assert json.loads(encode_json(framed)) == {
        "model": "m",
        "k\ufffd": 1,
        "messages": [{"role": "user", "n\ufffd": "y"}],
    }


def _completion(content: str, **extra: Any) -> bytes:
    body = {"model": "m", "choices": [{"message": {"content": content}, "finish_reason": "stop"}]}
    return json.dumps({**body, **extra}).encode()


async def test_numbers_no_float_can_hold_are_a_malformed_completion(serve: Any) -> None:
    """A token count of 1e400, a logprob of 10**400 or a body nested past the parser's depth is
    a malformed answer (``JudgeHTTPError``), never an ``OverflowError`` or ``RecursionError``
    that a grader would report as its own bug."""
    from rm_service.models import OpenAIChatModel, SamplingParams

    verdict = '{"score": 1}'
    bodies = [
        _completion(verdict, usage={"prompt_tokens": 1e400, "completion_tokens": 1}),
        json.dumps(
            {
                "model": "m",
                "choices": [
                    {
                        "message": {"content": verdict},
                        "logprobs": {"content": [{"token": "1", "logprob": 10**400}]},
                    }
                ],
            }
        ).encode(),
        b"[" * 100_000 + b"]" * 100_000,
    ]
    for raw in bodies:
        _, url = await serve(lambda req, n, raw=raw: ok(raw))
        model = OpenAIChatModel(
            "m", base_url=url.rsplit("/chat/completions", 1)[0], api_key="k", max_retries=0
        )
        params = SamplingParams(logprobs=True)
        with pytest.raises(JudgeHTTPError, match="malformed chat completion"):
            await model.achat([{"role": "user", "content": "hi"}], params)
        await model.aclose()


async def test_a_base_url_query_stays_a_query_after_the_path(serve: Any) -> None:
    """``https://host/openai/deployments/d?api-version=...`` (Azure's form) posts to
    ``/openai/deployments/d/chat/completions?api-version=...``, not to a path that holds the
    query; on the direct transport and the SDK's."""
    from rm_service.models import OpenAIChatModel
    from rm_service.models._openai_sdk import _split_query

    server, url = await serve(lambda req, n: ok(_completion("hello")))
    base = url.rsplit("/v1/", 1)[0] + "/openai/deployments/d?api-version=2024-06-01"
    model = OpenAIChatModel("m", base_url=base, api_key="k", max_retries=0)
    assert (await model.achat([{"role": "user", "content": "hi"}])).text == "hello"
    line = server.requests[-1].split(b"\r\n", 1)[0]
    assert line == b"POST /openai/deployments/d/chat/completions?api-version=2024-06-01 HTTP/1.1"
    await model.aclose()
    assert _split_query(base) == (
        base.split("?")[0],
        {"api-version": "2024-06-01"},
    )


def test_a_base_url_with_credentials_is_a_config_error() -> None:
    """The key goes as ``Authorization: Bearer``; a URL's user and password would need that
    header too. Refused when the model is built, naming the fix, not a ``ValueError`` from
    the HTTP library on every call."""
    from rm_service import ConfigError
    from rm_service.models import OpenAIChatModel

    with pytest.raises(ConfigError, match="user name or password"):
        OpenAIChatModel("m", base_url="http://user:pw@127.0.0.1:1/v1", api_key="k")


async def test_a_model_name_or_extra_body_set_after_a_call_is_what_is_sent(serve: Any) -> None:
    """The request's fixed part is built once per params object, but a model name or extra body
    changed after the first call is what the next request sends (the judge cache's key reads
    the new values, so a stale request would file old answers under the new key)."""
    from rm_service.models import OpenAIChatModel

    server, url = await serve(lambda req, n: ok(_completion("ok")))
    model = OpenAIChatModel(
        "judge-a", base_url=url.rsplit("/chat/completions", 1)[0], api_key="k", max_retries=0
    )
    msgs = [{"role": "user", "content": "hi"}]
    sent = []
    for change in (
        lambda: None,
        lambda: setattr(model, "model", "judge-b"),
        lambda: setattr(model, "extra_body", {"top_k": 2}),
        lambda: model.extra_body.update(top_k=3),  # type: ignore[union-attr]
    ):
        change()
        await model.achat(msgs)
        body = json.loads(server.requests[-1].split(b"\r\n\r\n", 1)[1])
        sent.append((body["model"], body.get("top_k")))
    assert sent == [("judge-a", None), ("judge-b", None), ("judge-b", 2), ("judge-b", 3)]
    await model.aclose()
