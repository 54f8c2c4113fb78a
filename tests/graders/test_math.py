"""MathGrader: outcomes, deadlines, worker replacement, loop independence and accuracy."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from graders import get_grader
from graders._math import MathGrader
from graders._math_pool import _get_pool, _run_in_pool, shutdown_math_pool
from rm_service import GraderError, GraderScore

DATA = Path(__file__).resolve().parents[1] / "data" / "math_equiv.jsonl"

# A prediction whose evaluation never ends in pure Python: the worker's own timer interrupts it.
SLOW = r"The answer is $\boxed{9^{9^{9^{9}}}}$."


async def grade(grader: MathGrader, gold: Any, response: Any) -> GraderScore | GraderError:
    return await grader.aevaluate(response=response, reference_response=gold)


@pytest.mark.parametrize(
    ("gold", "response", "expected"),
    [
        # equivalent
        (r"\frac{63}{400}", r"\boxed{\frac{63}{400}}", 1.0),
        ("0.5", r"So the answer is $\frac{1}{2}$.", 1.0),
        ("1/3", r"The final answer is $0.3333$.", 1.0),
        (r"$28\%$", "The answer is 28 percent.", 1.0),
        (r"x \leq 5", r"Therefore $5 \geq x$.", 1.0),
        (
            r"\begin{pmatrix}1 & 2 \\ 3 & 4\end{pmatrix}",
            r"$\begin{bmatrix}1&2\\3&4\end{bmatrix}$",
            1.0,
        ),
        (r"[-1, 0) \cup (0, \infty)", r"$x \in \boxed{[-1,0)\cup(0,\infty)}$", 1.0),
        ("7,425,000", "It costs 7425000 dollars.", 1.0),
        ("40/9", "The answer is 4 4/9.", 1.0),
        (r"\boxed{14{,}916}", r"Final Answer: $\boxed{14916}$", 1.0),
        (7, r"\boxed{7}", 1.0),  # GSM8K-style integer gold
        (1e-05, "The answer is 0.00001.", 1.0),
        (r"\frac{1}{2}", r"<think>maybe 1/3</think> The answer is $\boxed{\frac12}$", 1.0),
        # the R1 format: the answer is the last <answer> block, reasoning never counts
        ("56", "<think>7*8 = 56.</think>\n<answer>56</answer>", 1.0),
        ("3/4", "<think>halve</think><answer>0.75</answer>", 1.0),
        (r"50\%", r"<think>half</think><answer>50\%</answer>", 1.0),
        ("3", "<think>t</think><answer>3</answer> I hope that helps!", 1.0),
        ("-2", "<answer>-2</answer>", 1.0),  # no think block at all
        ("19", "<think>is it 19?</think><answer>19", 1.0),  # unclosed answer runs to the end
        ("3", "<think>3</think><answer>4</answer>", 0.0),  # the right number only in reasoning
        ("6", "<think>6</think><answer></answer>", 0.0),  # empty answer block
        ("2", "<answer>1</answer> draft <answer>2</answer>", 1.0),  # the last block wins
        # not equivalent
        (r"\frac{63}{400}", r"\boxed{\frac{64}{400}}", 0.0),
        ("1/3", r"The final answer is $0.33$.", 0.0),  # two decimals are not 1/3
        ("x+3c", r"$\boxed{x+3}$", 0.0),  # a trailing variable is not a unit
        # nor one after an operator: the letter was dropped as a unit, leaving "12 -", read as 12
        ("12", "The answer is $12 - s$.", 0.0),
        (r"\frac{1}{2}", r"\boxed{\frac{1}{2} + m}", 0.0),
        ("1-t", r"\boxed{1 - t}", 1.0),
        ("5", r"\boxed{5 m}", 1.0),  # a unit after a number still is one
        # scientific notation is a power of ten, not a product with e (or a number cut at e)
        ("100000", r"\boxed{1e5}", 1.0),
        ("1500", "The answer is 1.5e3", 1.0),
        ("1.5e-3", "$0.0015$", 1.0),
        ("100000", r"\boxed{1e4}", 0.0),
        (r"1 - \frac{1}{\mathrm{e}}", r"$1 + \frac{1}{\mathrm{e}}$", 0.0),
        ("$[0,1)$", "$[0,1]$", 0.0),
        ("5", r"\boxed{5} is wrong; the answer is \boxed{6}", 0.0),
        ("9", "Answer $ \n 9 \n $", 0.0),  # inline math cannot span lines
        # two known units that differ: math-verify drops units, so each was a 1.0
        (r"5\text{ cm}", r"\boxed{5\text{ m}}", 0.0),
        (r"3\text{ hours}", r"\boxed{3\text{ minutes}}", 0.0),
        (r"20\text{ cm}^2", r"\boxed{20\text{ cm}}", 0.0),
        (r"5\text{ cm}", "<answer>5 km</answer>", 0.0),
        # the same unit in other words, or a unit on one side only, is still equal
        (r"5\text{ cm}", "The answer is 5 centimeters.", 1.0),
        (r"5\text{ cm}", r"\boxed{5}", 1.0),
        ("5", r"\boxed{5\text{ m}}", 1.0),
        (r"20\text{ cm}^2", r"\boxed{20 \text{ cm}^2}", 1.0),
        ("5 s", r"\boxed{5 \text{ seconds}}", 1.0),
        # guards: a remark's unit in prose, one volume under two names, a product in math
        (r"150 \text{ km}", "The answer is 150 km, which it covers in 3 hours.", 1.0),
        (r"42 \text{ dollars}", "The final answer is 42 dollars, saved over 6 weeks", 1.0),
        (r"500 \text{ cm}^3", r"\boxed{500 \text{ mL}}", 1.0),
        ("24", "$2 *3* 4$", 1.0),
        # markdown around the answer: each was a 0.0
        ("4", "<think>t</think><answer>**4**</answer>", 1.0),
        ("4", "<answer>*4*</answer>", 1.0),
        ("4", "<answer>`4`</answer>", 1.0),
        (r"\frac{1}{2}", r"<answer>**\frac{1}{2}**</answer>", 1.0),
        ("5", "<answer>**6**</answer>", 0.0),
        ("24", "The answer is $2 * 3 * 4$.", 1.0),  # a product stays one
        # \lor and \land: math-verify read only the last alternative (each was a 1.0)
        (r"x = -2 \lor x = 2", r"\boxed{2}", 0.0),  # a root missing
        (r"x = -2 \lor x = 2", r"\boxed{x = 7 \lor x = 2}", 0.0),
        ("5", r"\boxed{x = 2 \land x = 5}", 0.0),
        ("5", r"\boxed{x > 100 \lor x = 5}", 0.0),
        ("2", r"\boxed{x = 2 ∨ x = 3}", 0.0),
        (r"x = -2 \lor x = 2", r"\boxed{-2, 2}", 1.0),  # was a 0.0
        (r"x = -2 \lor x = 2", r"\boxed{x = 2 \vee x = -2}", 1.0),
        (r"x = -2 \text{ or } x = 2", r"\boxed{x = -2 \lor x = 2}", 1.0),
        # no extractable answer: a genuine 0, not an error
        ("42", "I don't know.", 0.0),
        (r"\frac{1}{2}", r"<think>It is \boxed{\frac{1}{2}}", 0.0),  # reasoning never ended
        # unreadable gold: unscored
        ("forty two", r"\boxed{42}", "invalid_input"),
        ("Answer is forty two.", "Answer is forty two.", "invalid_input"),
        ("", "3", "invalid_input"),
        ("3", ["not", "text"], "invalid_input"),
    ],
)
async def test_outcomes(gold: Any, response: Any, expected: float | str) -> None:
    result = await grade(MathGrader(), gold, response)
    if isinstance(expected, str):
        assert isinstance(result, GraderError), result
        assert result.kind == expected
    else:
        assert isinstance(result, GraderScore), result
        assert result.score == expected
        assert result.reason


async def test_result_carries_extracted_answers() -> None:
    result = await grade(MathGrader(name="acc"), r"\dfrac{1}{2}", r"Thus $\boxed{0.5}$.")
    assert isinstance(result, GraderScore)
    assert result.name == "acc"
    assert result.metadata == {"gold": r"\frac{1}{2}", "pred": r"\frac{1}{2}"}
    missing = await grade(MathGrader(), "42", "no idea")
    assert isinstance(missing, GraderScore)
    assert missing.score == 0.0
    assert "no answer" in missing.reason


def test_registered_for_configs() -> None:
    built = get_grader("math", timeout=2)
    assert isinstance(built, MathGrader)
    assert (built.name, built.timeout) == ("math", 2.0)
    assert MathGrader.required_fields == ("response", "reference_response")
    with pytest.raises(ValueError):
        MathGrader(timeout=0)


async def test_timeout_is_unscored_and_the_next_call_works() -> None:
    result = await grade(MathGrader(timeout=0.5), "5", SLOW)
    assert isinstance(result, GraderError)
    assert result.kind == "timeout"
    ok = await grade(MathGrader(timeout=0.5), "2", r"\boxed{2}")
    assert isinstance(ok, GraderScore)
    assert ok.score == 1.0


async def test_stuck_worker_is_killed_and_replaced() -> None:
    # sum() over a huge range is one C call: the worker's timer cannot interrupt it, so only the
    # parent's outer deadline ends it, by killing the process.
    pool = _get_pool(None)
    before = pool.replaced
    status, message = await _run_in_pool(sum, (range(10**13),), limit=0.2)
    assert status == "timeout"
    assert "killed" in message
    assert pool.replaced == before + 1
    grader = MathGrader()
    results = await asyncio.gather(*(grade(grader, str(i), rf"\boxed{{{i}}}") for i in range(8)))
    assert [r.score for r in results if isinstance(r, GraderScore)] == [1.0] * 8


async def test_worker_that_died_while_idle_is_replaced() -> None:
    grader = MathGrader()
    assert isinstance(await grade(grader, "1", r"\boxed{1}"), GraderScore)
    pool = _get_pool(None)
    for worker in [w for w in list(pool._workers) if w.ready]:  # idle ones, not starting ones
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait(5)
    results = await asyncio.gather(*(grade(grader, str(i), rf"\boxed{{{i}}}") for i in range(4)))
    assert [r.score for r in results if isinstance(r, GraderScore)] == [1.0] * 4


async def test_exceptions_never_score_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Inside a worker, even a BaseException comes back as an error and the worker lives on.
    status, message = await _run_in_pool(sys.exit, (3,), limit=5)
    assert (status, message) == ("error", "SystemExit: 3")
    status, _ = await _run_in_pool(int, ("x",), limit=5)
    assert status == "error"
    # Whatever the pool answers, only a verified "equal" is a 1.0.
    for reply in [("error", "boom"), ("ok", "not a dict"), ("ok", {"status": "odd"})]:

        async def fake(*args: Any, reply: Any = reply, **kwargs: Any) -> Any:
            return reply

        monkeypatch.setattr("graders._math._run_in_pool", fake)
        result = await grade(MathGrader(), "1", r"\boxed{1}")
        assert isinstance(result, GraderError)
        assert result.kind == "internal"

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("pool exploded")

    monkeypatch.setattr("graders._math._run_in_pool", broken)
    result = await grade(MathGrader(), "1", r"\boxed{1}")
    assert isinstance(result, GraderError)
    assert result.kind == "internal"


def test_pool_is_created_once_from_many_threads() -> None:
    shutdown_math_pool()
    grader = MathGrader()
    results: list[Any] = []
    pools: list[Any] = []

    def in_thread(i: int) -> None:
        results.append(asyncio.run(grade(grader, str(i), rf"\boxed{{{i}}}")))
        pools.append(_get_pool(None))

    threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.score for r in results if isinstance(r, GraderScore)] == [1.0] * 6
    assert len({id(p) for p in pools}) == 1


def test_one_instance_across_event_loops_and_threads() -> None:
    grader = MathGrader()
    first = asyncio.run(grade(grader, "3", r"\boxed{3}"))
    second = asyncio.run(grade(grader, "3", r"\boxed{4}"))
    from_thread: list[Any] = []

    def in_thread() -> None:
        from_thread.append(asyncio.run(grade(grader, r"\sqrt{2}", r"$\boxed{\sqrt 2}$")))

    t = threading.Thread(target=in_thread)
    t.start()
    t.join(60)
    scores = [r.score for r in (first, second, *from_thread) if isinstance(r, GraderScore)]
    assert scores == [1.0, 0.0, 1.0]


async def test_accuracy_on_labelled_cases() -> None:
    """The labelled set (tests/data/math_equiv.jsonl): see bench/math_accuracy.py for figures."""
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 400
    grader = MathGrader()
    results = await asyncio.gather(*(grade(grader, r["gold"], r["pred"]) for r in rows))
    said = [isinstance(r, GraderScore) and r.score == 1.0 for r in results]
    truth = [bool(r["label"]) for r in rows]
    tp = sum(s and t for s, t in zip(said, truth, strict=True))
    fp = sum(s and not t for s, t in zip(said, truth, strict=True))
    accuracy = sum(s == t for s, t in zip(said, truth, strict=True)) / len(rows)
    precision = tp / (tp + fp)
    assert not [r for r in results if isinstance(r, GraderError) and r.kind == "timeout"]
    assert accuracy >= 0.98, accuracy
    assert precision >= 0.99, precision


def test_shutdown_stops_every_feeder_thread() -> None:
    """Each shutdown wakes all of the pool's feeder threads (a queue drained after the
    sentinels once swallowed some, leaving a blocked thread per app shutdown)."""
    grader = MathGrader()
    for k in range(3):  # a new check each time: a repeated one is answered by the grader
        assert asyncio.run(grade(grader, str(k + 2), rf"\boxed{{{k + 2}}}")).score == 1.0
        feeders = [t for t in threading.enumerate() if t.name.startswith("rm-service-math-")]
        assert feeders
        shutdown_math_pool()
        for t in feeders:
            t.join(5)
        assert not any(t.is_alive() for t in feeders)


def _probe() -> int:
    return 1


async def test_a_job_the_worker_cannot_import_is_an_error_and_the_worker_lives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pickled by reference as __main__._probe, which the worker's __main__ does not have: the
    # worker used to die unpickling it (answered "died; replaced"), now it says why and lives on.
    monkeypatch.setattr(_probe, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "_probe", _probe, raising=False)
    pool = _get_pool(None)
    assert (await _run_in_pool(abs, (-2,), limit=5)) == ("ok", 2)
    before = pool.replaced
    status, message = await asyncio.wait_for(_run_in_pool(_probe, (), limit=5), 30)
    assert status == "error"
    assert "job could not be read" in message
    assert pool.replaced == before


async def test_a_job_that_cannot_be_pickled_is_an_error_not_a_hang() -> None:
    status, message = await asyncio.wait_for(_run_in_pool(lambda: 1, (), limit=5), 30)
    assert status == "error"
    assert "could not be sent" in message
    assert (await _run_in_pool(abs, (-3,), limit=5)) == ("ok", 3)
