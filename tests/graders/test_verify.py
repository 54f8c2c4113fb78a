"""The verifiable-first rule of CorrectnessGrader: reading references and final answers.

Each case says what the rule must decide on its own: 1.0, 0.0, or ``None`` (it cannot decide, so
the judge will). The grader-level tests (no judge call, ``verify:`` modes) are in test_judges.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from graders._math import MathGrader
from graders._text import answer_regions, boxed_contents
from graders._verify import decide, final_part, read_reference

GSM8K_GOLD = "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips.\n#### 72"
ROOT = Path(__file__).resolve().parents[2]
PROSE_GOLD = "Photosynthesis turns light energy into chemical energy stored in glucose."


@pytest.fixture(scope="module")
def math() -> MathGrader:
    return MathGrader(name="verify-test")


@pytest.mark.parametrize(
    ("reference", "kind", "answer"),
    [
        ("4", "number", "4"),
        ("72 apples", "number", "72 apples"),
        ("$5.40", "number", "$5.40"),
        ("25%", "number", "25%"),
        ("100 °C", "number", "100 °C"),
        ("Seven", "number", "Seven"),  # a number word
        (GSM8K_GOLD, "number", "72"),  # the marked answer after ####
        (r"so the answer is $\boxed{\frac{1}{2}}$.", "number", r"\frac{1}{2}"),
        (r"\frac{\pi}{2}", "math", r"\frac{\pi}{2}"),
        ("x = 3", "math", "x = 3"),
        ("(1, 2]", "math", "(1, 2]"),
        ("B", "choice", "B"),
        ("(B)", "choice", "(B)"),
        ("B) Paris", "choice", "B) Paris"),
        ("Option C", "choice", "Option C"),
        ("Paris", "exact", "Paris"),
        ("Jane Austen", "exact", "Jane Austen"),
        ("The Pacific Ocean", "exact", "The Pacific Ocean"),
        ("E. coli", "exact", "E. coli"),  # not option E
        ("A cat", "exact", "A cat"),  # "A" the article, not option A
        ("H2O", "exact", "H2O"),
        ("2x", "math", "2x"),  # a coefficient and a variable, not 2 with a unit
        ("10am", "exact", "10am"),
        (PROSE_GOLD, "prose", PROSE_GOLD),
        ("", "prose", ""),
    ],
)
def test_read_reference(reference: str, kind: str, answer: str) -> None:
    ref = read_reference(reference)
    assert (ref.kind, ref.answer) == (kind, answer)


def test_choice_reference_keeps_letter_and_option() -> None:
    ref = read_reference("B) Paris")
    assert (ref.letter, ref.option) == ("B", "Paris")
    assert read_reference("2, 3").multi and not read_reference("x = 3").multi


# (response, reference, score the rule decides or None, path)
CASES: list[tuple[str, str, float | None, str]] = [
    # numbers: right, wrong (in several languages), confident wrong reasoning
    ("The answer is 4.", "4", 1.0, "rule:number"),
    ("La respuesta es 5.", "4", 0.0, "rule:number"),
    ("La réponse est 5.", "4", 0.0, "rule:number"),
    ("Die Antwort ist 5.", "4", 0.0, "rule:number"),
    ("答案是5", "4", 0.0, "rule:number"),
    ("Ответ: 5", "4", 0.0, "rule:number"),
    (
        "Let me be careful: 2 + 2 is clearly 5, I am certain. The answer is 5.",
        "4",
        0.0,
        "rule:number",
    ),
    ("La respuesta es 4.", "4", 1.0, "rule:number"),
    # hedging
    ("The answer is 4 or 5.", "4", 0.0, "rule:number"),
    ("It is either 12 or 13.", "12", 0.0, "rule:number"),
    ("4? maybe 5", "4", 0.0, "rule:number"),
    (r"\boxed{4} \boxed{5}", "4", 0.0, "rule:number"),
    (r"\boxed{4 \text{ or } 5}", "4", 0.0, "rule:number"),
    ("The answer is 3, 4 or 5", "4", 0.0, "rule:number"),
    ("The answer is 4. Or maybe 5.", "4", 0.0, "rule:number"),
    ("La respuesta es 4 o 5.", "4", 0.0, "rule:number"),
    # ... but the same value twice, or "or" elsewhere, is no hedge
    ("The answer is 4 (or 4.0).", "4", 1.0, "rule:number"),
    ("You can use 2 or 3 eggs. The answer is 4.", "4", 1.0, "rule:number"),
    # no final answer at all
    ("The answer is the same as the reference answer.", "4", 0.0, "rule:number"),
    ("<think>The answer is 4", "4", 0.0, "rule:number"),
    # the final part only: reasoning never counts
    ("<think>maybe 4</think>The answer is 5", "4", 0.0, "rule:number"),
    # honest long and prose answers
    (
        "Add them: 48 + 24 = 72. So Natalia sold 72 clips altogether.",
        GSM8K_GOLD,
        1.0,
        "rule:number",
    ),
    ("Spiders have eight legs.", "8", 1.0, "rule:number"),
    ("Las arañas tienen ocho patas.", "8", 1.0, "rule:number"),
    ("Spiders have six legs.", "8", 0.0, "rule:number"),
    ("There are 7 continents.", "Seven", 1.0, "rule:number"),
    ("12 × 12 = 124.", "144", 0.0, "rule:number"),
    ("The answer is 10 - 6 = 4.", "4", 1.0, "rule:number"),
    ("The answer is not 5 but 4.", "4", 1.0, "rule:number"),
    ("25%", "0.25", 1.0, "rule:number"),
    # integers are never "close": a wrong year is wrong
    ("World War II ended in 1944.", "1945", 0.0, "rule:number"),
    # a list of guesses is a hedge when marked, and hides no "earlier" answer when not
    ("Possible answers: 1944, 1945, 1946.", "1945", 0.0, "rule:number"),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9", "5", 0.0, "rule:number"),
    ("The answer is one hundred and twenty.", "120", 1.0, "rule:number"),
    ("There are seven, eight or nine.", "8", 0.0, "rule:number"),  # words, hedged
    ("The answer is: 2^10 = 1024", "1024", 1.0, "rule:number"),  # through the power
    ("The speed of light is about 3 × 10^8 m/s.", "300000000", 1.0, "rule:math"),
    (r"\boxed{1{,}000}", "1000", 1.0, "rule:number"),  # LaTeX thousands separators
    (r"\boxed{1\,000}", "1000", 1.0, "rule:number"),
    (r"\boxed{\frac{-1}{2}}", "-0.5", 1.0, "rule:number"),  # not "the last number, 2"
    (r"Therefore $x = \frac{-1}{2}$.", "-0.5", 1.0, "rule:number"),
    # what the number rule leaves to the judge
    ("One half.", "0.5", None, "rule:number"),  # a fraction in words is not "one"
    ("It is 4.01", "4", None, "rule:number"),
    ("Water boils at 100 degrees Celsius at sea level (1 atm).", "100 °C", None, "rule:number"),
    # choice letters
    ("B", "B", 1.0, "rule:choice"),
    ("The answer is (B).", "B", 1.0, "rule:choice"),
    ("La respuesta es B.", "B", 1.0, "rule:choice"),
    (r"\boxed{B}", "(B)", 1.0, "rule:choice"),
    ("A good choice is B.", "B", 1.0, "rule:choice"),  # "A good": the article
    ("The answer is A because it is larger.", "A", 1.0, "rule:choice"),
    ("(A) is too big and C) is too small, so the answer is B.", "B", 1.0, "rule:choice"),
    ("The capital of France is Paris.", "B) Paris", 1.0, "rule:choice"),
    ("**C**", "B", 0.0, "rule:choice"),
    ("I would go with option D.", "B", 0.0, "rule:choice"),
    ("The answer is A, B or C.", "B", 0.0, "rule:choice"),
    ("(A) or (B)", "B", 0.0, "rule:choice"),
    ("B and C", "B", 0.0, "rule:choice"),
    ("The answer is the one the reference gives.", "B", 0.0, "rule:choice"),
    ("(A) is wrong, (B) is right.", "B", None, "rule:choice"),
    # short exact strings: the rule says "correct" or "hedged"; the rest is the judge's
    ("Paris is the capital of France.", "Paris", 1.0, "rule:exact"),
    ("The answer is Paris.", "Paris", 1.0, "rule:exact"),
    (r"\boxed{\text{Paris}}", "Paris", 1.0, "rule:exact"),
    ("It was written by Jane Austen.", "Jane Austen", 1.0, "rule:exact"),
    ("La capital de Francia es París.", "Paris", 1.0, "rule:exact"),  # accents folded
    ("Paris or Lyon.", "Paris", 0.0, "rule:exact"),
    ("The answer is either Lyon or Paris.", "Paris", 0.0, "rule:exact"),
    (r"\boxed{Paris} \boxed{Lyon}", "Paris", 0.0, "rule:exact"),
    ("It is not Paris, it is Lyon.", "Paris", None, "rule:exact"),
    ("Lyon is the capital of France.", "Paris", None, "rule:exact"),
    ("The Pacific is the largest ocean.", "The Pacific Ocean", None, "rule:exact"),
    (" ".join(["Paris is lovely."] * 12), "Paris", None, "rule:exact"),  # long and unmarked
    # yes/no references: the two answers are exhaustive, so the rule decides both ways
    ("No.", "No", 1.0, "rule:exact"),
    ("Answer: no, since 15 = 3 × 5.", "No", 1.0, "rule:exact"),
    ("Yes, it is easily visible.", "No", 0.0, "rule:exact"),
    ("Yes or no, it depends.", "No", 0.0, "rule:exact"),
    ("It has no divisors but 1 and itself, so yes.", "Yes", None, "rule:exact"),
    # math expressions, through the math worker pool
    (r"The answer is $\frac{1}{2}$.", r"\frac{\pi}{2}", 0.0, "rule:math"),
    (r"So \boxed{\frac{\pi}{2}}.", r"\frac{\pi}{2}", 1.0, "rule:math"),
    (r"\boxed{\sqrt{16}}", "4", 1.0, "rule:math"),
    (r"\boxed{\frac{\pi}{2}} or \boxed{\pi}", r"\frac{\pi}{2}", 0.0, "rule:math"),
    (r"The answer is $\frac{\pi}{2}$ or $\pi$.", r"\frac{\pi}{2}", 0.0, "rule:math"),
    ("I have no idea.", r"\frac{\pi}{2}", 0.0, "rule:math"),
    ("The answer is √2.", r"\sqrt{2}", 1.0, "rule:math"),  # unicode math spelled as LaTeX
    ("The solutions are x = 2 or x = 3.", r"x = 2 \text{ or } x = 3", None, "rule:math"),
    (r"The roots are \boxed{2} and \boxed{3}.", "2, 3", 1.0, "rule:math"),
    ("x = 3 or x = 5 or x = 7", "x = 5", 0.0, "rule:math"),
    ("La réponse est x = 3.", "x = 5", 0.0, "rule:math"),
    ("The derivative is x.", "2x", 0.0, "rule:math"),
    # the reference stated on its own, then another last expression: the judge reads it
    ("x = 5, так как 3·5 − 5 = 10.", "x = 5", None, "rule:math"),
    # a number joined to a variable is a term, not the answer: each was a rule 1.0 against 4
    (r"\boxed{x+4}", "4", 0.0, "rule:math"),
    (r"\boxed{2x + 4}", "4", 0.0, "rule:math"),
    (r"\boxed{4x}", "4", 0.0, "rule:math"),
    ("The answer is x + 4.", "4", None, "rule:number"),  # the judge reads it
    ("So the count is x + 4.", "4", None, "rule:number"),  # math-verify read the 4: a 1.0
    (r"\boxed{x = 4}", "4", 1.0, "rule:number"),
    # prose references are the judge's
    ("Plants make sugar from light.", PROSE_GOLD, None, "judge"),
]


@pytest.mark.parametrize(("response", "reference", "score", "path"), CASES)
async def test_decide(
    response: str, reference: str, score: float | None, path: str, math: MathGrader
) -> None:
    _, decision = await decide(response, reference, math)
    assert (decision.score, decision.path) == (score, path), decision.reason


async def test_hedge_reports_every_candidate(math: MathGrader) -> None:
    _, decision = await decide("The answer is 3, 4 or 5", "4", math)
    assert decision.answers == ("3", "4", "5")
    assert decision.reason.startswith("hedged")


LISTED_CANDIDATES = [
    # a bare list of every plausible answer: each was a rule 1.0 against any of them
    ("Paris, Lyon, Marseille, Toulouse, Nice.", "Lyon", None, "rule:exact"),
    ("Paris and Lyon and Marseille.", "Paris", None, "rule:exact"),
    ("Candidates: Jane Austen, Emily Brontë, George Eliot.", "George Eliot", None, "rule:exact"),
    ("Mercury\nVenus\nMars", "Mars", None, "rule:exact"),
    ("- Mercury\n- Venus\n- Mars", "Mercury", None, "rule:exact"),
    ("Mercury (60%), Venus (30%), Mars (10%)", "Venus", None, "rule:exact"),
    ("A, B, C, D", "C", 0.0, "rule:choice"),
    ("(A)(B)(C)(D)", "A", 0.0, "rule:choice"),
    ("A\nB\nC\nD", "D", 0.0, "rule:choice"),
    ("56\n\n54", "54", 0.0, "rule:number"),
    ("56 and 54", "56", 0.0, "rule:number"),
    ("- 56\n- 54", "54", 0.0, "rule:number"),
    # guards: one answer, however written
    ("Paris.", "Paris", 1.0, "rule:exact"),
    ("It was Jane Austen, in 1813.", "Jane Austen", 1.0, "rule:exact"),
    ("red, yellow, blue", "red, yellow, blue", 1.0, "rule:exact"),
    ("2 + 2\n\n4", "4", 1.0, "rule:number"),
    ("5 - 1\n\n4", "4", 1.0, "rule:number"),
    ("7 × 8 = 56", "56", 1.0, "rule:number"),
    ("56\n56", "56", 1.0, "rule:number"),
    ("- 56", "56", 1.0, "rule:number"),
    ("1,000", "1000", 1.0, "rule:number"),
    ("(C)", "C", 1.0, "rule:choice"),
    # guards a regression review found: one answer in two forms, a numbered line, a tuple,
    # an apposition (each was a hedge or went to the judge)
    ("The answer is 3/4 (75%).", "0.75", 1.0, "rule:number"),
    ("25% (0.25)", "25%", 1.0, "rule:number"),
    ("The answer is 1/3 (0.333).", "1/3", 1.0, "rule:number"),
    ("1. 18", "18", 1.0, "rule:number"),
    ("x = 3, y = 4", "4", 1.0, "rule:number"),
    ("1. 56\n2. 54", "54", 0.0, "rule:number"),
    ("The answer is Paris, the capital of France.", "Paris", 1.0, "rule:exact"),
    ("Jupiter, the largest planet.", "Jupiter", 1.0, "rule:exact"),
    ("Blue, obviously.", "Blue", 1.0, "rule:exact"),
    ("Yes, Paris", "Paris", 1.0, "rule:exact"),
]


@pytest.mark.parametrize(("response", "reference", "score", "path"), LISTED_CANDIDATES)
async def test_a_list_of_candidates_is_no_answer_the_rule_pays(
    response: str, reference: str, score: float | None, path: str, math: MathGrader
) -> None:
    """A list holding the reference among other candidates is never a rule 1.0: numbers and
    letters listed bare are a hedge (0.0); words go to the judge, since "Paris, France" may be
    an answer."""
    _, decision = await decide(response, reference, math)
    assert (decision.score, decision.path) == (score, path), decision.reason


@pytest.mark.parametrize("head", ["B", "2"])
def test_a_list_check_reads_each_gap_once(head: str) -> None:
    """Overlapping alternatives in the bare-list pattern doubled the time with each "\\n* "
    line: 2.2 s at 22 of them, about ten minutes at 30. 60 must finish at once. In a child
    process, since a regex holds the GIL: a thread could not be timed out."""
    code = (
        "from graders._verify import _decide_by_text, read_reference; "
        f"_decide_by_text({head!r} + '\\n* ' * 60 + ' is it, not C', read_reference({head!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


async def test_a_long_response_is_read_off_the_event_loop(math: MathGrader) -> None:
    filler = "Some careful reasoning about the problem. " * 600  # > OFFLOAD_CHARS
    _, decision = await decide(filler + "The answer is 5.", "4", math)
    assert (decision.score, decision.answers) == (0.0, ("5",))


def test_final_part_drops_reasoning() -> None:
    assert final_part("<think>4</think> 5") == " 5"
    assert final_part("<think>4") is None
    assert final_part("plain 5") == "plain 5"


def test_answer_regions_and_boxes() -> None:
    assert boxed_contents(r"\boxed{1} x \boxed{\frac{2}{3}} \fbox{4") == ["1", r"\frac{2}{3}", "4"]
    assert boxed_contents(r"} \boxed{a{b}c}}") == ["a{b}c"]
    assert answer_regions("<answer>4</answer><answer>5</answer>") == (["4", "5"], "answer_tag")
    assert answer_regions("so the answer is 7.") == ([" 7."], "answer_phrase")
    assert answer_regions("7") == (["7"], "last_number")


def test_nested_and_unclosed_boxes_give_the_innermost_only() -> None:
    # Every box holding the rest would make the result quadratic in the response's length.
    assert boxed_contents(r"\boxed{" * 20000) == [""]
    assert boxed_contents(r"\boxed{" * 5 + "4" + "}" * 5) == ["4"]
    assert boxed_contents(r"\boxed{\boxed{4} + 1} \boxed{5}") == ["4", "5"]
