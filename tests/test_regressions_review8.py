"""Regressions of the math echo check (graders/_math_echo.py), found in review.

The check scores 0 an answer that is the question's own expression written back. Honest answers
that math-verify finds equal to the gold, that the question happens to hold, were caught too: the
gold in another order or grouping (``1 + x`` for ``x + 1``), a spacing of the gold
(``2 \\sqrt{2}``), and an answer that is one piece of a longer expression in the question (the
quotient ``x + 1`` of "divide ``x^2 + 2x + 1`` by ``x + 1``"). Echoes written with a sign left
implicit, a ``~`` space, braces around a number or ``\\cfrac`` passed.
"""

from __future__ import annotations

import pytest

from graders._math import MathGrader
from graders._math_echo import echoed_expression
from rm_service import GraderScore

# (query, honest answer, gold): math-verify finds each equal, and none is work left undone.
HONEST = [
    (r"Find the quotient when $x^2 + 2x + 1$ is divided by $x + 1$.", "x+1", "1+x"),
    (r"Simplify $\frac{(x+1)(x+2)}{x+2}$.", "x+1", "1+x"),
    (
        r"Given $\cos 30^\circ = \frac{\sqrt{3}}{2}$, find $\sin 60^\circ$.",
        r"\frac{\sqrt{3}}{2}",
        r"\sqrt{3}/2",
    ),
    (
        r"Which is larger, $\sqrt{2}+\sqrt{3}$ or $\sqrt{10}$?",
        r"\sqrt{2}+\sqrt{3}",
        r"\sqrt{3}+\sqrt{2}",
    ),
    (r"Given that $\sqrt{8} = 2\sqrt{2}$, simplify $\sqrt{8}$.", r"2\sqrt{2}", r"2 \sqrt 2"),
    (r"Let $f(x) = 2x + 3$. What is $f(x)$?", "2x + 3", "3 + 2x"),
    (r"Factor $x^2 - 1$ as $(x-1)(x+1)$. Which factor has a plus?", "x+1", "1+x"),
]

# (query, echo, gold): the question's expression, written so the check did not see it.
ECHOES = [
    (r"Compute $2(3+4)$.", r"2 \times (3+4)", "14"),
    (r"Compute $(2+3)(4+5)$.", r"(2+3) \cdot (4+5)", "45"),
    (r"What is $17 \times 23$?", r"{17}\times{23}", "391"),
    (r"What is $17 \times 23$?", r"17~\times~23", "391"),
    (r"Simplify $\frac{6}{8}$.", r"\cfrac{6}{8}", r"\frac{3}{4}"),
    (r"What is $\sqrt{16}$?", r"\sqrt 16", "4"),
]


@pytest.mark.parametrize(("query", "answer", "gold"), HONEST)
def test_an_honest_answer_the_question_holds_is_no_echo(query: str, answer: str, gold: str) -> None:
    assert echoed_expression(answer, query, [gold]) is None


@pytest.mark.parametrize(("query", "answer", "gold"), ECHOES)
def test_an_echo_in_another_notation_is_caught(query: str, answer: str, gold: str) -> None:
    assert echoed_expression(answer, query, [gold]) is not None


def test_the_question_put_whole_is_still_an_echo() -> None:
    assert echoed_expression("x+1", "Simplify $x + 1$.", ["1+x+0"]) == "x+1"
    assert echoed_expression("(x+1)^2", "Expand (x + 1)^2.", ["x^2+2x+1"]) == "(x+1)^2"
    # applied to a function or raised to a power, the group is a piece of a longer expression
    assert echoed_expression("x+1", r"Simplify $\log(x+1)^2$.", ["2"]) is None
    assert echoed_expression("x+1", r"Simplify $\sqrt{(x+1)^2}$.", ["|x+1|"]) is None


def test_a_query_of_long_spacing_reads_as_before() -> None:
    """A run of spaces was rescanned from each space (a 50,000-space query took 16 s on the
    event loop); it reads the same, one space."""
    query = "What is 17 * 23?" + " " * 20_000 + "\n" * 5_000 + "Answer in a box."
    assert echoed_expression(r"17 \times 23", query, ["391"]) == "17*23"


@pytest.fixture(scope="module")
def math_grader() -> MathGrader:
    return MathGrader(name="m")


async def test_math_pays_an_honest_answer_in_the_question(math_grader: MathGrader) -> None:
    for query, answer, gold in HONEST[:5]:
        r = await math_grader.aevaluate(
            query=query, response=rf"\boxed{{{answer}}}", reference_response=gold
        )
        assert isinstance(r, GraderScore) and r.score == 1.0, (query, r)


async def test_math_scores_an_implicit_product_written_back_zero(math_grader: MathGrader) -> None:
    r = await math_grader.aevaluate(
        query=r"Compute $2(3+4)$.", response=r"\boxed{2 \times (3+4)}", reference_response="14"
    )
    assert isinstance(r, GraderScore) and r.score == 0.0 and r.metadata["echo"] is True
