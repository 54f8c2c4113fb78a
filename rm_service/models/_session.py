"""One HTTP client per event loop, closed with its loop: the machinery every remote backend shares.

Why it exists: a client and its connection pool belong to the loop they were first used on, while
our backends are shared by graders across tasks, threads and repeated ``asyncio.run`` calls (a TRL
reward function is called once per step, each time on a fresh loop). The judge backend
(:class:`~rm_service.models.OpenAIChatModel`) and the remote reward-model client
(:class:`~rm_service.models._rm_client.RemoteRMClient`) both need exactly this, so it lives here
once:

* :class:`PerLoopSessions`, a mixin that keeps one :class:`LoopState` (client, pool
  slots, closer) per running loop, created under a lock on first use there, never in
  ``__init__``;
* the closer: an async generator started on the loop, whose ``finally`` runs when the loop shuts
  down its async generators (``asyncio.run`` and pytest's runners do), closing the client while
  the loop can still run aiohttp's cleanup;
* :class:`JsonPoster`, one loop's aiohttp session posting JSON to one URL, with failures mapped
  onto the :class:`~rm_service.models.JudgeError` classes the retry policy reads (429 is
  :class:`JudgeRateLimited` with its ``Retry-After``, another status >= 400 is
  :class:`JudgeHTTPError`, a connection failure :class:`JudgeConnectionError`).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator
from typing import Any, Protocol

from rm_service._exceptions import ConfigError
from rm_service.models._base import (
    JudgeConnectionError,
    JudgeError,
    JudgeHTTPError,
    JudgeRateLimited,
)
from rm_service.models._body import encode_json
from rm_service.models._inflate import ACCEPT_ENCODING, MAX_BODY, _BodyError, inflate
from rm_service.models._limits import RateLimiter
from rm_service.models._openai_sdk import load_sdk
from rm_service.models._retry import retry_after_from_headers
from rm_service.models._slots import Slots

__all__ = [
    "Client",
    "JsonPoster",
    "LoopState",
    "PerLoopSessions",
    "check_api_key",
    "encode_json",
    "http_error",
    "import_transport",
]

ERROR_TEXT_LIMIT = 300
"""How much of an error response's body goes into the error message."""


class Client(Protocol):
    """One loop's transport: a response body, or a :class:`JudgeError`.

    ``post`` raises ``TimeoutError`` once the loop's clock passes ``until`` (``None``: no
    deadline): the transport owns the request's deadline, so one that can keep it cheaply
    (``Http1Poster``) need not pay a timer per request."""

    async def post(self, body: dict[str, Any], n: int, *, until: float | None = None) -> bytes: ...

    async def close(self) -> None: ...


_imported: set[str] = {"direct"}


def import_transport(transport: str) -> None:
    """Import a transport's libraries (``openai`` takes about a second): run in a thread, so
    the first call on a loop does not block it. ``direct`` needs nothing beyond asyncio (its
    aiohttp fallback, for URLs with credentials, imports aiohttp when it is built)."""
    if transport != "direct":
        load_sdk()
    _imported.add(transport)


def check_api_key(key: str, where: str) -> None:
    """Refuse a key no HTTP client can send as a header: a line break or NUL in it (a key read
    from a file with its trailing newline) would end the request head early.

    Raises:
        ConfigError: naming ``where`` the key came from.
    """
    if any(c in key for c in "\r\n\0"):
        raise ConfigError(
            f"the API key ({where}) holds a line break or NUL: a key read from a file with its "
            "trailing newline? Strip it"
        )


def http_error(who: str, status: int, detail: str, headers: Any, n: int) -> JudgeError:
    """The error for an HTTP status >= 400 from ``who`` (a model name or a URL)."""
    detail = detail[:ERROR_TEXT_LIMIT]
    if status == 429:
        return JudgeRateLimited(
            f"{who}: HTTP 429 rate limited: {detail}",
            attempts=n,
            retry_after=retry_after_from_headers(headers),
        )
    return JudgeHTTPError(f"{who}: HTTP {status}: {detail}", attempts=n, status=status)


class LoopState:
    """What one event loop owns: its client, its pool slots, and its closer."""

    __slots__ = ("client", "closer", "slots")

    def __init__(self, client: Client, slots: Slots) -> None:
        self.client = client
        self.slots = slots
        self.closer: AsyncGenerator[None, None] | None = None


# Every loop's closer, kept alive here until its loop shuts down: the owner may be garbage long
# before that, and a closer collected mid-loop would only schedule its cleanup as a task, which
# a loop about to close cancels before it runs (leaking the connection pool).
_closers_lock = threading.Lock()
_closers: dict[asyncio.AbstractEventLoop, set[AsyncGenerator[None, None]]] = {}


def _keep_closer(loop: asyncio.AbstractEventLoop, closer: AsyncGenerator[None, None]) -> None:
    with _closers_lock:
        # Loops closed without shutting down their async generators never run their closers;
        # drop those here so they do not pile up (their clients are lost either way).
        for old in [lp for lp in _closers if lp.is_closed()]:
            del _closers[old]
        _closers.setdefault(loop, set()).add(closer)


def _drop_closer(loop: asyncio.AbstractEventLoop, closer: AsyncGenerator[None, None]) -> None:
    with _closers_lock:
        live = _closers.get(loop)
        if live is not None:
            live.discard(closer)
            if not live:
                del _closers[loop]


async def _close_with_loop(
    owner_ref: weakref.ref[PerLoopSessions], state: LoopState
) -> AsyncGenerator[None, None]:
    """Suspended until the loop runs ``shutdown_asyncgens()`` (or the owner's ``aclose``), then
    closes the loop's client while the loop can still run the aiohttp/httpx cleanup."""
    try:
        yield
    finally:
        loop = asyncio.get_running_loop()
        owner = owner_ref()
        if owner is not None:
            owner._forget(loop, state)
        try:
            await state.client.close()
        finally:
            if state.closer is not None:
                _drop_closer(loop, state.closer)


class PerLoopSessions:
    """Mixin: one :class:`LoopState` per running loop. The class provides ``transport`` (what
    :func:`import_transport` loads), ``limiter`` (or ``None``), ``_new_client()`` and
    ``_pool_size()``, and calls
    ``_init_sessions()`` from its constructor and after unpickling (clients and locks are per
    process and per loop, so pickling keeps neither)."""

    transport: str
    limiter: RateLimiter | None
    _states: dict[asyncio.AbstractEventLoop, LoopState]
    _lock: threading.Lock

    def _new_client(self) -> Client:
        raise NotImplementedError

    def _pool_size(self) -> int:
        raise NotImplementedError

    _transient: tuple[str, ...] = ("_states", "_lock")
    """Attributes pickling leaves out: per process and per loop. A class adds its own."""

    def _init_sessions(self) -> None:
        self._states = {}
        self._lock = threading.Lock()

    # Pickling keeps the configuration only (a grader goes to Ray actors and spawned workers).
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in self._transient:
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_sessions()

    async def _loop_state(self, loop: asyncio.AbstractEventLoop) -> LoopState:
        if self.transport not in _imported:  # not on the running loop: see import_transport
            await asyncio.to_thread(import_transport, self.transport)
        with self._lock:
            state = self._states.get(loop)
            if state is not None:
                return state
            # Forget loops that closed without shutting down their async generators.
            for old in [lp for lp in self._states if lp.is_closed()]:
                del self._states[old]
            state = LoopState(self._new_client(), Slots(self._pool_size()))
            self._states[loop] = state
        # Start the closer on this loop: asyncio's async-generator hooks register it, and the
        # loop's shutdown_asyncgens() then runs its ``finally``, closing the client in time.
        closer = _close_with_loop(weakref.ref(self), state)
        await closer.__anext__()
        state.closer = closer
        _keep_closer(loop, closer)
        return state

    def _forget(self, loop: asyncio.AbstractEventLoop, state: LoopState) -> None:
        with self._lock:
            if self._states.get(loop) is state:
                del self._states[loop]

    async def aclose(self) -> None:
        """Close the running loop's client now (otherwise it closes when the loop shuts down),
        and the rate limiter's state on this loop."""
        await self._close_session()
        if self.limiter is not None:
            await self.limiter.aclose()

    async def _close_session(self) -> None:
        """Close the running loop's client now (otherwise it closes when the loop shuts down)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._states.pop(loop, None)
        if state is not None and state.closer is not None:
            await state.closer.aclose()


class JsonPoster:
    """One loop's aiohttp session posting JSON to ``url``.

    Args:
        url: where every body goes.
        headers: sent with every request (content type, accept, auth).
        pool: connections in the pool.
        who: names the endpoint in error messages (a model name, a URL).
    """

    def __init__(self, url: str, headers: dict[str, str], *, pool: int, who: str) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self.url = url
        self.headers = headers
        self.who = who
        if not any(k.lower() == "accept-encoding" for k in headers):
            self.headers = {**headers, "Accept-Encoding": ACCEPT_ENCODING}
        # Bodies are read and inflated here, bounded (aiohttp's own inflating has no limit: a
        # small gzip body could inflate to gigabytes).
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=pool),
            timeout=aiohttp.ClientTimeout(total=None),  # deadlines are ours (asyncio.timeout)
            skip_auto_headers=("User-Agent",),
            auto_decompress=False,
        )

    async def post(self, body: dict[str, Any], n: int, *, until: float | None = None) -> bytes:
        async with asyncio.timeout_at(until):
            return await self._post(body, n)

    async def _post(self, body: dict[str, Any], n: int) -> bytes:
        data = encode_json(body)
        try:
            async with self.session.post(self.url, data=data, headers=self.headers) as resp:
                raw = bytearray()
                async for piece in resp.content.iter_any():
                    raw += piece
                    if len(raw) > MAX_BODY:
                        raise JudgeHTTPError(
                            f"{self.who}: the response body is longer than {MAX_BODY} bytes",
                            attempts=n,
                        )
                encoding = resp.headers.get("Content-Encoding", "identity")
                try:
                    content = inflate(bytes(raw), encoding, MAX_BODY)
                except _BodyError as exc:
                    if resp.status < 400:
                        raise JudgeHTTPError(f"{self.who}: {exc}", attempts=n) from exc
                    content = bytes(raw)  # the status is what counts; the detail stays raw
                if resp.status >= 400:
                    detail = content.decode("utf-8", "replace")
                    raise http_error(self.who, resp.status, detail, resp.headers, n)
                return content
        except self._aiohttp.ClientConnectionError as exc:
            who = "" if self.who == self.url else f"{self.who}: "
            raise JudgeConnectionError(f"{who}cannot reach {self.url}: {exc}", attempts=n) from exc
        except self._aiohttp.ClientPayloadError as exc:
            raise JudgeHTTPError(f"{self.who}: broken response body: {exc}", attempts=n) from exc

    async def close(self) -> None:
        await self.session.close()
