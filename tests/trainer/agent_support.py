"""Test-only scaffolding for agent runs on the tiny random model.

A random byte-level model never writes ``<call>{"name": ..., "arguments": {...}}</call>`` by
itself, so the tests that need tool calls script them: :class:`ScriptedToolCalls` is a logits
processor that, for chosen rows, leaves one token possible at each step: a valid tool call for
the row's tool on the first turn, then ``The answer is <tool result>`` after the tool's result.
Everything else is real: TRL parses the text, runs the environment's tool, appends its result,
generates the next turn, and the policy's log-probabilities of the scripted tokens are what the
loss trains. The processor is attached to the model's ``generate`` in the test only; nothing in
the package forces output.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

EOS = 1  # ByT5's </s>
_ANCHOR = [ord(c) + 3 for c in "assistant: "]


def _ids(text: str) -> list[int]:
    """ByT5 ids of ``text``, with ``</s>`` as the EOS token (as the tokenizer splits it)."""
    out: list[int] = []
    for i, part in enumerate(text.split("</s>")):
        if i:
            out.append(EOS)
        out.extend(b + 3 for b in part.encode())
    return out


def _text(ids: list[int]) -> str:
    return bytes(i - 3 for i in ids if i >= 3).decode("utf-8", "replace")


def _last_anchor(row: list[int]) -> int:
    for start in range(len(row) - len(_ANCHOR), -1, -1):
        if row[start : start + len(_ANCHOR)] == _ANCHOR:
            return start + len(_ANCHOR)
    return -1


def first_turn(context: str) -> str | None:
    """The scripted first turn: a tool call for the tool the prompt lists."""
    tools = re.match(r"tools: ([^\n]*)", context)
    names = tools.group(1).split() if tools else []
    if "calculate" in names:
        found = re.search(r"What is ([0-9+\-*/ ()]+)\?", context)
        args: dict[str, Any] = {"expression": found.group(1) if found else "1 + 1"}
        name = "calculate"
    elif "capital" in names:
        found = re.search(r"capital of (\w+)", context)
        args = {"country": found.group(1) if found else "France"}
        name = "capital"
    else:
        return None
    return f"<call>{json.dumps({'name': name, 'arguments': args})}</call></s>"


class ScriptedToolCalls(LogitsProcessor):
    """Force the script on the rows ``force(row_index)`` picks at the first turn, and on every
    row that continues after a tool result."""

    def __init__(self, force: Callable[[int], bool]) -> None:
        self.force = force

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for b, row in enumerate(input_ids.tolist()):
            start = _last_anchor(row)
            if start < 0:
                continue
            context, generated = _text(row[:start]), row[start:]
            # ByT5 drops the newline after </s>, so a tool line may follow </call> directly
            result = re.search(r"tool: ([^\n]*)\nassistant: $", context)
            if result:
                script: str | None = f"The answer is {result.group(1)}</s>"
            else:
                script = first_turn(context) if self.force(b) else None
            if script is None:
                continue
            target = _ids(script)
            if len(generated) < len(target) and generated == target[: len(generated)]:
                scores[b, :] = -torch.inf
                scores[b, target[len(generated)]] = 0.0
        return scores


def script_tool_calls(trainer: Any, force: Callable[[int], bool]) -> None:
    """Attach :class:`ScriptedToolCalls` to every ``generate`` call of ``trainer``'s model."""
    model = trainer.model
    processors = LogitsProcessorList([ScriptedToolCalls(force)])
    model.generate = functools.partial(type(model).generate, model, logits_processor=processors)


def weather(city: str) -> str:
    """A standalone tool for the tests (``environment.tools``): the weather in a city.

    Args:
        city: the city's name.
    """
    return f"sunny in {city}"


class Capture:
    """Wrap a trainer's reward function to keep what TRL passed it (the last call)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.inner = trainer.reward_funcs[0]
        self.__name__ = getattr(self.inner, "__name__", "reward")
        self.calls: list[dict[str, Any]] = []
        trainer.reward_funcs[0] = self

    async def __call__(self, **kwargs: Any) -> list[float | None]:
        rewards = await self.inner(**kwargs)
        self.calls.append({**kwargs, "rewards": rewards})
        return rewards
