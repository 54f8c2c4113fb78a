"""Red-team review of the embedded default reward (``math`` 0.7, ``format`` 0.2, ``length`` 0.1).

What a GRPO policy could learn, or an honest answer lost, that the earlier reviews left open:

* **Rounded together.** math-verify compares a decimal with the gold after rounding both to 6
  decimal places, an absolute tolerance, so ``0.0`` scored 1.0 against a gold of ``10^{-8}``,
  ``0.0000001`` against ``0.0000002``, and (with the 4-5 decimal retry) ``0.0001`` against
  ``0.00012``: answering ``0.0`` for any small quantity was a full score. An equal verdict on
  two numbers now needs them within 0.1% of each other
  (:func:`graders._math_unequal.rounded_together`), and the reason says so.
* **Digits a reader sees.** Full-width ``５６``, Arabic-Indic ``٥٦`` and a direction mark before
  the number were "no answer found", so the right answer scored 0
  (:func:`graders._math_text._ascii_digits`).
* **Answer tags in another case or with attributes.** ``<ANSWER>56</ANSWER>`` held the right
  answer and scored 0 for correctness, since math-verify reads no number after a ``>``
  (:func:`graders._math_text.canonical_tags`); the format component still scores it 0.
* **An answer block of a NUL byte** was a non-empty answer, so ``format`` paid 1.0 for an
  answer block that shows nothing (:func:`graders._format._shows_nothing`).
"""

from __future__ import annotations

from typing import Any

import pytest

from graders._format import FormatGrader
from graders._math import MathGrader
from rm_service import GraderScore
from rm_service._config import load_runner
from rm_service._default import DEFAULT_CONFIG


def tagged(answer: str, think: str = "Work it out.") -> str:
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


async def graded(gold: Any, response: str, **fields: Any) -> GraderScore:
    result = await MathGrader().aevaluate(response=response, reference_response=gold, **fields)
    assert isinstance(result, GraderScore), result
    return result


# --- rounded together ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gold", "answer"),
    [
        ("0.00000001", "0.0"),  # 0.0 for any small quantity
        (r"6.626 \times 10^{-34}", "0.0"),
        ("0.0000002", "0.0000001"),
        ("0.00000001", "0.00000009"),
        (r"3 \times 10^{-8}", "0.00000002"),
        ("0.00012", "0.0001"),  # the 4-decimal retry
        (r"1.2 \times 10^{-4}", "0.0001"),
        ("0.00045", "0.0004"),
    ],
)
async def test_a_small_number_equal_only_once_rounded_scores_0(gold: str, answer: str) -> None:
    result = await graded(gold, tagged(answer))
    assert result.score == 0.0, result.reason
    assert "equal only once rounded" in result.reason


@pytest.mark.parametrize(
    ("gold", "answer"),
    [
        (r"\frac{1}{3}", "0.3333"),  # the written-precision retry still pays
        (r"\frac{1}{7}", "0.1429"),
        (r"\sqrt{2}", "1.4142"),
        (r"\pi", "3.14159265"),
        ("0.3", "0.3000004"),
        ("0.00000001", r"1 \times 10^{-8}"),
        ("0.00000001", "0.00000001"),
        (r"6.626 \times 10^{-34}", r"6.63 \times 10^{-34}"),
        (r"\frac{1}{1000000}", "0.000001"),
        ("0", "0.0"),
        (r"50\%", "0.5"),  # math-verify reads a percent both ways; both stay right
        (r"\frac{1}{2}", r"50\%"),
        ("5", r"5\%"),
        (r"5.5\%", "0.055"),
        ("x = 0.5", "0.5000001"),
    ],
)
async def test_a_close_or_exact_number_still_scores_1(gold: str, answer: str) -> None:
    result = await graded(gold, tagged(answer))
    assert result.score == 1.0, result.reason


async def test_a_list_of_golds_says_why_a_rounded_answer_failed() -> None:
    result = await graded(["0.00000001", "0.00000002"], tagged("0.0"))
    assert result.score == 0.0
    assert "equal only once rounded" in result.reason


# --- digits a reader sees ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "５６",  # full-width, as Chinese and Japanese text writes them
        "٥٦",  # Arabic-Indic
        "𝟓𝟔",  # mathematical bold
        "\u200f56",  # a right-to-left mark before the number
        r"\boxed{５６}",
    ],
)
async def test_digits_in_another_script_are_read(answer: str) -> None:
    result = await graded("56", tagged(answer))
    assert result.score == 1.0, result.reason


@pytest.mark.parametrize("answer", ["５４", "٥٤", "－５６", "⁵⁶"])
async def test_a_wrong_answer_in_another_script_still_scores_0(answer: str) -> None:
    """Read as what a reader sees, not more leniently: ``－５６`` is -56 and a superscript
    stays a power."""
    result = await graded("56", tagged(answer))
    assert result.score == 0.0, result.reason


# --- answer tags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        "<think>7*8</think>\n<ANSWER>56</ANSWER>",
        "<think>7*8</think>\n<Answer>56</Answer >",
        '<think>7*8</think>\n<answer id="final">56</answer>',
    ],
)
async def test_the_answer_in_odd_tags_is_graded_and_the_format_is_not_paid(response: str) -> None:
    assert (await graded("56", response)).score == 1.0
    fmt = await FormatGrader(mode="think_answer").aevaluate(response=response)
    assert isinstance(fmt, GraderScore) and fmt.score == 0.0


async def test_upper_case_think_tags_keep_the_reasoning_out_of_the_answer() -> None:
    """The answer block is read, not a box inside the reasoning; several blocks are still one
    answer, the last."""
    response = "<THINK>maybe \\boxed{56}</THINK>\n<ANSWER>54</ANSWER>"
    assert (await graded("56", response)).score == 0.0
    assert (
        await graded("56", "<think>w</think><answer>56</answer><ANSWER>54</ANSWER>")
    ).score == 0.0


# --- through the default reward ------------------------------------------------------------------


async def test_the_default_reward_pays_no_rounded_zero_and_reads_full_width_digits() -> None:
    runner = load_runner(DEFAULT_CONFIG)
    records = [
        {"query": "h in J s?", "response": tagged("0.0"), "ground_truth": r"6.626 \times 10^{-34}"},
        {"query": "What is 7*8?", "response": tagged("５６"), "ground_truth": "56"},
    ]
    out = await runner.arun(records)
    correct, reward = out["correct"], out["reward"]
    assert all(isinstance(r, GraderScore) for r in (*correct, *reward)), out
    assert [getattr(r, "score", None) for r in correct] == [0.0, 1.0]
    assert [getattr(r, "score", None) for r in reward] == pytest.approx([0.3, 1.0])


# --- the format component ------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["\x00", "\x00\x01 \x7f", "\u200b\x00"])
async def test_an_answer_block_of_control_characters_is_empty(answer: str) -> None:
    response = f"<think>w</think>\n<answer>{answer}</answer>"
    result = await FormatGrader(mode="think_answer").aevaluate(response=response)
    assert isinstance(result, GraderScore) and result.score == 0.0, result
    assert "empty <answer> block" in result.reason


async def test_an_answer_with_a_control_character_beside_text_is_still_an_answer() -> None:
    response = "<think>w</think>\n<answer>56\x00</answer>"
    result = await FormatGrader(mode="think_answer").aevaluate(response=response)
    assert isinstance(result, GraderScore) and result.score == 1.0, result
