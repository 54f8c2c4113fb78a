"""The HTTP/1.1 protocol ``rm-service serve`` runs under uvicorn: uvicorn's h11 protocol with
deadlines on reading each request.

Why: uvicorn bounds only the idle time *after* a response (``timeout_keep_alive``), and any byte
received cancels that timer. So a connection that never sends anything, one that sends its head
a byte a second, and one that sends its body a byte a second each stay open for ever, holding a
socket and a file descriptor outside admission control (which counts records, not connections).

The deadlines, like nginx's ``client_header_timeout`` and ``client_body_timeout``:

* **head**: a request's head (request line and headers) must be complete within
  ``header_timeout`` seconds of the connection opening, or of the request's first byte when it
  follows another request on a kept-alive connection;
* **body**: its body must be complete within ``body_timeout`` seconds of the head;
* **idle** between requests: uvicorn's own ``timeout_keep_alive``;
* **send**: a response the client stops reading (the socket's buffer full) must drain within
  ``body_timeout`` seconds of filling it, or the connection is dropped: a client that never
  reads its answer would otherwise hold the socket and the answer's memory for ever.
* **shutdown**: uvicorn waits for every request in flight before it exits; the protocol's
  ``shutdown`` drains the admission of the app it serves (``Admission.drain``), so each is
  answered within the app's ``shutdown_grace``.

A deadline runs from the start of its phase and is not restarted by each byte, so trickling
cannot extend it. When one passes, a client that has begun a request and has no response yet
gets ``408`` with ``Connection: close``; then the connection is closed (the app, if it was
reading the body, sees a disconnect). A connection that never sent a byte is just closed.

h11, not httptools, whichever is installed: one implementation, tested here; parsing is not
what a reward server spends its time on. Pass the class with its settings as uvicorn's ``http``
(:func:`protocol`): a ``functools.partial`` of a module-level class pickles, so ``--workers N``
get the same deadlines.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, Literal

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = ["DeadlineH11Protocol", "protocol"]

Phase = Literal["head", "body"]


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus the head and body deadlines (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout: float,
        body_timeout: float,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: Phase | None = None
        self._stalled: asyncio.TimerHandle | None = None

    # -- uvicorn's hooks, each followed by a look at where the request now stands --

    def connection_made(  # type: ignore[override]  # as uvicorn's; asyncio says BaseTransport
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self._track()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def shutdown(self) -> None:
        """The server begins a graceful shutdown (uvicorn calls this on every connection): drain
        its app's admission, so queued requests are answered now and requests in flight soon,
        instead of uvicorn waiting for each to reach its deadline. Only this server's app: other
        apps in the process (tests, an embedding program) keep serving."""
        admission = _admission_of(self.app)
        if admission is not None:
            admission.drain()
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._unstall()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(self.body_timeout, self._stall_expired)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._unstall()

    def _unstall(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _stall_expired(self) -> None:
        self._stalled = None
        if self.transport is None or self.transport.is_closing():
            return
        prefix = "{}:{} - ".format(*self.client) if self.client else ""
        self.logger.info(
            "%sdropping the connection: the client read none of its response for %gs "
            "(--body-timeout)",
            prefix,
            self.body_timeout,
        )
        self.transport.abort()  # a close would wait for the unread response to drain

    # -- the deadline --

    def _track(self) -> None:
        """Arm, keep or cancel the deadline for the phase the client's side is in now."""
        if self.transport is None or self.transport.is_closing():
            self._cancel()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self.timeout_keep_alive_task is not None:
                self._cancel()  # idle between requests: uvicorn's keep-alive timer runs
            else:
                self._arm("head", self.header_timeout)
        elif state is h11.SEND_BODY:
            self._arm("body", self.body_timeout)
        else:
            self._cancel()  # the request is in: its grading has its own deadline

    def _arm(self, phase: Phase, seconds: float) -> None:
        if self._phase == phase:
            return  # a phase's deadline runs from its start, whatever arrives meanwhile
        self._cancel()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._phase = None

    def _expire(self) -> None:
        phase = self._phase
        self._deadline = None
        self._phase = None
        if self.transport.is_closing():
            return
        if phase == "head":
            begun = bool(self.conn.trailing_data[0])  # bytes of a head, not yet a request
            answer = begun
            flag, seconds = "--header-timeout", self.header_timeout
        else:
            begun = True
            answer = self.conn.our_state is h11.SEND_RESPONSE  # no response started yet
            flag, seconds = "--body-timeout", self.body_timeout
        if begun:
            prefix = "{}:{} - ".format(*self.client) if self.client else ""
            self.logger.info(
                "%sclosing the connection: request %s not complete within %gs (%s)",
                prefix,
                phase,
                seconds,
                flag,
            )
        if answer:
            detail = f"request {phase} not complete within {seconds:g}s ({flag}); closing"
            self.transport.write(_response_408(detail))
        self.transport.close()  # connection_lost tells a running app that the client is gone


def _response_408(detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def _admission_of(app: Any) -> Any:
    """The ``Admission`` of the app a connection serves (``app.state.admission``, set by
    ``create_app``), under uvicorn's wrappers, each of which keeps the app it wraps as ``.app``;
    ``None`` for another app."""
    for _ in range(8):
        admission = getattr(getattr(app, "state", None), "admission", None)
        if admission is not None:
            return admission
        app = getattr(app, "app", None)
        if app is None:
            break
    return None


def protocol(header_timeout: float, body_timeout: float) -> Any:
    """uvicorn's ``http`` argument: :class:`DeadlineH11Protocol` with these deadlines (seconds,
    > 0; ``rm-service serve`` checks its flags and holds the defaults)."""
    return functools.partial(
        DeadlineH11Protocol, header_timeout=header_timeout, body_timeout=body_timeout
    )
