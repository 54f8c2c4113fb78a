"""Response bodies as the remote clients read them: bounded, and inflated whole.

One idea, shared by both of the ``direct`` transport's posters (:mod:`rm_service.models._http1`
and aiohttp's :class:`~rm_service.models._session.JsonPoster`): how big an answer may be and how
a compressed one is read. A judge's answer is a few kilobytes; a server that sends more than
:data:`MAX_BODY`, or a small compressed body that inflates past it (a "zip bomb"), is refused
rather than allowed to exhaust the process's memory. A gzip stream is read member by member, and
bytes after a stream, or a stream cut short, are errors: a cut verdict must not pass as a whole
one.
"""

from __future__ import annotations

import zlib

__all__ = ["ACCEPT_ENCODING", "MAX_BODY", "inflate"]

MAX_BODY = 64 * 1024 * 1024
"""The most bytes an answer may have, on the wire or once inflated."""

ACCEPT_ENCODING = "gzip, deflate"
"""What the posters ask for: without the header a server may pick any coding, brotli included."""


class _BodyError(ValueError):
    """The body cannot be read: too long, cut short, or in a coding this client cannot read."""


def inflate(content: bytes, encoding: str, limit: int = MAX_BODY) -> bytes:
    """``content`` decoded from its ``Content-Encoding`` (``identity``, ``gzip`` or
    ``deflate``, zlib-wrapped or raw), at most ``limit`` bytes.

    Raises:
        _BodyError: why the body cannot be read.
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return content
    try:
        if encoding in ("gzip", "x-gzip"):
            return _inflated(content, 16 + zlib.MAX_WBITS, limit)
        if encoding == "deflate":
            try:
                return _inflated(content, zlib.MAX_WBITS, limit)
            except zlib.error:
                return _inflated(content, -zlib.MAX_WBITS, limit)  # raw deflate
    except zlib.error as exc:
        raise _BodyError(f"a {encoding} body that does not inflate: {exc}") from exc
    raise _BodyError(f"an answer in an encoding this client cannot read ({encoding!r})")


def _inflated(content: bytes, wbits: int, limit: int) -> bytes:
    out = bytearray()
    data = content
    while True:
        d = zlib.decompressobj(wbits)
        out += d.decompress(data, limit + 1 - len(out))
        if len(out) > limit or d.unconsumed_tail:
            raise zlib.error(f"it inflates to more than {limit} bytes")
        if not d.eof:
            raise zlib.error("the compressed stream is cut short")
        data = d.unused_data
        if not data:
            return bytes(out)
        if wbits != 16 + zlib.MAX_WBITS or not data.startswith(b"\x1f\x8b"):
            raise zlib.error(f"{len(data)} bytes after the compressed stream")
