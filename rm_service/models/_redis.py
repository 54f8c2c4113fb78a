"""Redis as a shared, optional tier: the judge cache's store across replicas.

Why Redis: N replicas of ``rm-service serve`` behind a load balancer each keep their own memory
cache, so a verdict one replica paid for would be paid for again by the next replica that gets
the same request. A Redis store shared by every replica makes it a hit everywhere. (The shared
rate-limit budget, :mod:`rm_service.models._redis_budget`, uses the same connection machinery.)

Design points:

* **Optional and lazy**: ``redis`` (the ``redis`` extra) is imported on the first operation,
  never by ``import rm_service``; a missing package is a clear error naming the extra.
* **One client per event loop**: a ``redis.asyncio`` client and its pooled connections belong to
  the loop that opened them, while a cache is shared by every loop and thread of a process. So
  :class:`RedisLink` keeps a client per running loop (clients of loops that have closed are
  dropped), and :meth:`RedisLink.aclose` closes the calling loop's.
* **Short timeouts**: connect and each operation time out after ``timeout`` seconds (and the
  whole operation is bounded by ``asyncio.timeout`` besides), so a slow or stopped Redis costs a
  bounded wait, never a stalled grader. One immediate retry heals a pooled connection that went
  stale when Redis restarted.
* **A circuit breaker, not a give-up**: unlike a corrupt SQLite file, a Redis that is down
  usually comes back (a restart, a failover, a network blip). On an error the link opens: one
  warning for the outage, then every operation skips Redis (counted, no wait) until
  ``retry_after`` seconds have passed; then a single operation probes it. A successful probe
  closes the link (logged once); a failed one opens it for another ``retry_after``. A Redis that
  flaps warns at most once a minute (:data:`WARN_INTERVAL_S`). Grading never
  waits on a Redis that is known to be down, and the shared tier returns without a restart.
* **Counted**: errors, skips, hits and misses are counted on the link (:meth:`RedisLink.stats`)
  and in process-wide totals (:func:`backend_totals`) that the service's ``/metrics`` reads at
  scrape time, so nothing here knows about the HTTP layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from rm_service._exceptions import ConfigError
from rm_service.models._base import ChatResult
from rm_service.models._cache import decode_result, encode_result, kept

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_TIMEOUT",
    "MAX_TTL",
    "REDIS_SCHEMES",
    "RedisLink",
    "RedisStore",
    "backend_totals",
    "check_redis_url",
    "redacted",
]

logger = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_TIMEOUT = 0.25
DEFAULT_RETRY_AFTER = 5.0
MAX_TTL = 1e9
"""The longest ``ttl`` (seconds, about 31 years): Redis refuses an expiry past its clock's range
(``ttl: 1e20`` failed every write, so nothing was ever shared), and ``inf`` cannot be sent at
all. An entry that should never expire has no ``ttl``."""
WARN_INTERVAL_S = 60.0
"""A Redis that flaps warns at most once per this many seconds (later outages log at DEBUG)."""

_TOTALS: Counter[tuple[str, str, str]] = Counter()
_TOTALS_LOCK = threading.Lock()


def backend_totals() -> dict[tuple[str, str, str], int]:
    """Process-wide counts since start: ``(role, op, outcome) -> n``.

    ``role`` is ``cache`` or ``budget``; ``op`` is ``get``/``set`` (cache) or ``acquire``
    (budget); ``outcome`` is ``error`` (the operation failed), ``skipped`` (not tried: the link
    was open after a failure), ``hit``/``miss`` (cache reads that worked) or ``fallback``
    (a budget served by the local limiter).
    """
    with _TOTALS_LOCK:
        return dict(_TOTALS)


def _count(role: str, op: str, outcome: str) -> None:
    with _TOTALS_LOCK:
        _TOTALS[role, op, outcome] += 1


def check_redis_url(url: str, field: str) -> str:
    """``url`` if it is a Redis URL; else a ``ConfigError`` naming ``field``."""
    scheme = urlsplit(url).scheme
    if scheme not in REDIS_SCHEMES:
        raise ConfigError(
            f"{field}: expected a redis://, rediss:// or unix:// URL, got {redacted(url)!r}"
        )
    return url


def redacted(url: str) -> str:
    """``url`` without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisLink:
    """A Redis URL used from any loop and thread: a client per loop, a breaker, counters.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://``.
        role: what it serves (``cache`` or ``budget``), for logs and counters.
        timeout: seconds to connect, and for each operation.
        retry_after: seconds the link stays open (Redis skipped) after a failure before one
            operation probes it again.
    """

    def __init__(
        self,
        url: str,
        *,
        role: str,
        timeout: float = DEFAULT_TIMEOUT,
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        check_redis_url(url, "url")
        if timeout <= 0 or retry_after <= 0:
            raise ValueError("timeout and retry_after must be > 0")
        if importlib.util.find_spec("redis") is None:  # found, not imported: see the docstring
            raise ConfigError(
                f"{redacted(url)} needs the redis client: pip install 'rm-service[redis]'"
            )
        self.url = url
        self.role = role
        self.timeout = float(timeout)
        self.retry_after = float(retry_after)
        self._lock = threading.Lock()
        self._clients: dict[asyncio.AbstractEventLoop, Redis] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._last_warning = -WARN_INTERVAL_S
        self._outage_level = logging.WARNING
        self._counts: Counter[tuple[str, str]] = Counter()

    def __repr__(self) -> str:
        return f"RedisLink({redacted(self.url)!r}, role={self.role!r})"

    # Pickling keeps the settings; clients, breaker and counters belong to one process.
    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("url", "role", "timeout", "retry_after")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        url = state.pop("url")
        type(self).__init__(self, url, **state)

    @property
    def up(self) -> bool:
        """False while the link is open after a failure."""
        return self._down_since is None

    def stats(self) -> dict[str, int]:
        """This link's counts: ``"<op>_<outcome>" -> n`` (see :func:`backend_totals`)."""
        with self._lock:
            return {f"{op}_{outcome}": n for (op, outcome), n in self._counts.items()}

    def count(self, op: str, outcome: str) -> None:
        with self._lock:
            self._counts[op, outcome] += 1
        _count(self.role, op, outcome)

    # -- the breaker --

    def available(self, op: str) -> bool:
        """Whether to try Redis now: yes while it works; while it is down, only one caller per
        ``retry_after`` (the probe). A caller told no is counted as ``skipped``."""
        if self._down_since is None:
            return True
        now = time.monotonic()
        with self._lock:
            if self._down_since is not None and now < self._next_probe:
                probe = False
            else:
                self._next_probe = now + self.retry_after
                probe = True
        if not probe:
            self.count(op, "skipped")
        return probe

    def succeeded(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            logger.log(
                self._outage_level,
                "%s redis %s is back after %.1f s; using it again",
                self.role,
                redacted(self.url),
                time.monotonic() - since,
            )

    def failed(self, op: str, exc: BaseException) -> None:
        self.count(op, "error")
        now = time.monotonic()
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = now
                self._next_probe = now + self.retry_after
                loud = now - self._last_warning >= WARN_INTERVAL_S
                self._outage_level = logging.WARNING if loud else logging.DEBUG
                if loud:
                    self._last_warning = now
        if first:
            logger.log(
                self._outage_level,
                "%s redis %s failed on %s (%s: %s); going on without it, trying again every "
                "%g s (failures are counted in /metrics)",
                self.role,
                redacted(self.url),
                op,
                type(exc).__name__,
                exc,
                self.retry_after,
            )

    # -- clients --

    def client(self) -> Redis:
        """The client of the running loop (created on first use)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is not None:
            return client
        with self._lock:
            for old in [lp for lp in self._clients if lp.is_closed()]:
                del self._clients[old]  # its loop is gone; so are its connections' transports
            client = self._clients.get(loop)
            if client is None:
                client = self._clients[loop] = self._new_client()
            return client

    def _new_client(self) -> Redis:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
        )

    async def run(self, op: str, fn: Any) -> Any:
        """``await fn(client)`` within the time limit; raises what it raises (or
        ``TimeoutError``). The caller records the outcome with :meth:`succeeded`/:meth:`failed`.
        """
        client = self.client()
        # Connect plus two tries of the operation (one retry), with room for scheduling.
        async with asyncio.timeout(self.timeout * 3 + 0.05):
            return await fn(client)

    def close(self) -> None:
        """Close the running loop's client without awaiting (in a task), and forget clients of
        loops that have closed. Clients of other running loops are theirs to close."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            client = self._clients.pop(loop, None) if loop is not None else None
            for old in [lp for lp in self._clients if lp.is_closed()]:
                del self._clients[old]
        if client is not None and loop is not None:
            task = loop.create_task(client.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close this loop's client (it reopens on next use). A client belongs to its loop, so
        each loop that used the link closes its own: closing it from another loop's thread
        would race that loop's end and leave its sockets open."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(loop, None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
        closing = [t for t in self._closing if t.get_loop() is loop]
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)


class RedisStore:
    """The judge cache's shared tier (``cache: {redis: ...}``): answers under
    ``<prefix><key>``, with an optional TTL. Never raises: a failed read is a miss, a failed
    write is skipped, both counted (see the module docstring)."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        ttl: float | None = None,
        prefix: str = "rm:judge:",
        timeout: float = DEFAULT_TIMEOUT,
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        if ttl is not None and not 0 < ttl <= MAX_TTL:  # NaN fails too
            raise ValueError(
                f"ttl must be > 0 and at most {MAX_TTL:g} seconds (leave it unset for entries "
                f"that never expire), got {ttl}"
            )
        self.link = RedisLink(url, role="cache", timeout=timeout, retry_after=retry_after)
        self.ttl = ttl
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"RedisStore({redacted(self.link.url)!r}, ttl={self.ttl})"

    @property
    def description(self) -> str:
        return redacted(self.link.url)

    def stats(self) -> dict[str, int]:
        return self.link.stats()

    async def get(
        self, key: str, keep: Callable[[ChatResult], bool] | None = None
    ) -> ChatResult | None:
        """The stored answer, or ``None`` (a miss): absent, unreadable, or refused by ``keep``
        (see :meth:`~rm_service.models._cache.Store.get`). A refused value was counted as a
        hit, so ``rm_cache_backend_hits_total`` rose for lookups that each paid a judge call."""
        link = self.link
        if not link.available("get"):
            return None
        try:
            raw = await link.run("get", lambda c: c.get(self.prefix + key))
        except Exception as exc:  # any failure of an optional tier: a miss, counted
            link.failed("get", exc)
            return None
        link.succeeded()
        result: ChatResult | None = None
        if raw is not None:
            # A corrupt or foreign value (bytes that are not UTF-8 included) is a miss, no crash.
            with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
                result = decode_result(raw.decode() if isinstance(raw, bytes) else str(raw))
        result = kept(result, keep)
        link.count("get", "miss" if result is None else "hit")
        return result

    async def put(self, key: str, result: ChatResult) -> None:
        link = self.link
        if not link.available("set"):
            return
        value = encode_result(result)
        px = None if self.ttl is None else max(1, int(self.ttl * 1000))
        try:
            await link.run("set", lambda c: c.set(self.prefix + key, value, px=px))
        except Exception as exc:  # the caller keeps its answer: see the module docstring
            link.failed("set", exc)
            return
        link.succeeded()

    def close(self) -> None:
        self.link.close()

    async def aclose(self) -> None:
        await self.link.aclose()
