"""NumberGrader and the shared number extraction it is built on."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time

import pytest

import graders._answer_number
import graders._number  # registers "number"
from graders._answer_number import select_answer_number
from graders._base import get_grader
from graders._number import NumberGrader, grade_number
from graders._text import find_numbers
from graders._unscored import Unscored
from rm_service import ConfigError, GraderError, GraderScore


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234 and 1,234,567.5", [1234, 1234567.5]),  # thousands separators
        ("1,23", [1, 23]),  # not a group of three: two numbers
        ("-5, +6 and −7", [-5, 6, -7]),  # signs, typographic minus
        ("2-3", [2, 3]),  # a range, not 2 and -3
        ("3.14 .5 42.", [3.14, 0.5, 42]),  # decimals; a sentence's final dot is not one
        ("1.5e-3 and 2E4", [0.0015, 20000]),  # scientific notation
        (r"3/4 and \frac{1}{2} and \dfrac{3}{8}", [0.75, 0.5, 0.375]),  # fractions
        ("1/0 then 5", [5]),  # a zero denominator is not a number
        ("x2 H2O v1.2", []),  # glued to a word: not a number
        ("version 1.2.3", [1.2]),  # the tail of a dotted version is not another number
        ("1/2/2024", [1]),  # a date does not become the fraction 2/2024
        ("答案是42", [42]),  # CJK right before a number does not hide it
        ("25% and 30 %", [25, 30]),  # percentages keep their value (see candidates)
        ("no digits", []),
    ],
)
def test_find_numbers(text: str, expected: list[float]) -> None:
    assert [n.value for n in find_numbers(text)] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "value", "source"),
    [
        (r"5 then \boxed{x = 7} then 9", 7, "boxed"),  # boxed wins; its last number
        (r"\boxed{\frac{3}{4}}", 0.75, "boxed"),  # nested braces
        ("<answer>2 + 3 = 5</answer> 8", 5, "answer_tag"),  # answer block's last number
        ("The answer is 42. Check: 6*7 = 42, and 40 + 2", 42, "answer_phrase"),  # first after
        ("Final answer: -3", -3, "answer_phrase"),
        ("48/2 = 24 clips.\n#### 72", 72, "answer_phrase"),  # GSM8K reference format
        ("answer is x2 = 8", 8, "answer_phrase"),  # "x2" is not a number
        ("1 then 2 then 3", 3, "last_number"),
        (r"42 but \boxed{x}", None, "boxed"),  # a marked answer with no number: none
        ("the answer is unknown", None, "answer_phrase"),
        ("", None, "last_number"),
    ],
)
def test_select_answer_number(text: str, value: float | None, source: str) -> None:
    n, got_source, _ = select_answer_number(text)
    assert got_source == source
    assert (n.value if n else None) == value


GRADE_CASES = [
    # (response, reference, score, why)
    ("42", "42", 1.0, "plain equality"),
    ("The total is 1,234.", "1234", 1.0, "thousands separator"),
    ("It is 0.75", "3/4", 1.0, "decimal equals fraction"),
    (r"So \boxed{\frac{3}{4}}.", "0.75", 1.0, "latex fraction in boxed"),
    ("1.5e3 meters", "1500", 1.0, "scientific notation"),
    ("−7", "-7", 1.0, "typographic minus"),
    ("25%", "0.25", 1.0, "a percentage is also its value / 100"),
    ("25%", "25", 1.0, "... and its value"),
    ("0.25", "25%", 1.0, "reference percentage, same rule"),
    ("25", "0.25", 0.0, "bare numbers are not percentages"),
    ("The answer is 42. Check: 40 + 2", "42", 1.0, "first number after 'answer is'"),
    ("<answer>x = 2 + 3 = 5</answer> so 7", "5", 1.0, "last number of the answer block"),
    ("Natalia sold 72 clips.", "48/2 = 24 in May.\n#### 72", 1.0, "GSM8K reference"),
    ("72", r"so the total is $\boxed{72}$.", 1.0, "MATH reference"),
    ("I first thought 42 but \\boxed{7}", "42", 0.0, "the boxed answer is compared"),
    ("110", "100", 0.5, "exactly +10%: tolerance boundary is inclusive"),
    ("90", "100", 0.5, "exactly -10%"),
    ("1.1", "1", 0.5, "boundary despite float rounding of 0.1"),
    ("110.01", "100", 0.0, "just outside 10%"),
    ("-100", "100", 0.0, "sign matters"),
    ("0", "0", 1.0, "zero equals zero"),
    ("0.001", "0", 0.0, "no relative tolerance around 0"),
    ("I don't know", "42", 0.0, "no number in the response"),
    ("", "42", 0.0, "empty response"),
    (r"42, so \boxed{x}", "42", 0.0, "marked answer without a number; no fallback"),
    # found by review: full-width forms and invisible characters read as a reader sees them
    (r"\boxed{－5}", "5", 0.0, "a full-width minus is a sign (it was dropped: -5 scored as 5)"),
    (r"\boxed{－5}", "-5", 1.0, "... so -5 written full-width is -5"),
    ("４２．５", "42.5", 1.0, "full-width digits and point (read as 5)"),
    ("１，２３４", "1234", 1.0, "full-width thousands comma (read as 234)"),
    ("4\u200b2", "42", 1.0, "a zero-width space inside a number (read as 2)"),
    ("42\u200b", "2", 0.0, "... and the 42 a reader sees is not 2"),
    # percentages on both sides are read as written
    (r"2500\%", r"25\%", 0.0, "2500% is not 25%"),
    (r"25\%", r"0.25\%", 0.0, "25% is not 0.25%"),
    (r"26\%", r"2500\%", 0.0, "no partial credit through the hundredth reading"),
    (r"25\%", "25%", 1.0, "the same percentage"),
    # fractions with a sign inside, and TeX's digit shorthand
    (r"\boxed{\frac{-3}{4}}", "-0.75", 1.0, "a signed numerator (read as the denominator 4)"),
    (r"\boxed{\frac{-3}{4}}", "4", 0.0, "... which is not 4"),
    (r"\boxed{\frac12}", "0.5", 1.0, r"\frac12 is one half (no number before)"),
]


@pytest.mark.parametrize(("response", "reference", "expected", "why"), GRADE_CASES)
async def test_number_grading(response: str, reference: str, expected: float, why: str) -> None:
    result = await NumberGrader().aevaluate(response=response, reference_response=reference)
    assert isinstance(result, GraderScore), why
    assert result.score == expected, why


@pytest.mark.parametrize(
    ("response", "reference"),
    [
        ("2147483648", "2147483647"),
        ("1000000001", "1000000000"),
        ("9007199254740993", "9007199254740992"),  # one float: 2**53
        ("1e-400", "0"),  # underflows to 0.0
        ("1e-9999999", "0"),  # as an integer ratio: seconds on the event loop
        ("-1e-99999999", "0"),
    ],
)
async def test_a_different_number_is_never_exact(response: str, reference: str) -> None:
    """Exactness was a relative float tolerance of 1e-9: above 10**9, and for any integer past
    2**53, an off-by-one answer scored 1.0 even with every tolerance off."""
    strict = NumberGrader(rel_tol=0.0, abs_tol=0.0)
    result = await strict.aevaluate(response=response, reference_response=reference)
    assert isinstance(result, GraderScore) and result.score == 0.0, result
    assert result.metadata["matched_numbers"] == []
    same = await strict.aevaluate(response=reference, reference_response=reference)
    assert isinstance(same, GraderScore) and same.score == 1.0


async def test_an_integer_past_python_s_int_limit_is_compared_not_an_error() -> None:
    """A digit string of more than 4,300 digits is refused by ``int``: the exact comparison
    raised (internal) where the old float comparison scored it."""
    zeros = await NumberGrader(rel_tol=0.0).aevaluate(response="0" * 4301, reference_response="0")
    assert isinstance(zeros, GraderScore) and zeros.score == 1.0, zeros
    big = "9" * 5000
    text = f"first {big}, then 7"
    seven = await NumberGrader().aevaluate(response=text, reference_response="7")
    assert isinstance(seven, GraderScore) and seven.score == 1.0, seven


async def test_matched_numbers_stop_at_the_last_hundred() -> None:
    response = " ".join(["7"] * 5000) + " 7"
    result = await NumberGrader().aevaluate(response=response, reference_response="7")
    assert isinstance(result, GraderScore) and result.score == 1.0
    assert result.metadata["matched_numbers"] == ["7"] * 100


async def test_no_number_in_response_says_so() -> None:
    result = await NumberGrader().aevaluate(response="no idea", reference_response="4")
    assert result.score == 0.0 and "no number in the response" in result.reason
    boxed = await NumberGrader().aevaluate(response=r"\boxed{x}", reference_response="4")
    assert "no number in the response's boxed answer" in boxed.reason


async def test_check_numbers_metadata() -> None:
    result = await NumberGrader().aevaluate(
        response=r"40 + 2 = 42, so \boxed{42}", reference_response="Add them.\n#### 42"
    )
    assert result.score == 1.0
    assert result.metadata == {
        "reference_answer": "42",
        "reference_value": 42,
        "reference_source": "answer_phrase",
        "reference_numbers": ["42"],
        "response_source": "boxed",
        "response_numbers": ["40", "2", "42", "42"],
        "response_number_count": 4,
        "matched_numbers": ["42", "42"],
        "response_answer": "42",
        "response_value": 42,
        "relative_error": 0.0,
    }


async def test_near_miss_reports_relative_error_and_right_number_wrong_place() -> None:
    result = await NumberGrader().aevaluate(
        response="I had 100 at first; answer: 105", reference_response="100"
    )
    assert result.score == 0.5
    assert result.metadata["relative_error"] == pytest.approx(0.05)
    assert result.metadata["matched_numbers"] == ["100"]  # right number, wrong place
    assert "within tolerance" in result.reason


async def test_metadata_lists_are_capped_keeping_the_last() -> None:
    response = " ".join(f"step {i}:" for i in range(500))  # prose, not a list of answers
    result = await NumberGrader().aevaluate(response=response, reference_response="499")
    assert result.score == 1.0
    assert len(result.metadata["response_numbers"]) == 100
    assert result.metadata["response_numbers"][-1] == "499"
    assert result.metadata["response_number_count"] == 500


@pytest.mark.parametrize(
    ("response", "reference"),
    [
        (r"\boxed{1, 2, 3, 4}", "4"),
        (r"\boxed{3 \text{ or } 4}", "4"),
        (r"\boxed{x = 3 \text{ or } x = 4}", "3"),
        ("The answer is 5 or 6", "5"),
        ("<answer>5, 6</answer>", "6"),
        ("5 or 6", "6"),
        ("56\n\n5", "5"),
        (", ".join(str(i) for i in range(500)), "499"),
    ],
)
async def test_a_list_of_candidate_answers_is_a_hedge(response: str, reference: str) -> None:
    """Each was 1.0: the rule read the one number it reads (the box's last, the first after
    "answer is") and ignored the others listed beside it."""
    result = await NumberGrader().aevaluate(response=response, reference_response=reference)
    assert isinstance(result, GraderScore) and result.score == 0.0, result
    assert result.reason.startswith("hedged: several different answers")


@pytest.mark.parametrize("reference", ["-2, 2", r"x = -2 \text{ or } x = 2", "3 and 4"])
async def test_a_reference_with_several_answers_is_invalid_input(reference: str) -> None:
    """Graded as its last number before: a lone 2 matched the two roots -2 and 2."""
    result = await NumberGrader().aevaluate(response=r"\boxed{2}", reference_response=reference)
    assert isinstance(result, GraderError) and result.kind == "invalid_input", result
    assert "several answers" in result.error


@pytest.mark.parametrize(
    ("response", "reference"),
    [
        ("The answer is 4, since 2 + 2 = 4.", "4"),
        ("I think it's 3 or 4... no wait, 5.", "5"),
        ("4 and 4", "4"),
        ("48 + 24 = 72", "72"),
        (r"\boxed{1{,}000}", "1000"),
        ("Natalia sold 48/2 = 24 clips.\nShe sold 48+24 = 72 clips.\n#### 72", "72"),
        # one value in two forms, a mixed number, a numbered line: each was read as a hedge
        ("The answer is 3/4 (75%).", "0.75"),
        ("The answer is 0.5 or 50%.", "0.5"),
        ("Answer: 4.5 (or 4 1/2)", "4.5"),
        ("Work:\n3. 18", "18"),
    ],
)
async def test_one_answer_with_other_numbers_around_it_is_no_hedge(
    response: str, reference: str
) -> None:
    result = await NumberGrader().aevaluate(response=response, reference_response=reference)
    assert isinstance(result, GraderScore) and result.score == 1.0, result


@pytest.mark.parametrize(
    ("kwargs", "response", "expected"),
    [
        ({"rel_tol": 0.0}, "101", 0.0),  # tolerance off: only exact counts
        ({"rel_tol": 0.05}, "105", 0.5),
        ({"rel_tol": 0.05}, "106", 0.0),
        ({"partial_credit": 0.25}, "105", 0.25),
        ({"partial_credit": 0.0}, "105", 0.0),
    ],
)
async def test_tolerance_config(kwargs: dict, response: str, expected: float) -> None:
    result = await NumberGrader(**kwargs).aevaluate(response=response, reference_response="100")
    assert result.score == expected


async def test_abs_tol_covers_a_zero_reference() -> None:
    g = NumberGrader(abs_tol=0.01)
    assert (await g.aevaluate(response="0.005", reference_response="0")).score == 0.5
    assert (await g.aevaluate(response="0.02", reference_response="0")).score == 0.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"response": "42"}, "missing required field(s) 'reference_response'"),
        ({"response": "42", "reference_response": None}, "which are null in the record"),
        ({"response": "42", "reference_response": "forty-two"}, "no number in the reference"),
        ({"response": "42", "reference_response": r"\boxed{x}"}, "no number in the reference"),
        ({"response": "42", "reference_response": True}, "must be a string"),
        ({"response": ["42"], "reference_response": "42"}, "must be a string"),
    ],
)
async def test_unscored_inputs(fields: dict, message: str) -> None:
    result = await NumberGrader().aevaluate(**fields)
    assert isinstance(result, GraderError)
    assert result.kind == "invalid_input"
    assert message in result.error


async def test_numeric_reference_and_extra_fields() -> None:
    g = NumberGrader()
    # A JSON number in the record ("answer": 42) is fine, and unrelated fields are ignored.
    result = await g.aevaluate(response="so 42", reference_response=42, unrelated=1, query="q")
    assert isinstance(result, GraderScore) and result.score == 1.0
    assert (await g.aevaluate(response="0.5", reference_response=0.5)).score == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rel_tol": -0.1}, "rel_tol"),
        ({"rel_tol": math.nan}, "rel_tol"),
        ({"rel_tol": "0.1"}, "rel_tol"),
        ({"abs_tol": -1}, "abs_tol"),
        ({"partial_credit": 1.5}, "partial_credit"),
        ({"partial_credit": True}, "partial_credit"),
    ],
)
def test_config_errors_at_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        NumberGrader(**kwargs)


async def test_constructible_by_name() -> None:
    g = get_grader("number", rel_tol=0.2, name="acc")
    assert isinstance(g, NumberGrader) and g.name == "acc" and g.rel_tol == 0.2
    assert (await g.aevaluate(response="118", reference_response="100")).score == 0.5
    with pytest.raises(ConfigError):
        get_grader("number", tolerance=0.1)  # unknown parameter


@pytest.mark.parametrize(
    ("response", "reference"),
    [
        (r"\boxed{1{,}000}", "1000"),
        (r"\boxed{1\,000}", "1000"),
        (r"The answer is $1{,}250$.", "1250"),
        (r"\boxed{12\!345}", "12345"),
    ],
)
async def test_a_latex_thousands_separator_is_read_as_one(response: str, reference: str) -> None:
    """``\\boxed{1{,}000}`` (how LaTeX typesets 1,000) is 1000: read as "000" it was a 0 for a
    right answer."""
    out = await NumberGrader().aevaluate(response=response, reference_response=reference)
    assert isinstance(out, GraderScore) and out.score == 1.0, out


@pytest.mark.parametrize(
    ("response", "reference"),
    [
        (r"\boxed{\sqrt{4}}", "4"),  # is 2
        (r"\boxed{2^{4}}", "4"),  # is 16
        (r"\boxed{4!}", "4"),  # is 24
        (r"$\frac{x}{4}$", "4"),
        (r"The answer is $\frac{x}{4}$.", "4"),
        (r"\boxed{\sqrt{16}}", "16"),  # is 4
        (r"\boxed{4 \times 10^3}", "4000"),  # is 4000: read as 3 it was a 0
        (r"\boxed{3\frac{1}{2}}", "3.5"),  # is 3.5: read as 2 it was a 0
        (r"\boxed{\pi}", "3.14159"),
        (r"The answer is 10^3", "1000"),
        (r"The answer is $4x^2$.", "4"),  # a variable's power, not a unit's
        (r"\boxed{6y^{3}}", "6"),
        (r"\boxed{2\mathrm{e}^{3}}", "2"),
        (r"\boxed{4\mathbf{v}^2}", "4"),
        (r"\boxed{999_{6}}", "2112"),  # a numeral in base 6
        (r"\boxed{{2}{3}}", "3"),
        (r"\boxed{4 \sim 8}", "8"),
        (r"\boxed{\text{3 or 5}}", "5"),  # words in a \text block are more than a number
        (r"\boxed{\mathrm{e^3}}", "3"),
        (r"\boxed{\text{sqrt(16)}}", "16"),
        (r"\boxed{\textbf{4}^2}", "4"),
        (r"\boxed{10-4}", "4"),
        ("The answer is 4x^2", "4"),
        # a number joined to a variable is a term: each scored 1.0 against a gold of 4
        (r"\boxed{x+4}", "4"),
        (r"\boxed{4 + x}", "4"),
        (r"\boxed{2x+4}", "4"),
        (r"\boxed{n - 4}", "-4"),
        (r"\boxed{4x}", "4"),
        (r"The answer is $x + 4$.", "4"),
        ("The answer is x + 4.", "4"),
    ],
)
async def test_an_answer_that_is_an_expression_is_unscored_not_its_last_number(
    response: str, reference: str
) -> None:
    """The number rule reads numbers; the number inside ``\\sqrt{16}`` or ``2^{4}`` is not the
    answer's value, so it neither matches nor misses the reference by this rule: unscored
    (``unparseable``), naming the expression, never a 1.0 for a wrong answer or a 0 for a right
    one."""
    out = await NumberGrader().aevaluate(response=response, reference_response=reference)
    assert isinstance(out, GraderError) and out.kind == "unparseable", out
    assert "expression" in out.error


@pytest.mark.parametrize(
    ("response", "reference", "expected"),
    [
        (r"\boxed{\frac{3}{4}}", "0.75", 1.0),
        (r"\boxed{-\frac{3}{4}}", "-0.75", 1.0),
        (r"\boxed{72^{\circ}}", "72", 1.0),
        (r"\boxed{5\%}", "5%", 1.0),
        (r"\boxed{5\text{ cm}}", "5", 1.0),
        (r"\boxed{4.5\,\mathrm{m}}", "4.5", 1.0),
        (r"So $2^{10} = 1024$, and the answer is 1024.", "1024", 1.0),
        ("The answer is 4!", "4", 1.0),  # prose: an exclamation, not a factorial
        (r"\boxed{{4}}", "4", 1.0),
        (r"\boxed{\approx 4}", "4", 1.0),
        (r"\boxed{3^2 = 9}", "9", 1.0),
        (r"Final answer: $4\text{ m}^2$", "4", 1.0),
        (r"\boxed{4\text{ km}^2}", "4", 1.0),
        (r"\boxed{5\,\mathrm{m/s^2}}", "5", 1.0),
        ("The area is 4 m^2.", "4", 1.0),
        (r"The angle measures 30^\circ.", "30", 1.0),
        (r"\boxed{\textbf{4}}", "4", 1.0),
        (r"\boxed{9.8\,\mathrm{m/s^{2}}}", "9.8", 1.0),
        ("The area is 3 ft^3.", "3", 1.0),
        (r"\boxed{5 \mathrm{~cm}^2}", "5", 1.0),
        (r"\boxed{12\text{ m s}^{-2}}", "12", 1.0),
        (r"\boxed{2~500}", "2500", 1.0),
        (r"\boxed{x}", "4", 0.0),  # no number at all: a wrong answer
        (r"\boxed{x = 4}", "4", 1.0),  # an assignment: its right side is the answer
        (r"\boxed{4 \text{ apples}}", "4", 1.0),
        (r"\boxed{4 m}", "4", 1.0),  # a unit joins with no operator
        ("Each box has 4x as many.", "4", 1.0),  # prose's 4x is "four times"
        ("The answer is 4 - a small number.", "4", 1.0),  # "a" is no variable
        ("Answer: 4\n- x is the number of apples", "4", 1.0),  # a bullet, not a minus
    ],
)
async def test_a_number_dressed_in_latex_is_still_a_number(
    response: str, reference: str, expected: float
) -> None:
    """Fractions of numbers, degrees, percent, units and spacing leave a number a number."""
    out = await NumberGrader().aevaluate(response=response, reference_response=reference)
    assert isinstance(out, GraderScore) and out.score == expected, out


async def test_a_reference_that_is_an_expression_is_invalid_input() -> None:
    """A gold of ``\\boxed{\\frac{\\sqrt{3}}{2}}`` has no number to compare: the record is the
    data's fault, said so, rather than compared by its last digit."""
    out = await NumberGrader().aevaluate(
        response=r"\boxed{2}", reference_response=r"\boxed{\frac{\sqrt{3}}{2}}"
    )
    assert isinstance(out, GraderError) and out.kind == "invalid_input", out
    assert "expression" in out.error


async def test_a_hedge_is_not_read_for_an_expression() -> None:
    """A hedge decides before the answer is read for an expression, whose ``$…$`` spans cost a
    text of unclosed ``\\(`` seconds: reading every side in full took 5 s here, against 20 ms."""
    start = time.perf_counter()
    out = await NumberGrader().aevaluate(
        response="\\(" * 20_000 + "\n5 or 6", reference_response="5"
    )
    assert time.perf_counter() - start < 1.0
    assert isinstance(out, GraderScore) and out.reason.startswith("hedged"), out


_UNCLOSED_SPANS = """
from graders._answer_number import MATH_SPAN
from graders._math_text import _MATH_SPAN
from graders._verify import _MATH_ALT
for rx in (MATH_SPAN, _MATH_SPAN, _MATH_ALT):
    for opener in ("\\\\(", "\\\\["):
        list(rx.finditer(opener * 100_000 + " 5"))
print("done")
"""


def test_unclosed_math_openers_cost_linear_time() -> None:
    """Each unclosed ``\\(`` or ``\\[`` scanned to the end of the text for its closer: 20,000
    of them cost 4 s in each of the three span patterns (the number rule's, the math check's
    text repairs, the correctness rule's), 100,000 about 100 s. A child process with a timeout,
    since a regex holds the GIL."""
    out = subprocess.run(
        [sys.executable, "-c", _UNCLOSED_SPANS], capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "done", out.stderr


_ESCAPED_OPENERS = r"""
from graders._answer_number import MATH_SPAN
from graders._math_text import _MATH_SPAN
from graders._verify import _MATH_ALT
for rx in (MATH_SPAN, _MATH_SPAN, _MATH_ALT):
    for opener in ("\\\\(", "\\\\[2pt] "):
        list(rx.finditer(opener * 20_000 + " 5"))
    m = rx.search(r"so \\(x = \\sqrt{16}\\).")  # doubled-backslash text is still math
    assert m is not None and m.group(0) == r"\(x = \\sqrt{16}\\)", m
print("done")
"""


def test_escaped_math_openers_cost_linear_time() -> None:
    """``\\\\(`` (or TeX's line break ``\\\\[2pt]``) holds an opener that content may scan past:
    each one opened a span that scanned past all the later ones to the end of the text, 4,000
    of them 2 to 5 s in each span pattern. A child process with a timeout (a regex holds the
    GIL)."""
    out = subprocess.run(
        [sys.executable, "-c", _ESCAPED_OPENERS], capture_output=True, text=True, timeout=30
    )
    assert out.stdout.strip() == "done", out.stderr


def test_a_reference_that_is_an_expression_is_not_read_for_a_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reference's expression decides first: its numbers and list are not read after it."""

    def unread(*_: object) -> list[object]:
        raise AssertionError("read for a list after its expression")

    monkeypatch.setattr(graders._answer_number, "_listed", unread)
    monkeypatch.setattr(graders._answer_number, "find_numbers", unread)
    with pytest.raises(Unscored, match="expression"):
        grade_number(
            "5", r"\boxed{\sqrt{2}} % not cached", rel_tol=0.1, abs_tol=0, partial_credit=0.5
        )
