"""``Http1Poster``: JSON POSTs over keep-alive HTTP/1.1 connections, on asyncio alone.

Why it exists: a judge call's own client work is what caps a reward service on a small box (a
GRPO node shares its cores with the trainer), and a general HTTP client spends most of a small
request on generality: URL objects, header multidicts, tracing hooks, cookie jars, redirects,
timers. A judge endpoint needs one thing, the same POST to the same URL over and over, so this
client builds the request head once and writes ``head + length + body``; a response is parsed
from the bytes as they arrive (status line, headers, then ``Content-Length``, chunked or
read-to-close body). It is the ``direct`` transport's poster for ``http`` and ``https`` URLs
(:class:`~rm_service.models._session.JsonPoster` on aiohttp remains for anything else).

What it keeps from a full client, because a reward service needs it:

* **Keep-alive and a pool per event loop** (the loop's :class:`~rm_service.models._session.
  LoopState` caps how many requests are in flight). A connection the server closed while idle
  is dropped before reuse, and one it closes just as a request goes out, before answering, gets
  the request once more on a new connection; ``Connection: close`` and HTTP/1.0 answers close
  after the response.
* **TLS** with the system's default verification (``ssl.create_default_context()``) and SNI.
* **Errors as the retry policy reads them:** 429 with its ``Retry-After``, another status >= 400
  with the body's start, a refused or dropped connection as ``JudgeConnectionError``, a body cut
  short or malformed (bad chunk sizes, a gzip body that does not inflate) as ``JudgeHTTPError``.
  A redirect is an error naming where it points: a POST is not silently re-sent elsewhere.
* **Cancellation-safe:** a request abandoned mid-flight (a record's deadline) closes its
  connection, so a late answer can never be read as the next request's.
* **Deadlines without a timer per request:** ``post(..., until=t)`` fails with ``TimeoutError``
  once the loop's clock passes ``t``. The requests whose deadlines fall in one
  ``_DEADLINE_GRAIN`` slot share one timer (:class:`_Deadlines`), so a deadline fires at most
  that late and never early; ``asyncio.timeout_at`` per request was a timer, a task
  cancellation and its bookkeeping on every judge call.

It asks for ``gzip, deflate`` at most (``Accept-Encoding``, as aiohttp did): without the header a
server may pick any coding, brotli included; a gzip or deflate answer is inflated.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import re
import ssl
from collections import deque
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from rm_service.models._base import JudgeConnectionError, JudgeHTTPError
from rm_service.models._body import encode_json
from rm_service.models._inflate import ACCEPT_ENCODING, MAX_BODY, _BodyError, inflate
from rm_service.models._session import Client, JsonPoster, http_error

__all__ = ["Http1Poster", "json_poster", "supports"]

_MAX_HEAD = 64 * 1024
"""A response head longer than this is refused (a misbehaving server, not a judge)."""
_MAX_BODY = MAX_BODY
"""A response body longer than this (on the wire or inflated) is refused, so a runaway server
cannot exhaust memory."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DIGITS = re.compile(rb"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_STATUS_LINE = re.compile(r"(HTTP/1\.[01]) ([0-9]{3})(?: .*)?")


def _tokens(value: str) -> set[str]:
    """A list header's tokens, lowercased: ``Connection: keep-alive, Close`` holds ``close``."""
    return {t.strip().lower() for t in value.split(",")}


@functools.cache
def _default_tls() -> ssl.SSLContext:
    """The system's default verifying context, built once per process: loading the CA store is
    blocking disk work, and a TRL reward function opens a client per step (a fresh loop each)."""
    return ssl.create_default_context()


def _quote(text: str) -> str:
    """A URL's path or query as a request line carries it: a space or a non-ASCII character
    percent-encoded (UTF-8), what is already encoded (``%2F``) and the delimiters as they are."""
    return quote(text, safe="/%:@!$&'()*+,;=?~")


def endpoint(base: str, path: str) -> str:
    """``path`` under ``base``'s path, with ``base``'s query kept where it belongs: a base of
    ``https://h/openai/deployments/d?api-version=2024-06-01`` and ``chat/completions`` give
    ``https://h/openai/deployments/d/chat/completions?api-version=2024-06-01``."""
    parts = urlsplit(base)
    where = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit(parts._replace(path=where, fragment=""))


def supports(url: str) -> bool:
    """Whether this client can post to ``url`` (plain ``http`` or ``https``, with a host)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username


def json_poster(url: str, headers: dict[str, str], *, pool: int, who: str) -> Client:
    """The ``direct`` transport's client for ``url``: :class:`Http1Poster` for ``http(s)``,
    aiohttp's :class:`~rm_service.models._session.JsonPoster` otherwise."""
    if supports(url):
        return Http1Poster(url, headers, pool=pool, who=who)
    return JsonPoster(url, headers, pool=pool, who=who)


class _Broken(Exception):
    """The response cannot be read: the connection is unusable from here on."""


class _Stale(ConnectionResetError):
    """The server closed the connection before answering anything."""


class _Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


_DEADLINE_GRAIN = 0.01
"""Seconds: the slot width of :class:`_Deadlines` (how late a deadline may fire)."""


class _DeadlinePassed(TimeoutError):
    """A request's deadline passed (not a socket's own timeout, which is a lost connection)."""


class _Deadlines:
    """Fails each armed future with ``TimeoutError`` once the loop's clock passes its deadline.

    One loop timer per ``_DEADLINE_GRAIN`` slot of deadlines, shared by the requests whose
    deadlines fall in it; the last of them to finish early cancels it. At a thousand requests a
    second that is a timer per ten or so requests, and no task is ever cancelled: the request's
    own future gets the exception, which ``Http1Poster`` handles as any failed request (its
    connection is closed, so a late answer is never read as another's)."""

    __slots__ = ("_loop", "_slots")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, tuple[set[asyncio.Future[Any]], asyncio.TimerHandle]] = {}

    def arm(self, fut: asyncio.Future[Any], until: float) -> int:
        """Watch ``fut`` until ``until`` (loop time); the slot to :meth:`disarm` it from."""
        slot = math.ceil(until / _DEADLINE_GRAIN)
        entry = self._slots.get(slot)
        if entry is None:
            timer = self._loop.call_at(slot * _DEADLINE_GRAIN, self._expire, slot)
            entry = self._slots[slot] = (set(), timer)
        entry[0].add(fut)
        return slot

    def disarm(self, fut: asyncio.Future[Any], slot: int) -> None:
        entry = self._slots.get(slot)
        if entry is not None:
            entry[0].discard(fut)
            if not entry[0]:
                del self._slots[slot]
                entry[1].cancel()

    def _expire(self, slot: int) -> None:
        entry = self._slots.pop(slot, None)
        for fut in entry[0] if entry is not None else ():
            if not fut.done():
                fut.set_exception(_DeadlinePassed())


_READ_SIZE = 256 * 1024
"""Bytes one socket read may take (what asyncio's own reads take)."""


class _Connection(asyncio.BufferedProtocol):
    """One keep-alive connection: at most one request in flight, its response parsed as it
    arrives.

    A buffered protocol: the transport reads into ``read_buffer`` (shared by a poster's
    connections, as a read is copied out of it before the next one starts), where a plain
    protocol's reads each allocated a fresh buffer of the read size, a large allocation that
    cost more than the rest of the client's work on a small answer. What arrives is parsed as
    :meth:`data_received` parses it."""

    def __init__(self, read_buffer: memoryview | None = None) -> None:
        self._read = read_buffer
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self._waiter: asyncio.Future[_Response] | None = None
        self._buf = bytearray()
        self._status = 0
        self._headers: dict[str, str] | None = None
        self._length: int | None = None  # body bytes expected; None: chunked or to close
        self._chunked = False
        self._body = bytearray()
        self._chunk_left = -1  # -1: a chunk-size line is next
        self._interim = 0  # bytes of interim (1xx) heads read for the current request

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._read is None:
            self._read = memoryview(bytearray(_READ_SIZE))
        return self._read

    def buffer_updated(self, nbytes: int) -> None:
        assert self._read is not None
        self.data_received(self._read[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """Take the next bytes of the answer (read into the buffer, or given here)."""
        if self._waiter is None or self._waiter.done():
            self._fail(_Broken("the server sent data with no request pending"))
            return
        self._buf += data
        try:
            self._parse()
        except _Broken as exc:
            self._fail(exc)
        except Exception as exc:  # a parser bug must not escape into the event loop
            self._fail(_Broken(f"{type(exc).__name__}: {exc}"))

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers is not None and self._length is None and not self._chunked:
            if exc is None:
                self._finish(bytes(self._body))  # a body read to the close (HTTP/1.0 style)
                return
            # Reset, not closed: the body may be cut anywhere, and a cut JSON can still parse.
            waiter.set_exception(
                ConnectionResetError(f"the connection broke in the middle of the answer: {exc}")
            )
            return
        if self._headers is None and not self._buf:
            waiter.set_exception(_Stale("the server closed the connection before any answer"))
            return
        waiter.set_exception(
            ConnectionResetError("the server closed the connection in the middle of the answer")
        )

    # -- requests ----------------------------------------------------------------------------------

    def request(self, data: bytes) -> asyncio.Future[_Response]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._status, self._headers, self._length, self._chunked = 0, None, None, False
        self._body = bytearray()
        self._chunk_left = -1
        self._interim = 0
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        """Close; drop at once (an RST) when part of a request is still unsent, since a close
        waits for the buffer to drain, and a server that stopped reading would hold the socket
        and its megabytes of unsent body open for good."""
        self.closed = True
        transport = self.transport
        if transport is not None:
            if transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()

    def _fail(self, exc: BaseException) -> None:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    def _finish(self, body: bytes) -> None:
        headers = self._headers or {}
        if self._buf:  # bytes beyond the answer: the stream cannot be trusted for another
            self.reusable = False
        connection = headers.get("connection")
        if connection is not None and "close" in _tokens(connection):
            self.reusable = False
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(_Response(self._status, headers, body))

    # -- parsing -----------------------------------------------------------------------------------

    def _parse(self) -> None:
        if self._headers is None and not self._parse_head():
            return
        if self._chunked:
            self._parse_chunks()
        elif self._length is not None:
            if len(self._buf) >= self._length:
                body = bytes(self._buf[: self._length])
                del self._buf[: self._length]
                self._finish(body)
        else:
            self._body += self._buf
            self._buf.clear()
            if len(self._body) > _MAX_BODY:
                raise _Broken("the response body is too long")

    def _parse_head(self) -> bool:
        """Read the status line and headers once they are all in; ``False`` until then.

        Strict where leniency could misframe an answer (RFC 9112): an HTTP/1.0 or 1.1 status line
        with a three-digit code, a Content-Length of digits only, ``chunked`` as the only
        transfer coding; interim (1xx) answers are skipped, within the head's size limit.
        """
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if self._buf.find(b"\n\n") >= 0:
                    raise _Broken("a response head with bare LF line ends")
                if len(self._buf) + self._interim > _MAX_HEAD:
                    raise _Broken("the response head is too long")
                return False
            lines = self._buf[:end].decode("latin-1").split("\r\n")
            del self._buf[: end + 4]
            m = _STATUS_LINE.fullmatch(lines[0])
            if m is None:
                raise _Broken(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
            version, status = m.group(1), int(m.group(2))
            if status >= 200:
                break
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self._interim += end + 4
            if self._interim > _MAX_HEAD:
                raise _Broken("too many interim (1xx) answers")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _Broken(f"a malformed header line: {line[:80]!r}")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        self._status, self._headers = status, headers
        if version == "HTTP/1.0" and "keep-alive" not in _tokens(headers.get("connection", "")):
            self.reusable = False
        coding = headers.get("transfer-encoding")
        if status in (204, 304):
            self._length = 0  # no body, whatever the headers say (RFC 9112, 6.3)
            if coding is not None or "content-length" in headers:
                self.reusable = False
        elif coding is not None:
            if [c.strip().lower() for c in coding.split(",")] != ["chunked"]:
                raise _Broken(f"a transfer coding this client cannot read: {coding[:80]!r}")
            self._chunked = True
            if "content-length" in headers:
                self.reusable = False  # two framings that may disagree: not for another answer
        elif "content-length" in headers:
            text = headers["content-length"].encode("latin-1")
            if not _DIGITS.fullmatch(text):
                raise _Broken(f"a bad Content-Length {headers['content-length'][:40]!r}")
            self._length = int(text)
            if self._length > _MAX_BODY:
                raise _Broken(f"a Content-Length out of range: {self._length}")
        else:
            self.reusable = False  # read to the close
        return True

    def _parse_chunks(self) -> None:
        buf = self._buf
        while True:
            if self._chunk_left < 0:
                eol = buf.find(b"\r\n")
                if eol < 0:
                    if len(buf) > _MAX_HEAD:
                        raise _Broken("a chunk-size line is too long")
                    return
                size_text = bytes(buf[:eol]).split(b";", 1)[0].strip()
                if not _HEX.fullmatch(size_text):
                    raise _Broken(f"a bad chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                if len(self._body) + size > _MAX_BODY:
                    raise _Broken("the response body is too long")
                if size == 0:
                    # Trailers (rare) end with an empty line, as the head does.
                    end = buf.find(b"\r\n\r\n", eol)
                    if end < 0:
                        if len(buf) - eol > _MAX_HEAD:
                            raise _Broken("the trailer section is too long")
                        return
                    del buf[: end + 4]
                    self._finish(bytes(self._body))
                    return
                del buf[: eol + 2]
                self._chunk_left = size
            if len(buf) < self._chunk_left + 2:
                return
            if buf[self._chunk_left : self._chunk_left + 2] != b"\r\n":
                raise _Broken("a chunk does not end where its size says")
            self._body += buf[: self._chunk_left]
            del buf[: self._chunk_left + 2]
            self._chunk_left = -1


class Http1Poster:
    """One loop's keep-alive HTTP/1.1 client posting JSON to ``url``.

    Args:
        url: where every body goes (``http://`` or ``https://``).
        headers: sent with every request (content type, accept, auth).
        pool: idle connections kept for reuse.
        who: names the endpoint in error messages (a model name, a URL).
        ssl_context: for ``https`` (default: ``ssl.create_default_context()``).
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        pool: int,
        who: str,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if not supports(url) or parts.hostname is None:
            raise ValueError(f"not an http(s) URL with a host: {url!r}")
        self.url = url
        self.who = who
        self.host = parts.hostname
        tls = parts.scheme == "https"
        self.port = parts.port or (443 if tls else 80)
        self.ssl = (ssl_context or _default_tls()) if tls else None
        target = _quote(parts.path or "/") + (f"?{_quote(parts.query)}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]
        if not host.isascii():  # an internationalised name goes out as its ASCII form
            name = self.host.encode("idna").decode("ascii")
            host = f"{name}:{parts.port}" if parts.port else name
        lines = [f"POST {target} HTTP/1.1", f"Host: {host}"]
        for k, v in headers.items():
            if any(c in f"{k}{v}" for c in "\r\n\0"):
                # An API key read with its newline would otherwise end the head early.
                raise ValueError(f"the {k} header holds a line break or NUL: check its value")
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in _OURS]
        if not any(k.lower() == "accept-encoding" for k in headers):
            lines.append(f"Accept-Encoding: {ACCEPT_ENCODING}")
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._idle: deque[_Connection] = deque()
        self._read = memoryview(bytearray(_READ_SIZE))  # the connections' read buffer
        self._pool = pool
        self._closed = False
        self._deadlines: _Deadlines | None = None  # made on the loop of the first post

    async def post(self, body: dict[str, Any], n: int, *, until: float | None = None) -> bytes:
        """The answer's body to ``body`` posted as JSON, or the error it maps to.

        One coroutine from the body to the answer (an idle connection taken inline, a new one
        awaited only when none is idle): each coroutine layer was a share of a request's CPU.
        """
        data = encode_json(body)
        data = self._head + b"%d\r\n\r\n" % len(data) + data
        deadlines = self._deadlines
        if deadlines is None:
            deadlines = self._deadlines = _Deadlines(asyncio.get_running_loop())
        idle, conn, reused = self._idle, None, True
        while idle:  # the most recently used first
            conn = idle.pop()
            if not conn.closed:
                break
            conn = None
        if conn is None:
            conn, reused = await self._connect(n, until), False
        while True:
            if until is not None and deadlines._loop.time() >= until:
                self._keep(conn)  # unused: still good for the next request
                raise _DeadlinePassed(f"{self.who}: the deadline passed before the request went")
            waiter = conn.request(data)
            slot = None if until is None else deadlines.arm(waiter, until)
            try:
                resp = await waiter
            except BaseException as exc:
                conn.close()  # mid-flight: a late answer must never be read as the next one's
                if isinstance(exc, _Stale) and reused:
                    # A kept-alive connection the server had already closed (its idle timeout)
                    # when the request went out: nothing was answered, so the request goes once
                    # more, on a new connection, as HTTP clients do, rather than costing the
                    # caller a retry and its backoff.
                    conn, reused = await self._connect(n, until), False
                    continue
                mapped = self._error(exc, n)
                if mapped is exc:
                    raise  # a cancellation (a deadline), or a bug: as it is
                raise mapped from exc
            finally:
                if slot is not None:
                    deadlines.disarm(waiter, slot)
            self._keep(conn)
            return self._content(resp, n)

    def _content(self, resp: _Response, n: int) -> bytes:
        """``resp``'s body, inflated, or the error its status maps to. No ``Content-Encoding``
        is ``identity``, the body as it came (``inflate`` would return it unchanged)."""
        content = resp.body
        encoding = resp.headers.get("content-encoding")
        if resp.status >= 400:
            # The status decides what the retry policy does; a body that will not inflate only
            # costs the detail its text.
            if encoding is not None:
                with contextlib.suppress(JudgeHTTPError):
                    content = self._inflate(content, encoding, n)
            detail = content.decode("utf-8", "replace")
            raise http_error(self.who, resp.status, detail, resp.headers, n)
        if encoding is not None:
            content = self._inflate(content, encoding, n)
        if resp.status in _REDIRECTS:
            where = resp.headers.get("location", "?")
            raise JudgeHTTPError(
                f"{self.who}: HTTP {resp.status}: redirected to {where}; a POST is not re-sent "
                "to another address: set the URL to where the service is",
                attempts=n,
                status=resp.status,
            )
        return content

    def _error(self, exc: BaseException, n: int) -> BaseException:
        if isinstance(exc, _DeadlinePassed):  # a TimeoutError, so an OSError: checked first
            return exc
        if isinstance(exc, _Broken):
            return JudgeHTTPError(f"{self.who}: a malformed HTTP answer: {exc}", attempts=n)
        if isinstance(exc, OSError):
            return JudgeConnectionError(
                f"{self.who}: lost the connection to {self.url}: {exc}", attempts=n
            )
        return exc

    def _keep(self, conn: _Connection) -> None:
        if conn.reusable and not conn.closed and not self._closed and len(self._idle) < self._pool:
            self._idle.append(conn)
        else:
            conn.close()

    async def _connect(self, n: int, until: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(until):  # a new connection only: rare on keep-alive
            try:
                _, conn = await loop.create_connection(
                    functools.partial(_Connection, self._read),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
            except (OSError, ssl.SSLError) as exc:  # the kernel's own timeout included
                who = "" if self.who == self.url else f"{self.who}: "
                raise JudgeConnectionError(
                    f"{who}cannot reach {self.url}: {exc}", attempts=n
                ) from exc
        return conn

    def _inflate(self, content: bytes, encoding: str, n: int) -> bytes:
        try:
            return inflate(content, encoding, _MAX_BODY)
        except _BodyError as exc:
            raise JudgeHTTPError(f"{self.who}: {exc}", attempts=n) from exc

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


_OURS = frozenset({"host", "content-length", "connection", "transfer-encoding"})
"""Headers this client writes itself (a caller's copy would be sent twice)."""
