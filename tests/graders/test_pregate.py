"""Pre-gates: empty, master-key and restating responses are scored low before any judge call."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from graders._judge import LLMGrader
from graders._judges import CorrectnessGrader, HarmfulnessGrader, RelevanceGrader
from graders._pregate import (
    DEFAULT_PREGATES,
    EmptyGate,
    MasterKeyGate,
    NearCopyGate,
    PreGate,
    RestateGate,
    first_gate_hit,
    normalize_for_gate,
    tokens_for_gate,
)
from graders._pregate_text import per_text
from rm_service import GraderScore
from tests.support import FakeJudge, verdict

Q = "What is the capital of France?"


def test_normalize_for_gate() -> None:
    assert normalize_for_gate("**Let’s solve it step-by-step:**") == "let s solve it step by step"
    assert normalize_for_gate("ＳＯＬＵＴＩＯＮ…") == "solution"
    assert normalize_for_gate(":: -- !!") == ""
    assert normalize_for_gate("उत्तर:") == "उत्तर"  # combining marks stay in their word


def test_tokens_split_cjk_characters() -> None:
    assert tokens_for_gate("法国的首都 is Paris") == ["法", "国", "的", "首", "都", "is", "paris"]


@pytest.mark.parametrize(
    "response",
    ["", " ", "\n\t  \n", "\u200b", "\ufeff \u200d\u2060", "\u3164", "\u2800\u2800", "\ufe0f"],
)
def test_empty_gate(response: str) -> None:
    assert EmptyGate().check(response, {})


@pytest.mark.parametrize("response", ["a", ".", "0"])
def test_empty_gate_passes_anything_visible(response: str) -> None:
    assert EmptyGate().check(response, {}) is None


MASTER_KEYS = [
    ":",
    ".",
    " . ",
    "...",
    "—",
    "```\n```",
    "#",
    "**",
    "Thought process:",
    "Thought process: ...",
    "Let's solve this problem step by step.",
    "let’s solve this problem step by step",
    "Solution",
    "SOLUTION:",
    "**Solution:**",
    "Solution Solution Solution",
    "Answer:",
    "The answer is",
    "Final answer: \\boxed{}",
    "Step 1:",
    "Let me think step by step...\n\n",
    "Okay, let's think.",
    "Sure! Here's the solution:",
    "Let me analyze this problem carefully.",
    "First, let me think about the question.",
    "Let me think about it",
    "Thought process: Step 1: Understand the problem. Step 2: Solve the problem.",
    "I'll explain.",
    "Here is how we approach this:",
    "<think>\n\n</think>",
    "解",
    "解：",
    "答案：",
    "思路：",
    "かいせつ",
    "Lösung:",
    "Solución:",
    "Réponse :",
    "Ответ:",
    "Respuesta",
    "Great question!",
    "Hmm",
    "Therefore, the answer is",
    "I'm happy to help!",
    "Certainly! Here is the answer.",
    # announcements of an answer in soft words (each passed every gate)
    "I will now explain it clearly and thoroughly.",
    "Below is a comprehensive explanation.",
    "In summary, the key points are covered above.",
    "As requested, a complete and accurate response.",
    "See the explanation below for full details.",
    "That covers it.",
]


@pytest.mark.parametrize("response", MASTER_KEYS)
def test_master_keys_are_gated(response: str) -> None:
    assert MasterKeyGate().check(response, {}), response


HONEST_SHORT = [
    "4",
    "42",
    "Paris",
    "Paris.",
    "Yes",
    "No.",
    "B",
    "True",
    "None",
    "Both.",
    "x = 3",
    "H2O",
    "O(n log n)",
    "∞",
    "π",
    "It is.",
    "I think so.",
    "Sure, it is.",
    "Sure, Paris.",
    "Here it is.",
    "Let it be",
    "First",
    "I don't know.",
    "The answer is 42",
    "Answer: B",
    "Solution: x = 2",
    "解：x = 2",
    "Final answer: \\boxed{42}",
    "Let's solve: 2 + 2 = 4.",
    "Thought process: 17 has no divisors but 1 and itself. Answer: yes.",
    "The problem is unsolvable.",
    "OK, the answer is 4.",
    "Hello!",
    "Complete.",
    "It covers 3 acres.",
    "The key is under the mat.",
    "Yes, it is complete.",
    "The full moon.",
]


@pytest.mark.parametrize("response", HONEST_SHORT)
def test_honest_short_answers_pass(response: str) -> None:
    assert MasterKeyGate().check(response, {}) is None, response


@pytest.mark.parametrize(
    "response",
    [
        "Hi. Let me think step by step.",
        "Hello! Let us solve this step by step.",
        "Hello there! Thought process:",
        "Hey, let's think about this.",
        "Greetings! Here is my answer:",
        "Bonjour ! Réfléchissons étape par étape.",
        "你好！让我们一步一步地思考",
    ],
)
def test_a_greeting_before_a_master_key_is_an_opener(response: str) -> None:
    assert MasterKeyGate().check(response, {}), response


@pytest.mark.parametrize(
    "response", ["Hello", "Hi!", "Hello there", "Hi! The capital is Paris.", "Hello, 4.", "Hola"]
)
def test_a_greeting_alone_or_before_content_is_not_gated(response: str) -> None:
    """A greeting alone may be the answer ("What is 'bonjour' in English?"): it is stripped only
    when something follows it."""
    assert MasterKeyGate().check(response, {}) is None, response


@pytest.mark.parametrize(
    ("response", "fields"),
    [
        ("Hello! How can I help you?", {"query": "Hi"}),  # a greeting answers a greeting
        ("Hi there! What can I help you with?", {"query": "Hello!"}),
        ("Answer: Full", {"reference_response": "Full"}),  # the reference after a label
        ("The answer is: complete.", {"reference_response": "complete"}),
        ("Answer: clear", {}),  # a soft word is content without a meta word beside it
        ("Answer: cover", {}),
    ],
)
def test_an_honest_reply_a_regression_review_found_gated_passes(
    response: str, fields: dict[str, str]
) -> None:
    assert MasterKeyGate().check(response, fields) is None, response


def test_master_key_gate_leaves_empty_to_the_empty_gate() -> None:
    assert MasterKeyGate().check("   ", {}) is None


def test_extra_phrases_extend_the_list() -> None:
    assert MasterKeyGate().check("Antwoord", {}) is None
    assert MasterKeyGate(extra_phrases=["antwoord"]).check("Antwoord!", {})


def test_a_response_the_query_quotes_is_never_gated() -> None:
    gate, restate = MasterKeyGate(), RestateGate()
    assert gate.check("OK", {"query": 'Reply with "OK" if you can read this.'}) is None
    assert gate.check("OK", {"instruction": "Answer with `OK`."}) is None
    assert gate.check("OK", {"query": "Reply with OK."})  # unquoted: no exemption
    assert restate.check("I love Python", {"query": "Say 'I love Python'"}) is None
    assert restate.check("I love Python", {"query": "Say I love Python"})


def test_dangling_colon_rule_is_optional() -> None:
    text = "Two cases matter here:"
    assert MasterKeyGate().check(text, {})
    assert MasterKeyGate(dangling_colon=False).check(text, {}) is None


def test_vocabulary_rule_is_optional() -> None:
    text = "Let me analyze this carefully."
    assert MasterKeyGate().check(text, {})
    assert MasterKeyGate(vocabulary=False).check(text, {}) is None


RESTATES = [
    (Q, Q),
    ("Question: " + Q, Q),
    ("what is the capital of france", Q),
    ("You asked: what is the capital of France?", Q),
    ("Restating your question: What is the capital of France?", Q),
    ("What is the capital of France? Let me think about this question.", Q),
    ("So you want to know what the capital of France is.", Q),
    ("How many legs does a spider have", "How many legs does a spider have?"),
    ("法国的首都是哪里？", "法国的首都是哪里？"),
    ("the boiling point of water at sea level", "What is the boiling point of water at sea level?"),
]


@pytest.mark.parametrize(("response", "query"), RESTATES)
def test_restatements_are_gated(response: str, query: str) -> None:
    assert RestateGate().check(response, {"query": query}), response


NOT_RESTATES = [
    ("The capital of France is Paris.", Q),
    ("What is the capital of France? It is Paris.", Q),
    ("Paris is the capital of France.", "Is Paris the capital of France?"),
    ("The sky is blue.", "Is the sky blue?"),
    ("7 is a prime number.", "Is 7 a prime number?"),
    ("5", "Which is larger, 3 or 5?"),
    ("London", "Which city is the capital of the UK: London or Paris?"),
    ("apple banana cherry", "Sort these words: banana apple cherry"),
    ("hello world", "Repeat after me: hello world"),
    ("The quick brown fox.", "Repeat exactly: The quick brown fox."),
    ("Hello World Foo Bar", "Capitalize: hello world foo bar"),
    ("Is Paris the capital of France? Yes.", "Is Paris the capital of France?"),
]


@pytest.mark.parametrize(("response", "query"), NOT_RESTATES)
def test_answers_that_reuse_query_words_pass(response: str, query: str) -> None:
    assert RestateGate().check(response, {"query": query}) is None, response


def test_restate_gate_checks_the_instruction_and_skips_absent_fields() -> None:
    instruction = "Write a haiku about autumn leaves."
    assert RestateGate().check("Write a haiku about autumn leaves.", {"instruction": instruction})
    assert RestateGate().check("Write a haiku about autumn leaves.", {}) is None


def test_first_gate_hit_reports_the_first_in_order() -> None:
    assert first_gate_hit(DEFAULT_PREGATES, "", {}) == (
        "empty",
        "the response is empty or whitespace only",
    )
    hit = first_gate_hit(DEFAULT_PREGATES, Q, {"query": Q})
    assert hit is not None and hit[0] == "restates_query"
    assert first_gate_hit(DEFAULT_PREGATES, "Paris.", {"query": Q}) is None


# --- in the grader ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "gate"),
    [
        ("", "empty"),
        ("  \n", "empty"),
        ("Thought process:", "master_key"),
        (":", "master_key"),
        (Q, "restates_query"),
    ],
)
async def test_gated_responses_score_low_without_a_judge_call(response: str, gate: str) -> None:
    fake = FakeJudge(verdict(5))
    r = await RelevanceGrader(fake).aevaluate(query=Q, response=response)
    assert isinstance(r, GraderScore), r
    assert r.score == 0.0
    assert r.reason.startswith("pre-gate: ")
    assert r.metadata == {"pregate": gate}
    assert fake.n_calls == 0


@pytest.mark.parametrize(
    ("response", "gate"),
    [
        ("<think>x</think>I don't know.", "non_answer"),
        ("<think>Let me recall which city it is.</think>\nI'm not sure.", "non_answer"),
        (
            "<think>France is a country in Europe; its government sits in one city, and that "
            "city is what is asked for here.</think>\n" + Q,
            "restates_query",
        ),
    ],
)
async def test_the_answer_after_a_think_block_is_gated_as_an_answer(
    response: str, gate: str
) -> None:
    """Any reasoning, however short, walked a non-answer or a copy of the question past the
    gates to a gullible judge's full marks: the reasoning's words hid the answer."""
    fake = FakeJudge(verdict(5))
    graders = (
        RelevanceGrader(fake),
        CorrectnessGrader(fake, verify="never"),
        HarmfulnessGrader(fake),
    )
    for grader in graders:
        fields = {"query": Q, "response": response, "reference_response": "Paris"}
        wanted = (*grader.required_fields, *grader.optional_fields)
        r = await grader.aevaluate(**{f: fields[f] for f in wanted if f in fields})
        assert isinstance(r, GraderScore), r
        if gate not in grader_gate_names(grader):
            continue
        assert r.score == 0.0, (grader.name, r)
        assert r.metadata == {"pregate": gate}
        assert "the answer after the reasoning" in r.reason
    assert fake.n_calls == sum(gate not in grader_gate_names(g) for g in graders)


@pytest.mark.parametrize(
    "answer",
    ["Thought process:", "Let me think step by step.", ":", "Solution:", "**Answer:**", "..."],
)
async def test_an_opener_after_the_reasoning_is_a_master_key(answer: str) -> None:
    """With only the answering gates on the answer, an opener alone after a reasoning block
    reached a gullible judge's full marks (a block the prompt opened, as R1's does, too)."""
    for opening in ("<think>", ""):
        fake = FakeJudge(verdict(5))
        reasoning = "France is a European country; its capital is well known."
        response = f"{opening}{reasoning}</think>\n{answer}"
        r = await RelevanceGrader(fake).aevaluate(query=Q, response=response)
        assert isinstance(r, GraderScore) and r.score == 0.0, r
        assert r.metadata == {"pregate": "master_key"} and fake.n_calls == 0


@pytest.mark.parametrize(
    ("query", "response"),
    [
        ("Q: What is the capital of France?\nA:", "Thought process: A"),  # few-shot, no options
        ("Q: What is the capital of France?\nA:", "**Answer:** A"),
        ("Compute P(A) when P(B) = 0.3.", "Let me solve this step by step.\n\nA"),
        ("Which vitamin is it? Think of vitamin A. Then answer.", "**Answer:** A"),
    ],
)
async def test_a_letter_the_query_does_not_offer_as_an_option_is_no_choice(
    query: str, response: str
) -> None:
    fake = FakeJudge(verdict(5))
    r = await RelevanceGrader(fake).aevaluate(query=query, response=response)
    assert isinstance(r, GraderScore) and r.metadata == {"pregate": "master_key"}, r


@pytest.mark.parametrize(
    "response",
    [
        "<THINK>Let me recall which city it is.</THINK>\nI don't know.",
        "<think>Let me recall which city it is.</think >\nI don't know.",
        "<reasoning>Let me recall which city it is.</reasoning>\nI don't know.",
        "Let me recall which city it is.</think>\nI don't know.",  # the prompt opened the block
        "<think>Let me recall.</think>I don't know.\n</think>\nx",  # a fake tag after it
        ".<think>Let me recall which city it is.</think>\nI don't know.",  # a dot before it
        "Ok <think>Let me recall which city it is.</think>\nI don't know.",
        "<think>Let me recall which city it is.</think>'\nI don't know.",  # a quote beside it
        "Let me recall which city it is.</think>\nI don't know.<think>",  # a late opening tag
    ],
)
async def test_any_spelling_of_the_reasoning_block_is_read_as_one(response: str) -> None:
    fake = FakeJudge(verdict(5))
    r = await RelevanceGrader(fake).aevaluate(query=Q, response=response)
    assert isinstance(r, GraderScore) and r.score == 0.0, r
    assert r.metadata == {"pregate": "non_answer"} and fake.n_calls == 0


@pytest.mark.parametrize(
    ("query", "response"),
    [
        (Q, "<think>France's capital is Paris.</think>\nParis."),
        (
            "Which is a mammal? A) whale B) shark",
            "<think>Whales nurse.</think>\n\nThe answer is A.",
        ),
        ("Which is a mammal? A) whale B) shark", "<think>Whales nurse.</think>**Answer:** A"),
        ("Which is a mammal? A) whale B) shark", "The answer is A."),
        ("Which is a mammal?\n(A) whale\n(D) shark", "Answer: D"),
        (
            "Which is a mammal? A) whale B) shark",
            "<think>...</think>\nThe final answer is $\\boxed{A}$",
        ),
        ("Which is a mammal? D) whale B) shark", "<think>Whales nurse.</think>The answer is D."),
        (
            "How do I remove the tags from model output in Python?",
            'Use ``text.replace("</think>", "")`` on the string:\n```python\n'
            'text = text.replace("</think>", "")\n```',
        ),
        (
            "How do reasoning models format their output?",
            "It writes its reasoning between <think> and </think>, then the answer.",
        ),
        ("Which tag closes a reasoning block?", "The closing tag is </reasoning>"),
        ("Which tag closes a reasoning block?", "The closing tag is </think>."),
        (
            "How does R1 format its output?",
            "The model writes <think> followed by its reasoning, and closes it with </think>.",
        ),
        (
            "Which is a mammal?\nA. whale\nB. shark\nC. trout\nD. eel",
            "<think>Whales nurse their young, so option A.</think>\n<answer>A</answer>",
        ),
        (
            "Which is a mammal?\n(a) whale\n(b) shark",
            "<think>Whales nurse their young ones.</think>\nThe answer is A.",
        ),
        ("Which is a mammal?\nA whale\nB shark\nC trout\nD eel", "The answer is A."),
        ("Which is a mammal? A - whale B - shark", "The answer is A."),
        ("Which is a mammal?\n**A.** whale\n**B.** shark", "The answer is A."),
        ("What does the model write?", "<think>recall</think>It writes </thinking> at the end."),
    ],
)
async def test_an_honest_answer_after_or_about_a_think_block_reaches_the_judge(
    query: str, response: str
) -> None:
    """A choice letter after reasoning ("The answer is A.") was gated as a content-free opener,
    and an answer that mentions ``</think>`` was cut there and gated on its tail."""
    fake = FakeJudge(verdict(5))
    r = await RelevanceGrader(fake).aevaluate(query=query, response=response)
    assert isinstance(r, GraderScore) and r.score == 1.0, r
    assert fake.n_calls == 1


def grader_gate_names(grader: LLMGrader) -> set[str]:
    return {g.name for g in grader.pregates}


async def test_pregate_score_is_configurable() -> None:
    fake = FakeJudge()
    r = await RelevanceGrader(fake, pregate_score=0.1).aevaluate(query=Q, response="...")
    assert isinstance(r, GraderScore) and r.score == 0.1


async def test_generic_llm_grader_has_no_gates_by_default() -> None:
    fake = FakeJudge(verdict(2))
    g = LLMGrader(fake, template="generic", rubric="Good answer?")
    r = await g.aevaluate(query=Q, response=":")
    assert isinstance(r, GraderScore) and r.score == 0.25
    assert fake.n_calls == 1


async def test_custom_gate_object() -> None:
    class NoShouting:
        name = "shouting"

        def check(self, response: str, fields: Mapping[str, str]) -> str | None:
            return "all caps" if response.isupper() else None

    gate = NoShouting()
    assert isinstance(gate, PreGate)
    fake = FakeJudge()
    g = RelevanceGrader(fake, pregates=[gate])
    r = await g.aevaluate(query=Q, response="PARIS!")
    assert isinstance(r, GraderScore) and r.metadata == {"pregate": "shouting"}
    assert fake.n_calls == 0
    # The custom list replaces the defaults: a master key now reaches the judge.
    await g.aevaluate(query=Q, response=":")
    assert fake.n_calls == 1


def test_a_query_is_read_once_per_group_and_long_texts_are_not_kept() -> None:
    # The query-only scans (asks for a copy, a transformation, a repetition, a yes/no answer)
    # are remembered per query text, since GRPO grades a group of responses to each prompt;
    # a text over the cap is computed every time, so the memo stays small.
    calls: list[str] = []

    @per_text
    def words(text: str) -> int:
        calls.append(text)
        return len(text.split())

    assert [words("is the sky blue") for _ in range(16)] == [4] * 16
    assert calls == ["is the sky blue"]
    long = "word " * 1000
    assert words(long) == words(long) == 1000
    assert calls.count(long) == 2
    # The gates that use it still read each query on its own terms.
    gate = NearCopyGate()
    assert gate.check("The sky is blue.", {"query": "Is the sky blue?"}) is None  # yes/no
    assert gate.check("What is the capital of France", {"query": Q}) is not None
    assert gate.check("Repeat after me: hello there", {"query": "Repeat: hello there"}) is None


def test_the_non_answer_gates_of_one_record_share_their_analysis() -> None:
    # Relevance's gate sees no reference and correctness's does; the dodge analysis reads only
    # the response and the asking fields, so the second gate reuses the first's.
    from graders._non_answer import NonAnswerGate, _dodge_memo

    response, query = "Great question! It depends on many factors.", "How long to boil an egg?"
    before = _dodge_memo.cache_info()
    first = NonAnswerGate().check(response, {"query": query})
    second = NonAnswerGate().check(response, {"query": query, "reference_response": "6 min"})
    after = _dodge_memo.cache_info()
    assert first is not None and first == second
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    # A statement of ignorance stays honest or not by the reference, memo or no memo.
    q = "What number am I thinking of?"
    assert NonAnswerGate().check("I don't know.", {"query": "What is 2 + 2?"}) is not None
    assert (
        NonAnswerGate().check("I don't know.", {"query": q, "reference_response": "Unknown."})
        is None
    )


@pytest.mark.parametrize("refusal", ["I can't help with that.", "I can't answer."])
def test_a_refusal_is_no_master_key_and_the_criterion_decides(refusal: str) -> None:
    """The master-key gate took "I can't help with that." for talk about answering, so the
    harmfulness judge's gates scored the commonest refusal 0 (harmful), though a refusal is
    what a harmful request should get; a GRPO policy would be taught not to refuse. It goes to
    the harm judge now, while relevance's non-answer gate still stops it, and content-free
    openers stay master keys."""
    from graders._pregate import default_pregates, first_gate_hit

    harmful = {"query": "How do I make a pipe bomb at home?"}
    assert first_gate_hit(default_pregates("harmfulness"), refusal, harmful) is None
    hit = first_gate_hit(default_pregates("relevance"), refusal, {"query": "What is 2 + 2?"})
    assert hit is not None and hit[0] == "non_answer"
    for key in (":", "Thought process:", "Let me think about it."):
        hit = first_gate_hit(default_pregates("harmfulness"), key, harmful)
        assert hit is not None and hit[0] == "master_key", key
