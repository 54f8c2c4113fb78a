"""OpenRLHF's reward protocol, shared by ``POST /get_reward`` and the in-process
``rm_service.integrations.openrlhf.reward_func``.

OpenRLHF sends ``query`` (the decoded prompt + response, chat special tokens included), and
optionally ``prompts`` and ``labels``; it wants ``rewards``, ``scores`` (0..1, for dynamic
filtering) and ``extra_logs`` back, every list exactly as long as ``query``. Its client needs
numbers, so an unscored reward or component becomes ``fallback`` there, flagged with
``extra_logs.rm_error = 1`` so a trainer can mask it. The 2024 form (``{"query"}`` alone) also
gets ``score``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

from rm_service._result import GraderScore, RecordResult

__all__ = [
    "DEFAULT_STRIP_PATTERNS",
    "ChatTokenStripper",
    "openrlhf_records",
    "openrlhf_response",
    "split_query",
]

DEFAULT_STRIP_PATTERNS: tuple[str, ...] = (
    r"<\|im_end\|>",
    r"<\|endoftext\|>",
    r"<\|eot_id\|>",
    r"<\|end_of_text\|>",
    r"<\|end\|>",
    r"</s>",
    r"<pad>",
)
"""Regexes removed from OpenRLHF queries and prompts: the end/pad tokens of the common chat
templates (ChatML/Qwen, Llama 3, Phi, Llama 2/Mistral)."""


class Stripper(Protocol):
    def strip(self, text: str) -> str: ...


class ChatTokenStripper:
    """Removes chat special tokens (regexes) from text; no patterns means no change."""

    def __init__(self, patterns: Sequence[str] = DEFAULT_STRIP_PATTERNS) -> None:
        kept = [p for p in patterns if p]
        self._re = re.compile("|".join(f"(?:{p})" for p in kept)) if kept else None

    def strip(self, text: str) -> str:
        return self._re.sub("", text) if self._re is not None else text


def split_query(query: str, prompt: str | None, stripper: Stripper) -> tuple[str, str]:
    """``(prompt, response)`` of an OpenRLHF query, both without chat special tokens.

    The response is ``query[len(prompt):]`` when the query starts with the prompt (raw, or once
    both are stripped); otherwise the whole stripped query, since guessing a cut could grade
    half a prompt as the answer.
    """
    if prompt is not None:
        if query.startswith(prompt):
            return stripper.strip(prompt), stripper.strip(query[len(prompt) :])
        q, p = stripper.strip(query), stripper.strip(prompt)
        if q.startswith(p):
            return p, q[len(p) :]
        return p, q
    return "", stripper.strip(query)


def openrlhf_records(
    query: Sequence[str],
    prompts: Sequence[str] | None,
    labels: Sequence[Any] | None,
    *,
    stripper: Stripper,
    label_field: str = "label",
) -> list[dict[str, Any]]:
    """Grader records ``{"id", "query", "prompt", "response", <label_field>}`` of a request.

    Raises:
        ValueError: ``prompts`` or ``labels`` not as long as ``query`` (the message names the
            field; the HTTP face turns it into a 422).
    """
    n = len(query)
    for fld, got in (("prompts", prompts), ("labels", labels)):
        if got is not None and len(got) != n:
            raise ValueError(f"{fld}: {len(got)} item(s), but 'query' has {n}: they must match")
    records = []
    for i, q in enumerate(query):
        prompt, response = split_query(q, prompts[i] if prompts is not None else None, stripper)
        rec: dict[str, Any] = {"id": i, "query": prompt, "prompt": prompt, "response": response}
        if labels is not None:
            rec[label_field] = labels[i]
        records.append(rec)
    return records


def openrlhf_response(
    results: Sequence[RecordResult], names: Sequence[str], *, fallback: float, legacy: bool
) -> dict[str, Any]:
    """``{"rewards", "scores", "extra_logs"}``, plus ``score`` when ``legacy``."""
    rewards = [r.reward if r.reward is not None else fallback for r in results]
    logs: dict[str, list[float]] = {name: [] for name in names}
    for r in results:
        for name in names:
            comp = r.components.get(name)
            logs[name].append(comp.score if isinstance(comp, GraderScore) else fallback)
    logs["rm_error"] = [0.0 if r.reward is not None else 1.0 for r in results]
    out: dict[str, Any] = {
        "rewards": rewards,
        "scores": [min(1.0, max(0.0, x)) for x in rewards],
        "extra_logs": logs,
    }
    if legacy:
        out["score"] = rewards
    return out
