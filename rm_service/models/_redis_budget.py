"""An RPM/TPM budget shared by every replica through Redis (``judge: {rate_limit_redis: ...}``).

Why: a provider's limit is per API key, not per process. N replicas each running the local
:class:`~rm_service.models._limits.RateLimiter` at the configured rate would together send N
times the limit and live on 429s. :class:`RedisRateLimiter` keeps the same GCRA, with the same
semantics (``burst_s``, large costs charged in full, :meth:`settle` correcting TPM), but the
theoretical arrival times live in Redis and are read, advanced and written by one Lua script per
:meth:`acquire` (one ``EVALSHA``), so reservations from all replicas are serialised by Redis.
The script reads Redis's own clock (``TIME``), so replicas' clocks need not agree.

* **Settling** is folded into the next acquire: :meth:`settle` is called from synchronous code
  after a call, so the correction is kept and sent with this replica's next reservation (an
  extra round trip per call would double the Redis traffic for a correction that only matters
  to later calls anyway). If that reservation fails, Redis may still have applied it (a
  timeout while Redis was slow), so only a charge is sent again, never a refund: applied twice,
  a charge keeps the replicas under the limit, a refund would not.
* **Redis down or slow**: the limiter falls back to a local one, warned once per outage and
  counted (the link's circuit breaker probes Redis again after ``retry_after``). The local
  fallback runs at the configured rate divided by the number of replicas that used the budget
  in the last minute, which the script also tracks (a sorted set of replica ids): N replicas
  that lose Redis together then still stay under the limit together, as long as no replica
  joins meanwhile. Before Redis has ever answered the count is unknown and the full rate is used
  (a replica alone is the common case at start-up). Cancellation and ``max_wait`` behave as
  locally: a refused reservation reserves nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
import weakref
from typing import Any

from rm_service.models._limits import RateLimiter
from rm_service.models._redis import DEFAULT_RETRY_AFTER, DEFAULT_TIMEOUT, RedisLink, redacted

__all__ = ["RedisRateLimiter"]

_REPLICA_WINDOW_S = 60.0

# KEYS: request TAT, token TAT, replicas (sorted set). ARGV: request interval, request
# tolerance, token interval, token tolerance, tokens, max wait (-1: none), token correction,
# replica id, replica window. Returns {granted, wait seconds (string), replicas}.
_GCRA = """
pcall(redis.replicate_commands)  -- before Redis 5, TIME is allowed before writes only so
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local req_int, req_tol = tonumber(ARGV[1]), tonumber(ARGV[2])
local tok_int, tok_tol = tonumber(ARGV[3]), tonumber(ARGV[4])
local tokens, max_wait = tonumber(ARGV[5]), tonumber(ARGV[6])
local correction, window = tonumber(ARGV[7]), tonumber(ARGV[9])
redis.call('ZADD', KEYS[3], now, ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
redis.call('PEXPIRE', KEYS[3], math.floor(window * 2000))
local replicas = redis.call('ZCARD', KEYS[3])
local req_tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local tok_tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tok_int > 0 and correction ~= 0 then
  tok_tat = tok_tat + correction * tok_int
end
local start = now
if req_int > 0 then start = math.max(start, req_tat - req_tol) end
if tok_int > 0 and tokens > 0 then start = math.max(start, tok_tat - tok_tol) end
local wait = start - now
local granted = 1
if max_wait >= 0 and wait > max_wait then
  granted = 0
else
  if req_int > 0 then req_tat = math.max(req_tat, start) + req_int end
  if tok_int > 0 and tokens > 0 then tok_tat = math.max(tok_tat, start) + tokens * tok_int end
end
-- A TAT matters until it has passed (plus its tolerance); then it may expire.
if req_int > 0 then
  local ttl = math.max(1000, math.ceil((req_tat - now + req_tol + 1) * 1000))
  redis.call('SET', KEYS[1], string.format('%.6f', req_tat), 'PX', ttl)
end
if tok_int > 0 then
  local ttl = math.max(1000, math.ceil((tok_tat - now + tok_tol + 1) * 1000))
  redis.call('SET', KEYS[2], string.format('%.6f', tok_tat), 'PX', ttl)
end
return {granted, string.format('%.6f', wait), replicas}
"""


class RedisRateLimiter(RateLimiter):
    """A :class:`RateLimiter` whose reservations are shared through Redis under ``key``.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://``.
        key: names the budget; every replica (and every judge spec) with the same key shares it.
        rpm, tpm, burst_s: as :class:`RateLimiter`, for the whole budget (all replicas).
        timeout: seconds to connect and per operation before falling back to the local limiter.
        retry_after: seconds Redis is skipped after a failure before it is tried again.
    """

    def __init__(
        self,
        url: str,
        key: str,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        burst_s: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        super().__init__(rpm, tpm, burst_s=burst_s)
        self.link = RedisLink(url, role="budget", timeout=timeout, retry_after=retry_after)
        self.key = key
        self._keys = [f"rm:budget:{key}:req", f"rm:budget:{key}:tok", f"rm:budget:{key}:who"]
        self._replica = uuid.uuid4().hex
        self._replicas = 1  # last count Redis reported
        self._pending_tokens = 0.0  # settle() corrections not yet sent
        self._fallback: tuple[int, RateLimiter] | None = None
        self._redis_until = 0.0  # monotonic start of the last slot Redis booked for us
        self._shared_lock = threading.Lock()
        self._scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return (
            f"RedisRateLimiter({redacted(self.link.url)!r}, key={self.key!r}, rpm={self.rpm}, "
            f"tpm={self.tpm}, burst_s={self.burst_s})"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {
            "url": self.link.url,
            "key": self.key,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "burst_s": self.burst_s,
            "timeout": self.link.timeout,
            "retry_after": self.link.retry_after,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        s = dict(state)
        type(self).__init__(self, s.pop("url"), s.pop("key"), s.pop("rpm"), s.pop("tpm"), **s)

    @property
    def replicas(self) -> int:
        """How many replicas used this budget in the last minute, as Redis last said."""
        return self._replicas

    def stats(self) -> dict[str, int]:
        return self.link.stats()

    async def acquire(self, tokens: float = 0.0, *, max_wait: float = float("inf")) -> bool:
        """As :meth:`RateLimiter.acquire`, against the shared budget (or the local fallback
        while Redis is unreachable)."""
        link = self.link
        if link.available("acquire"):
            with self._shared_lock:
                correction, self._pending_tokens = self._pending_tokens, 0.0
            try:
                granted, wait = await link.run(
                    "acquire", lambda c: self._eval(c, tokens, max_wait, correction)
                )
            except Exception as exc:  # Redis failed: the local limiter keeps us under the limit
                if correction > 0:
                    # A failure may come after Redis ran the script (a timeout while it was
                    # slow), so a correction sent again may be applied twice. A charge twice
                    # errs under the limit; a refund twice would let replicas exceed it, so
                    # only a charge is kept for the next try.
                    with self._shared_lock:
                        self._pending_tokens += correction
                link.failed("acquire", exc)
            else:
                link.succeeded()
                if not granted:
                    return False
                # Slots the local fallback booked while Redis was away are still being used:
                # a slot from Redis waits them out, or both schedules ran side by side (up to
                # three times the limit after an outage).
                now = time.monotonic()
                fallback = self._fallback
                if fallback is not None:  # shifted whole, so Redis's spacing is kept
                    wait += max(0.0, fallback[1].booked_until() - now)
                    if wait > max_wait:
                        return False  # the Redis slot goes unused: under the limit, not over
                with self._shared_lock:
                    self._redis_until = max(self._redis_until, now + wait)
                if wait > 0:
                    await asyncio.sleep(wait)
                return True
        link.count("acquire", "fallback")
        # Likewise, slots Redis booked for this replica before it went away are still being
        # used: the local share starts after them.
        hold = self._redis_until - time.monotonic()
        if hold > 0:
            if hold > max_wait:
                return False
            await asyncio.sleep(hold)
            max_wait -= hold
        return await self._local().acquire(tokens, max_wait=max_wait)

    def settle(self, estimated: float, actual: float) -> None:
        """Correct a TPM charge; sent to Redis with this replica's next acquire (and applied
        to the local fallback, which then charged it, while Redis is down)."""
        if not self._tok_interval or actual < 0:
            return
        if self.link.up:
            with self._shared_lock:
                self._pending_tokens += actual - estimated
        else:
            self._local().settle(estimated, actual)

    async def aclose(self) -> None:
        await self.link.aclose()

    # -- internals --

    async def _eval(
        self, client: Any, tokens: float, max_wait: float, correction: float
    ) -> tuple[bool, float]:
        script = self._scripts.get(client)
        if script is None:  # one per client (per loop): EVALSHA, loading the script if missing
            script = self._scripts[client] = client.register_script(_GCRA)
        max_wait_arg = -1.0 if max_wait == float("inf") else max(0.0, max_wait)
        reply = await script(
            keys=self._keys,
            args=[
                repr(self._req_interval),
                repr(self._req_tolerance),
                repr(self._tok_interval),
                repr(self._tok_tolerance),
                repr(float(tokens)),
                repr(max_wait_arg),
                repr(correction),
                self._replica,
                repr(_REPLICA_WINDOW_S),
            ],
        )
        granted, wait, replicas = int(reply[0]), float(reply[1]), int(reply[2])
        self._replicas = max(1, replicas)
        return bool(granted), wait

    def _local(self) -> RateLimiter:
        """The fallback: this budget's share for one of the replicas last seen."""
        n = self._replicas
        with self._shared_lock:
            if self._fallback is None or self._fallback[0] != n:
                local = RateLimiter(
                    self.rpm / n if self.rpm else None,
                    self.tpm / n if self.tpm else None,
                    burst_s=self.burst_s,
                )
                self._fallback = (n, local)
            return self._fallback[1]
