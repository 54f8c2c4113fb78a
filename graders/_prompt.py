"""Rendering a judge prompt safely: template files, fencing and defanging of untrusted text.

One idea: everything that turns a record's text into prompt text the judge cannot be tricked by.
Templates load from bundled files or paths; each field is fenced between marker lines carrying a
per-request random code, and bracket runs, chat-template tags and verdict-like ``key: value``
pairs in the text are defanged first (see :func:`neutralize`). The grader in
:mod:`graders._judge` uses these.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from graders._base import Unscored
from graders._text import as_text
from rm_service._exceptions import ConfigError
from rm_service.models._body import JsonText, json_escape
from rm_service.models._seqcls import is_conversation

__all__ = ["fence", "load_prompt", "neutralize", "new_nonce"]


# --- prompt files --------------------------------------------------------------------------------


def load_prompt(name_or_path: str | Path) -> str:
    """Template text: a bundled prompt by name (``"relevance"``), a file ``Path``, or the text.

    A ``str`` that is a bundled prompt's name (a file ``graders/prompts/<name>.md``) loads that
    file; any other ``str`` is the template text itself. A ``Path`` is always read as a file, so
    pass ``Path("my_prompt.md")`` for your own files.

    Raises:
        ConfigError: the file cannot be read.
    """
    if isinstance(name_or_path, Path):
        try:
            return name_or_path.expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read prompt template {str(name_or_path)!r}: {exc}") from exc
    if re.fullmatch(r"[a-z][a-z0-9_]*", name_or_path):
        bundled = resources.files("graders") / "prompts" / f"{name_or_path}.md"
        if bundled.is_file():
            return bundled.read_text(encoding="utf-8")
    return name_or_path


class _Parts:
    """A template split once into literal text and placeholders, rendered by one ``join``.

    Why: :meth:`string.Template.substitute` runs its regex over the whole template on every
    call, and a judge grader renders two templates per call. Splitting once keeps its exact
    semantics (``$name``, ``${name}``, ``$$``; values are inserted, never scanned again) at a
    fraction of the cost. ``fixed`` values (a grader's rubric, its scale) are substituted at
    construction, so only the per-call placeholders remain.
    """

    __slots__ = ("escaped", "names", "parts", "slots")

    def __init__(self, tpl: string.Template, fixed: Mapping[str, object] | None = None) -> None:
        fixed = fixed or {}
        parts: list[str] = []
        slots: list[tuple[int, str]] = []
        literal: list[str] = []
        pos = 0
        text = tpl.template
        for m in tpl.pattern.finditer(text):
            literal.append(text[pos : m.start()])
            pos = m.end()
            if m.group("escaped") is not None:
                literal.append(tpl.delimiter)
                continue
            name = m.group("named") or m.group("braced")
            if name is None:  # is_valid() rejected these at load time
                raise ValueError(f"invalid placeholder at {m.start()}")
            if name in fixed:
                literal.append(str(fixed[name]))
                continue
            parts.append("".join(literal))
            literal = []
            slots.append((len(parts), name))
            parts.append("")
        literal.append(text[pos:])
        parts.append("".join(literal))
        self.parts = parts
        self.escaped = [json_escape(part) for part in parts]  # for render_json
        self.slots = tuple(slots)
        self.names = frozenset(name for _, name in slots)

    def render(self, values: Mapping[str, object]) -> str:
        """The text with each remaining placeholder replaced by ``str(values[name])``.

        Raises:
            KeyError: a placeholder has no value (as ``Template.substitute`` does).
        """
        parts = self.parts.copy()
        for i, name in self.slots:
            v = values[name]
            parts[i] = v if type(v) is str else str(v)
        return "".join(parts)

    def render_json(self, values: Mapping[str, str]) -> JsonText:
        """:meth:`render` of text ``values``, carrying its JSON encoding: the template's parts
        were escaped once, so only the values are escaped here (see
        :class:`~rm_service.models._body.JsonText`)."""
        parts, escaped = self.parts.copy(), self.escaped.copy()
        for i, name in self.slots:
            parts[i] = v = values[name]
            escaped[i] = json_escape(v)
        return JsonText.of("".join(parts), "".join(escaped))


def _template(text: str, what: str) -> string.Template:
    tpl = string.Template(text)
    if not tpl.is_valid():
        raise ConfigError(
            f"{what}: invalid '$' placeholder (write a literal dollar sign as '$$'): {text[:200]!r}"
        )
    return tpl


# --- fencing and defanging -----------------------------------------------------------------------

_OPEN_CHARS = "<＜﹤‹«⟨〈《❮❬⟪"
_CLOSE_CHARS = ">＞﹥›»⟩〉》❯❭⟫"
_OPEN_ENTITY = r"&lt;|&#0*60;|&#x0*3c;"
_CLOSE_ENTITY = r"&gt;|&#0*62;|&#x0*3e;"
_ANGLE_RUN_RE = re.compile(
    rf"(?:(?:[{_OPEN_CHARS}{_CLOSE_CHARS}]|{_OPEN_ENTITY}|{_CLOSE_ENTITY})[ \t]*){{2,}}"
    rf"(?:[{_OPEN_CHARS}{_CLOSE_CHARS}]|{_OPEN_ENTITY}|{_CLOSE_ENTITY})",
    re.IGNORECASE,
)
"""Three or more angle brackets in a row (lookalikes, HTML entities, spaces between allowed)."""
_OPEN_ONE_RE = re.compile(rf"[{_OPEN_CHARS}]|{_OPEN_ENTITY}", re.IGNORECASE)
_CLOSE_ONE_RE = re.compile(rf"[{_CLOSE_CHARS}]|{_CLOSE_ENTITY}", re.IGNORECASE)
_CHAT_TAG_RE = re.compile(
    r"<\s*(/?\s*(?:\|[^<>\n|]{0,64}\||｜[^<>\n｜]{0,64}｜|s|/?SYS|(?:start|end)_of_turn"
    r"|im_(?:start|end)|eot_id|endoftext|BOS|EOS))\s*>"
    r"|\[\s*(/?\s*INST)\s*\]",
    re.IGNORECASE,
)
"""Chat-template control strings (``<|im_end|>``, ``</s>``, ``[INST]``, ``<end_of_turn>``...).

Some servers tokenize these inside message content as the real control tokens, which would let a
response end the judge's user turn for real."""
_VERDICT_SEP_RE = re.compile(
    r"""(?<![\w\\])(?:\\?["'`])?(?:final[ _-]?)?"""
    r"(?:scores?|grade|grading|rating|verdict|judge?ment|evaluation|assessment|reward)"
    r"""(?:\\?["'`])?[\s*_]*([:=])""",
    re.IGNORECASE,
)
"""``score:``, ``"score":``, ``GRADE =``, ``**Rating**:``: the separator is group 1."""
_BRACKETISH_RE = re.compile(rf"[{_OPEN_CHARS}{_CLOSE_CHARS}&\[]")
"""A character every match of ``_ANGLE_RUN_RE`` or ``_CHAT_TAG_RE`` contains (a bracket, its
lookalike, ``&`` of an entity, ``[`` of ``[INST]``)."""


def neutralize(text: str, *, verdicts: bool = True) -> str:
    """Defang text that could pass for a fence marker, a chat turn or (optionally) a verdict.

    * Runs of three or more angle brackets (``<<<``, ``＜＜＜``, ``&lt;&lt;&lt;``, ``< < <``)
      become ``‹‹‹`` / ``›››``. Code keeps ``<<`` and ``>>``; a doctest's ``>>>`` reads ``›››``.
    * Chat-template tags become ``‹|im_end|›``, ``‹/s›``, ``［INST］`` and so on.
    * With ``verdicts``, the ``:``/``=`` after a verdict word (score, grade, rating, verdict,
      judgement, evaluation, assessment, reward) becomes full-width ``：``/``＝``, so the text still
      reads the same but a verbatim copy is not a valid verdict.

    The fence itself does not depend on this (the response cannot know the random code); this is
    defence in depth against judges that are loose about which marker closes a block.
    """
    out = text
    # Each pattern needs a character the prechecks look for; most text has none of them, and a
    # one-character-class scan is far cheaper than the patterns' own.
    if _BRACKETISH_RE.search(out):
        out = _ANGLE_RUN_RE.sub(_defang_run, out)
        out = _CHAT_TAG_RE.sub(_defang_tag, out)
    if verdicts and ("=" in out or ":" in out):
        out = _VERDICT_SEP_RE.sub(_defang_verdict, out)
    return out


def _defang_run(m: re.Match[str]) -> str:
    run = re.sub(r"[ \t]+", "", m.group(0))
    return _CLOSE_ONE_RE.sub("›", _OPEN_ONE_RE.sub("‹", run))


def _defang_tag(m: re.Match[str]) -> str:
    if m.group(1) is not None:
        return f"‹{m.group(1)}›"
    return f"［{m.group(2)}］"


def _defang_verdict(m: re.Match[str]) -> str:
    sep = "：" if m.group(1) == ":" else "＝"
    return m.group(0)[:-1] + sep


_NONCES_PER_READ = 256
_nonces: list[str] = []


def new_nonce() -> str:
    """A fresh fence code: 16 hex characters (64 bits) from the OS's random source.

    The codes are read ``_NONCES_PER_READ`` at a time, rather than one ``os.urandom`` system
    call per judge request (what :func:`secrets.token_hex` does). ``list.pop`` hands each code
    out once, whichever thread asks, and a forked child drops the codes it inherited (see
    below), so no two requests, threads or processes send the same code."""
    while True:
        try:
            return _nonces.pop()
        except IndexError:
            raw = os.urandom(8 * _NONCES_PER_READ).hex()
            _nonces.extend(raw[i : i + 16] for i in range(0, len(raw), 16))


def _forget_nonces_in_child() -> None:
    """After ``fork`` the child holds the parent's unused codes: it must not send them too."""
    _nonces.clear()


os.register_at_fork(after_in_child=_forget_nonces_in_child)


def fence(label: str, text: str, nonce: str) -> str:
    """``text`` between ``<<<LABEL-nonce>>>`` and ``<<<END-LABEL-nonce>>>`` lines."""
    return f"<<<{label}-{nonce}>>>\n{text}\n<<<END-{label}-{nonce}>>>"


def _field_label(field: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", field.upper())


def _prompt_text(value: Any, field: str) -> str:
    """A field value as prompt text: a list of chat messages, or what :func:`as_text` accepts."""
    if is_conversation(value):  # a list without roles is one text in parts: as_text reads it
        try:
            parts = [(str(m.get("role", "")), as_text(m["content"], field)) for m in value]
        except KeyError:
            raise Unscored(
                f"field {field!r} is a list of messages without 'content'", kind="invalid_input"
            ) from None
        if len(parts) == 1:
            return parts[0][1]
        return "\n\n".join(f"{role}: {content}" for role, content in parts)
    return as_text(value, field)
