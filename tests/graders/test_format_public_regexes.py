"""FormatGrader's regex mode runs the public format rewards' regexes as written.

open-r1's ``format_reward`` and ``code_format_reward`` call ``re.match(pattern, content,
re.DOTALL | re.MULTILINE)``; the GRPO demo's ``strict_format_reward_func`` (willccbb's gist,
copied by Unsloth and many others) calls ``re.match(pattern, text)`` with no flags. ``match:
match`` (anchored at the start only, as ``re.match``), ``multiline`` and ``dotall`` say the same
thing in a config, so the pattern is pasted, not rewritten. The cases and expected rewards are
open-r1's own tests (``tests/test_rewards.py``), plus a differential check against ``re``.
"""

from __future__ import annotations

import re

import pytest

from graders import FormatGrader
from rm_service import ConfigError, GraderScore, build_runner, load_config

# open-r1 src/open_r1/rewards.py, format_reward and get_code_format_reward("python"), verbatim.
OPEN_R1_FORMAT = r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$"
OPEN_R1_CODE_FORMAT = (
    r"^<think>\n.*?\n</think>\n<answer>\n.*?```{sample_language}.*?```.*?\n</answer>$"
)
# The GRPO demo's strict and soft format rewards, re.match with no flags.
STRICT_REASONING = r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n$"
SOFT_REASONING = r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>"

OPEN_R1 = {"mode": "regex", "match": "match", "multiline": True}
"""How open-r1 calls it: re.match with DOTALL (on by default here) and MULTILINE."""

# open-r1 tests/test_rewards.py: test_format_reward_correct, test_format_reward_incorrect,
# test_format_reward_specific_multiline.
FORMAT_CASES = [
    ("<think>\nSome reasoning\n</think>\n<answer>\nThe answer\n</answer>", 1.0),
    ("<think>Only thinking</think>", 0.0),
    ("<answer>Only answer</answer>", 0.0),
    ("No tags at all", 0.0),
    ("<think>Missing closing</think><answer>Missing closing", 0.0),
    ("<think>Wrong order</answer><answer>Wrong order</think>", 0.0),
    (
        "<think>\nI will count each distinct object in the image:\n1. Purple scooter\n"
        "2. Red bicycle\n3. Green motorcycle\n4. Gray sedan\n5. Yellow school bus\n"
        "6. Small green double-decker bus\n7. Small red car\n8. Small purple car\n"
        "9. Small gray dirt bike\n\nThere are 9 distinct objects in total.\n</think>\n"
        "<answer>\n9\n</answer>",
        1.0,
    ),
]

# open-r1 tests/test_rewards.py TestCodeFormat: (content, language, expected).
CODE_FORMAT_CASES = [
    (
        "<think>\nLet's solve this\nStep 1: First step\n</think>\n<answer>\n```python\n"
        "def hello():\n    print('world')\n```\n</answer>",
        "python",
        1.0,
    ),
    ("```python\ndef hello():\n    print('world')\n```", "python", 0.0),
    ("<think>Some thinking</think><answer>Just plain text</answer>", "python", 0.0),
    (
        "<think>Analysis</think><answer>```javascript\nconsole.log('hello');\n```</answer>",
        "python",
        0.0,
    ),
    ("<think>Analysis</think><answer>```\ndef hello(): pass\n```</answer>", "python", 0.0),
    ("<answer>```python\ndef hello(): pass\n```</answer><think>Analysis</think>", "python", 0.0),
    (
        "<think>\nHere's an example:\n```python\nx = 1\n```\nNow the solution:\n</think>\n"
        "<answer>\n```python\ndef solution():\n    return 42\n```\n</answer>",
        "python",
        1.0,
    ),
    (
        "<think>\nAnalysis\n</think>\n<answer>\n```javascript\nconsole.log('hello');\n```\n"
        "</answer>",
        "javascript",
        1.0,
    ),
    (
        "<think>\nAnalysis\n</think>\n<answer>\n```javascript\nconsole.log('hello');\n```\n"
        "</answer>",
        "python",
        0.0,
    ),
    (
        "<think>\nHere's the analysis\n</think>\n<answer>\n```python\nclass Solution:\n"
        "    def __init__(self):\n        self.value = 42\n        \n"
        "    def get_value(self):\n        return self.value\n```\n</answer>",
        "python",
        1.0,
    ),
]

# Where the flags decide: under MULTILINE "$" also matches before a newline, so open-r1 pays
# for text after </answer> that starts on a new line; re.match ignores text after the match.
EDGE_RESPONSES = [
    "<think>\nr\n</think>\n<answer>\na\n</answer>\ntrailing text",
    "<think>\nr\n</think>\n<answer>\na\n</answer> trailing text",
    "<think>\nr\n</think>\n<answer>\na\n</answer>\n",
    " <think>\nr\n</think>\n<answer>\na\n</answer>",
    "preamble\n<think>\nr\n</think>\n<answer>\na\n</answer>",
    "<reasoning>\nr\n</reasoning>\n<answer>\na\n</answer>\n",
    "<reasoning>\nline 1\nline 2\n</reasoning>\n<answer>\na\n</answer>\n",
    "<reasoning>r</reasoning> <answer>a</answer> and more",
    "<reasoning>\nr\n</reasoning>\n\n<answer>\na\n</answer>",
]


async def score(response: str, **kwargs: object) -> float:
    result = await FormatGrader(**kwargs).aevaluate(response=response)  # type: ignore[arg-type]
    assert isinstance(result, GraderScore), result
    return result.score


@pytest.mark.parametrize(("response", "expected"), FORMAT_CASES)
async def test_open_r1_format_reward(response: str, expected: float) -> None:
    assert await score(response, pattern=OPEN_R1_FORMAT, **OPEN_R1) == expected


@pytest.mark.parametrize(("response", "language", "expected"), CODE_FORMAT_CASES)
async def test_open_r1_code_format_reward(response: str, language: str, expected: float) -> None:
    pattern = OPEN_R1_CODE_FORMAT.replace("{sample_language}", language)
    assert await score(response, pattern=pattern, **OPEN_R1) == expected


@pytest.mark.parametrize(
    ("pattern", "kwargs", "flags"),
    [
        pytest.param(OPEN_R1_FORMAT, OPEN_R1, re.DOTALL | re.MULTILINE, id="open-r1"),
        pytest.param(
            STRICT_REASONING, {"mode": "regex", "match": "match", "dotall": False}, 0, id="strict"
        ),
        pytest.param(
            SOFT_REASONING, {"mode": "regex", "match": "match", "dotall": False}, 0, id="soft"
        ),
        pytest.param(SOFT_REASONING, {"mode": "regex", "match": "match"}, re.DOTALL, id="soft-S"),
    ],
)
async def test_same_decision_as_re_match(pattern: str, kwargs: dict, flags: int) -> None:
    responses = EDGE_RESPONSES + [c[0] for c in FORMAT_CASES]
    got = [await score(r, pattern=pattern, **kwargs) for r in responses]
    assert got == [1.0 if re.match(pattern, r, flags) else 0.0 for r in responses]
    assert 0.0 < sum(got) < len(got)  # the cases tell matches from misses


async def test_match_is_anchored_at_the_start_only() -> None:
    kw = {"mode": "regex", "pattern": r"\d+"}
    assert await score("42 apples", match="match", **kw) == 1.0  # fullmatch would say 0
    assert await score("apples 42", match="match", **kw) == 0.0  # search would say 1
    result = await FormatGrader(match="match", **kw).aevaluate(response="42 apples")
    assert result.reason == "pattern matches the response"
    assert result.metadata["matched"] == "42"


async def test_multiline_anchors_lines() -> None:
    kw = {"mode": "regex", "pattern": r"^Answer: \d+$", "match": "search"}
    text = "Working.\nAnswer: 7\nDone."
    assert await score(text, **kw) == 0.0
    assert await score(text, multiline=True, **kw) == 1.0


def test_yaml_accepts_the_new_options() -> None:
    cfg = load_config(
        {
            "graders": {
                "fmt": {
                    "type": "format",
                    "mode": "regex",
                    "pattern": OPEN_R1_FORMAT,
                    "match": "match",
                    "multiline": True,
                    "dotall": True,
                }
            }
        }
    )
    (got,) = build_runner(cfg).grade([{"response": FORMAT_CASES[0][0]}])
    assert got.scores()["fmt"] == 1.0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mode": "regex", "pattern": "x", "match": "prefix"}, "match must be one of"),
        ({"mode": "regex", "pattern": "x", "match": "re.match"}, "match must be one of"),
        ({"mode": "regex", "pattern": "x", "multiline": "yes"}, "multiline must be true or false"),
        ({"mode": "regex", "pattern": "x", "dotall": 0}, "dotall must be true or false"),
        ({"mode": "regex", "pattern": "x", "ignore_case": "no"}, "ignore_case must be true or"),
        ({"mode": "think", "multiline": True}, "multiline: only for format mode 'regex'"),
        ({"mode": "template", "template": "[NUM]", "dotall": False}, "dotall: only for format"),
        ({"mode": "think", "think_prefilled": "yes"}, "think_prefilled must be true or false"),
    ],
)
def test_bad_options_are_config_errors_naming_the_field(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=r"graders\.fmt: .*" + re.escape(message)):
        load_config({"graders": {"fmt": {"type": "format", **params}}})
