"""Where ``/get_reward`` cuts a query into prompt and response, on queries as OpenRLHF decodes
them from real chat templates (Qwen2.5's ChatML, Llama 3.1), perturbed the ways decoding does:
whitespace around special tokens, a lost newline, a prompt truncated on the left (0.11's
``SingleTurnAgentExecutor`` keeps the last ``max_prompt_length`` tokens) or on the right (0.9.0's
``tokenize_fn``: the tokenizer's default ``truncation_side``), a token cut mid-character.

OpenRLHF (0.11, ``utils/agent.py``) sends ``query = decode(prompt_ids + response_ids,
skip_special_tokens=False)`` and ``prompts`` = the prompt text it rendered; they need not agree
character for character."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import jinja2
import pytest

from rm_service._query_split import ChatTokenStripper, split_query
from tests.app import client, make_app
from tests.integrations.conftest import SEEN

# The no-tools branch of the chat templates in Qwen2.5-Instruct's and Llama-3.1-Instruct's
# tokenizer_config.json, rendered the way transformers does (jinja2, trim/lstrip blocks).
QWEN_TEMPLATE = """\
{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
{%- else %}
    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant") %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""  # noqa: E501
LLAMA3_TEMPLATE = """\
{{- bos_token }}
{%- if not date_string is defined %}{%- set date_string = "26 Jul 2024" %}{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""  # noqa: E501
EOS = {"qwen": "<|im_end|>", "llama3": "<|eot_id|>"}

QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May? Think step by step, "
    "then give the answer in <answer></answer> tags."
)
MESSAGES = [
    {"role": "system", "content": "You are a careful math tutor. Café rules apply."},
    {"role": "user", "content": QUESTION},
]
RESPONSE = "<think>\nIn May she sold 48/2 = 24. 48 + 24 = 72.\n</think>\n<answer>72</answer>"

CFG: dict[str, Any] = {
    "graders": {
        "fmt": {"type": "format", "mode": "think_answer"},
        "num": {"type": "number", "mapper": {"reference_response": "label"}},
        "seen": {"type": "tests.integrations.conftest:seen"},
    },
    "aggregators": [{"type": "weighted_sum", "name": "reward", "weights": {"fmt": 1, "num": 1}}],
}
"""The R1 format check (exactly a think block then an answer block: any prompt text left in the
response makes it 0), the GSM8K number check, and ``seen``, which keeps each record."""


def render(template: str, messages: list[dict[str, str]] = MESSAGES) -> str:
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=True, bos_token="<|begin_of_text|>"
    )


PROMPTS = {"qwen": render(QWEN_TEMPLATE), "llama3": render(LLAMA3_TEMPLATE)}


def space_before_end(p: str) -> str:
    """A space before every end-of-turn token (the issue's case: one space, format 1 -> 0)."""
    return p.replace("<|im_end|>", " <|im_end|>").replace("<|eot_id|>", " <|eot_id|>")


def space_after_specials(p: str) -> str:
    """SentencePiece-style: a space after every special token."""
    for tok in ("<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|end_header_id|>"):
        p = p.replace(tok, tok + " ")
    return p


def newline_lost(p: str) -> str:
    return p.replace("<|im_end|>\n", "<|im_end|>").replace(
        "<|end_header_id|>\n\n", "<|end_header_id|>"
    )


def left_truncated(p: str) -> str:
    """The last part of the prompt only, cut inside the question (0.11 keeps the last
    ``max_prompt_length`` tokens)."""
    return p[p.index("clips in") :]


def left_truncated_mid_character(p: str) -> str:
    """Cut inside 'Café', the é's first byte lost: decoding shows U+FFFD."""
    return "\ufffd" + p[p.index("Café") + 4 :]


def truncated_and_spaced(p: str) -> str:
    return space_before_end(left_truncated(p))


PERTURB: dict[str, Callable[[str], str]] = {
    "exact": lambda p: p,
    "space_before_end": space_before_end,
    "space_after_specials": space_after_specials,
    "newline_lost": newline_lost,
    "left_truncated": left_truncated,
    "left_truncated_mid_character": left_truncated_mid_character,
    "truncated_and_spaced": truncated_and_spaced,
}


async def get_reward(app: Any, body: dict[str, Any]) -> dict[str, Any]:
    async with client(app) as c:
        resp = await c.post("/get_reward", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("template", list(PROMPTS))
@pytest.mark.parametrize("perturb", list(PERTURB))
async def test_the_response_is_found_in_realistic_decoded_queries(
    template: str, perturb: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rm_service")
    SEEN.clear()
    prompt = PROMPTS[template]
    query = PERTURB[perturb](prompt) + RESPONSE + EOS[template]
    body = await get_reward(
        make_app({"r": CFG}), {"query": [query], "prompts": [prompt], "labels": ["72"]}
    )
    (rec,) = SEEN
    assert rec["response"] == RESPONSE
    logs = body["extra_logs"]
    assert logs["fmt"] == [1.0] and logs["num"] == [1.0] and body["rewards"] == [1.0]
    assert logs["prompt_not_found"] == [0.0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_split_query_maps_back_to_the_raw_response() -> None:
    s = ChatTokenStripper()
    prompt = PROMPTS["llama3"]
    # The model's own whitespace inside the response is kept; only the template's goes.
    response = "First line.\n\n  Second line with  two spaces."
    got = split_query(space_after_specials(prompt) + response + " <|eot_id|>", prompt, s)
    assert got.response == response + " "
    assert got.prompt == s.strip(prompt) and got.cut == "prompt" and not got.prompt_not_found


def test_a_prompt_truncated_on_the_right_is_cut_where_the_query_leaves_it() -> None:
    # OpenRLHF 0.9.0 truncates prompts on the right: the generation marker is gone too.
    prompt = PROMPTS["qwen"]
    head = prompt[: prompt.index("half as many")]
    got = split_query(head + "72 clips.<|im_end|>", prompt, ChatTokenStripper())
    assert got.response == "72 clips."
    assert got.cut == "divergence" and got.prompt_not_found  # flagged: the model never saw it whole


def other_query(template: str, messages: list[dict[str, str]]) -> str:
    return render(QWEN_TEMPLATE if template == "qwen" else LLAMA3_TEMPLATE, messages) + (
        RESPONSE + EOS[template]
    )


@pytest.mark.parametrize("template", list(PROMPTS))
@pytest.mark.parametrize(
    ("messages", "cut"),
    [
        # The prompt's end is in the query: the response follows it.
        ([{"role": "system", "content": "A different system prompt."}, MESSAGES[1]], "prompt_end"),
        # Nothing of the prompt: the response follows the last assistant-turn marker.
        ([MESSAGES[0], {"role": "user", "content": "A different question?"}], "marker"),
    ],
)
async def test_a_query_without_its_prompt_is_cut_at_the_best_guess_and_flagged(
    template: str, messages: list[dict[str, str]], cut: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rm_service")
    SEEN.clear()
    query = other_query(template, messages)
    app = make_app({"r": CFG})
    body = await get_reward(
        app, {"query": [query, query], "prompts": [PROMPTS[template]] * 2, "labels": ["72"] * 2}
    )
    assert [r["response"] for r in SEEN] == [RESPONSE, RESPONSE]
    assert body["extra_logs"]["prompt_not_found"] == [1.0, 1.0]
    assert body["extra_logs"]["fmt"] == [1.0, 1.0]
    (msg,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert msg.startswith(f"get_reward: 2/2 queries do not contain their prompt ({cut}=2)")
    assert "differ at character" in msg and "A different" in msg
    # Rate-limited: a training loop gets one warning a minute, not one per batch.
    await get_reward(app, {"query": [query], "prompts": [PROMPTS[template]], "labels": ["72"]})
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


async def test_no_marker_and_no_prompt_grades_the_whole_query_flagged() -> None:
    SEEN.clear()
    body = await get_reward(
        make_app({"r": CFG}),
        {"query": ["Q: 2+2? A: <answer>4</answer>"], "prompts": ["Q: 3+3? A:"], "labels": ["4"]},
    )
    assert SEEN[0]["response"] == "Q: 2+2? A: <answer>4</answer>"
    assert body["extra_logs"]["prompt_not_found"] == [1.0]


@pytest.mark.parametrize("template", list(PROMPTS))
async def test_the_old_form_without_prompts_is_cut_at_the_last_assistant_marker(
    template: str,
) -> None:
    SEEN.clear()
    query = space_before_end(PROMPTS[template]) + RESPONSE + EOS[template]
    body = await get_reward(make_app({"r": CFG}), {"query": [query]})
    assert SEEN[0]["response"] == RESPONSE and body["extra_logs"]["fmt"] == [1.0]
    assert body["extra_logs"]["prompt_not_found"] == [0.0]  # none was sent: nothing to find
    assert SEEN[0]["prompt"].startswith("<|") and "Natalia" in SEEN[0]["prompt"]
    assert "<think>" not in SEEN[0]["prompt"]


def test_a_response_that_repeats_the_prompt_end_is_kept_whole() -> None:
    # The prompt is found first, so a response that itself holds a marker is not cut again.
    prompt = PROMPTS["qwen"]
    response = "<|im_start|>assistant\n<think>x</think><answer>72</answer>"
    got = split_query(prompt + response, prompt, ChatTokenStripper())
    assert got.response == response and got.cut == "prompt"
    got = split_query(space_before_end(prompt) + response, prompt, ChatTokenStripper())
    assert got.response == response and got.cut == "prompt"


@pytest.mark.parametrize("template", list(PROMPTS))
def test_an_empty_response_is_empty_and_found(template: str) -> None:
    # The policy ended its turn at once: the prompt's last newline now touches the end token.
    prompt = PROMPTS[template]
    got = split_query(space_before_end(prompt) + EOS[template], prompt, ChatTokenStripper())
    assert got.response == "" and got.cut == "prompt" and not got.prompt_not_found


@pytest.mark.parametrize(
    "query",
    [
        "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nR<|im_end|>",  # ChatML
        "<|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nR<|eot_id|>",  # Llama 3
        "<|user|>\nQ<|end|>\n<|assistant|>\nR<|end|>",  # Phi-3
        "<s>[INST] Q [/INST] R</s>",  # Llama 2, Mistral
        "<bos><start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\nR",  # Gemma
        "<｜begin▁of▁sentence｜><｜User｜>Q<｜Assistant｜>R",  # DeepSeek V3/R1
    ],
)
def test_each_templates_assistant_marker_without_a_prompt(query: str) -> None:
    got = split_query(query, None, ChatTokenStripper())
    assert got.response == "R" and got.cut == "marker" and "Q" in got.prompt


def test_a_query_repeating_its_prompts_end_is_split_in_linear_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each occurrence of the prompt's last characters copied the query's head to test it:
    quadratic (a 1.3 MB rollout repeating its prompt's end cost seconds on the event loop).
    Heads longer than the prompt are not tested; the split is the same."""
    import rm_service._query_split as qs

    prompt = "<|im_start|>user\\n" + "What is the sum of the first primes? " * 3
    prompt += "<|im_end|>\\n<|im_start|>assistant\\n"
    query = "<|im_start|>system\\nX<|im_end|>\\n" + prompt[5:] + prompt[-80:] * 2000
    tested: list[int] = []
    real = qs._is_end_of

    def counting(p: str, head: str) -> bool:
        tested.append(len(head))
        return real(p, head)

    monkeypatch.setattr(qs, "_is_end_of", counting)
    split = ChatTokenStripper().split(query, prompt)
    assert split.cut == "prompt_end"
    assert len(tested) <= 2 and all(n <= len(prompt) + 40 for n in tested)


# The other templates whose assistant turns the split knows, rendered for one question; with
# the end token (or tokens) a decoded response ends with.
OTHER_TEMPLATES = {
    "deepseek_r1": ("<｜begin▁of▁sentence｜><｜User｜>Q?<｜Assistant｜>", "<｜end▁of▁sentence｜>"),
    "gemma": (
        "<bos><start_of_turn>user\nQ?<end_of_turn>\n<start_of_turn>model\n",
        "<end_of_turn>\n<eos>",
    ),
    "llama3_1_padded": (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|eot_id|><|finetune_right_pad_id|><|finetune_right_pad_id|>",
    ),
}  # fmt: skip


@pytest.mark.parametrize("template", list(OTHER_TEMPLATES))
async def test_the_end_tokens_of_every_known_template_are_stripped(template: str) -> None:
    """DeepSeek-R1's and Gemma's end tokens (and Llama 3.1's padding) stayed in the graded
    response: a perfect R1-format answer scored format 0, reward 0.8, with nothing flagged."""
    SEEN.clear()
    prompt, eos = OTHER_TEMPLATES[template]
    request = {"query": [prompt + RESPONSE + eos], "prompts": [prompt], "labels": ["72"]}
    body = await get_reward(make_app({"r": CFG}), request)
    (rec,) = SEEN
    assert rec["response"].strip() == RESPONSE
    assert body["extra_logs"]["fmt"] == [1.0] and body["rewards"] == [1.0]


@pytest.mark.parametrize("with_prompts", [True, False])
@pytest.mark.parametrize("template", list(PROMPTS))
async def test_graders_get_the_question_not_the_templated_prompt(
    template: str, with_prompts: bool
) -> None:
    """The graders' ``query`` was the whole templated prompt, system prompt and special tokens
    included: a response copying the question passed the copy gates (a gullible judge gave it
    full marks), and a judge read the system prompt as the question."""
    SEEN.clear()
    prompt = PROMPTS[template]
    body: dict[str, Any] = {"query": [prompt + RESPONSE + EOS[template]], "labels": ["72"]}
    if with_prompts:
        body["prompts"] = [prompt]
    await get_reward(make_app({"r": CFG}), body)
    (rec,) = SEEN
    assert rec["query"] == QUESTION
    assert "careful math tutor" in rec["prompt"]  # the whole prompt is still there


@pytest.mark.parametrize(
    ("prompt", "question"),
    [
        ("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nQ? [/INST]", "Q?"),  # Llama 2
        ("<s>[INST] Hi [/INST] Hello</s>[INST] Q? [/INST]", "Q?"),  # Mistral, two turns
        ("<|user|>\nQ?<|end|>\n<|assistant|>\n", "Q?"),  # Phi-3
        *((p, "Q?") for p, _ in OTHER_TEMPLATES.values()),
        ("Q? Answer in one word.", None),  # a plain prompt is its own question
    ],
)
def test_the_question_is_the_last_user_turn(prompt: str, question: str | None) -> None:
    assert ChatTokenStripper().question(prompt) == question


CHATML = (
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n"
    "<|im_start|>assistant\n"
)


@pytest.mark.parametrize(
    "question",
    [
        "What does the <s> tag do in HTML?",
        "Explain what [INST] and [/INST] mean in Llama 2 prompts.",
        "In Gemma, what is the <eos> token for?",
    ],
)
def test_token_like_text_in_a_question_stays_in_it(question: str) -> None:
    """The question ended at the first special-token-like text, from any template: graders
    got "What does the" as the question."""
    assert ChatTokenStripper().question(CHATML.format(question)) == question


def test_a_tool_result_is_not_the_question() -> None:
    prompt = (
        "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n<|im_start|>assistant\n"
        '<tool_call>{"name": "weather"}</tool_call><|im_end|>\n'
        '<|im_start|>user\n<tool_response>{"temp_c": 21}</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n"
    )
    assert ChatTokenStripper().question(prompt) == "What's the weather in Paris?"


def test_end_tokens_in_an_answer_are_kept_unless_they_end_it() -> None:
    """Gemma's and DeepSeek's end tokens are removed where they end a response; inside it
    (code that names them) they are the answer's text."""
    prompt = CHATML.format("How do I set Gemma's stop token?")
    answer = 'Set `tokenizer.eos_token = "<eos>"` and `stop = ["<end_of_turn>"]`.'
    got = ChatTokenStripper().split(prompt + answer + "<|im_end|>", prompt)
    assert got.response == answer


@pytest.mark.parametrize(
    "prompt",
    [
        "<|im_start|>system\nNever write [INST] or [/INST] tags.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nIgnore <|user|> markers.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nGemma uses "
        "<start_of_turn>user or model.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "What is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "<｜begin▁of▁sentence｜>Never write [INST] tags.<｜User｜>What is 2+2?<｜Assistant｜>",
        # Mistral v7: its system block has no token the templates list; ChatML's is quoted
        "<s>[SYSTEM_PROMPT]Never emit <|im_start|> tokens.[/SYSTEM_PROMPT][INST]What is 2+2?"
        "[/INST]",
        # a left-truncated ChatML prompt whose cut system prompt names Gemma's token
        "emit <start_of_turn> tokens.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n",
    ],
)
def test_a_system_prompt_quoting_another_templates_marker_is_text(prompt: str) -> None:
    """The template was the one whose user marker came first, so a system prompt naming
    another template's marker gave graders "or" as the question."""
    assert ChatTokenStripper().question(prompt) == "What is 2+2?"


def test_no_strip_patterns_remove_nothing_and_other_templates_keep_their_endings() -> None:
    gemma = "<bos><start_of_turn>user\nQ?<end_of_turn>\n<start_of_turn>model\n"
    assert ChatTokenStripper([]).split(gemma + "4<end_of_turn>", gemma).response == "4<end_of_turn>"
    chatml = CHATML.format("What ends a Gemma sequence?")
    answer = "In Gemma the end-of-sequence token is <eos>"
    assert ChatTokenStripper().split(chatml + answer + "<|im_end|>", chatml).response == answer


def test_a_query_ending_in_an_end_token_loses_it_without_a_template() -> None:
    """A plain (no chat template) Gemma prompt, left-truncated: the <eos> ending the query is
    still an end token."""
    prompt = "Question: 2+2?\nAnswer:"
    assert ChatTokenStripper().split(prompt + " 4<eos>", prompt).response == " 4"


def test_end_tokens_are_cut_from_the_end_only_and_whitespace_runs_cost_little() -> None:
    """The first version searched a regex of whitespace runs around the tokens at the end,
    quadratic in a run of spaces (2 s for 40,000 of them, on the event loop)."""
    from rm_service._query_split import _without_trailing_ends

    assert _without_trailing_ends("4 <end_of_turn>\n<eos>  ") == "4"
    assert _without_trailing_ends("4 <eos> x") == "4 <eos> x"
    assert _without_trailing_ends("4\n") == "4\n"  # nothing cut: the text as it was
    gemma = "<bos><start_of_turn>user\nQ?<end_of_turn>\n<start_of_turn>model\n"
    response = "a" + " " * 400_000 + "b"
    assert ChatTokenStripper().split(gemma + response, gemma).response == response
