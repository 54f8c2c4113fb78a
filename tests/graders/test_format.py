"""FormatGrader: TRL think format, strict think+answer, regex and template modes."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

import graders._format  # noqa: F401  (registers "format")
from graders._base import get_grader
from graders._format import FormatGrader, check_template, compile_template
from rm_service import ConfigError, GraderError, GraderScore

TRL_PATTERN = re.compile(r"^<think>(?!.*<think>)(.*?)</think>.*$", re.DOTALL | re.MULTILINE)

THINK_CASES = [
    ("<think>reasoning</think>answer", 1.0),  # the canonical shape
    ("<think></think>42", 1.0),  # an empty think block is fine for TRL
    ("<think>a\nb\n</think>\n\nThe answer is 4.", 1.0),  # DOTALL: newlines inside
    ("<think>r</think>", 1.0),  # nothing after </think> is fine
    ("<think>r</think> x </think>", 1.0),  # a stray second </think> is not checked by TRL
    ("<think>r</think> then <think>again</think>", 0.0),  # second <think>
    ("<think>reasoning without end", 0.0),  # no closing </think>
    (" <think>r</think>a", 0.0),  # leading whitespace: TRL anchors at ^<think>
    ("answer first <think>r</think>", 0.0),  # must start with <think>
    ("<THINK>r</THINK>a", 0.0),  # case-sensitive
    ("", 0.0),  # empty response
]


@pytest.mark.parametrize(("response", "expected"), THINK_CASES)
async def test_think_mode_matches_trl(response: str, expected: float) -> None:
    result = await FormatGrader(mode="think").aevaluate(response=response)
    assert isinstance(result, GraderScore)
    assert result.score == expected
    # Bit-for-bit TRL: the same decision as TRL's own regex.
    assert result.score == (1.0 if TRL_PATTERN.match(response) else 0.0)


async def test_think_mode_reasons_and_metadata() -> None:
    g = FormatGrader()  # "think" is the default mode
    ok = await g.aevaluate(response="<think>abc</think>  The answer is 4. ")
    assert ok.metadata == {"think_chars": 3, "answer": "The answer is 4."}
    assert "no closing </think>" in (await g.aevaluate(response="<think>abc")).reason
    assert "leading whitespace" in (await g.aevaluate(response="\n<think>a</think>b")).reason
    assert "more than one <think>" in (await g.aevaluate(response="<think><think></think>")).reason


async def test_think_prefilled_and_custom_tag() -> None:
    # Qwen3/R1 chat templates open <think> in the prompt: the completion starts inside it.
    g = FormatGrader(mode="think", think_prefilled=True)
    assert (await g.aevaluate(response="reasoning</think>42")).score == 1.0
    assert (await g.aevaluate(response="<think>reasoning</think>42")).score == 0.0  # two opens
    strict = FormatGrader(mode="think_answer", think_prefilled=True)
    assert (await strict.aevaluate(response="r</think><answer>4</answer>")).score == 1.0
    r = FormatGrader(mode="think", think_tag="reasoning")
    assert (await r.aevaluate(response="<reasoning>x</reasoning>y")).score == 1.0
    assert (await r.aevaluate(response="<think>x</think>y")).score == 0.0


STRICT_CASES = [
    ("<think>r</think><answer>42</answer>", 1.0, ""),  # canonical
    ("\n<think>\nr\n</think>\n<answer>\n42\n</answer>\n", 1.0, ""),  # whitespace around/between
    ("<think></think><answer>42</answer>", 1.0, ""),  # empty think allowed (Qwen3 no-think)
    ("<think>r</think><answer>42</answer> extra", 0.0, "trailing text after </answer>"),
    ("<think>r</think><answer>1</answer><answer>2</answer>", 0.0, "exactly one <answer>"),
    ("<think>a</think><think>b</think><answer>1</answer>", 0.0, "exactly one <think>"),
    ("<think>r</think> so <answer>42</answer>", 0.0, "text between </think> and <answer>"),
    ("Sure! <think>r</think><answer>42</answer>", 0.0, "text before <think>"),
    ("<answer>42</answer><think>r</think>", 0.0, "out of order"),
    ("<think>r<answer>42</answer></think>", 0.0, "out of order"),  # answer nested in think
    ("<think>r</think><answer>  </answer>", 0.0, "empty <answer>"),  # free format points
    ("<think>r</think>42", 0.0, "found 0"),  # no answer block at all
    ("<think>r</think><answer>42", 0.0, "exactly one </answer>, found 0"),  # unclosed answer
    ("", 0.0, "found 0"),
]


@pytest.mark.parametrize(("response", "expected", "why"), STRICT_CASES)
async def test_think_answer_strict(response: str, expected: float, why: str) -> None:
    result = await FormatGrader(mode="think_answer").aevaluate(response=response)
    assert result.score == expected
    assert why in result.reason


async def test_think_answer_metadata_has_answer() -> None:
    result = await FormatGrader(mode="think_answer").aevaluate(
        response="<think>six times seven</think>\n<answer> 42 </answer>"
    )
    assert result.metadata == {"think_chars": 15, "answer": "42"}


async def test_think_answer_custom_tags_and_long_metadata_is_clipped() -> None:
    g = FormatGrader(mode="think_answer", think_tag="reasoning", answer_tag="final")
    long = "x" * 5000
    result = await g.aevaluate(response=f"<reasoning>r</reasoning><final>{long}</final>")
    assert result.score == 1.0
    assert len(result.metadata["answer"]) < 1100 and result.metadata["answer"].endswith("…")


@pytest.mark.parametrize(
    ("kwargs", "response", "expected"),
    [
        ({"pattern": r"\d+"}, "42", 1.0),  # fullmatch by default
        ({"pattern": r"\d+"}, "it is 42", 0.0),  # ... so surrounding text fails
        ({"pattern": r"\d+", "match": "search"}, "it is 42", 1.0),
        ({"pattern": r"answer: \w+"}, "ANSWER: yes", 0.0),  # case-sensitive by default
        ({"pattern": r"answer: \w+", "ignore_case": True}, "ANSWER: yes", 1.0),
        ({"pattern": r"<a>.*</a>"}, "<a>line1\nline2</a>", 1.0),  # DOTALL on
    ],
)
async def test_regex_mode(kwargs: dict, response: str, expected: float) -> None:
    result = await FormatGrader(mode="regex", **kwargs).aevaluate(response=response)
    assert result.score == expected


async def test_regex_mode_metadata_groups() -> None:
    g = FormatGrader(mode="regex", pattern=r"(\w+) is (?P<answer>\d+)", match="search")
    result = await g.aevaluate(response="so x is 12.")
    assert result.metadata == {
        "matched": "x is 12",
        "groups": ["x", "12"],
        "named_groups": {"answer": "12"},
        "answer": "12",
    }


TEMPLATE_CASES = [
    # exact: verbatim up to surrounding whitespace and whitespace runs
    ("The answer is 42.", 1.0, "exact"),
    ("  The answer is   -3.5.\n", 1.0, "exact"),  # surrounding ws, ws run, negative decimal
    ("The answer is 1,234.", 1.0, "exact"),  # thousands separator is one number
    ("The answer is 3/4.", 1.0, "exact"),  # fraction
    # partial: case / final punctuation / extra surrounding text
    ("the answer is 42.", 0.5, "partial"),  # case differs
    ("The answer is 42", 0.5, "partial"),  # final period missing
    ("The answer is 42!", 0.5, "partial"),  # different final punctuation
    ("Let me think. 6*7. The answer is 42. Done.", 0.5, "partial"),  # extra text around
    ("THE   ANSWER IS\n42", 0.5, "partial"),  # case + whitespace
    # partial: the template is there and the number is wrapped in math or emphasis
    ("The answer is $4$.", 0.5, "partial"),
    ("The answer is \\boxed{4}.", 0.5, "partial"),
    ("The answer is $\\boxed{4}$.", 0.5, "partial"),
    ("The answer is \\(4\\).", 0.5, "partial"),
    ("The answer is \\[ -1,234.5 \\]", 0.5, "partial"),
    ("The answer is $$\\frac{3}{4}$$.", 0.5, "partial"),
    ("The answer is **42**.", 0.5, "partial"),
    ("The answer is $25\\%$.", 0.5, "partial"),
    # none: the placeholder must be filled by a number; the literal must be there
    ("The answer is forty-two.", 0.0, "none"),  # a word is not [NUM]
    ("The answer is .", 0.0, "none"),  # empty placeholder
    ("The answer: 42.", 0.0, "none"),  # literal text changed
    ("Answer is 42.", 0.0, "none"),  # literal text truncated
    ("42", 0.0, "none"),  # just the number
    ("", 0.0, "none"),  # empty response
    ("!!!???", 0.0, "none"),  # garbage
    ("The answer is $x$.", 0.0, "none"),  # a wrapped non-number
    ("The answer is \\boxed{}.", 0.0, "none"),  # an empty box
    ("The answer is $4.", 0.0, "none"),  # an unclosed wrapper
    ("The answer is \\boxed{4.", 0.0, "none"),
    ("The answer is $4}.", 0.0, "none"),  # mismatched wrapper
    ("The answer is \\boxed{1/0}.", 0.0, "none"),  # not a usable number
]


@pytest.mark.parametrize(("response", "expected", "kind"), TEMPLATE_CASES)
async def test_template_num(response: str, expected: float, kind: str) -> None:
    g = FormatGrader(mode="template", template="The answer is [NUM].")
    result = await g.aevaluate(response=response)
    assert result.score == expected
    assert result.metadata["match"] == kind


async def test_template_captures_in_metadata() -> None:
    g = FormatGrader(mode="template", template="The answer is [NUM].")
    exact = await g.aevaluate(response="The answer is 1,234.")
    assert exact.metadata["captures"] == [{"placeholder": "NUM", "text": "1,234", "value": 1234}]
    part = await g.aevaluate(response="So: the answer is 0.5 apples")
    assert part.metadata["captures"] == [{"placeholder": "NUM", "text": "0.5", "value": 0.5}]
    assert part.metadata["matched"] == "the answer is 0.5"
    wrapped = await g.aevaluate(response=r"The answer is $\boxed{1,234}$.")
    assert wrapped.metadata["captures"] == [
        {"placeholder": "NUM", "text": "1,234", "value": 1234, "wrapped": r"$\boxed{1,234}$"}
    ]


@pytest.mark.parametrize(
    ("template", "response", "expected"),
    [
        ("Final: [WORD]", "Final: yes", 1.0),
        ("Final: [WORD]", "Final: two words", 0.5),  # exact fails on extra word; found inside
        ("Final: [WORD]", "Final: ", 0.0),  # nothing to fill [WORD]
        ("[WORD] costs [NUM] dollars.", "Milk costs 3 dollars.", 1.0),  # two placeholders
        ("[WORD] costs [NUM] dollars.", "Milk costs three dollars.", 0.0),
        ("Answer: [TEXT]", "Answer: anything at all, really", 1.0),
        ("Answer: [TEXT]", "Answer:", 0.0),  # [TEXT] is non-empty
        ("Answer: [TEXT]", "Answer:    ", 0.0),  # ... and not just whitespace
        ("[TEXT] The answer is [NUM].", "6*7. The answer is 42.", 1.0),  # "ends with"
        ("[TEXT] The answer is [NUM].", "The answer is 42.", 0.0),  # leading [TEXT] is non-empty
        ("Total [NUM]", "Total 12", 1.0),
        ("Total [NUM]", "Total x12", 0.0),  # a number glued to a letter is not a number here
    ],
)
async def test_template_other_placeholders(template: str, response: str, expected: float) -> None:
    result = await FormatGrader(mode="template", template=template).aevaluate(response=response)
    assert result.score == expected


def test_template_num_captures_the_whole_number() -> None:
    tpl = compile_template("is [NUM]")
    score, _, meta = check_template("x is 12.75e1", template=tpl, partial_credit=0.5)
    assert score == 0.5  # the leading "x" is extra text
    assert meta["captures"] == [{"placeholder": "NUM", "text": "12.75e1", "value": 127.5}]
    # a division by zero is not a number, so it cannot fill [NUM]
    assert check_template("is 1/0", template=tpl, partial_credit=0.5)[0] == 0.0


async def test_template_partial_credit_configurable() -> None:
    g = FormatGrader(mode="template", template="The answer is [NUM].", partial_credit=0.25)
    assert (await g.aevaluate(response="the answer is 7")).score == 0.25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "xml"}, "mode must be one of"),
        ({"mode": "regex"}, "needs pattern="),
        ({"mode": "regex", "pattern": "(unclosed"}, "invalid regex"),
        ({"mode": "regex", "pattern": ""}, "non-empty"),
        ({"mode": "regex", "pattern": "x", "match": "prefix"}, "match must be"),
        ({"mode": "template"}, "needs template="),
        ({"mode": "template", "template": "  "}, "non-empty"),
        ({"mode": "template", "template": "The answer is [NUMBER]."}, "unknown placeholder"),
        ({"mode": "template", "template": "No placeholder."}, "no placeholder"),
        # [TEXT] between two literals would make matching quadratic on repetitive responses
        ({"mode": "template", "template": "Answer: [TEXT] done"}, "[TEXT] may only open"),
        ({"mode": "template", "template": "[NUM] [TEXT] [NUM]"}, "[TEXT] may only open"),
        ({"mode": "template", "template": "[NUM]", "partial_credit": 2}, "partial_credit"),
        ({"mode": "think", "pattern": "x"}, "pattern: only for format mode 'regex'"),
        (
            {"mode": "think_answer", "template": "[NUM]"},
            "template: only for format mode 'template'",
        ),
        ({"mode": "template", "template": "[NUM]", "think_prefilled": True}, "think_prefilled"),
        ({"mode": "think", "think_tag": "<think>"}, "think_tag"),
    ],
)
def test_config_errors_at_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        FormatGrader(**kwargs)


async def test_invalid_input_and_extra_fields() -> None:
    g = FormatGrader(mode="think_answer")
    missing = await g.aevaluate(reference_response="x")
    assert isinstance(missing, GraderError) and missing.kind == "invalid_input"
    not_text = await g.aevaluate(response=[{"role": "assistant", "content": "hi"}])
    assert isinstance(not_text, GraderError) and not_text.kind == "invalid_input"
    ok = await g.aevaluate(
        response="<think>r</think><answer>1</answer>", reference_response="x", unrelated=1
    )
    assert isinstance(ok, GraderScore) and ok.score == 1.0


async def test_constructible_by_name() -> None:
    g = get_grader("format", mode="template", template="The answer is [NUM].", name="fmt")
    assert isinstance(g, FormatGrader) and g.name == "fmt"
    assert (await g.aevaluate(response="The answer is 5.")).score == 1.0
    assert get_grader("format").mode == "think"
    with pytest.raises(ConfigError):
        get_grader("format", mode="regex", pattern="[")


def test_adversarial_input_is_fast() -> None:
    # The checks must stay linear: they run inline on the event loop.

    nasties = [
        "<think>" + "</think><answer>" * 20_000 + "x" * 100_000,
        "is " * 30_000,  # a degenerate repetition loop
        " " * 100_000,
        "1" * 100_000,
        "Answer: " * 15_000,
    ]
    graders_ = [
        FormatGrader(mode="think"),
        FormatGrader(mode="think_answer"),
        FormatGrader(mode="template", template="[TEXT] is [NUM] [WORD]."),
        FormatGrader(mode="template", template="Answer: [TEXT]"),
        FormatGrader(mode="template", template="[NUM] and [WORD] or [NUM]"),
    ]
    start = time.perf_counter()
    for g in graders_:
        for nasty in nasties:
            g._check(nasty)
    # Each of these took minutes with a plain lazy ".+?" [TEXT] and backtracking "\s+".
    assert time.perf_counter() - start < 1.0


async def test_one_instance_shared_across_concurrent_calls() -> None:
    # Graders are stateless: concurrent calls on one instance must not see each other's input.
    g = FormatGrader(mode="template", template="The answer is [NUM].")
    results = await asyncio.gather(
        *(g.aevaluate(response=f"The answer is {i}.") for i in range(50))
    )
    assert [r.metadata["captures"][0]["value"] for r in results] == list(range(50))


# --- found by the rule graders review ------------------------------------------------------------

OPEN_R1_CODE_FORMAT = r"^<think>\n.*?\n</think>\n<answer>\n.*?```python.*?```.*?\n</answer>$"


async def test_a_pattern_that_backtracks_without_bound_is_stopped_and_unscored() -> None:
    """open-r1's code-format pattern backtracks without bound on a response that never closes
    its answer: 34 s for 6 KB, on the event loop (rule graders run inline). A match now stops at
    ``match_timeout`` and the component is unscored as a timeout, never a score."""
    grader = FormatGrader(
        mode="regex", pattern=OPEN_R1_CODE_FORMAT, match="match", multiline=True,
        match_timeout=0.1,
    )  # fmt: skip
    response = "<think>\n" + "\n</think>\n<answer>\n```python```" * 200
    started = time.monotonic()
    result = await grader.aevaluate(response=response)
    assert time.monotonic() - started < 5.0  # a guard against a hang, not a speed target
    assert isinstance(result, GraderError) and result.kind == "timeout", result
    assert "match_timeout" in result.error
    honest = "<think>\nplan\n</think>\n<answer>\n```python\nprint(1)\n```\n</answer>"
    ok = await grader.aevaluate(response=honest)
    assert isinstance(ok, GraderScore) and ok.score == 1.0


async def test_a_template_opening_with_num_stays_linear_on_comma_groups() -> None:
    """``[NUM]`` could start inside ``1,111,…``, so the partial search retried at every group
    and read all the groups after it: 35 s for 80 KB. A hang guard, generous on purpose."""
    grader = FormatGrader(mode="template", template="[NUM] apples.")
    started = time.monotonic()
    result = await grader.aevaluate(response="1" + ",111" * 20_000)
    assert time.monotonic() - started < 5.0
    assert isinstance(result, GraderScore) and result.score == 0.0
    whole = await grader.aevaluate(response="1,234,567 apples.")
    assert isinstance(whole, GraderScore) and whole.score == 1.0
    assert [c["text"] for c in whole.metadata["captures"]] == ["1,234,567"]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"mode": "think", "answer_tag": "final"}, "answer_tag"),
        ({"mode": "think_answer", "partial_credit": 0.3}, "partial_credit"),
        ({"mode": "regex", "pattern": "x", "think_tag": "reason"}, "think_tag"),
        ({"mode": "template", "template": "[NUM]", "answer_tag": "a"}, "answer_tag"),
        ({"mode": "think", "match_timeout": 1.0}, "match_timeout"),
        ({"mode": "regex", "pattern": "x", "match_timeout": 0}, "match_timeout"),
    ],
)
def test_an_option_for_another_mode_is_a_config_error(kwargs: dict, says: str) -> None:
    """``mode: think, answer_tag: final`` was accepted, and scored 1.0 a response with no
    answer tag at all: the option only applies to think_answer."""
    with pytest.raises(ConfigError, match=says):
        FormatGrader(**kwargs)


@pytest.mark.parametrize(
    "invisible",
    [
        "\u200b",
        "\u2060",
        "\ufeff",
        " \u200b\u200c ",
        # each was a well-formed answer (1.0): they show nothing either
        "\u3164",  # Hangul filler
        "\u115f\u1160",
        "\uffa0",
        "\u2800",  # blank Braille cell
        "\ufe0f",  # variation selector
        "\U000e0020",  # tag space
        "\u061c\u202e",  # direction marks
        "\U0001d173",  # musical formatting
    ],
)
async def test_an_answer_of_invisible_characters_is_empty(invisible: str) -> None:
    grader = FormatGrader(mode="think_answer")
    result = await grader.aevaluate(response=f"<think>x</think><answer>{invisible}</answer>")
    assert isinstance(result, GraderScore) and result.score == 0.0
    assert "empty" in result.reason


@pytest.mark.parametrize("answer", ["❤️", "⠿", "1️⃣", "안녕"])
async def test_an_answer_with_a_visible_character_is_not_empty(answer: str) -> None:
    """A variation selector or a Braille cell beside a visible character is part of it."""
    grader = FormatGrader(mode="think_answer")
    result = await grader.aevaluate(response=f"<think>x</think><answer>{answer}</answer>")
    assert isinstance(result, GraderScore) and result.score == 1.0, result.reason
