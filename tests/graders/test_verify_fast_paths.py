"""The correctness rule's shortcuts give what the long way gives (issue 14: client CPU per call).

Each shortcut skips work for a common shape (a plain integer gold, a response with one number,
text with no LaTeX, an ASCII answer phrase); each test here compares it with the reading it
stands in for, on the shapes named and on seeded random text built from the fragments that
decide them (letter case, folding past ASCII, overlapping ``#``, separators, signs).
"""

from __future__ import annotations

import random
import re

import pytest

from graders._anchor_screen import KeywordRegex, _last_match
from graders._answer_number import (
    _PROSE_VARIABLE_AFTER,
    _PROSE_VARIABLE_BEFORE,
    LATEX_THOUSANDS,
    joined_to_variable,
)
from graders._number import compare_numbers
from graders._text import (
    _BRACE_RE,
    Number,
    answer_regions,
    boxed_contents,
    parse_number,
)
from graders._verify_reference import (
    _ANSWER_PHRASE,
    _LATEX_NOISE,
    _classify,
    _clean,
    _read,
)
from graders._verify_spans import _rounded

CASES = 3000


def _texts(fragments: list[str], seed: int, most: int = 12) -> list[str]:
    rnd = random.Random(seed)
    return [
        "".join(rnd.choice(fragments) for _ in range(rnd.randint(0, most))) for _ in range(CASES)
    ]


PHRASE_BITS = [
    "answer", "Answer", "ANSWERS", " is", " are", ":", "=", "####", "#", "correct option",
    "Right Choice is", "final option:", "respuesta correcta es", "réponse est", "antwort lautet",
    "risposta è", "resposta é", "ответ:", "答案是", "正解は", "ſ", "İ", "K", "5", " ", "\n", "x",
    "the", "_", "answ", "er", "respuestanswer", "{", "\\boxed{", "<answer>", "</answer>",
]  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 4. It is the sum of two equal terms.",
        "#####",  # overlapping "####": finditer takes the first, not the one a place later
        "########## 5",
        "answer: 3, answer is 4",
        "respuestanswer is 5",  # "answer" inside a word: no \b
        "ANSWER IS 5",
        "anſwer is 5",  # not ASCII: folding reaches ſ, so finditer reads it
        "The Right Choice is B",
        "no phrase here at all",
        "",
    ],
)
def test_keyword_regex_finds_what_finditer_finds(text: str) -> None:
    expected = _last_match(_ANSWER_PHRASE.regex, text)
    got = _ANSWER_PHRASE.last_match(text)
    assert (got.span() if got else None) == (expected.span() if expected else None)


def test_keyword_regex_on_random_text() -> None:
    for text in _texts(PHRASE_BITS, seed=1):
        expected = _last_match(_ANSWER_PHRASE.regex, text)
        got = _ANSWER_PHRASE.last_match(text)
        assert (got.span() if got else None) == (expected.span() if expected else None), text
        assert answer_regions(text, _ANSWER_PHRASE) == answer_regions(text, _ANSWER_PHRASE.regex)


def test_keyword_regex_tries_each_word_where_it_stands() -> None:
    # A word found inside an earlier failed try is still tried ("aab" holds "ab" at 1).
    pattern = KeywordRegex(re.compile(r"ab|aab(?=c)", re.IGNORECASE))
    for text in ("aab", "AAB", "aabc", "xaabab", "abab"):
        expected = [m.span() for m in pattern.regex.finditer(text)]
        got = pattern.last_match(text)
        assert (got.span() if got else None) == (expected[-1] if expected else None), text


def test_keyword_regex_reads_its_words_from_the_pattern() -> None:
    assert _ANSWER_PHRASE.starts == (
        "####",
        "answer",
        "antwort",
        "correct",
        "final",
        "resposta",
        "respuesta",
        "right",
        "risposta",
    )  # réponse, ответ and 答案 need characters no ASCII text holds
    words = KeywordRegex(re.compile(r"\bſum\b|(?:net|gross) total|答", re.IGNORECASE)).starts
    assert words == ("gross total", "net total", "sum")  # ſ is matched by s
    with pytest.raises(ValueError, match="opens with no literal word"):
        KeywordRegex(re.compile(r"answer|\d+ points", re.IGNORECASE))


def _boxed_the_long_way(text: str) -> bool:
    return any(m.group(0) != "}" for m in _BRACE_RE.finditer(text))


def test_boxed_contents_without_a_brace_is_empty() -> None:
    for text in _texts(["}", "\\boxed", " ", "4", "\\fbox", "{", "x"], seed=2):
        if "{" not in text:
            assert boxed_contents(text) == []
            assert not _boxed_the_long_way(text)


@pytest.mark.parametrize(
    "reference",
    ["42", " -3 ", "+5", "007", "2.5", "-0", "0.0", "12345678901234567890", "42\n", "\t7"],
)
def test_plain_number_reference_reads_as_the_long_way(reference: str) -> None:
    assert _read(reference) == _classify(reference)


def test_plain_number_reference_on_random_text() -> None:
    bits = ["0", "1", "5", "9", "-", "+", ".", " ", "\t", "\n", "\u00a0", "−", "٤", "e", ",", "%"]
    for text in _texts(bits, seed=3, most=8):
        assert _read(text) == _classify(text), text
    too_big = "9" * 400  # its float overflows: no number, read the long way
    assert _read(too_big) == _classify(too_big)


def test_clean_leaves_text_without_latex_as_it_is() -> None:
    bits = ["1", "000", ",", "\\,", "{,}", "~", "\\text{ cm}", "\\quad", " ", "x", "{", "\\"]
    for text in _texts(bits, seed=4):
        expected = _LATEX_NOISE.sub(
            lambda m: f" {m.group(1) or ''} ", LATEX_THOUSANDS.sub(r"\1,", text)
        )
        assert _clean(text) == expected, text


def test_joined_to_variable_checks_the_operator_first() -> None:
    bits = ["4", "x", "n", " ", "\t", "\n", "+", "-", "*", "×", "·", "=", "a", "y"]
    for text in _texts(bits, seed=5):
        for m in re.finditer(r"\d+", text):
            before = text[: m.start()].rstrip()
            expected = bool(
                _PROSE_VARIABLE_BEFORE.search(before) or _PROSE_VARIABLE_AFTER.match(text, m.end())
            )
            assert joined_to_variable(text, m.start(), m.end()) is expected, text


@pytest.mark.parametrize(
    ("pred", "gold", "exact"),
    [
        ("1000000000", "1000000001", False),  # within 1e-9 of each other as floats
        ("999999999999999", "999999999999999", True),
        ("999999999999999", "999999999999998", False),
        ("9007199254740993", "9007199254740992", False),  # past 2**53: the long way
        ("-0", "0", True),
        ("+5", "5", True),
        ("007", "7", True),
        ("25%", "25", True),
    ],
)
def test_integer_comparison_is_exact(pred: str, gold: str, exact: bool) -> None:
    p, g = parse_number(pred), parse_number(gold)
    assert p is not None and g is not None
    assert compare_numbers(p, g, rel_tol=0.0).exact is exact


def test_a_value_not_read_from_its_text_is_compared_as_written() -> None:
    # Equality is the written value's (Number.exact): a float off by a hair is not asked.
    assert compare_numbers(Number("5", 5.000000001), Number("5", 5.0), rel_tol=0.0).exact


def test_rounded_is_round_to_nine_places() -> None:
    rnd = random.Random(6)
    values = [0.0, -0.0, 1e300, -1e22, 2.0**53 + 2, 0.1, 1 / 3, 2.675, 1e-12, 123456.0000000005]
    values += [rnd.uniform(-1e6, 1e6) for _ in range(CASES)]
    values += [float(rnd.randint(-(10**18), 10**18)) for _ in range(CASES)]
    for v in values:
        assert repr(_rounded(v)) == repr(round(v, 9)), v
