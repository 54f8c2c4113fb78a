"""MathGrader on a GRPO group graded at once: what the grader answers itself, and what it sends.

The completions of a group arrive together, before any worker has read their gold. Those the
grader can answer once the gold is read (the gold written out exactly, a final part known to hold
no answer) wait for the first check on that gold instead of each costing a round trip; a gold's
checks go to one worker, which parses it once; and each worker reads a number literal once.
None of it may change a result: every result here is compared with a fresh grader's, one check
at a time, where nothing is known yet.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graders import _math_worker as worker
from graders._math import MathGrader
from graders._math_pool import _get_pool, _run_in_pool
from rm_service import GraderScore

GROUP_FORMS = [
    "<think>work</think>\nThe answer is $\\boxed{{{g}}}$.",
    "So the final answer is \\boxed{{{g}}}.",
    "Therefore the answer is ${g}$",
    "\\boxed{{{g} + 1}}",
    "The answer is \\boxed{{0}}.",
    "After simplifying we get $\\boxed{{{g}}}$ which is final.",
    "I am not sure.",
    "$${g}$$",
    "Hence:${g}$",  # a span after other text: never the grader's own exact match
    "<answer>no idea</answer>",
]
GOLDS = [r"\frac{17}{23}", "2652", "x^2 + 3x + 5", r"12\sqrt{7}", "34.5", "5 m", "x+3c", "1,000"]


def _plain(result: Any) -> tuple[Any, ...]:
    if isinstance(result, GraderScore):
        return (result.score, result.reason, result.metadata)
    return (result.kind, result.error)


async def _alone(gold: str, response: str) -> tuple[Any, ...]:
    return _plain(await MathGrader().aevaluate(response=response, reference_response=gold))


def _counting_submits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    pool = _get_pool(None)
    sent: list[tuple[Any, ...]] = []
    submit = pool.submit

    def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(args[1])
        return submit(*args, **kwargs)

    monkeypatch.setattr(pool, "submit", counting)
    return sent


@pytest.mark.parametrize("gold", GOLDS)
async def test_a_group_graded_at_once_gets_the_results_of_checks_alone(gold: str) -> None:
    responses = [form.format(g=gold) for form in GROUP_FORMS] * 2
    grader = MathGrader()
    together = await asyncio.gather(
        *(grader.aevaluate(response=r, reference_response=gold) for r in responses)
    )
    alone = [await _alone(gold, r) for r in responses]
    assert [_plain(r) for r in together] == alone
    # And once the gold is known, one at a time through the same grader.
    again = [await grader.aevaluate(response=r, reference_response=gold) for r in responses]
    assert [_plain(r) for r in again] == alone


async def test_the_gold_written_out_and_no_answer_wait_for_the_gold_s_first_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: every distinct spelling of the gold (boxed, inline, display) and every final part
    without an answer went to a worker while the gold's first check was still in flight. Now
    they wait for it and are answered here: the group costs one check per distinct answer that
    is neither (the wrong ones) plus the first."""
    grader = MathGrader()
    await grader.aload()
    warm = await grader.aevaluate(response="I am not sure.", reference_response="3")
    assert isinstance(warm, GraderScore) and warm.score == 0.0  # that final part holds no answer
    gold = r"\frac{31}{37}"
    sent = _counting_submits(monkeypatch)
    exact = [
        f"So the final answer is \\boxed{{{gold}}}.",
        f"Therefore the answer is ${gold}$",
        f"$${gold}$$",
        f"After simplifying we get $\\boxed{{{gold}}}$ which is final.",
    ]
    responses = [*exact, "I am not sure.", *exact, "I am not sure.", r"\boxed{0}"]
    results = await asyncio.gather(
        *(grader.aevaluate(response=r, reference_response=gold) for r in responses)
    )
    assert [r.score for r in results if isinstance(r, GraderScore)] == [1.0] * 4 + [0.0] + [
        1.0
    ] * 4 + [0.0, 0.0]
    assert len(sent) == 2, sent  # the first exact match (the gold's first check) and \boxed{0}
    assert {args[1] for args in sent} == {exact[0], r"\boxed{0}"}


def _numbers_remembered() -> bool:
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy

    return bool(getattr(_Latex2Sympy.parse_number, "remembered", False))


async def test_workers_read_each_number_literal_once() -> None:
    status, remembered = await _run_in_pool(_numbers_remembered, (), limit=5)
    assert (status, remembered) == ("ok", True)


def test_numbers_read_once_parse_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parses of a worker that remembers number literals are those of one that does not,
    with the same structure and the same kind of number (integers, floats and their precision)."""
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy
    from math_verify.parser import parse_latex_cached

    texts = [
        *(r"x^2 + 40x + 63", r"\frac{92}{79} + 1", r"64.3 + 1", "0.10", "007", r"2^{10}"),
        *(r"1.5 \times 10^3", r"12\sqrt{67}", r"50\%", "1,000", r"3.14159265358979323846"),
    ]
    parse_latex_cached.cache_clear()  # math-verify's own memory of parses: each is read anew
    before = [worker._parse(f"${t}$", "answer") for t in texts]
    monkeypatch.setattr(_Latex2Sympy, "parse_number", _Latex2Sympy.parse_number)
    worker._remember_numbers()
    assert _numbers_remembered()
    twice = []
    for _ in range(2):
        parse_latex_cached.cache_clear()
        twice.append([worker._parse(f"${t}$", "answer") for t in texts])
    for after in twice:
        assert [[srepr(x) for x in p] for p in after] == [[srepr(x) for x in p] for p in before]


def srepr(value: Any) -> str:
    from sympy import srepr as sympy_srepr  # type: ignore[import-untyped]

    return value if isinstance(value, str) else sympy_srepr(value)
