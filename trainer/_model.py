"""The policy and its tokenizer: a tiny random Llama, or a real model from disk (never downloaded).

Why ``ByT5Tokenizer`` for the tiny model: it needs no files, and measured on this repo's example
reward (50 GRPO steps, seed 0) the tiny model learned more with it than with a 300-token BPE
trained on the fly: total reward +0.61 vs +0.23, and it also won on two other rule rewards. With
only 384 byte-level tokens every output is reachable by a random policy, so rule rewards see
variance within a group from the first step. (It appends ``</s>`` to each prompt, harmless here.)

Real models reuse the local judge's loader (:mod:`rm_service.models._weights`): a GGUF is
de-quantized once into a plain fp32 model and cached as safetensors under
``~/.cache/rm-service``, which also avoids transformers' ``gguf_file=`` path that flags the model
as quantized (Trainer refuses those).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM
from trl.chat_template_utils import qwen3_template, supports_tool_calling

from rm_service._exceptions import RMServiceError
from rm_service.models._weights import (
    cache_dir,
    check_source,
    default_gguf_path,
    load_weights,
    quiet_progress,
)
from trainer._config import DEFAULT_MODEL, TinyModel, TrainConfig

__all__ = [
    "CHATML_TOOL_TEMPLATE",
    "CHAT_TEMPLATE",
    "TOOL_CHAT_TEMPLATE",
    "TOOL_RESPONSE_TEMPLATE",
    "load_model",
    "tiny_model",
]

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
"""A plain chat template for tokenizers without one, so conversational datasets work too."""

TOOL_CHAT_TEMPLATE = (
    "{%- if tools %}tools:"
    "{%- for t in tools %} {{ t.function.name if t.function is defined else t.name }}{% endfor %}"
    "{{ '\\n' }}{% endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}assistant: {{ m.content or '' }}"
    "{%- for c in m.tool_calls or [] %}<call>"
    "{{ {'name': c.function.name, 'arguments': c.function.arguments} | tojson }}</call>"
    "{%- endfor %}</s>{{ '\\n' }}"
    "{%- else %}{{ m.role }}: {{ m.content }}{{ '\\n' }}{% endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}assistant: {% endif %}"
)
"""The tiny model's template when it has tools: as short as a byte tokenizer needs.

A tool call is ``<call>{"name": ..., "arguments": {...}}</call>``; an assistant turn ends with
``</s>`` (the tokenizer's EOS, so generation stops there and TRL's tool loop finds the turn's end
in the prompt); the tools are listed by name only, because their JSON schemas would fill the
tiny model's context. It passes TRL's checks (``supports_tool_calling``,
``is_chat_template_prefix_preserving``), and :data:`TOOL_RESPONSE_TEMPLATE` parses it back.
"""

TOOL_RESPONSE_TEMPLATE: dict[str, Any] = {
    "defaults": {"role": "assistant"},
    "start_anchor": "assistant: ",
    "fields": {
        "tool_calls": {
            "open": "<call>",
            "close_pattern": r"</call>",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"</s>\s*", "content": "text"},
    },
}
"""transformers' ``response_template`` for :data:`TOOL_CHAT_TEMPLATE` (how TRL finds tool calls
in a generated turn). A call that is not valid JSON leaves the turn as plain text."""

CHATML_TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "You may call one or more functions. Their signatures are within <tools></tools>:\n<tools>"
    "{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n</tools>\n\n"
    "To call a function, write a JSON object with its name and arguments within "
    "<tool_call></tool_call> tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "{% elif messages[0].role == 'system' %}"
    "<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}"
    "{% if m.role == 'system' and loop.first %}"
    "{% elif m.role == 'assistant' %}<|im_start|>assistant\n{{ m.content or '' }}"
    "{% for c in m.tool_calls or [] %}"
    "{% if loop.first and m.content %}{{ '\\n' }}{% endif %}<tool_call>\n"
    "{{ {'name': c.function.name, 'arguments': c.function.arguments} | tojson }}\n</tool_call>"
    "{% endfor %}<|im_end|>\n"
    "{% elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}"
    "\n</tool_response><|im_end|>\n"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""A ChatML template with Qwen2.5's tool-call markup, for ChatML models whose own template
cannot render tool calls (SmolLM2-135M-Instruct's cannot): the markup that TRL's Qwen3 response
template parses, without Qwen's system line."""


def tiny_model(spec: TinyModel, seed: int, *, tools: bool = False) -> tuple[Any, Any]:
    """A randomly initialised ``LlamaForCausalLM`` (seeded) with a byte-level tokenizer; with
    ``tools``, the tool-call chat template."""
    tokenizer = ByT5Tokenizer()
    tokenizer.chat_template = TOOL_CHAT_TEMPLATE if tools else CHAT_TEMPLATE
    if tools:
        tokenizer.response_template = TOOL_RESPONSE_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size or 2 * spec.hidden_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=spec.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def load_model(cfg: TrainConfig) -> tuple[Any, Any]:
    """The config's model and tokenizer, ready for ``GRPOTrainer`` (pad and EOS set).

    Raises:
        ConfigError: ``model.path`` is not a loadable model (named with the file and field).
    """
    tools = cfg.environment is not None
    if cfg.model.tiny is not None:
        model, tokenizer = tiny_model(cfg.model.tiny, cfg.seed, tools=tools)
    else:
        assert cfg.model.path is not None  # the config validator guarantees one of the two
        try:
            path = default_gguf_path() if cfg.model.path == DEFAULT_MODEL else Path(cfg.model.path)
            check_source(path)
            with quiet_progress(transformers):
                model, tokenizer, _ = load_weights(path, cache_dir(), torch, transformers)
        except RMServiceError as exc:
            raise cfg.error("model.path", str(exc)) from None
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if not getattr(tokenizer, "chat_template", None):
            tokenizer.chat_template = CHAT_TEMPLATE
        if tools:
            _tool_template(cfg, tokenizer)
    generation = model.generation_config
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    if generation.eos_token_id is None:  # keep a real model's own list (e.g. end-of-turn ids)
        generation.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def _tool_template(cfg: TrainConfig, tokenizer: Any) -> None:
    """Give a real model's tokenizer a chat template that renders tool calls and a response
    template that parses them, when its own cannot: a ChatML model gets
    :data:`CHATML_TOOL_TEMPLATE` and TRL's Qwen3 parser; any other model is an error here
    rather than TRL's at start-up."""
    if supports_tool_calling(tokenizer):
        return
    if "<|im_start|>" not in tokenizer.get_vocab():
        raise cfg.error(
            "model.path",
            "the model's chat template cannot render tool calls and it is not a ChatML model; "
            "give it a tool-calling chat template (and a response_template) first",
        )
    tokenizer.chat_template = CHATML_TOOL_TEMPLATE
    tokenizer.response_template = qwen3_template
