"""Code that runs inside the math worker processes: answer normalisation, math-verify, deadlines.

This module is imported by the worker processes of :mod:`graders._math` (and by nothing that runs
on an event loop). It keeps its imports light at module level so that importing it in the parent
is cheap; ``math_verify`` and sympy are imported in the worker, at start-up (:func:`worker_main`).

Two things live here:

* :func:`check_equivalence`, the grading logic. math-verify does the parsing and the comparison;
  the text repairs for inputs it misreads are in :mod:`graders._math_text`, the units both
  answers write in :mod:`graders._math_answer_units`, and answers inside an unfinished
  ``<think>`` block are not answers. A GRPO step grades many completions of each
  prompt, so each worker keeps its golds parsed (an LRU keyed by the gold and the extraction
  configs) and its verdicts per (gold, parsed answer), and an answer written exactly as the gold
  is decided from the text (:mod:`graders._math_fast`); the LaTeX parser reads each number
  literal once (:func:`_remember_numbers`). :func:`check_golds` runs the check
  against a list of acceptable golds in one job, each gold under its own deadline.
* :func:`worker_main`, the worker loop: it answers jobs (one, or a batch of them, one reply per
  job) over a socket and bounds each one with a ``SIGALRM`` interval timer. Workers run jobs on
  their main thread, where signals work, so the timer can interrupt sympy's pure-Python loops; a
  job stuck in C code ignores it, and the parent's own deadline then kills the process. A
  worker whose parent is gone exits quietly.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from multiprocessing.reduction import ForkingPickler
from typing import Any, NamedTuple

from graders._math_answer_units import _read_value, _units_differ, answer_unit
from graders._math_fast import fast_answer, gold_key
from graders._math_text import (
    _PLAIN_NUMBER,
    _decimals,
    _fix_spans,
    _holds_math,
    _is_bare_math,
    _prepare_text,
    _wrap,
)
from graders._math_text import final_part as _final_part
from graders._math_unequal import proved_unequal, rounded_together
from graders._math_units import unit_of

__all__ = [
    "FAST_KEY",
    "GOLD_UNIT",
    "NO_ANSWER",
    "check_equivalence",
    "check_golds",
    "worker_main",
]

# --- result vocabulary (plain types only: results cross a socket) -------------------------------

EQUAL = "equal"
NOT_EQUAL = "not_equal"
NO_ANSWER = "no_answer"
INVALID_GOLD = "invalid_gold"

FAST_KEY = "fast_key"
"""A result's field with the gold's text for the exact-match fast path (``None`` when it may
not take it). It and :data:`GOLD_UNIT` come with every answer on a gold with math, so that the
caller can decide some checks on that gold itself from then on (see ``graders._math``)."""
GOLD_UNIT = "gold_unit"
"""A result's field with the gold's unit (:mod:`graders._math_units`), or ``None``."""

_MAX_SHOWN = 200
"""Longest extracted string put in a result's metadata."""


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


# --- the check -----------------------------------------------------------------------------------

_CONFIGS: dict[str, Any] = {}


def _configs() -> dict[str, Any]:
    """Extraction configs, built once per process (math-verify caches its regexes per config).

    Golds and predictions share one config: LaTeX first with ``\\boxed`` at top priority (the
    README's advice for rewards), then plain numbers and expressions. Unlike the README's reward
    settings, the shorthand fixes stay on (``malformed_operators``, ``nits``): ``\\frac13`` and
    ``\\sqrt3`` are valid TeX that models write; turning the fixes off for predictions cost 10
    correct cases of the labelled set and removed no false "equivalent".
    """
    if not _CONFIGS:
        from latex2sympy2_extended import NormalizationConfig
        from math_verify import ExprExtractionConfig, LatexExtractionConfig

        norm = NormalizationConfig(
            basic_latex=True,
            units=True,
            malformed_operators=True,
            nits=True,
            boxed="all",
            equations=False,
        )
        latex = LatexExtractionConfig(boxed_match_priority=0, normalization_config=norm)
        _CONFIGS["answer"] = [latex, ExprExtractionConfig()]
        _CONFIGS["number"] = [ExprExtractionConfig()]
    return _CONFIGS


def _parse(text: str, config: str) -> list[Any]:
    from math_verify import parse

    return list(parse(text, _configs()[config], parsing_timeout=None))


def _read_answer(text: str) -> tuple[list[Any], str]:
    """Parse a gold or a prediction, choosing how to read it from its shape; also say how
    (``number``, ``wrapped`` or ``as_is``: the fast path trusts only the first two)."""
    text = _prepare_text(text)
    if _PLAIN_NUMBER.fullmatch(text):
        return _parse(text.replace("\\%", "%"), "number"), "number"
    if _is_bare_math(text):
        parsed = _parse(_fix_spans(_wrap(text)), "answer")
        if parsed:
            return parsed, "wrapped"
    return _parse(_fix_spans(text), "answer"), "as_is"


def _parse_answer(text: str) -> list[Any]:
    """Parse a gold or a prediction, choosing how to read it from its shape."""
    return _read_answer(text)[0]


GOLD_CACHE_SIZE = 4096
"""Parsed golds kept per worker: a GRPO step grades many completions of each of its prompts."""


class _Gold(NamedTuple):
    parsed: tuple[Any, ...]
    fast_key: str | None  # the gold's canonical text when the fast path may compare with it
    unit: str | None  # the gold's unit (graders._math_units), compared before math-verify


@functools.lru_cache(maxsize=GOLD_CACHE_SIZE)
def _gold_entry(gold: str, config: str) -> _Gold:
    """The gold parsed once per worker, keyed by its text and the extraction configs' identity
    (``config``), so a change of configs can never serve a gold read the old way."""
    parsed, how = _read_answer(gold)
    has_expression = any(not isinstance(p, str) for p in parsed)
    # The gold's unit is read as the answer's is (that of the number math-verify reads, where it
    # writes several): read by its first unit, a gold of "3 hours 20 minutes" or "5 km = 5000 m"
    # was "h" or "km", the same text as an answer "min" or "m", and the gold written out again
    # scored 0 ("the units differ").
    unit = unit_of(gold, lambda: _read_value(parsed))
    return _Gold(tuple(parsed), gold_key(gold, how) if has_expression else None, unit)


def _config_key() -> str:
    if "key" not in _CONFIG_KEY:
        _CONFIG_KEY["key"] = repr(sorted(_configs().items()))
    return _CONFIG_KEY["key"]


_CONFIG_KEY: dict[str, str] = {}


def _parse_gold(gold: str) -> tuple[Any, ...]:
    return _gold_entry(gold, _config_key()).parsed


def gold_cache_info() -> dict[str, int]:
    """This worker's gold cache: hits, misses and size (for tests and diagnostics)."""
    info = _gold_entry.cache_info()
    return {"hits": info.hits, "misses": info.misses, "size": info.currsize}


def _gold_answer(gold: str) -> tuple[Any, ...] | None:
    """The parsed gold, or ``None`` when it holds no math to compare with."""
    parsed = _parse_gold(gold)
    return parsed if parsed and _holds_math(gold, list(parsed)) else None


def _shown(parsed: Sequence[Any]) -> str:
    return _short(parsed[-1] if isinstance(parsed[-1], str) else parsed[0])


def _prediction(response: str) -> tuple[list[Any] | None, str]:
    """The parsed final answer of ``response``, or ``None`` and why there is none."""
    final = _final_part(response)
    if final is None:
        return None, "reasoning never ended (<think> without </think>)"
    if len(final) <= _ANSWER_CACHE_TEXT:
        parsed = list(_parse_final(final, _config_key()))
    else:
        parsed = _parse_answer(final)
    return (parsed, "") if parsed else (None, "no answer found")


_ANSWER_CACHE_TEXT = 2000
"""Final parts up to this many characters are remembered parsed (completions of one prompt
often end the same way); longer ones are parsed each time, to bound the cache's memory."""


@functools.lru_cache(maxsize=GOLD_CACHE_SIZE)
def _parse_final(final: str, config: str) -> tuple[Any, ...]:
    return tuple(_parse_answer(final))


def _equivalent(gold: Sequence[Any], pred: list[Any]) -> bool:
    from math_verify import verify

    if verify(list(gold), pred, timeout_seconds=None):
        return True
    # A prediction written with 4-5 decimals is compared at the precision it was written in
    # ("0.3333" for 1/3); fewer decimals stay a mismatch, so "0.33" is not rewarded.
    digits = _decimals(next((p for p in pred if isinstance(p, str)), ""))
    return 4 <= digits < 6 and bool(
        verify(list(gold), pred, float_rounding=digits, timeout_seconds=None)
    )


def _judged(gold: Sequence[Any], pred: list[Any]) -> tuple[bool, str]:
    """:func:`_equivalent`, less an equality that only math-verify's rounding made
    (:func:`~graders._math_unequal.rounded_together`), with the reason then."""
    if not _equivalent(gold, pred):
        return False, ""
    if any(g == p for g in gold for p in pred):
        return True, ""  # the same expression: no rounding made it equal (and no evaluation)
    why = rounded_together(gold, pred)
    return why is None, why or ""


def _result(status: str, gold: str = "", pred: str = "", detail: str = "") -> dict[str, Any]:
    return {"status": status, "gold": gold, "pred": pred, "detail": detail}


def check_equivalence(gold: str, response: str) -> dict[str, Any]:
    """Compare the final answer in ``response`` with ``gold``; math-verify decides equality.

    Returns a dict of plain values: ``status`` (``equal``, ``not_equal``, ``no_answer`` or
    ``invalid_gold``), the extracted ``gold`` and ``pred`` strings (shortened), and ``detail``;
    on a gold with math, also :data:`FAST_KEY` and :data:`GOLD_UNIT`.
    """
    entry = _gold_entry(gold, _config_key())
    gold_parsed = entry.parsed
    if not gold_parsed or not _holds_math(gold, list(gold_parsed)):
        return _result(INVALID_GOLD, detail="no answer in gold")
    shown = _shown(gold_parsed)
    known = {FAST_KEY: entry.fast_key, GOLD_UNIT: entry.unit}
    pred = _LazyPrediction(response)
    if (units := _units_differ(entry.unit, lambda: pred.unit)) is not None:
        why = f"the units differ: {units[0]} and {units[1]}"
        return {**_result(NOT_EQUAL, shown, detail=why), **known}
    if entry.fast_key is not None:
        final = _final_part(response)
        if final is not None and fast_answer(final) == entry.fast_key:
            # The same expression in the same reading as the gold (see graders._math_fast).
            return {**_result(EQUAL, shown, shown), **known}
    pred_parsed = pred.get()
    if pred_parsed is None:
        return {**_result(NO_ANSWER, shown, detail=pred.why), **known}
    equal, why = _equivalent_cached(gold, gold_parsed, pred_parsed)
    return {**_result(EQUAL if equal else NOT_EQUAL, shown, _shown(pred_parsed), why), **known}


_VERDICTS: OrderedDict[tuple[str, tuple[Any, ...]], tuple[bool, str]] = OrderedDict()
_VERDICTS_SIZE = 4096
"""Verdicts kept per worker: completions of one prompt often repeat a wrong answer, and
comparing one with the gold can be the slowest step of a check."""


def _equivalent_cached(gold: str, gold_parsed: Sequence[Any], pred: list[Any]) -> tuple[bool, str]:
    """:func:`_judged`, remembered per (gold text, parsed prediction).

    The verdict is a function of the two parsed answers (sympy objects compare and hash by
    structure), so a repeat gets the same answer. A prediction that cannot be hashed (a mutable
    matrix) is not remembered; a comparison cut off by its deadline is never stored.
    """
    try:
        key = (gold, tuple(pred))
        hash(key)
    except TypeError:
        return _judged(gold_parsed, pred)
    known = _VERDICTS.get(key)
    if known is not None:
        _VERDICTS.move_to_end(key)
        return known
    equal = (False, "") if proved_unequal(gold_parsed, pred) else _judged(gold_parsed, pred)
    _VERDICTS[key] = equal
    if len(_VERDICTS) > _VERDICTS_SIZE:
        _VERDICTS.popitem(last=False)
    return equal


class _LazyPrediction:
    """A response's final answer, parsed when a gold first needs it, and then once for all."""

    def __init__(self, response: str) -> None:
        self.response = response
        self.state = "todo"  # "parsing" while under way: a deadline there is the response's
        self.parsed: list[Any] | None = None
        self.why = ""

    def get(self) -> list[Any] | None:
        if self.state == "todo":
            self.state = "parsing"
            self.parsed, self.why = _prediction(self.response)
            self.state = "done"
        return self.parsed

    @property
    def shown(self) -> str:
        return _shown(self.parsed) if self.parsed else ""

    @functools.cached_property
    def unit(self) -> str | None:
        """The final answer's unit (:func:`answer_unit`), read once for every gold; the answer
        is parsed for it only when it writes several units."""
        return answer_unit(self.response, lambda: _read_value(self.get()))


def check_golds(golds: Sequence[str], response: str, timeout: float) -> dict[str, Any]:
    """:func:`check_equivalence` against several acceptable golds: the first equivalent one wins.

    One job for the whole list: one round trip, and the response parsed once. Golds are tried in
    order; one with no math is passed over. In a worker, each gold's check (its parse and
    comparison; on the first gold with math, the response's parse too) gets ``timeout`` seconds
    of its own, so a job needs at most ``len(golds) * timeout``: a gold that runs past its share
    is passed over and the next one tried. (Outside a worker's job timer nothing is timed.)

    Returns :func:`check_equivalence`'s dict (``gold``: the equivalent gold, else the first with
    math) plus ``index`` (the equivalent gold, else ``None``), ``skipped`` (golds with no math)
    and ``timed_out`` (golds whose check ran out of time). Statuses as there, and ``timeout``
    when no gold matched and one ran out of time (it might have matched), or when the response's
    own parse did (every gold needs it); ``invalid_gold`` when no gold holds math.
    """
    pred = _LazyPrediction(response)
    skipped: list[int] = []
    timed_out: list[int] = []
    first_gold = first_why = ""

    def one(gold: str) -> tuple[str, str, str]:
        parsed = _gold_answer(gold)
        if parsed is None:
            return INVALID_GOLD, "", ""
        answer = pred.get()
        if answer is None:
            return NO_ANSWER, _shown(parsed), ""
        if _units_differ(_gold_entry(gold, _config_key()).unit, lambda: pred.unit) is not None:
            return NOT_EQUAL, _shown(parsed), ""
        equal, why = _judged(parsed, answer)
        return (EQUAL if equal else NOT_EQUAL), _shown(parsed), why

    def result(
        status: str, gold: str, detail: str = "", index: int | None = None
    ) -> dict[str, Any]:
        return {
            **_result(status, gold, pred.shown, detail),
            "index": index,
            "skipped": skipped,
            "timed_out": timed_out,
        }

    for i, gold in enumerate(golds):
        finished, outcome = _within(timeout, one, gold)
        if not finished:
            timed_out.append(i)
            if pred.state == "parsing":
                return result("timeout", "", f"reading the response took over {timeout:g}s")
            continue
        status, shown, why = outcome
        if status == INVALID_GOLD:
            skipped.append(i)
        elif status == NO_ANSWER:
            return result(NO_ANSWER, shown, pred.why)
        elif status == EQUAL:
            return result(EQUAL, shown, index=i)
        elif not first_gold:
            first_gold, first_why = shown, why
    if timed_out:
        return result("timeout", first_gold, f"no gold matched; {len(timed_out)} timed out")
    if len(skipped) == len(golds):
        return result(INVALID_GOLD, "", "no answer in any gold")
    return result(NOT_EQUAL, first_gold, first_why)


# --- the worker process --------------------------------------------------------------------------


class _Deadline(BaseException):
    """Raised by the SIGALRM handler when a job runs past its deadline.

    A ``BaseException``, like ``KeyboardInterrupt``, so that the ``except Exception`` blocks
    inside math-verify and sympy cannot swallow it and carry on.
    """


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Deadline


def _within(seconds: float, func: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """``(True, func(*args))``, or ``(False, None)`` when it ran past ``seconds`` of its own.

    For a job made of steps that each deserve their own deadline (:func:`check_golds`): the
    step runs under a shorter interval timer, and the job's timer is set back to what is left of
    it afterwards. When the job's own deadline comes first, :class:`_Deadline` propagates and the
    whole job is a timeout, as always. Outside a worker's job (no timer running, or not our
    handler: a direct call in the parent) it just calls ``func``.
    """
    job_left = signal.getitimer(signal.ITIMER_REAL)[0]
    if job_left <= 0 or signal.getsignal(signal.SIGALRM) is not _on_alarm:
        return True, func(*args)
    budget = min(seconds, job_left)
    started = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, budget)
        value = func(*args)
    except _Deadline:
        if budget >= job_left:
            raise
        value, finished = None, False
    else:
        finished = True
    signal.setitimer(signal.ITIMER_REAL, max(job_left - (time.monotonic() - started), 0.001))
    return finished, value


def _run_job(func: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> tuple[str, Any]:
    """Run one job under an interval timer; never raise (the worker must survive every job)."""
    try:
        signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
        try:
            try:
                return ("ok", func(*args))
            except Exception as exc:
                # Described while the timer still runs: str() of a sympy object can be slow.
                return ("error", _describe(exc))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Deadline:
        return ("timeout", f"no result within {timeout:g}s")
    except BaseException as exc:  # math-verify's TimeoutException, KeyboardInterrupt, SystemExit
        return ("error", _describe(exc))


def _send(conn: Any, reply: tuple[str, Any]) -> bool:
    """Send a reply; ``False`` when the parent is gone (the socket is closed or broken).

    The reply is pickled first, so that a result that cannot be pickled is told apart from a
    parent that went away: the first is answered with an error, the second ends the worker.
    """
    try:
        data = ForkingPickler.dumps(reply)
    except Exception as exc:  # an unpicklable result
        data = ForkingPickler.dumps(("error", "result could not be sent back: " + _describe(exc)))
    try:
        conn.send_bytes(data)
    except OSError:  # BrokenPipeError, ConnectionResetError: nobody is listening any more
        return False
    return True


def worker_main(conn: Any) -> None:
    """Entry point of a worker process: pre-import math-verify, then answer jobs until EOF.

    A job is ``(func, args, timeout)``; the reply is ``(status, value)`` with status ``ok``,
    ``error`` or ``timeout``. The first message sent is ``("ready", pid)``.

    A worker whose parent goes away (it exited, was killed, or was a process of a
    ``ProcessPoolExecutor`` being shut down, as in verl's ``prime`` manager) ends quietly with
    exit status 0 at its next read or write, wherever in its life that is: warming up, idle or
    mid-job. A traceback per worker there would be noise about nothing that went wrong.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGALRM, _on_alarm)
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    _remember_numbers()
    # Pre-import and warm up (regex compilation, the ANTLR parser) so the first job is fast.
    check_equivalence("$\\frac{1}{2}$", "The answer is $\\boxed{0.5}$.")
    # Common answer shapes too: the LaTeX parser and sympy build their caches on first sight of
    # a shape, which the first batch of a run would otherwise pay for, check by check.
    for gold in _WARM_UP:
        _run_job(_warm, (gold,), 5.0)
    if not _send(conn, ("ready", os.getpid())):
        return
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            job = ForkingPickler.loads(data)
        except Exception as exc:  # e.g. a function this process cannot import
            if not _send(conn, ("error", "job could not be read: " + _describe(exc))):
                return
            continue
        if job is None:
            return
        # A batch is a list of separately pickled jobs, answered one reply per job as each
        # finishes: the parent polices each job's deadline and knows which one a hang was.
        for item in job if isinstance(job, list) else [job]:
            if not _send(conn, _answer(item)):
                return


_NUMBERS_KEPT = 4096
"""Number literals a worker keeps read (see :func:`_remember_numbers`)."""


def _remember_numbers() -> None:
    """Have the LaTeX parser read each number literal once per worker.

    latex2sympy reads every number of an expression with ``sympy.Number(text)``, which runs
    sympy's whole expression parser (tokenizer, transformations, ``eval``) on the digits: a
    large share of parsing a gold or an answer, paid again for each "2" of each polynomial and
    each "1" of each ``+ 1``. A sympy number is immutable and the reading depends on the text
    alone, so handing back the one read before gives the very same parse. Only in a worker
    process: the library's class is not ours to change in the caller's. A parser without the
    method (another latex2sympy) is left as it is.
    """
    try:
        from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy
    except ImportError:
        return
    read = getattr(_Latex2Sympy, "parse_number", None)
    if read is None or getattr(read, "remembered", False):
        return
    known: dict[str, Any] = {}

    def parse_number(self: Any, text: str) -> Any:
        value = known.get(text)
        if value is None:
            value = read(self, text)
            if len(known) >= _NUMBERS_KEPT:
                known.clear()
            known[text] = value
        return value

    parse_number.remembered = True  # type: ignore[attr-defined]
    _Latex2Sympy.parse_number = parse_number


_WARM_UP = (
    *(r"\frac{3}{7}", r"2\sqrt{5}", r"x^2 + 4x + 1", "12.5", "-3", r"\pi", r"\frac{\sqrt{3}}{2}"),
    *(r"(1, 2]", r"\{1, 2\}", r"x \leq 3", r"2^{10}", r"\dfrac{a+b}{2}", r"3x - 7y", r"\sin x"),
    *(r"\log_2 8", r"50\%", r"(2, -1)", r"\infty", r"x = 4", r"1.5 \times 10^3", r"e^{x}"),
)
"""Answers of the shapes golds and completions have, checked by each worker as it starts."""


def _warm(gold: str) -> None:
    check_equivalence(gold, f"The answer is $\\boxed{{{gold}}}$.")
    check_equivalence(gold, f"So it is $\\boxed{{{gold} + 1}}$.")


def _answer(item: Any) -> tuple[str, Any]:
    """Run one job: ``(func, args, timeout)``, as pickled bytes in a batch; an error reply for a
    job that could not be read."""
    if isinstance(item, bytes):
        try:
            item = ForkingPickler.loads(item)
        except Exception as exc:
            return ("error", "job could not be read: " + _describe(exc))
    func, args, timeout = item
    return _run_job(func, args, timeout)
