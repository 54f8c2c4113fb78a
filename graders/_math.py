"""``MathGrader``: is the response's final answer equivalent to the gold answer? (math-verify).

math-verify bounds its own work with ``signal.alarm``, which only works on a process's main thread
and raises a ``BaseException`` that ``except Exception`` lets through. A reward service runs on
event loops and worker threads, so the work goes to a process pool instead: see
:mod:`graders._math_pool` for the pool and why it is built the way it is. This module is the grader.

A GRPO step grades many completions of each prompt against the same gold, most of them either
the gold written out or a wrong answer, so the per-check costs are what matter: checks that queue
while the workers are busy travel to a worker many per message, checks against one gold go to the
worker that has it parsed when that worker is free, completions that reach the same answer share
one check (:func:`_check_key`), and once a worker has read a gold, a response that writes it
exactly, or whose final part is known to hold no answer, is answered here
(:meth:`MathGrader._decided`). The completions of a group that may be answered so wait for the
first check on their gold rather than each going to a worker before it is read
(:meth:`MathGrader._await_gold`).
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

from graders._base import BaseGrader, Unscored, grader
from graders._math_answer_units import answer_unit
from graders._math_echo import echo_of_query, query_text
from graders._math_fast import answer_key, fast_text, gold_key
from graders._math_pool import _run_in_pool, shutdown_math_pool
from graders._math_text import canonical_tags, final_part
from graders._math_worker import (
    FAST_KEY,
    GOLD_UNIT,
    NO_ANSWER,
    check_equivalence,
    check_golds,
)
from graders._text import as_gold_list, as_text, gold_list_note, no_gradable_gold
from rm_service._result import GraderScore
from rm_service.models._coalesce import Coalescer

__all__ = ["MathGrader", "shutdown_math_pool"]

_GOLD = "reference_response"
"""The gold's field; it may hold one gold or a list of acceptable ones."""

_GOLDS_KEPT = 4096
"""Golds whose reading by a worker a grader keeps (see ``MathGrader._decided``)."""
_EXACT_MAX = 100_000
"""Longer responses always go to a worker: the event loop only does short text work."""
_CHECKS_KEPT = 4096
"""Worker answers a grader remembers by (gold, answer), for the repeats of a GRPO group."""
_KEY_MAX = 2000
"""Golds and final parts up to this many characters key a check by their text; longer ones are
checked without sharing, so the remembered keys stay small."""
_READINGS_KEPT = 4096
_GOLD_WAIT_S = 0.5
"""How long a completion waits for the first check in flight on its gold (``_await_gold``)
before going to a worker itself: that check usually answers in milliseconds, but a slow one (a
sibling's huge power) must not hold the group's answers for the whole timeout."""
"""Final parts whose answer key and unit are remembered, and golds whose fast-path spelling is."""


def _answer_part(response: str) -> tuple[str, bool] | None:
    """The response's final part and whether it has an ``<answer>`` block, when reading them
    here is bounded work for the event loop (few answer blocks: the block pattern is quadratic
    in unclosed ones); ``None`` then, or when reasoning never ended: only a worker reads it."""
    if len(response) > _EXACT_MAX:
        return None
    blocks = canonical_tags(response).count("<answer>")
    final = final_part(response) if blocks <= 4 else None
    return None if final is None else (final, blocks > 0)


_UNREAD = object()


class _KnownGold(NamedTuple):
    """What a worker's answer told of a gold with math: enough to decide some checks here."""

    fast_key: str | None
    """Its text for the exact-match fast path, when it may take it."""
    shown: str
    """Its reading, as results show it."""
    unit: str | None
    """Its unit: a check on a gold with one compares units first, in a worker."""


@functools.lru_cache(maxsize=_READINGS_KEPT)
def _answer_of(final: str) -> tuple[str, str] | None:
    """:func:`~graders._math_fast.answer_key`, remembered: the completions of one prompt often
    end the same way, and a final part is read on every check of it."""
    return answer_key(final)


def _answer(final: str) -> tuple[str, str] | None:
    return _answer_of(final) if len(final) <= _KEY_MAX else answer_key(final)


@functools.lru_cache(maxsize=_READINGS_KEPT)
def _spelled(gold: str) -> str | None:
    """The gold as the fast path would spell it, were it fit (:func:`~graders._math_fast.gold_key`
    read as math): only a worker can say whether it is, but an answer spelled otherwise is
    no exact match whatever it says, so only one spelled so waits for it."""
    return gold_key(gold, "wrapped")


def _check_key(
    gold: str,
    final: str | None,
    answer: tuple[str, str] | None,
    unit: Callable[[], str | None],
) -> tuple[str | None, ...] | None:
    """What decides a single-gold check besides the gold, or ``None`` to check without sharing.

    The worker's verdict is a function of the gold, the response's final part (reasoning and
    everything before the answer block never count) and the unit it reads for the answer
    (:func:`~graders._math_answer_units.answer_unit`), so completions of one prompt that end the
    same way share one check. Where the fast path can read the answer, two final parts with the
    same :func:`~graders._math_fast.answer_key` hold the same expression read the same way
    ("So the answer is \\boxed{12}." and "\\boxed{ 12 }"), so they share one too: a group of
    sixteen completions with three distinct answers costs three checks, not sixteen.

    Why the unit is part of the key: the same final part is unit-checked inside an
    ``<answer>`` block and not in bare prose, and ``$5$ cm`` has the answer key of ``$5$ m``;
    without it a verdict was served to a response it was not reached for (``<answer>5
    cm</answer>`` scored 1.0 against ``5 m`` after a completion wrote ``5 cm`` untagged).
    ``unit`` reads it, only for a key: on this event loop, a final part of 100k characters
    and thousands of numbers cost 60 ms to read, where an unshared check needs no unit here.
    """
    if len(gold) > _KEY_MAX:
        return None
    if answer is not None:
        return (gold, unit(), "answer", *answer)
    if final is not None and len(final) <= _KEY_MAX:
        return (gold, unit(), "final", final)
    return None


# --- the grader ----------------------------------------------------------------------------------


@grader
class MathGrader(BaseGrader):
    """1.0 when the response's final answer is mathematically equivalent to the gold, else 0.0.

    The final answer is the last ``\\boxed{}``, else an "answer is ..." statement, else the last
    math expression or number; text inside an unfinished ``<think>`` block is not an answer, and
    only the text after ``</think>`` counts. Equivalence is decided by math-verify, gold first (it
    is not symmetric: an inequality gold accepts an interval prediction, not the other way round).
    Golds may be bare LaTeX (``\\frac{1}{2}``), delimited (``$x^2$``), boxed, or plain numbers.

    Outcomes: a gold with no readable answer is unscored (``invalid_input``); a response with no
    extractable answer scores 0.0; a check that runs past ``timeout`` is unscored (``timeout``);
    any other failure is unscored (``internal``). An error is never a 1.0.

    Several acceptable golds: ``reference_response`` may be a list or tuple of golds, or a numpy
    array (verl passes the parquet's ``ground_truth`` as it is, often a list); numpy scalars are
    read as the numbers they hold. The score is 1.0 if any gold is equivalent; ``gold_index`` in
    the metadata (and ``reference_response[i]`` in the reason) says which, ``golds_skipped``
    which golds held no math and were passed over. A list that is empty or nested, an item that
    is neither a string nor a finite number, or a list where no gold holds math, is
    ``invalid_input``. All golds go to a worker as one job (the response is parsed once), and
    each gold's check gets ``timeout`` of its own, so a list of ``n`` is bounded by
    ``n * timeout``: a gold that runs out of time is passed over (``golds_timed_out``) and the
    next one tried; if none matches, the result is unscored (``timeout``), not 0.0, since the
    gold that timed out might have matched.

    Args:
        name: result name (default ``"math"``).
        timeout: seconds one check may run in a worker (parse and verify), per gold; past it the
            result is unscored and a worker that does not stop is killed and replaced.
        workers: size of the process-wide worker pool (default ``min(4, cpu_count)``); the pool
            is shared by all math graders and grows to the largest size asked for.
        queue_timeout: seconds a check may wait for a free worker before it is unscored
            (``timeout``); ``None`` waits as long as it takes.
        echo_check: where the record has a ``query`` (text or chat messages; anything else is
            ``invalid_input``), an equivalent answer that is the query's own expression written
            back (``17 \\times 23`` for "What is 17 * 23?") scores 0.0,
            with ``echo`` in the metadata (see :mod:`graders._math_echo`). On by default.
    """

    required_fields = ("response", "reference_response")
    optional_fields: tuple[str, ...] = ("query",)
    default_name = "math"

    def __init__(
        self,
        *,
        name: str | None = None,
        timeout: float = 5.0,
        workers: int | None = None,
        queue_timeout: float | None = 300.0,
        echo_check: bool = True,
    ) -> None:
        super().__init__(name=name)
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        if queue_timeout is not None and queue_timeout < 0:
            raise ValueError(f"queue_timeout must be >= 0 or None, got {queue_timeout!r}")
        self.timeout = float(timeout)
        self.workers = workers
        self.queue_timeout = queue_timeout
        self.echo_check = bool(echo_check)
        self._golds: OrderedDict[str, _KnownGold] = OrderedDict()
        """Gold text -> what a worker said of it (see :meth:`_remember`)."""
        self._empty: dict[str, str] = {}
        """Final parts a worker found no answer in, with why (see :meth:`_decided`)."""
        self._checks: Coalescer[tuple[str | None, ...], dict[str, Any]] = Coalescer(_CHECKS_KEPT)
        """Worker answers by (gold, the response's answer): see :func:`_check_key`."""
        self._reading: dict[str, asyncio.Future[None]] = {}
        """Golds with a check in flight, each done when its answer is in: see ``_await_gold``."""
        self._units: dict[tuple[str, bool], str | None] = {}
        """Answer units by (final part, whether in an answer block): see ``_unit``."""

    def __getstate__(self) -> dict[str, Any]:
        # A copy starts with nothing in flight: the futures belong to this process's loops.
        return {**self.__dict__, "_reading": {}}

    def __repr__(self) -> str:
        return f"MathGrader(name={self.name!r}, timeout={self.timeout:g})"

    async def aload(self) -> None:
        """Start the process-wide worker pool with one check, so a first record does not wait
        for worker processes to import math-verify."""
        result = await self.aevaluate(response="\\boxed{1}", reference_response="1")
        if not isinstance(result, GraderScore):
            raise RuntimeError(f"a math check failed: {result.error}")

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        query = query_text(fields.get("query")) if self.echo_check else None
        return self._unechoed(await self._equivalence(fields), query, fields[_GOLD])

    def _unechoed(self, result: GraderScore, query: str | None, gold: Any) -> GraderScore:
        """``result``, or a 0.0 where it pays the query's own expression written back (see
        :mod:`graders._math_echo`); ``gold`` is the field as given, one gold or a list."""
        if query is None or result.score != 1.0:
            return result
        meta = result.metadata
        golds = as_gold_list(gold, _GOLD) or [as_text(gold, _GOLD)]
        echo = echo_of_query(str(meta.get("pred", "")), query, [*golds, str(meta.get("gold"))])
        if echo is None:
            return result
        return self._score(0.0, echo, {**meta, "echo": True})

    async def _equivalence(self, fields: dict[str, Any]) -> GraderScore:
        response = as_text(fields["response"], "response")
        golds = as_gold_list(fields[_GOLD], _GOLD)
        if golds is None:
            gold = as_text(fields[_GOLD], _GOLD)
            part = _answer_part(response)
            final = None if part is None else part[0]
            answer = None if final is None else _answer(final)
            decided = self._decided(gold, final, answer)
            if decided is None and await self._await_gold(gold, final, answer):
                decided = self._decided(gold, final, answer)
            if decided is not None:
                return self._verdict(decided, None)
            key = _check_key(gold, final, answer, lambda: self._unit(response, part))
            reading = self._claim(gold)
            try:
                if key is None:
                    value = await self._single(gold, response)
                else:
                    value = await self._checks.run(key, lambda: self._single(gold, response))
            finally:
                if reading is not None:
                    self._reading.pop(gold, None)
                    reading.set_result(None)
            if value.get("status") == NO_ANSWER and final is not None and len(final) <= _KEY_MAX:
                if len(self._empty) >= _READINGS_KEPT:
                    self._empty.clear()
                self._empty[final] = str(value.get("detail", ""))
            return self._verdict(value, None)
        # Several acceptable golds: one job for them all, each gold with its own timeout.
        value = await self._check(
            check_golds, (tuple(golds), response, self.timeout), self.timeout * len(golds)
        )
        return self._verdict(value, len(golds))

    def _decided(
        self, gold: str, final: str | None, answer: tuple[str, str] | None
    ) -> dict[str, Any] | None:
        """The worker's answer on a check, without asking it, where the grader knows it already.

        Only for a gold a worker has read (:meth:`_remember`), and only the steps of its check
        that are text: a response that writes a gold fit for the fast path exactly
        (:mod:`graders._math_fast`; ``answer`` is the response's
        :func:`~graders._math_fast.answer_key`), and a final part that a worker has parsed and
        found no answer in, against a gold without a unit (the units come first). The same
        tests the worker runs, in its order, with the same result, minus the round trip.
        """
        known = self._golds.get(gold)
        if known is None:
            return None
        text = fast_text(answer)
        if text is not None and text == known.fast_key:
            return {"status": "equal", "gold": known.shown, "pred": known.shown, "detail": ""}
        why = None if final is None or known.unit is not None else self._empty.get(final)
        if why is not None:
            return {"status": NO_ANSWER, "gold": known.shown, "pred": "", "detail": why}
        return None

    async def _await_gold(
        self, gold: str, final: str | None, answer: tuple[str, str] | None
    ) -> bool:
        """Wait for the check in flight on ``gold``, if any, where its answer may decide this
        check (:meth:`_decided`); whether it waited.

        A GRPO group's completions arrive together, before any worker has read their gold, and
        most of them either write it as it is or hold no answer: each of those sent to a worker
        cost a round trip the grader can answer itself once the first check's answer says how
        the gold reads. Other answers go to a worker at once, as before. A check that has waited
        :data:`_GOLD_WAIT_S` without an answer goes to a worker itself, so a slow first check
        delays the rest of its group by that much at most.
        """
        if len(gold) > _KEY_MAX:
            return False
        text = fast_text(answer)
        if (text is None or text != _spelled(gold)) and (final is None or final not in self._empty):
            return False
        reading = self._reading.get(gold)
        if reading is None or reading.get_loop() is not asyncio.get_running_loop():
            return False
        try:
            await asyncio.wait_for(asyncio.shield(reading), _GOLD_WAIT_S)
        except TimeoutError:
            return False  # a slow first check: this one goes to a worker itself
        return True

    def _claim(self, gold: str) -> asyncio.Future[None] | None:
        """Mark ``gold`` as being read by this call's check, unless another check reads it
        already; the future, for the caller to finish when its check is answered.

        Marked now, before the check's task first runs: the other completions of the group
        arrive in the same turn of the loop, and must find the mark to wait on it.
        """
        if gold in self._reading:
            return None
        reading: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # setdefault: a check on another thread's loop may have marked it meanwhile.
        return reading if self._reading.setdefault(gold, reading) is reading else None

    async def _single(self, gold: str, response: str) -> dict[str, Any]:
        """One single-gold check in the pool, its answer remembered (:meth:`_remember`) as it
        arrives, so that exact matches waiting on this gold (:meth:`_await_gold`) find it."""
        value = await self._check(check_equivalence, (gold, response), self.timeout, gold)
        self._remember(gold, value)
        return value

    def _unit(self, response: str, part: tuple[str, bool] | None) -> str | None:
        """:func:`~graders._math_answer_units.answer_unit` of ``response``, remembered by what it
        depends on (``part``: the final part, and whether it is an answer block's)."""
        if part is None or len(part[0]) > _KEY_MAX:
            return answer_unit(response)
        known = self._units.get(part, _UNREAD)  # one read: another thread may clear it
        if known is not _UNREAD:
            return known  # type: ignore[return-value]  # a unit or None, as stored
        if len(self._units) >= _READINGS_KEPT:
            self._units.clear()
        unit = self._units[part] = answer_unit(response)
        return unit

    def _remember(self, gold: str, value: Any) -> None:
        """Keep what a worker's answer on ``gold`` told of it, when it read math there."""
        if not (isinstance(value, dict) and GOLD_UNIT in value):
            return
        fast, shown, unit = value.get(FAST_KEY), value.get("gold"), value[GOLD_UNIT]
        if isinstance(shown, str) and all(v is None or isinstance(v, str) for v in (fast, unit)):
            self._golds[gold] = _KnownGold(fast, shown, unit)
            if len(self._golds) > _GOLDS_KEPT:
                self._golds.popitem(last=False)

    async def _check(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        limit: float,
        affinity: str | None = None,
    ) -> dict[str, Any]:
        """Run one check in the pool; its dict, or ``Unscored`` when the pool could not say.

        Checks against one gold share an ``affinity``: they go to the worker that has that gold
        parsed already when it is free. Checks that queue while the workers are busy go to a
        worker many per message (see :mod:`graders._math_pool`).
        """
        status, value = await _run_in_pool(
            func,
            args,
            limit=limit,
            workers=self.workers,
            queue_limit=self.queue_timeout,
            affinity=affinity,
        )
        if status == "timeout":
            raise Unscored(f"math check timed out: {value}", kind="timeout")
        if status != "ok" or not isinstance(value, dict):
            raise Unscored(f"math check failed: {value}", kind="internal")
        return value

    def _verdict(self, value: dict[str, Any], count: int | None) -> GraderScore:
        """The result for a worker's answer on one gold (``count`` is ``None``) or a list.

        Only a verified ``equal`` is a 1.0; an answer of any unexpected shape is ``internal``.
        """
        meta: dict[str, Any] = {"gold": value.get("gold", ""), "pred": value.get("pred", "")}
        outcome = value.get("status")
        index = value.get("index")
        note = ""
        if count is not None:
            timed_out = value.get("timed_out") or []
            if outcome == "invalid_gold":
                raise Unscored(no_gradable_gold(_GOLD, count, "none holds readable math"))
            if outcome == "timeout":
                which = ", ".join(f"{_GOLD}[{i}]" for i in timed_out)
                raise Unscored(
                    f"math check timed out on {which} and no other gold matched: "
                    f"{value.get('detail')}",
                    kind="timeout",
                )
            if outcome == "equal" and not (isinstance(index, int) and 0 <= index < count):
                outcome = f"equal with a gold index of {index!r}"
            meta |= {
                "gold_index": index if outcome == "equal" else None,
                "golds_skipped": value.get("skipped") or [],
                "golds_timed_out": timed_out,
            }
            note = " " + gold_list_note(_GOLD, meta["gold_index"], count)
        if outcome == "invalid_gold":
            raise Unscored(
                f"the gold answer (field {_GOLD!r}) holds no readable math", kind="invalid_input"
            )
        if outcome == "no_answer":
            reason = f"no answer found in the response: {value.get('detail')}"
            return self._score(0.0, reason, meta)
        if outcome == "equal":
            reason = f"{meta['pred']!r} is equivalent to {meta['gold']!r}{note}"
            return self._score(1.0, reason, meta)
        if outcome == "not_equal":
            what = repr(meta["gold"]) if count is None else "any gold"
            # Why, where a check said more (the units differ, equal only once rounded).
            why = f" ({value['detail']})" if value.get("detail") else ""
            reason = f"{meta['pred']!r} is not equivalent to {what}{note}{why}"
            return self._score(0.0, reason, meta)
        raise Unscored(f"math check returned an unknown outcome {outcome!r}", kind="internal")

    def _score(self, score: float, reason: str, meta: dict[str, Any]) -> GraderScore:
        return GraderScore(name=self.name, score=score, reason=reason, metadata=meta)
