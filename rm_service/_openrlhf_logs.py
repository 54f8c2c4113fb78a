"""The ``/get_reward`` face's log: unscored records and queries that do not hold their prompt,
counted and warned about at most once a minute.

Why its own module: a trainer sees only numbers and flags, and the service's log is where
someone reads *why*; these counters are that, apart from the protocol itself
(:mod:`rm_service._openrlhf`, which re-exports them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from rm_service._query_split import QuerySplit
from rm_service._result import RecordResult

__all__ = ["PromptLog", "UnscoredLog"]

logger = logging.getLogger("rm_service.openrlhf")


class _RateLimitedLog:
    """Counts of one kind of trouble since the last WARNING, and at most one WARNING every
    ``every_s`` seconds, counting everything since the previous one.

    A trainer sees only numbers and flags; the service's log is where someone reads *why*.
    Rate-limited because OpenRLHF calls once per sample, from many threads: one line per call
    would flood the log of a training run.
    """

    def __init__(
        self,
        face: str,
        log: logging.Logger = logger,
        *,
        every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._face = face
        self._log = log
        self._every = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._reset()

    def _reset(self) -> None:
        self._total = self._bad = self._batches = 0
        self._kinds: dict[str, int] = {}
        self._first: str | None = None

    def _count(self, total: int, bad: Sequence[tuple[str, str]]) -> None:
        """Count a batch of ``total`` items, ``bad`` of them ``(kind, why)``; warn if it is time."""
        with self._lock:
            self._total += total
            self._batches += 1
            self._bad += len(bad)
            for kind, why in bad:
                self._kinds[kind] = self._kinds.get(kind, 0) + 1
                if self._first is None:
                    self._first = why
            now = self._clock()
            if not self._bad or (self._last is not None and now - self._last < self._every):
                return
            span = (
                ""
                if self._last is None
                else f" in {self._batches} batch(es) over the last {now - self._last:.0f} s"
            )
            kinds = ", ".join(f"{k}={n}" for k, n in sorted(self._kinds.items()))
            msg = (
                f"{self._face}: {self._bad}/{self._total} {self._message(span, kinds)} "
                f"(at most one such warning every {self._every:g} s)"
            )
            self._last = now
            self._reset()
        self._log.warning(msg)

    def _message(self, span: str, kinds: str) -> str:
        raise NotImplementedError


class UnscoredLog(_RateLimitedLog):
    """A WARNING with counts when records come back unscored (``rm_error = 1``)."""

    def observe(self, results: Sequence[RecordResult], reward: str) -> None:
        """Count ``results`` (one batch of ``reward``) and warn if it is time to."""
        bad = []
        for r in results:
            if r.reward is None:
                kind, why = _first_error(r)
                bad.append((kind, f"reward {reward!r}, {why}"))
        self._count(len(results), bad)

    def _message(self, span: str, kinds: str) -> str:
        return f"records unscored{span} ({kinds}); first error: {self._first}"


_CUT_MEANING: dict[str, str] = {
    "prompt_end": "after the prompt's last characters (prompt_end)",
    "marker": "after the last assistant-turn marker (marker)",
    "divergence": "where the query stops matching its prompt, truncated on the right (divergence)",
    "whole": "nowhere: the whole query is graded (whole)",
}


class PromptLog(_RateLimitedLog):
    """A WARNING with counts when queries do not hold their prompt (``prompt_not_found = 1``):
    their response was a guess (:meth:`ChatTokenStripper.split`), never silently."""

    def observe(self, splits: Sequence[QuerySplit]) -> None:
        """Count ``splits`` (one batch) and warn if it is time to."""
        self._count(len(splits), [(s.cut, s.detail) for s in splits if s.prompt_not_found])

    def _message(self, span: str, kinds: str) -> str:
        cuts = "; ".join(_CUT_MEANING[k] for k in sorted(self._kinds))
        return (
            f"queries do not contain their prompt{span} ({kinds}); first: {self._first}. "
            f"Their response was cut {cuts}; extra_logs.prompt_not_found is 1 for each"
        )


def _first_error(result: RecordResult) -> tuple[str, str]:
    """``(kind, "'<component>': <kind>: <error>")`` of an unscored record's first error."""
    for name, err in result.errors.items():
        return err.kind, f"{name!r}: {err.kind}: {err.error[:300]}"
    return "internal", "no result (the grading pass failed; see the log above)"
