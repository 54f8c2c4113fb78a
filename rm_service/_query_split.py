"""Cutting an OpenRLHF query into prompt and response, without chat special tokens.

OpenRLHF's ``query`` is ``decode(prompt_ids + response_ids)`` and ``prompts`` the text it
rendered: they need not agree character for character (a space before ``<|im_end|>``, a prompt
truncated to fit ``prompt_max_len``), and a response that kept some prompt text fails a format
check. So the prompt is looked for with the whitespace next to
special tokens ignored, and a truncated one counts. Failing that the response is a guess (after
the prompt's last characters, else the last assistant-turn marker), flagged per record in
``extra_logs.prompt_not_found`` and in a rate-limited warning, never silent
(:meth:`ChatTokenStripper.split`).

Used by both OpenRLHF faces through :mod:`rm_service._openrlhf`; plain text in, plain text out,
so it is tested on its own (``tests/app/test_get_reward_split.py``).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

__all__ = [
    "ASSISTANT_MARKERS",
    "DEFAULT_STRIP_PATTERNS",
    "PROBE_CHARS",
    "SPECIAL_TOKEN_PATTERNS",
    "TRAILING_END_TOKENS",
    "USER_TURNS",
    "ChatTokenStripper",
    "Cut",
    "QuerySplit",
    "split_query",
    "strip_patterns_setting",
]

DEFAULT_STRIP_PATTERNS: tuple[str, ...] = (
    r"<\|im_end\|>",
    r"<\|endoftext\|>",
    r"<\|eot_id\|>",
    r"<\|eom_id\|>",
    r"<\|end_of_text\|>",
    r"<\|end\|>",
    r"</s>",
    r"<pad>",
)
"""Regexes removed from OpenRLHF queries and prompts: the end/pad tokens of the common chat
templates (ChatML/Qwen, Llama 3, Phi, Llama 2/Mistral)."""


def strip_patterns_setting(value: str | None) -> tuple[str, ...]:
    """The patterns ``RM_SERVICE_STRIP_PATTERNS`` (``value``) asks for: whitespace-separated
    regexes, empty for none; unset, :data:`DEFAULT_STRIP_PATTERNS`. One reading for the
    ``reward_func`` face and the service."""
    return DEFAULT_STRIP_PATTERNS if value is None else tuple(value.split())


TRAILING_END_TOKENS: tuple[str, ...] = (
    "<end_of_turn>",
    "<eos>",
    "<\uff5cend\u2581of\u2581sentence\uff5c>",
    "<|finetune_right_pad_id|>",
)
"""End and padding tokens (literal text) of the other templates :data:`ASSISTANT_MARKERS`
knows (Gemma, DeepSeek V3/R1, Llama 3.1's padding), removed where they end a response (a
response decoded with one left in fails a format check), and kept elsewhere: their text is
everyday enough (``tokenizer.eos_token = "<eos>"``) that removing it everywhere would edit
answers."""

SPECIAL_TOKEN_PATTERNS: tuple[str, ...] = (
    r"<\|[A-Za-z0-9_]{1,40}\|>",  # ChatML, Llama 3, Phi, GLM: <|im_start|>, <|end_header_id|>
    "<\uff5c[^\uff5c\\s]{1,40}\uff5c>",  # DeepSeek: <｜Assistant｜>, <｜end▁of▁sentence｜>
    r"</?s>",  # Llama 2, Mistral
    r"\[/?INST\]",
    r"<(?:start|end)_of_turn>",  # Gemma
)
"""Chat special tokens (besides the strip patterns) around which decoding may add or drop
whitespace: a prompt is looked for in its query with that whitespace ignored."""

ASSISTANT_MARKERS: tuple[str, ...] = (
    r"<\|im_start\|>assistant\n?",  # ChatML (Qwen, Yi, ...)
    r"<\|start_header_id\|>assistant<\|end_header_id\|>",  # Llama 3
    r"<\|assistant\|>",  # Phi-3, GLM-4, Zephyr
    r"\[/INST\]",  # Llama 2, Mistral
    r"<start_of_turn>model\n?",  # Gemma
    "<\uff5cAssistant\uff5c>",  # DeepSeek V3/R1
)
"""Where an assistant turn starts, in the whitespace-normalised text (see :class:`_Canonical`)."""

USER_TURNS: tuple[tuple[str, str, str], ...] = (
    # (any turn or the template's opening token, a user turn, what ends a turn)
    (r"<\|im_start\|>", r"<\|im_start\|>user\n?", r"<\|im_end\|>|<\|im_start\|>"),  # ChatML
    (
        r"<\|begin_of_text\|>|<\|start_header_id\|>",
        r"<\|start_header_id\|>user<\|end_header_id\|>",
        r"<\|eot_id\|>|<\|start_header_id\|>",
    ),  # Llama 3
    (
        r"<\|(?:system|user|assistant)\|>",
        r"<\|user\|>",
        r"<\|end\|>|<\|(?:user|assistant|system)\|>",
    ),  # Phi-3, GLM-4, Zephyr
    (r"\[INST\]", r"\[INST\](?:\s*<<SYS>>.*?<</SYS>>)?", r"\[/INST\]"),  # Llama 2
    (r"<start_of_turn>", r"<start_of_turn>user\n?", r"<end_of_turn>|<start_of_turn>"),  # Gemma
    (  # DeepSeek V3/R1
        "<\uff5c(?:begin\u2581of\u2581sentence|User|Assistant)\uff5c>",
        "<\uff5cUser\uff5c>",
        "<\uff5c(?:Assistant|User|end\u2581of\u2581sentence)\uff5c>",
    ),
)
"""Per template: its first token, where a user turn starts, and what ends a turn. The question
is the last user turn (:meth:`ChatTokenStripper.question`) of the template whose first token
opens the prompt: a system prompt quoting another template's marker comes after it."""
_USES_TRAILING_RE = re.compile(
    "<start_of_turn>|<bos>|<\uff5c|<\\|start_header_id\\|>|<\\|begin_of_text\\|>"
)
"""A query of a template whose end tokens are :data:`TRAILING_END_TOKENS` (Gemma, DeepSeek,
Llama 3.1)."""
_TOOL_RESULT_RE = re.compile(r"\s*<tool_response>", re.IGNORECASE)

PROBE_CHARS = 64
"""How much of a prompt's end (normalised) is looked for in a query whose start does not match:
the last user words plus the generation marker (Llama 3's alone is 45 characters)."""

Cut = Literal["prompt", "prompt_end", "marker", "divergence", "whole"]


class QuerySplit(NamedTuple):
    """A query cut into prompt and response, both without chat special tokens.

    Attributes:
        prompt: the prompt sent with the query, else the query's text before the cut.
        response: what the graders grade.
        cut: where the response starts: after the prompt (``prompt``, a left-truncated prompt
            included), after the prompt's last characters (``prompt_end``: the query holds a
            different text before them), after the last assistant-turn marker (``marker``),
            where the query stops matching the prompt (``divergence``: a prompt truncated on
            the right), or nowhere: the whole query (``whole``).
        prompt_not_found: a prompt was sent and the query does not hold it (``cut`` is not
            ``prompt``); ``extra_logs.prompt_not_found`` and a warning say so.
        detail: for a prompt not found, where the two differ (for the warning).
    """

    prompt: str
    response: str
    cut: Cut
    prompt_not_found: bool = False
    detail: str = ""


@dataclass(frozen=True)
class _Canonical:
    """A text with the strip patterns removed and the whitespace next to any special token, or
    at the end, dropped (``P <|im_end|>\\n<|im_start|> user\\n`` -> ``P<|im_start|>user``), and
    the way back to raw positions: ``starts[i]`` (in ``text``) of each kept piece and
    ``raws[i]`` (in the raw text) where it came from."""

    text: str
    starts: tuple[int, ...]
    raws: tuple[int, ...]
    raw_len: int

    def raw_at(self, pos: int) -> int:
        """The raw index of normalised position ``pos``: past anything dropped before it."""
        if pos >= len(self.text):
            return self.raw_len
        i = bisect.bisect_right(self.starts, pos) - 1
        return self.raws[i] + pos - self.starts[i]


class ChatTokenStripper:
    """Removes chat special tokens (regexes) from text, and cuts OpenRLHF queries into prompt and
    response (:meth:`split`); no patterns means nothing is removed."""

    def __init__(self, patterns: Sequence[str] = DEFAULT_STRIP_PATTERNS) -> None:
        kept = [p for p in patterns if p]
        self._re = re.compile("|".join(f"(?:{p})" for p in kept)) if kept else None
        self._tokens = re.compile("|".join(f"(?:{p})" for p in (*kept, *SPECIAL_TOKEN_PATTERNS)))
        self._markers = re.compile("|".join(f"(?:{p})" for p in ASSISTANT_MARKERS))
        self._user_turns = [
            (re.compile(first), re.compile(start, re.DOTALL), re.compile(end))
            for first, start, end in USER_TURNS
        ]

    def strip(self, text: str) -> str:
        return self._re.sub("", text) if self._re is not None else text

    def _response(self, text: str, query: str) -> str:
        """A response without the strip patterns, nor (in a query of a template that uses
        them, or that ends with one) the end tokens that end it. No patterns: nothing is
        removed."""
        text = self.strip(text)
        if self._re is None or not (
            _USES_TRAILING_RE.search(query) or query.rstrip().endswith(TRAILING_END_TOKENS)
        ):
            return text
        return _without_trailing_ends(text)

    def question(self, prompt: str) -> str | None:
        """The last user turn's text in a chat-templated ``prompt``; ``None`` when no template
        marks one (a plain-text prompt is its own question).

        Why: graders compare the response with the question (a copy of it is gated, a judge
        reads it as what was asked); the whole templated prompt, system prompt and special
        tokens included, hid a copied question from those checks and showed the judge a
        system prompt as the question.

        The template is the one whose first token opens the prompt, so a marker quoted in a
        system prompt or a user's text (``[INST]`` in a ChatML chat) is text; a turn ends at
        that template's own end-of-turn token, so ``<s>`` or ``<eos>`` in a question stays in
        it. A tool result rendered as a user turn (Qwen's ``<tool_response>``) is skipped for
        the turn before.
        """
        found = []
        for any_re, start_re, end_re in self._user_turns:
            first = any_re.search(prompt)
            if first is not None:
                found.append((first.start(), start_re, end_re))
        for _, start_re, end_re in sorted(found, key=lambda f: f[0]):
            # The first template with a user turn (one whose token only appears quoted, or
            # whose opening token a truncation cut, has none: the next is tried).
            question = self._last_user_turn(prompt, start_re, end_re)
            if question is not None:
                return question
        return None

    def _last_user_turn(
        self, prompt: str, start_re: re.Pattern[str], end_re: re.Pattern[str]
    ) -> str | None:
        for turn in reversed(list(start_re.finditer(prompt))):
            end = end_re.search(prompt, turn.end())
            text = prompt[turn.end() : end.start() if end is not None else len(prompt)]
            if _TOOL_RESULT_RE.match(text):
                continue
            text = text.strip()
            if text:
                return text
        return None

    def canonical(self, text: str) -> _Canonical:
        """``text`` normalised for finding a prompt in a query (see :class:`_Canonical`)."""
        pieces: list[tuple[int, str]] = []
        pos = 0
        for m in self._tokens.finditer(text):
            if m.start() == m.end():
                continue
            _keep_trimmed(pieces, text, pos, m.start(), after_token=pos > 0, before_token=True)
            if self._re is None or not self._re.fullmatch(m.group()):
                pieces.append((m.start(), m.group()))
            pos = m.end()
        # The end too: a prompt's last whitespace may touch a token in its query (the
        # response's first, or an end token right away).
        _keep_trimmed(pieces, text, pos, len(text), after_token=pos > 0, before_token=True)
        starts, at = [], 0
        for _, piece in pieces:
            starts.append(at)
            at += len(piece)
        return _Canonical(
            "".join(p for _, p in pieces), tuple(starts), tuple(r for r, _ in pieces), len(text)
        )

    def split(self, query: str, prompt: str | None) -> QuerySplit:
        """Cut ``query`` (prompt + response as OpenRLHF decoded it) into prompt and response.

        The first that holds, on the texts normalised by :meth:`canonical`:

        1. the query starts with the prompt: ``prompt``;
        2. it starts with the prompt's end (0.11 truncates a long prompt on the left):
           ``prompt``;
        3. the prompt's last :data:`PROBE_CHARS` characters are in it, after the point where
           the two part: the response follows them, ``prompt_end``;
        4. an assistant-turn marker follows that point: the response follows the last,
           ``marker``;
        5. the two share :data:`PROBE_CHARS` characters or more (0.9.0 truncates a long prompt
           on the right): the response is what follows, ``divergence``;
        6. the whole query is the response: ``whole``.

        3 to 6 are guesses and set ``prompt_not_found``. With no prompt sent, the response
        follows the last assistant-turn marker, else it is the whole query; nothing is flagged.
        """
        strip = self.strip
        if prompt is not None and query.startswith(prompt):
            return QuerySplit(strip(prompt), self._response(query[len(prompt) :], query), "prompt")
        q = self.canonical(query)
        if prompt is None:
            at = _last_marker_end(self._markers, q.text, 0)
            if at is None:
                return QuerySplit("", self._response(query, query), "whole")
            cut = q.raw_at(at)
            return QuerySplit(strip(query[:cut]), self._response(query[cut:], query), "marker")
        p = self.canonical(prompt).text
        common = _common_prefix(p, q.text)
        at, how = self._locate(p, q.text, common)
        cut = q.raw_at(at)
        if how != "marker":  # the prompt's own last whitespace, dropped from ``p``
            cut = _skip_space(query, cut, len(prompt) - len(prompt.rstrip()))
        response = self._response(query if how == "whole" else query[cut:], query)
        if how == "prompt":
            return QuerySplit(strip(prompt), response, how)
        return QuerySplit(strip(prompt), response, how, True, _where_they_part(p, q.text, common))

    def _locate(self, p: str, q: str, common: int) -> tuple[int, Cut]:
        """Where the response starts in normalised query ``q`` of normalised prompt ``p``."""
        if common == len(p):
            return common, "prompt"
        probe = p[-PROBE_CHARS:]
        first_after: int | None = None
        # A query head ending past this is longer than the prompt (after its leading space and
        # the few characters _is_end_of may skip): it cannot be the prompt's end. Without the
        # bound every occurrence of the probe copied the head, quadratic in the query (a
        # rollout repeating its prompt's end cost seconds, on the event loop).
        limit = (len(q) - len(q.lstrip())) + len(p) + 3
        at = q.find(probe)
        while at != -1:
            end = at + len(probe)
            if end <= limit and _is_end_of(p, q[:end]):
                return end, "prompt"  # a prompt truncated on the left
            if first_after is None and end > common:
                first_after = end
            if first_after is not None and end > limit:
                break  # nothing later can be the prompt's end, and the first one is found
            at = q.find(probe, at + 1)
        if first_after is not None:
            return first_after, "prompt_end"
        marker = _last_marker_end(self._markers, q, common)
        if marker is not None:
            return marker, "marker"
        if common >= min(len(p), PROBE_CHARS) > 0:
            return common, "divergence"
        return 0, "whole"


def _without_trailing_ends(text: str) -> str:
    """``text`` without the :data:`TRAILING_END_TOKENS` (and the whitespace around them) that
    end it; unchanged when none does. A loop of ``endswith``, not a regex: a pattern of
    whitespace runs around the tokens, searched for at the end, was quadratic in a long run of
    spaces (seconds for 40,000)."""
    out, cut = text, False
    while True:
        trimmed = out.rstrip()
        token = next((t for t in TRAILING_END_TOKENS if trimmed.endswith(t)), None)
        if token is None:
            return trimmed if cut else text
        out, cut = trimmed[: -len(token)], True


def _keep_trimmed(
    pieces: list[tuple[int, str]],
    text: str,
    start: int,
    end: int,
    *,
    after_token: bool,
    before_token: bool,
) -> None:
    """Append ``text[start:end]`` to ``pieces``, without the whitespace that touches a token."""
    chunk = text[start:end]
    if after_token:
        trimmed = chunk.lstrip()
        start += len(chunk) - len(trimmed)
        chunk = trimmed
    if before_token:
        chunk = chunk.rstrip()
    if chunk:
        pieces.append((start, chunk))


def _skip_space(text: str, at: int, most: int) -> int:
    """``at`` moved past at most ``most`` whitespace characters of ``text``."""
    end = at
    while end < len(text) and end - at < most and text[end].isspace():
        end += 1
    return end


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of ``a`` and ``b`` (by bisection: C-speed
    slices, not a Python loop over characters)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _is_end_of(prompt: str, head: str) -> bool:
    """``head`` (a query's start) is the end of ``prompt``: a prompt truncated on the left. A
    few leading characters may differ: a token cut in the middle of a character decodes as
    U+FFFD, and SentencePiece drops the leading space of the first token."""
    head = head.lstrip()
    return any(prompt.endswith(head[skip:]) for skip in range(min(4, len(head))))


def _last_marker_end(markers: re.Pattern[str], text: str, start: int) -> int | None:
    """The end of the last assistant-turn marker in ``text`` that starts at ``start`` or later."""
    end = None
    for m in markers.finditer(text, start):
        end = m.end()
    return end


def _where_they_part(prompt: str, query: str, at: int) -> str:
    """A short excerpt of where a prompt and its query differ, for the log."""
    return (
        f"they differ at character {at} (whitespace next to special tokens ignored): "
        f"prompt {prompt[max(0, at - 20) : at + 40]!r}, query {query[max(0, at - 20) : at + 40]!r}"
    )


def split_query(query: str, prompt: str | None, stripper: ChatTokenStripper) -> QuerySplit:
    """``stripper.split(query, prompt)``: see :meth:`ChatTokenStripper.split`."""
    return stripper.split(query, prompt)
