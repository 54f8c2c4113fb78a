"""A gold that is a list of acceptable answers (verl's ``ground_truth`` often is), or numpy.

verl hands ``compute_score`` whatever the parquet holds: a string, a number, a list of acceptable
answers, or (read through pandas/datasets) a numpy array or numpy scalar. Each was unscored
(``invalid_input``). The answer graders (math, number, string_match) now read a flat list,
tuple or 1-D array of golds as "any of these": the score is the best over the golds, the
metadata says which one matched, and a gold that cannot be graded (no math, no number, empty) is
passed over, unless none can be. The graders that use the reference as text (similarity, the
judges) still refuse a list, saying which graders take one.
"""

from __future__ import annotations

from typing import Any

import pytest

from graders import MathGrader, NumberGrader, StringMatchGrader
from graders._math_pool import _get_pool
from graders._math_worker import check_golds
from graders._text import as_gold_list, as_text
from rm_service import GraderError, GraderScore

SLOW_GOLD = r"9^{9^{9^{9}}}"
"""A gold whose check the worker's timer has to interrupt (sympy evaluates the tower)."""


async def grade(grader: Any, gold: Any, response: Any) -> GraderScore | GraderError:
    return await grader.aevaluate(response=response, reference_response=gold)


def scored(result: GraderScore | GraderError) -> GraderScore:
    assert isinstance(result, GraderScore), result
    return result


def unscored(result: GraderScore | GraderError, kind: str = "invalid_input") -> GraderError:
    assert isinstance(result, GraderError), result
    assert result.kind == kind, result
    return result


# --- MathGrader ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("golds", "response", "score", "index"),
    [
        (["56", "57"], r"\boxed{56}", 1.0, 0),
        (["57", "56"], r"\boxed{56}", 1.0, 1),
        (("x", r"\frac{1}{2}"), "The answer is 0.5.", 1.0, 1),  # a tuple too
        ([r"\frac{1}{2}", 0.5], r"$\boxed{\frac12}$", 1.0, 0),
        ([7, 8], r"\boxed{8}", 1.0, 1),  # GSM8K-style integer golds
        (["1", "2"], r"\boxed{3}", 0.0, None),
        (["56"], r"\boxed{56}", 1.0, 0),  # a list of one
        (["abc", "56"], r"\boxed{56}", 1.0, 1),  # a gold with no math is passed over
        (["1", "2"], "I don't know.", 0.0, None),  # no answer in the response: a real 0
    ],
)
async def test_math_any_gold_matches(
    golds: Any, response: str, score: float, index: int | None
) -> None:
    result = scored(await grade(MathGrader(), golds, response))
    assert result.score == score
    assert result.metadata["gold_index"] == index
    if index is not None:
        assert f"reference_response[{index}]" in result.reason


async def test_math_metadata_names_the_matching_and_the_skipped_golds() -> None:
    result = scored(await grade(MathGrader(), ["é", "3", r"\frac{7}{2}"], r"\boxed{3.5}"))
    assert result.score == 1.0
    assert result.metadata == {
        "gold": r"\frac{7}{2}",
        "pred": "3.5",
        "gold_index": 2,
        "golds_skipped": [0],
        "golds_timed_out": [],
    }
    # A single gold keeps its old metadata: nothing about lists.
    single = scored(await grade(MathGrader(), "3", r"\boxed{3}"))
    assert set(single.metadata) == {"gold", "pred"}


@pytest.mark.parametrize(
    ("golds", "message"),
    [
        ([], "empty"),
        ((), "empty"),
        (["abc", "é", ""], "no gold"),  # not one gold holds math
        ([["1", "2"]], "nested"),
        (["1", {"a": 1}], "reference_response[1]"),
        (["1", None], "reference_response[1]"),
        (["1", float("nan")], "reference_response[1]"),
        (["1", True], "reference_response[1]"),
    ],
)
async def test_math_unusable_gold_lists_are_invalid_input(golds: Any, message: str) -> None:
    error = unscored(await grade(MathGrader(), golds, r"\boxed{1}"))
    assert "'reference_response'" in error.error
    assert message in error.error


def test_worker_checks_every_gold_in_one_call() -> None:
    out = check_golds(("abc", "2", "3"), r"\boxed{3}", 5.0)
    assert (out["status"], out["index"], out["skipped"], out["timed_out"]) == ("equal", 2, [0], [])
    out = check_golds(("abc", "é"), r"\boxed{3}", 5.0)
    assert out["status"] == "invalid_gold"
    assert out["skipped"] == [0, 1]


async def test_a_slow_gold_times_out_alone_and_the_next_is_still_checked() -> None:
    """The timeout is per gold: a gold whose check runs past it is passed over, the next one is
    checked with a fresh budget, and the whole job is bounded by len(golds) x timeout."""
    grader = MathGrader(timeout=1.0)
    result = scored(await grade(grader, [SLOW_GOLD, "4"], r"\boxed{4}"))
    assert result.score == 1.0
    assert result.metadata["gold_index"] == 1
    assert result.metadata["golds_timed_out"] == [0]
    # No gold matched and one ran out of time: that one might have matched, so no 0.0.
    error = unscored(await grade(grader, ["5", SLOW_GOLD], r"\boxed{4}"), kind="timeout")
    assert "reference_response[1]" in error.error
    # The worker lives on.
    assert scored(await grade(grader, ["5", "4"], r"\boxed{4}")).score == 1.0


async def test_many_golds_are_one_round_trip() -> None:
    pool = _get_pool(None)
    grader = MathGrader()
    await grade(grader, "1", r"\boxed{1}")  # a warm pool
    calls: list[Any] = []
    submit = pool.submit

    def counting(func: Any, args: Any, timeout: float) -> Any:
        calls.append((func.__name__, timeout))
        return submit(func, args, timeout)

    pool.submit = counting  # type: ignore[method-assign]
    try:
        result = scored(await grade(grader, [str(i) for i in range(20)], r"\boxed{19}"))
    finally:
        del pool.submit
    assert result.metadata["gold_index"] == 19
    assert calls == [("check_golds", 20 * grader.timeout)]


# --- numpy ---------------------------------------------------------------------------------------


async def test_math_reads_numpy_arrays_and_scalars() -> None:
    np = pytest.importorskip("numpy")
    grader = MathGrader()
    cases: list[tuple[Any, str, float]] = [
        (np.array(["55", "56"]), r"\boxed{56}", 1.0),
        (np.array(["55", "56"], dtype=object), r"\boxed{56}", 1.0),
        (np.array([55, 56]), r"\boxed{56}", 1.0),
        (np.array([0.5, 0.25]), r"\boxed{\frac{1}{4}}", 1.0),
        (np.int64(56), r"\boxed{56}", 1.0),
        (np.int32(56), r"\boxed{57}", 0.0),
        (np.float64(0.5), r"\boxed{\frac12}", 1.0),
        (np.float32(0.5), r"\boxed{\frac12}", 1.0),
        (np.str_("56"), r"\boxed{56}", 1.0),
        (np.array("56"), r"\boxed{56}", 1.0),  # a 0-d array is one gold
    ]
    for gold, response, score in cases:
        result = await grade(grader, gold, response)
        assert isinstance(result, GraderScore), (gold, result)
        assert result.score == score, (gold, result)
    for bad, message in [
        (np.array([]), "empty"),
        (np.array([["1"], ["2"]]), "nested"),
        (np.float64("nan"), "float nan"),
        (np.bool_(True), "bool"),
    ]:
        error = unscored(await grade(grader, bad, r"\boxed{1}"))
        assert message in error.error, (bad, error)


def test_only_numpy_values_are_unwrapped() -> None:
    # By the type's module, without importing numpy: another object with tolist() is left alone.
    class Fake:
        def tolist(self) -> list[str]:
            return ["1"]

    with pytest.raises(Exception, match="got Fake"):
        as_text(Fake(), "reference_response")
    assert as_gold_list("1", "reference_response") is None
    assert as_gold_list(["1", 2, 0.5], "reference_response") == ["1", "2", "0.5"]


# --- the other answer graders --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grader", "golds", "response", "score", "index"),
    [
        (NumberGrader(), ["41", "42"], "The answer is 42.", 1.0, 1),
        (NumberGrader(), [41, 42.0], "The answer is 42.", 1.0, 1),
        (NumberGrader(), ["no number", "42"], "The answer is 42.", 1.0, 1),
        (NumberGrader(), ["100", "44"], "The answer is 42.", 0.5, 1),  # best partial credit
        (NumberGrader(), ["100", "44", "42"], "The answer is 42.", 1.0, 2),
        (NumberGrader(), ["1", "2"], "The answer is 42.", 0.0, None),
        (StringMatchGrader(), ["Paris", "paris, France"], "paris, France", 1.0, 1),
        (StringMatchGrader(mode="normalized"), ("The Paris", "Rome"), "paris", 1.0, 0),
        (StringMatchGrader(mode="contains"), ["", "Rome"], "I think Rome.", 1.0, 1),
        (StringMatchGrader(mode="regex"), ["[", r"\bRome\b"], "Rome it is", 1.0, 1),
        (StringMatchGrader(), ["Paris", "Rome"], "Berlin", 0.0, None),
    ],
)
async def test_number_and_string_match_take_gold_lists(
    grader: Any, golds: Any, response: str, score: float, index: int | None
) -> None:
    result = scored(await grade(grader, golds, response))
    assert result.score == score
    assert result.metadata["gold_index"] == index
    if index is not None:
        assert f"reference_response[{index}]" in result.reason


async def test_number_and_string_match_take_numpy() -> None:
    np = pytest.importorskip("numpy")
    assert scored(await grade(NumberGrader(), np.int64(42), "It is 42.")).score == 1.0
    assert scored(await grade(NumberGrader(), np.array([41, 42]), "It is 42.")).score == 1.0
    assert scored(await grade(StringMatchGrader(), np.array(["a", "b"]), "b")).score == 1.0


@pytest.mark.parametrize("grader", [NumberGrader(), StringMatchGrader()])
async def test_number_and_string_match_refuse_unusable_lists(grader: Any) -> None:
    for golds, message in [([], "empty"), ([["4"]], "nested"), (["", "  "], "no gold")]:
        if isinstance(grader, NumberGrader) and golds == ["", "  "]:
            golds = ["none", "here"]
        error = unscored(await grade(grader, golds, "4"))
        assert "'reference_response'" in error.error and message in error.error, error


def test_text_graders_say_which_graders_take_a_list() -> None:
    with pytest.raises(Exception, match="math, number and string_match"):
        as_text(["a", "b"], "reference_response")


async def test_gold_lists_through_a_config() -> None:
    """The verl shape: ``ground_truth`` mapped to ``reference_response``, a list per record."""
    from rm_service import build_runner, load_config

    cfg = load_config(
        {"graders": {"acc": {"type": "math", "mapper": {"reference_response": "ground_truth"}}}}
    )
    runner = build_runner(cfg)
    records = [
        {"response": r"\boxed{56}", "ground_truth": ["55", "56"]},
        {"response": r"\boxed{56}", "ground_truth": ["55", "54"]},
        {"response": r"\boxed{56}", "ground_truth": []},
    ]
    results = await runner.agrade(records)
    got = [r.components["acc"] for r in results]
    assert [g.score for g in got[:2] if isinstance(g, GraderScore)] == [1.0, 0.0]
    assert isinstance(got[2], GraderError) and got[2].kind == "invalid_input"
