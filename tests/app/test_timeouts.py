"""Slow and idle connections are closed, against the real server.

uvicorn alone closes a connection only when it idles *after* a response, and any byte restarts
that timer: a socket that never sends, a head or a body sent a byte at a time, stayed open for
ever. Here the server runs with 1 s deadlines and each test checks that the server ends the
connection (408 where a request was begun, then EOF) well before the client would give up.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rm_service._serve import SPEC_ENV
from tests.app.uvicorn_server import Server, running_server

FLAGS = ("--header-timeout", "1", "--body-timeout", "1", "--timeout-keep-alive", "1")
GIVE_UP = 8.0
"""Seconds a test waits for the server to close; the deadlines are 1 s."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("timeouts"), *FLAGS) as srv:
        yield srv
    log = srv.log()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log


def _trickle(sock: socket.socket, first: bytes, drip: bytes = b"x") -> bytes:
    """Send ``first``, then one byte every 0.1 s until the server closes the connection (or
    ``GIVE_UP`` passes); return everything the server sent. Fails if it never closed."""
    sock.sendall(first)
    got = b""
    end = time.monotonic() + GIVE_UP
    while time.monotonic() < end:
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return got
            if not chunk:
                return got
            got += chunk
            continue
        try:
            sock.send(drip)
        except OSError:  # the server closed while we were sending
            return got + _drain(sock)
    raise AssertionError(f"the server kept the connection open {GIVE_UP} s; got {got!r}")


def _drain(sock: socket.socket) -> bytes:
    got = b""
    sock.settimeout(GIVE_UP)
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except OSError:
        pass
    return got


def _response(sock: socket.socket) -> bytes:
    """Read one response with a ``content-length`` (ours all have one)."""
    sock.settimeout(GIVE_UP)
    got = b""
    while b"\r\n\r\n" not in got:
        got += sock.recv(65536)
    head, _, body = got.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _closed_by_server(sock: socket.socket) -> bool:
    """Wait (up to ``GIVE_UP``) for EOF from the server, sending nothing."""
    sock.settimeout(GIVE_UP)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_an_idle_new_connection_is_closed(server: Server) -> None:
    with server.connect() as sock:
        assert _closed_by_server(sock)


def test_a_head_sent_a_byte_at_a_time_gets_408_and_is_closed(server: Server) -> None:
    with server.connect() as sock:
        got = _trickle(sock, b"POST /grade HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert b"connection: close" in got.lower() and b"--header-timeout" in got


def test_a_body_sent_a_byte_at_a_time_gets_408_and_is_closed(server: Server) -> None:
    head = (
        b"POST /grade HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    with server.connect() as sock:
        got = _trickle(sock, head + b'{"records": [', drip=b" ")
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert b"--body-timeout" in got


def test_a_body_trickled_after_an_early_answer_is_cut_off(server: Server) -> None:
    """/healthz answers without reading the body; the rest of the body is still bounded."""
    head = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    with server.connect() as sock:
        got = _trickle(sock, head + b"ab")
    assert got.startswith(b"HTTP/1.1 405 ") or got.startswith(b"HTTP/1.1 200 "), got
    assert b"408" not in got  # the response had begun: the connection is just closed


def test_a_kept_alive_connection_is_closed_when_idle(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = _response(sock)
        assert first.startswith(b"HTTP/1.1 200 "), first
        assert _closed_by_server(sock)


def test_a_slow_head_after_a_kept_alive_request_gets_408(server: Server) -> None:
    """Every byte cancels uvicorn's keep-alive timer: the next head has its own deadline."""
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200 ")
        got = _trickle(sock, b"GET /healthz HTTP/1.1\r\nX-Slow: ")
    assert got.startswith(b"HTTP/1.1 408 "), got


def test_requests_in_time_are_served_on_one_connection(server: Server) -> None:
    body = b'{"records": [{"response": "<think>1</think><answer>7</answer>", "label": "7"}]}'
    request = (
        b"POST /grade HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with server.connect() as sock:
        for _ in range(3):
            sock.sendall(request)
            reply = _response(sock)
            assert reply.startswith(b"HTTP/1.1 200 ") and b'"ok":1' in reply, reply
            time.sleep(0.3)  # under every deadline


def test_the_deadlines_reach_every_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--workers N``: uvicorn pickles its config into each spawned worker; the protocol and
    its deadlines must survive that (a real two-worker server takes ~10 s to start here)."""
    import pickle

    import uvicorn

    from rm_service._http_protocol import DeadlineH11Protocol
    from rm_service.cli import main

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    monkeypatch.setenv(SPEC_ENV, "{}")  # serve sets it; restored after the test
    argv = ["--workers", "2", "--header-timeout", "1.5", "--body-timeout", "2.5"]
    assert main(["serve", *argv, "--timeout-keep-alive", "3"]) == 0
    (kwargs,) = calls
    config = pickle.loads(pickle.dumps(uvicorn.Config(**kwargs)))
    assert config.workers == 2 and config.timeout_keep_alive == 3
    config.load()
    from uvicorn.server import ServerState

    loop = asyncio.new_event_loop()
    try:
        made = config.http_protocol_class(
            config=config, server_state=ServerState(), app_state={}, _loop=loop
        )
    finally:
        loop.close()
    assert isinstance(made, DeadlineH11Protocol)
    assert (made.header_timeout, made.body_timeout) == (1.5, 2.5)


@pytest.mark.parametrize("flag", ["--header-timeout", "--body-timeout", "--timeout-keep-alive"])
def test_a_deadline_must_be_positive(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    from rm_service.cli import main

    assert main(["serve", "--port", "1", flag, "0"]) == 1
    assert flag in capsys.readouterr().err


def test_a_client_that_never_reads_its_response_is_dropped(server: Server) -> None:
    """A client that sends a valid request and never reads the answer: once the socket's
    buffers are full the server waits ``--body-timeout`` for room, then drops the connection.
    It held the socket and the answer's megabytes for good (uvicorn waits for ever)."""
    ident = "i" * 10_000  # each result echoes its id: a ~10 MB answer, more than buffers hold
    body = json.dumps({"records": [{"id": f"{n}{ident}", "response": "x"} for n in range(1000)]})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(
        b"POST /grade HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body.encode()
    )
    time.sleep(4)  # never read: the server's deadline is 1 s
    got = b""
    sock.settimeout(GIVE_UP)
    try:
        while chunk := sock.recv(1 << 20):
            got += chunk
    except ConnectionResetError:
        pass
    sock.close()
    head, _, rest = got.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length")
    )
    assert len(rest) < length  # cut off: the whole answer never came
    assert "read none of its response" in server.log()


def test_an_integer_of_thousands_of_digits_is_refused_at_once(server: Server) -> None:
    """Python reads and writes a huge integer in time that grows with the square of its length;
    the command line lifts the limit so any file round-trips, but under ``serve`` one request of
    a million digits held every other for 16 s. The service keeps the limit: a 400 at once."""
    body = '{"records": [{"id": ' + "7" * 1_000_000 + ', "response": "x"}]}'
    start = time.monotonic()
    resp = httpx.post(
        f"{server.base_url}/grade",
        content=body,
        headers={"content-type": "application/json"},
        timeout=GIVE_UP,
    )
    assert resp.status_code in (400, 422), resp.text
    assert time.monotonic() - start < 2
