"""Request bodies as they go on the wire: JSON, ASCII only, and no lone surrogate.

One idea, shared by every remote client (the judge's transports, the remote reward model): what
a body's text becomes on the wire. See :func:`encode_json`.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["encode_json", "scrub_surrogates", "without_surrogates"]

_encode_ascii = json.JSONEncoder().encode
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def encode_json(obj: Any) -> bytes:
    """A request body: JSON with every non-ASCII character escaped, and no lone surrogate.

    Escaped, not UTF-8 (it costs about the same: ``bench/judge_parts.py``), so that no text can
    fail the encoding. A lone UTF-16 surrogate (valid in JSON input as
    ``"\\ud800"``, so a response can hold one) is no character: UTF-8 cannot encode it, and a
    server that decodes it may fail on it (a tokenizer wants valid text), so it is sent as
    U+FFFD, the replacement character, as a UTF-8 decoder would have read it. The check is one
    substring search; only a body holding a surrogate's escape is walked."""
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


def _scrubbed(obj: Any) -> Any:
    """``obj`` with every surrogate code point in its strings replaced by U+FFFD."""
    if isinstance(obj, str):
        return _SURROGATE_RE.sub("\ufffd", obj)
    if isinstance(obj, dict):
        return {k: _scrubbed(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_scrubbed(v) for v in obj]
    return obj
