"""MathGrader under GRPO-shaped load: gold cache, exact-match fast path, batched worker messages.

Behaviour only, no timings: the fast path never changes a verdict, a gold is parsed once per
worker, checks queued while the workers are busy travel many per message, and a check that hangs
inside a batch costs only itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from graders import _math_worker as worker
from graders._math import MathGrader
from graders._math_fast import answer_key, fast_answer, gold_key
from graders._math_pool import MAX_BATCH, _get_pool, _MathPool, _run_in_pool
from graders._math_unequal import proved_unequal
from rm_service import GraderError, GraderScore

DATA = Path(__file__).resolve().parents[1] / "data" / "math_equiv.jsonl"
SLOW = r"The answer is $\boxed{9^{9^{9^{9}}}}$."  # the worker's own timer interrupts it

# Golds of the shapes a GRPO batch has, and the forms completions write answers in.
GOLDS = [
    *("2652", "-7", "0.5", "34.5", "007", "3.", "1,000", "5 m", "1/3", "40/9"),
    *(r"\frac{23}{45}", r"\dfrac{1}{2}", r"12\sqrt{7}", r"\sqrt{2}/2", r"\pi", r"2\pi r"),
    *("x^2 + 3x + 5", "(x+1)^2", "x+3c", r"[0,1)", r"50\%", r"\text{A}", "3x", "4 4/9"),
]
FORMS = [
    "<think>w</think>\nThe answer is $\\boxed{{{g}}}$.",
    "\\boxed{{{g}}}",
    "Therefore the answer is ${g}$",
    "$${g}$$",
    "\\({g}\\)",
    "\\[{g}\\]",
    "The answer is {g}",
    "\\boxed{{ {g} }}",
    "<answer>{g}</answer>",
    "<think>\\boxed{{{g}}}",
    "\\boxed{{{g}}} or \\boxed{{{g} + 1}}",
    "It is 3, so \\boxed{{{g}}}",
    "Answer $ \n {g} \n $",
    "\\boxed{{{g} + 1}}",
]


def _pairs() -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    generated = [(g, form.format(g=g)) for g in GOLDS for form in FORMS]
    return [(r["gold"], r["pred"]) for r in rows] + generated


def _checked(pairs: list[tuple[str, str]]) -> list[str]:
    out = []
    for gold, pred in pairs:
        worker._VERDICTS.clear()  # each check on its own: the memo is tested separately
        out.append(worker.check_equivalence(gold, pred)["status"])
    return out


def test_fast_path_never_changes_a_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every labelled case and every generated GRPO-style case that the fast path decides gets
    the same verdict without it (on the others the check does not change), and the fast path
    does decide a good share of them."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    fired = [
        (gold, pred)
        for gold, pred in _pairs()
        if (entry := worker._gold_entry(gold, worker._config_key())).fast_key is not None
        and (final := worker._final_part(pred)) is not None
        and fast_answer(final) == entry.fast_key
    ]
    assert len(fired) >= 80, len(fired)
    assert set(_checked(fired)) == {"equal"}
    monkeypatch.setattr(worker, "fast_answer", lambda final: None)
    without = _checked(fired)
    assert [p for p, v in zip(fired, without, strict=True) if v != "equal"] == []


@pytest.mark.parametrize(
    "final",
    [
        "1,000",  # a set in LaTeX, a number in plain text
        r"\boxed{5} is wrong; the answer is \boxed{5}",  # two boxes
        r"The answer is 7. \boxed{5}",  # another number outside the box
        "$5$ and $5$",  # two spans
        "Answer $ \n 5 \n $",  # inline math broken across lines
        r"\boxed{4 4/9}",  # a mixed number
        r"\boxed{50\%}",  # percent
        r"\boxed{\text{5}}",  # a command outside the small language
        r"\boxed{5 mm}",  # a unit, or a product of letters
        r"\boxed{abc}",
        "The answer is $50$%.",  # a percent after the span: read as 0.5
        r"So it is $\boxed{50}$ percent.",
        "Hence $1$, see [x] .",  # a bracketed " [x] " is inline math too, and read last
        r"\boxed{\frac{1}{2} m}",  # a letter after a space is dropped as a unit
        r"\boxed{1 - t}",
        r"\boxed{x^-2}",  # forms whose LaTeX reading can fail: math-verify then reads a
        r"\boxed{\sqrt(x)+1}",  # plain number instead, and where depends on the spacing
        r"\boxed{\frac{x}2}",
        r"\boxed{2^(x+1)}",
        r"\boxed{x\ +1}",
        "The answer is 5",  # no delimiters: left to math-verify's own reading
        r"\boxed{5",  # unbalanced
        "",
    ],
)
def test_fast_path_declines_what_it_cannot_prove(final: str) -> None:
    assert fast_answer(final) is None


def test_fast_path_reads_the_common_forms() -> None:
    assert fast_answer(r"So the answer is $\boxed{\dfrac{3}{4}}$.") == r"\frac{3}{4}"
    # Spelled as written: spacing can change math-verify's reading.
    assert fast_answer("Therefore the answer is $x^2 + 3x$") == "x^2 + 3x"
    assert fast_answer(r"\boxed{-7}") == "-7"
    assert fast_answer(r"\boxed{ -7 }") == " -7 "
    assert fast_answer("So it is:$2^{-x}$") is None  # no number fallback after ":"
    assert gold_key("x^2+3x", "wrapped") == "x^2+3x"
    assert gold_key("34.5", "number") == "34.5"
    assert gold_key("007", "number") is None  # leading zeros: not the same text as 7
    assert gold_key("5", "as_is") is None  # only the number and wrapped readings are trusted


def test_a_gold_is_parsed_once_per_worker_and_keyed_by_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gold = r"\frac{17}{19}"
    before = worker.gold_cache_info()
    for form in FORMS:
        worker.check_equivalence(gold, form.format(g=gold))
    after = worker.gold_cache_info()
    assert after["misses"] == before["misses"] + 1
    assert after["hits"] >= before["hits"] + len(FORMS) - 1
    assert worker._gold_entry.cache_parameters()["maxsize"] == worker.GOLD_CACHE_SIZE >= 4096
    # A wrong answer written the same way twice is parsed once.
    parsed_before = worker._parse_final.cache_info().misses
    worker.check_equivalence(gold, r"So it is \boxed{\frac{17}{18}}.")
    worker.check_equivalence(gold, r"So it is \boxed{\frac{17}{18}}.")
    assert worker._parse_final.cache_info().misses == parsed_before + 1
    # Other extraction configs read the gold afresh rather than reuse the old reading.
    monkeypatch.setitem(worker._CONFIG_KEY, "key", "other configs")
    worker.check_equivalence(gold, r"\boxed{1}")
    assert worker.gold_cache_info()["misses"] == after["misses"] + 1


def test_verdicts_are_remembered_only_when_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = worker._equivalent

    def counting(gold: Any, pred: Any) -> bool:
        calls.append(pred)
        return real(gold, pred)

    monkeypatch.setattr(worker, "_equivalent", counting)
    monkeypatch.setattr(worker, "proved_unequal", lambda gold, pred: False)
    worker._VERDICTS.clear()
    first = worker.check_equivalence(r"12\sqrt{7}", r"The answer is \boxed{0}.")
    again = worker.check_equivalence(r"12\sqrt{7}", r"So it is $\boxed{0}$, I think.")
    other = worker.check_equivalence(r"12\sqrt{7}", r"\boxed{12 \sqrt 7}")
    assert [first["status"], again["status"], other["status"]] == ["not_equal"] * 2 + ["equal"]
    assert len(calls) == 2  # the repeated wrong answer was compared once


# --- batches through the pool --------------------------------------------------------------------


def _pid() -> int:
    return os.getpid()


async def _busy_every_worker(pool: _MathPool, seconds: float) -> list[asyncio.Future[Any]]:
    """Occupy each worker with a sleep, so that what is submitted next queues up behind."""
    sleeps = [
        asyncio.ensure_future(_run_in_pool(time.sleep, (seconds,), limit=10))
        for _ in range(pool.size)
    ]
    await asyncio.sleep(0.1)
    return sleeps


async def test_queued_checks_go_many_per_message_and_both_workers_share_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = _get_pool(None)
    await _run_in_pool(abs, (1,), limit=5)
    await asyncio.sleep(0.5)  # every worker started
    sizes: list[int] = []
    real = _MathPool._run_batch

    def recording(self: _MathPool, w: Any, batch: list[Any]) -> bool:
        sizes.append(len(batch))
        return real(self, w, batch)

    monkeypatch.setattr(_MathPool, "_run_batch", recording)
    sleeps = await _busy_every_worker(pool, 0.5)
    n = 3 * MAX_BATCH
    jobs = [_run_in_pool(_pid, (), limit=5, affinity="one gold") for _ in range(n)]
    replies = await asyncio.gather(*jobs)
    await asyncio.gather(*sleeps)
    assert all(status == "ok" for status, _ in replies)
    assert max(sizes) > 1 and max(sizes) <= MAX_BATCH
    if pool.size > 1:  # one gold, yet a worker that came free took a share
        assert len({pid for _, pid in replies}) > 1


async def test_a_hang_in_a_batch_costs_only_that_check() -> None:
    """A job stuck in C code mid-batch: it alone is a timeout (its worker killed and replaced);
    the jobs before it keep their answers and those after it run on a worker all the same."""
    pool = _get_pool(None)
    await _run_in_pool(abs, (1,), limit=5)
    await asyncio.sleep(0.5)
    before = pool.replaced
    sleeps = await _busy_every_worker(pool, 0.5)
    jobs = [_run_in_pool(abs, (-i,), limit=5) for i in range(20)]
    jobs.insert(7, _run_in_pool(sum, (range(10**13),), limit=0.3))
    replies = await asyncio.wait_for(asyncio.gather(*jobs), 60)
    await asyncio.gather(*sleeps)
    hung = replies.pop(7)
    assert hung[0] == "timeout" and "killed" in hung[1]
    assert replies == [("ok", i) for i in range(20)]
    assert pool.replaced == before + 1


async def test_graded_batch_with_a_slow_check_and_a_bad_job() -> None:
    """Through the grader: one check past its timeout in a crowd is unscored (timeout), the
    rest are scored as alone; a job that cannot be pickled fails alone."""
    grader = MathGrader(timeout=0.5)
    await grader.aload()
    golds = [str(i) for i in range(40)]
    tasks = [grader.aevaluate(response=rf"\boxed{{{g}}}", reference_response=g) for g in golds]
    tasks.insert(13, grader.aevaluate(response=SLOW, reference_response="5"))
    pickle_fail = _run_in_pool(lambda: 1, (), limit=5)
    results = await asyncio.wait_for(asyncio.gather(*tasks, pickle_fail), 60)
    bad = results.pop()
    slow = results.pop(13)
    assert isinstance(slow, GraderError) and slow.kind == "timeout"
    assert [r.score for r in results if isinstance(r, GraderScore)] == [1.0] * 40
    assert bad[0] == "error" and "could not be sent" in bad[1]


def test_a_proved_difference_is_one_math_verify_also_finds() -> None:
    """Wherever the value check calls two answers different, math-verify (with the rounding
    retry) says "not equivalent" too: on the labelled cases and the generated GRPO-style ones."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    proved = []
    for gold, pred in _pairs():
        gold_parsed = worker._gold_answer(gold)
        pred_parsed = worker._prediction(pred)[0]
        if gold_parsed and pred_parsed and proved_unequal(gold_parsed, pred_parsed):
            proved.append((gold, pred, gold_parsed, pred_parsed))
    assert len(proved) >= 40, len(proved)
    equal = [(g, p) for g, p, gp, pp in proved if worker._equivalent(gp, pp)]
    assert equal == []


@pytest.mark.parametrize(
    ("gold", "pred"),
    [
        ("9", "9%"),  # math-verify equates 9% with 9
        ("0.5", "The answer is 50%"),
        ("x", r"\boxed{y}"),  # lone symbols are compared by name
        (r"[0, 1]", r"\boxed{[0, 2]}"),  # sets
        ("x = 2", r"\boxed{x = 3}"),  # relations
        (r"\sin x", r"\boxed{\cos x}"),  # functions
        ("1000000000000000", r"\boxed{1000000000000001}"),  # closer than one part in a million
        ("0.3333", r"\boxed{0.33335}"),  # closer than 1e-3
        # floats that cancel: 0 to math-verify, which evaluates them at their own precision
        ("0", r"\boxed{1.0\times 10^{20}+1-1.0\times 10^{20}}"),
        ("0", r"\boxed{(1.0 \cdot 10^{16}+1)-10^{16}}"),
    ],
)
def test_no_difference_is_claimed_outside_what_can_be_proved(gold: str, pred: str) -> None:
    gold_parsed = worker._gold_answer(gold)
    pred_parsed = worker._prediction(pred)[0]
    assert gold_parsed and pred_parsed
    assert not proved_unequal(gold_parsed, pred_parsed)


async def test_exact_matches_of_a_known_gold_skip_the_round_trip() -> None:
    """Once a worker has read a gold, a response that writes it exactly is answered by the
    grader itself, with the very result the worker gives; anything else still goes to a
    worker, and a new grader knows no gold."""
    pool = _get_pool(None)
    grader = MathGrader()
    gold, exact = r"\frac{17}{23}", r"So the answer is $\boxed{\frac{17}{23}}$."
    first = await grader.aevaluate(response=r"\boxed{0}", reference_response=gold)
    assert isinstance(first, GraderScore) and first.score == 0.0
    sent: list[Any] = []
    submit = pool.submit

    def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(args[1])
        return submit(*args, **kwargs)

    pool.submit = counting  # type: ignore[method-assign]
    try:
        mine = await grader.aevaluate(response=exact, reference_response=gold)
        wrong = await grader.aevaluate(response=r"\boxed{\frac{17}{24}}", reference_response=gold)
        fresh = await MathGrader().aevaluate(response=exact, reference_response=gold)
    finally:
        del pool.submit
    assert len(sent) == 2  # the wrong answer and the new grader's check
    assert isinstance(mine, GraderScore) and isinstance(fresh, GraderScore)
    assert (mine.score, mine.reason, mine.metadata) == (fresh.score, fresh.reason, fresh.metadata)
    assert mine.score == 1.0
    assert isinstance(wrong, GraderScore) and wrong.score == 0.0


# --- one check per distinct answer ---------------------------------------------------------------

# Spellings of one answer a group's completions write, each with different prose around it.
WRAPPERS = [
    "\\boxed{{{a}}}",
    "So the answer is $\\boxed{{{a}}}$.",
    "<think>try 3 and 4</think>\nThe answer is \\boxed{{ {a} }}, I think.",
    "Therefore the answer is ${a}$",
    "Hence ${a}$ is what we get.",
    "$${a}$$",
    "<answer>\\boxed{{{a}}}</answer>",
    "The answer is ${a}$%.",
    "So it is $\\boxed{{{a}}}$ percent.",
    "Hence ${a}$, see [x] .",
]


def _spellings(gold: str) -> list[str]:
    answers = [gold, f"{gold} + 1", "0", gold.replace("\\frac", "\\dfrac"), f"2({gold})"]
    answers += [f"{gold} - t", f"{gold}-t", f"({gold}) s", f"({gold})s"]  # spacing decides units
    return [w.format(a=a) for a in dict.fromkeys(answers) for w in WRAPPERS]


def test_responses_sharing_an_answer_key_get_one_verdict() -> None:
    """The grader checks an answer once for every response whose final part has the same
    ``answer_key``: on the labelled golds and the GRPO-shaped ones, each spelled several ways,
    every such group gets a single verdict (and the same reading shown) from the worker."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    golds = list(dict.fromkeys([*GOLDS, *(r["gold"] for r in rows)]))[:120]
    groups: dict[tuple[str, ...], set[tuple[str, str]]] = {}
    joined = 0
    for gold in golds:
        for response in _spellings(gold):
            final = worker._final_part(response)
            key = answer_key(final) if final is not None else None
            if key is None:
                continue
            worker._VERDICTS.clear()
            got = worker.check_equivalence(gold, response)
            seen = groups.setdefault((gold, *key), set())
            joined += bool(seen)
            seen.add((got["status"], got["pred"]))
    split = {k: v for k, v in groups.items() if len(v) > 1}
    assert split == {}
    assert joined >= 500, joined  # the keys do join many spellings


async def test_a_group_costs_one_check_per_distinct_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sixteen completions of one prompt with three distinct boxed answers, graded at once, send
    three checks to the workers, and each gets the result a fresh grader gives it alone."""
    import graders._math as math_grader

    gold = r"\frac{13}{29}"
    answers = [gold, r"\frac{13}{28}", "0"]
    boxed = [w for w in WRAPPERS if "boxed" in w and "percent" not in w and "{ " not in w]
    group = [boxed[i % len(boxed)].format(a=answers[i % 3]) for i in range(16)]
    sent: list[Any] = []
    real = math_grader._run_in_pool

    async def counting(func: Any, args: Any, **kwargs: Any) -> Any:
        sent.append(args)
        return await real(func, args, **kwargs)

    monkeypatch.setattr(math_grader, "_run_in_pool", counting)
    grader = MathGrader()
    results = await asyncio.gather(
        *(grader.aevaluate(response=r, reference_response=gold) for r in group)
    )
    assert len(sent) == 3, sent
    # A repeat later is answered from memory; a new answer is checked.
    again = await grader.aevaluate(
        response=rf"Thus \boxed{{{answers[1]}}}.", reference_response=gold
    )
    new = await grader.aevaluate(response=r"\boxed{\frac{12}{29}}", reference_response=gold)
    assert isinstance(again, GraderScore) and again.score == 0.0
    assert isinstance(new, GraderScore) and new.score == 0.0
    assert len(sent) == 4  # the new answer's check; the repeat cost nothing
    monkeypatch.setattr(math_grader, "_run_in_pool", real)
    alone = [await MathGrader().aevaluate(response=r, reference_response=gold) for r in group]
    assert [(r.score, r.metadata) for r in results] == [(r.score, r.metadata) for r in alone]
    assert [r.score for r in results[:3]] == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("gold", "a", "b"),
    [
        ("0.5", "The answer is $50$.", "The answer is $50$%."),
        ("0.5", r"\boxed{50}", r"So it is $\boxed{50}$ percent."),
        (r"\frac{1}{2}", r"\boxed{\frac{1}{2} m}", r"\boxed{\frac{1}{2}m}"),
        ("x+1", r"\boxed{(x+1) s}", r"\boxed{(x+1)s}"),
        ("1", "The answer is $1$.", "Hence $1$, see [x] ."),
        # spacing that changes math-verify's reading
        ("-2", r"\boxed{x ^ -2}", r"\boxed{x^-2}"),
        ("1", r"\boxed{\sqrt (x) + 1}", r"\boxed{\sqrt(x)+1}"),
        ("2", "So it is $2^-x$", "So it is:$2^-x$"),
        ("3", r"\boxed{ 3x^-2}", r"\boxed{3x^-2}"),
        (r"\frac{x}{2}", r"\boxed{\frac{x}  2}", r"\boxed{\frac{x}2}"),
    ],
)
async def test_a_response_never_takes_another_responses_score(gold: str, a: str, b: str) -> None:
    """Two completions that read alike but not to math-verify (a percent after the answer, a
    letter after a space, a bracketed aside) deserve different scores, and get them whichever
    is graded first by one grader: they shared one check, and the second took the first's."""
    fresh = [await MathGrader().aevaluate(response=r, reference_response=gold) for r in (a, b)]
    scores = [r.score for r in fresh if isinstance(r, GraderScore)]
    assert len(scores) == 2 and scores[0] != scores[1], fresh
    for order in ((a, b), (b, a)):
        grader = MathGrader()
        got = {r: await grader.aevaluate(response=r, reference_response=gold) for r in order}
        assert [getattr(got[r], "score", None) for r in (a, b)] == scores


@pytest.mark.parametrize(
    ("gold", "response"),
    [
        (r"\frac{x}2", r"\boxed{\frac{x}  2}"),
        (r"\frac1{72}", r"\boxed{\frac1  {72}}"),
        ("2^(x+1)", r"\boxed{2^  (x+1)}"),
    ],
)
async def test_the_fast_path_never_says_equal_where_math_verify_does_not(
    gold: str, response: str
) -> None:
    """Spaced differently from the gold, these read differently to math-verify (its repairs of
    an unbraced argument take one space, not two); the exact-match fast path said equal."""
    worker._VERDICTS.clear()
    assert worker.check_equivalence(gold, response)["status"] == "not_equal"
    result = await MathGrader().aevaluate(response=response, reference_response=gold)
    assert isinstance(result, GraderScore) and result.score == 0.0


async def test_a_failed_check_is_not_remembered() -> None:
    """A check that times out is unscored for every completion that shared it, and the next
    completion with that answer is checked again rather than given the failure."""
    grader = MathGrader(timeout=0.5)
    first, second = await asyncio.gather(
        grader.aevaluate(response=SLOW, reference_response="3"),
        grader.aevaluate(response=SLOW, reference_response="3"),
    )
    assert isinstance(first, GraderError) and first.kind == "timeout"
    assert isinstance(second, GraderError) and second.kind == "timeout"
    assert grader._checks.computed == 1
    third = await grader.aevaluate(response=SLOW, reference_response="3")
    assert isinstance(third, GraderError) and third.kind == "timeout"
    assert grader._checks.computed == 2


async def test_a_pickled_grader_grades_and_shares_checks_afresh() -> None:
    import pickle

    grader = MathGrader()
    first = await grader.aevaluate(response=r"\boxed{3}", reference_response="4")
    copy = pickle.loads(pickle.dumps(grader))
    again = await copy.aevaluate(response=r"So \boxed{3}.", reference_response="4")
    assert isinstance(first, GraderScore) and isinstance(again, GraderScore)
    assert (first.score, again.score, copy._checks.computed) == (0.0, 0.0, 1)
