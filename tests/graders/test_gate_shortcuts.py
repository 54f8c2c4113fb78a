"""The cheap exits of the repetition, keyword-stuffing and non-answer gates, and the gate sets'
memo plan, give what the long way gives.

Each shortcut rests on a fact about the rule it skips: the repetition gate's unit count is
bounded by its separators, keyword stuffing needs few function words, and a dodge cannot keep a
content word that no marker phrase holds. The facts are checked on texts built to reach their
edges, the gates at the boundaries their bounds set, and the non-answer shortcut against the
same function with it turned off.
"""

from __future__ import annotations

import random

import pytest

from graders import _non_answer as non_answer
from graders import _pregate as pregate
from graders._degenerate import (
    _SENTENCE_SPLIT_RE,
    KeywordStuffingGate,
    LengthGate,
    RepetitionGate,
    _repeated_units,
)
from graders._degenerate_words import (
    FUNCTION_WORDS_BY_LANGUAGE,
    _content_stems,
    _content_tokens,
    _stem,
)
from graders._near_copy import NearCopyGate
from graders._pregate import clear_gate_memo, first_gate_hit, warm_gate_memo
from graders._pregate_text import tokens_for_gate
from tests.red_team import load_cases

_SEPARATORS = [". ", "! ", "? ", "\n", "。", "！", "...", ".\n\n", " ", ", ", "; "]


def _texts(n: int, seed: int) -> list[str]:
    """Responses of the red-team set, and units repeated 1-8 times with each separator."""
    rng = random.Random(seed)
    base = [c["response"] for c in load_cases() if isinstance(c["response"], str)]
    out = list(base)
    for _ in range(n):
        unit = rng.choice(base)[: rng.choice((3, 12, 40, 150))]
        out.append(rng.choice(_SEPARATORS).join([unit] * rng.randrange(1, 9)))
    return out


# --- repetition ----------------------------------------------------------------------------------


def test_a_unit_repeats_at_most_once_per_separator_run_plus_one() -> None:
    """The bound the short-text exit uses: the split gives one unit more than separator runs."""
    for text in _texts(3000, seed=1):
        units = len(_SENTENCE_SPLIT_RE.findall(text)) + 1
        assert units == len(_SENTENCE_SPLIT_RE.split(text))
        assert _repeated_units(text, 0)[1] <= units


@pytest.mark.parametrize("max_repeats", [2, 3, 5, 8])
def test_repetition_fires_at_exactly_max_repeats_short_units(max_repeats: int) -> None:
    """A short text with exactly ``max_repeats`` copies (one separator run fewer) is gated; one
    copy fewer is not: the exit's bound is not off by one."""
    gate = RepetitionGate(max_repeats=max_repeats)
    fields = {"query": "Tell me about shopping."}
    for end in ("", "."):  # no separator after the last copy: as few runs as copies allow
        at = ". ".join(["Buy now"] * max_repeats) + end
        below = ". ".join(["Buy now"] * (max_repeats - 1)) + end
        assert len(at) < gate.min_chars
        assert gate.check(at, fields) is not None, at
        assert gate.check(below, fields) is None, below


def test_repetition_on_long_text_still_reads_compression() -> None:
    gate = RepetitionGate()
    padded = "ha" * 300  # no separator at all: one unit, but it compresses to nothing
    assert gate.check(padded, {"query": "Laugh."}) is not None


# --- keyword stuffing ----------------------------------------------------------------------------


def _stuffing(n_words: int, n_function: int) -> str:
    content = ["photosynthesis", "chlorophyll", "sunlight", "glucose"]
    function = ["the", "of", "and", "to", "in", "is"]
    words = [function[i % len(function)] for i in range(n_function)]
    words += [content[i % len(content)] for i in range(n_words - n_function)]
    return " ".join(words)


def test_keyword_stuffing_fires_at_exactly_the_function_word_bound() -> None:
    gate = KeywordStuffingGate(words_per_run=1)  # the run-on rules, not the list rule
    at = _stuffing(20, 3)  # 15% function words: the rule's bound, inclusive
    over = _stuffing(20, 4)  # 20%
    assert gate.check(at, {"query": "What is photosynthesis?"}) is not None
    assert gate.check(over, {"query": "What is photosynthesis?"}) is None


def test_keyword_stuffing_exit_uses_the_larger_of_both_function_ratios() -> None:
    """A dump rule allowed more function words than the repeat rule must still be reached."""
    gate = KeywordStuffingGate(dump_function_ratio=0.5, words_per_run=1)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]
    text = " ".join([*words, "the", "of", "and", "to", "in"])  # 14 words, 36% function words
    assert gate.check(text, {"query": "Say something."}) is not None
    assert KeywordStuffingGate(words_per_run=1).check(text, {"query": "Say something."}) is None


def test_keyword_stuffing_no_words_is_let_through_whatever_the_minimum() -> None:
    gate = KeywordStuffingGate(min_words=0, dump_words=0)
    assert gate.check("123 456 !!!", {"query": "Numbers?"}) is None
    assert gate.check("", {}) is None


# --- non-answer ----------------------------------------------------------------------------------

_QUERIES = [
    "Is it complicated?",
    "Tea or coffee?",
    "What did I have for breakfast?",
    "How do I improve my credit score?",
    "Why is exercise important?",
    "What is the capital of France?",
    "Explain photosynthesis briefly.",
]


def _dodges(n: int, seed: int) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    rng = random.Random(seed)
    markers = [*non_answer._IGNORANCE_MARKERS, *non_answer._FILLER_MARKERS]
    pools = [
        sorted(non_answer._CUE_WORDS),
        sorted(non_answer.GENERIC_WORDS),
        sorted(FUNCTION_WORDS_BY_LANGUAGE["en"]),
        ["paris", "chlorophyll", "boil", "minutes", "42", "coffee", "counsellor"],
    ]
    out = []
    for _ in range(n):
        query = rng.choice(_QUERIES)
        parts = [rng.choice(markers) for _ in range(rng.randrange(0, 3))]
        parts += [rng.choice(rng.choice([*pools, query.split()])) for _ in range(rng.randrange(5))]
        rng.shuffle(parts)
        out.append((rng.choice((" ", ". ", ", ")).join(parts), (("query", query),)))
    return out


def test_dodge_is_the_same_with_and_without_the_own_word_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = _dodges(4000, seed=3)
    fast = [non_answer._dodge(r, a) for r, a in cases]
    took = sum(
        non_answer._has_own_word(tokens_for_gate(r), non_answer._asked_words(dict(a)))
        for r, a in cases
    )
    monkeypatch.setattr(non_answer, "_has_own_word", lambda tokens, asked: False)
    slow = [non_answer._dodge(r, a) for r, a in cases]
    assert fast == slow
    # The set reaches both sides: dodges of each kind, answers, and the exit taken often.
    assert {"filler", "ignorance", None} <= set(slow)
    assert 500 < took < len(cases)


# --- near-copy's stems ---------------------------------------------------------------------------


def test_content_stems_are_the_stems_of_the_content_tokens() -> None:
    for text in _texts(500, seed=5) + _QUERIES:
        tokens = tokens_for_gate(text)
        assert _content_stems(tokens) == {_stem(t) for t in _content_tokens(tokens)}


# --- the memo's plan -----------------------------------------------------------------------------


class _Counting:
    """A user's gate (not a built-in type, so never memoised): counted on every check."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def check(self, response: str, fields: dict[str, str]) -> str | None:
        self.calls += 1
        return None


def test_a_user_gate_runs_on_every_ask_and_stops_the_warming() -> None:
    clear_gate_memo()
    user = _Counting()
    gates = (user, NearCopyGate())
    warm_gate_memo([(gates, "Paris.", {"query": "Capital of France?"})])
    assert user.calls == 0  # warming stops at a gate it cannot memoise
    for _ in range(3):
        assert first_gate_hit(gates, "Paris.", {"query": "Capital of France?"}) is None
    assert user.calls == 3


def test_the_plan_follows_a_gates_fields_after_the_memo_is_cleared() -> None:
    """A gate's ``against`` is read into its gate set's plan; clearing the memo (what a caller
    does after changing a gate in place) reads it again."""
    clear_gate_memo()
    gate = NearCopyGate(against=("instruction",))
    gates = (gate,)
    fields = {"query": "Explain photosynthesis briefly.", "instruction": "Be kind."}
    response = "Briefly, photosynthesis: explain."
    assert first_gate_hit(gates, response, fields) is None
    gate.against = ("query",)
    clear_gate_memo()
    hit = first_gate_hit(gates, response, fields)
    assert hit is not None and hit[0] == "near_copy"
    assert pregate._plan(gates) is pregate._plan(gates)  # worked out once per gate set


def test_gates_keyed_by_a_field_get_one_verdict_per_value() -> None:
    """A memoised gate that reads the reference is asked again when it differs (relevance has
    none, correctness one), and not when it is the same."""
    clear_gate_memo()
    calls: list[str | None] = []
    gate = non_answer.NonAnswerGate()
    original = gate.check

    def check(response: str, fields: dict[str, str]) -> str | None:
        calls.append(fields.get("reference_response"))
        return original(response, fields)

    gate.check = check  # type: ignore[method-assign]
    gates = (gate,)
    for ref in (None, "Unknown.", "Unknown.", None):
        fields = {"query": "What did I have for breakfast?"}
        if ref is not None:
            fields["reference_response"] = ref
        first_gate_hit(gates, "I don't know.", fields)
    assert calls == [None, "Unknown."]


# --- length ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "fields", "limit"),
    [
        ({}, {"query": "Answer in at most 2 words."}, 200),
        ({"one_line_chars": 50}, {"query": "Answer in one word."}, 50),
        ({"brief_chars": 80}, {"query": "Explain briefly."}, 80),
        ({"max_chars": 100}, {"query": "Tell me everything."}, 100),
        ({"min_chars": 10, "ratio": 1.0}, {"query": "Q?", "reference_response": "abc"}, 10),
    ],
)
def test_length_gates_one_character_past_each_least_limit(
    settings: dict[str, float], fields: dict[str, str], limit: int
) -> None:
    """The exit for responses within every limit a query could set must not pass one past the
    smallest limit of any rule: each rule's floor is checked at its edge."""
    gate = LengthGate(**settings)  # type: ignore[arg-type]
    assert gate.check("x" * limit, fields) is None
    assert gate.check("x" * (limit + 1), fields) is not None
