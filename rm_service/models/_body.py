"""Request bodies as they go on the wire: JSON, ASCII only, and no lone surrogate.

One idea, shared by every remote client (the judge's transports, the remote reward model): what
a body's text becomes on the wire. See :func:`encode_json`.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "ChatBody",
    "JsonText",
    "encode_json",
    "escape_surrogates",
    "json_escape",
    "scrub_surrogates",
    "without_surrogates",
]

_encode_ascii = json.JSONEncoder().encode
_escape_ascii = json.encoder.encode_basestring_ascii
"""What ``_encode_ascii`` does with a ``str`` (its ``encode`` hands a string to this), without
the method's Python frame around it: a request's texts each paid that frame."""
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_KNOWN = {t: _escape_ascii(t) for t in ("role", "content", "name", "system", "user", "assistant")}
"""The encodings of the keys and roles every chat message repeats, made once."""


class JsonText(str):
    """Text that carries its own encoding: ``json`` is its ASCII JSON string literal.

    Why: a judge prompt is a few kilobytes of fixed template around short fields, and encoding
    the whole of it on every request cost more than the rest of the request's encoding. A grader
    escapes its template's parts once and each request's fields alone (:func:`json_escape`),
    then hands the two over together; :func:`encode_json` uses ``json`` where a chat message's
    content is one. Everywhere else it is the ``str`` it is."""

    json: str

    @classmethod
    def of(cls, text: str, escaped: str) -> JsonText:
        """``text`` with ``escaped`` (:func:`json_escape` of it, without the quotes)."""
        out = cls(text)
        out.json = f'"{escaped}"'
        return out


def json_escape(text: str) -> str:
    """``text`` as the inside of an ASCII JSON string literal, a lone surrogate as U+FFFD (see
    :func:`encode_json`)."""
    escaped = _escape_ascii(text) if isinstance(text, str) else _encode_ascii(text)
    if "\\ud" in escaped:
        escaped = _encode_ascii(_SURROGATE_RE.sub("\ufffd", text))
    return escaped[1:-1]


class ChatBody(dict[str, Any]):
    """A chat-completions body (a ``dict``, as every transport takes one) whose encoding is
    built from parts: the fixed fields encoded once per model and sampling settings
    (``frame``: the JSON before and after the messages), and each message's content from its
    :class:`JsonText` where it is one. :func:`encode_json` gives exactly the bytes it would give
    the same dict built plainly; only the work differs."""

    frame: tuple[str, str]

    @classmethod
    def framed(cls, fields: dict[str, Any], frame: tuple[str, str]) -> ChatBody:
        body = cls(fields)
        body.frame = frame
        return body

    @staticmethod
    def frame_of(fields: dict[str, Any]) -> tuple[str, str]:
        """The encoded text before and after ``fields["messages"]``, the rest as they are."""
        marker = "\x00messages\x00"
        text = _encode_ascii(_scrubbed({**fields, "messages": marker}))
        head, _, tail = text.partition(_encode_ascii(marker))
        return head, tail

    def encoded(self) -> str:
        # One join of every piece: nested joins copied each message's kilobytes of prompt twice.
        head, tail = self.frame
        out = [head, "["]
        opening = "{"
        for m in self["messages"]:
            sep = opening
            for k, v in m.items():
                out += (sep, _value(k), ": ", _value(v))
                sep = ", "
            out.append("}" if sep == ", " else opening + "}")
            opening = ", {"
        out += ("]", tail)
        return "".join(out)


def _value(value: Any) -> str:
    """One value of a message, as :func:`encode_json` encodes it (its own :class:`JsonText`)."""
    kind = type(value)
    if kind is JsonText:
        return value.json
    if kind is str:
        known = _KNOWN.get(value)
        if known is not None:
            return known
        text = _escape_ascii(value)
    else:
        text = _encode_ascii(value)
    return _encode_ascii(_scrubbed(value)) if "\\ud" in text else text


def encode_json(obj: Any) -> bytes:
    """A request body: JSON with every non-ASCII character escaped, and no lone surrogate.

    Escaped, not UTF-8 (it costs about the same: ``bench/judge_parts.py``), so that no text can
    fail the encoding. A lone UTF-16 surrogate (valid in JSON input as
    ``"\\ud800"``, so a response can hold one) is no character: UTF-8 cannot encode it, and a
    server that decodes it may fail on it (a tokenizer wants valid text), so it is sent as
    U+FFFD, the replacement character, as a UTF-8 decoder would have read it. The check is one
    substring search; only a body holding a surrogate's escape is walked."""
    if type(obj) is ChatBody:
        return obj.encoded().encode("ascii")
    text = _encode_ascii(obj)
    if "\\ud" in text:  # a surrogate's escape (or the text "\\ud" itself: then no change)
        text = _encode_ascii(_scrubbed(obj))
    return text.encode("ascii")


def without_surrogates(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as :func:`encode_json` would send it, for a client that encodes it itself (the
    SDK transports): the same object unless a string in it holds a surrogate."""
    if "\\ud" in _encode_ascii(body):
        scrubbed: dict[str, Any] = _scrubbed(body)
        return scrubbed
    return body


def scrub_surrogates(text: str) -> str:
    """``text`` with each lone surrogate as U+FFFD, as a UTF-8 round trip would read it: what a
    tokenizer (or a server) can take. The same text when it holds none (one encode to check)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE_RE.sub("\ufffd", text)
    return text


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written out as its escape (``\\udXXX``), not U+FFFD:
    UTF-8 cannot hold one, and where the text is a key (or is echoed back) two that differ
    only there stay two. The same text when it holds none."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _scrubbed(obj: Any) -> Any:
    """``obj`` with every surrogate code point in its strings replaced by U+FFFD."""
    if isinstance(obj, str):
        return _SURROGATE_RE.sub("\ufffd", obj)
    if isinstance(obj, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_scrubbed(v) for v in obj]
    return obj
