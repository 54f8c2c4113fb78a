"""The judge call's shortcuts give what the long way gives, on inputs shaped for their edges.

Each shortcut on the judge's hot path (the first attempt made outside the retry loop, the JSON
body read without encoding detection, the buffered socket reads, the body kept as it came when
no coding is named, the cached encodings of a chat message's keys and roles, the whitespace
squash of the copy check, the score built once with its final metadata) is compared here with
the way it replaced, reproduced in the test. The judge is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import re
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from graders import CorrectnessGrader, HarmfulnessGrader, RelevanceGrader
from graders._judge import LLMGrader
from graders._text import clip
from graders._verdict import _copies, _squash, _Verdict
from graders._verify import decide
from rm_service._result import GraderScore, scored
from rm_service.models import (
    ChatResult,
    JudgeError,
    RetryPolicy,
    TokenLogprob,
    Usage,
)
from rm_service.models import _body as body_mod
from rm_service.models._http1 import (
    _READ_SIZE,
    Http1Poster,
    _Connection,
    _Response,
    _tokens,
)
from rm_service.models._openai import OpenAIChatModel, _json_body
from rm_service.models._retry import retry_async
from tests.judge_server import JudgeServer, Reply

# --- the JSON body --------------------------------------------------------------------------------

_DOC = '{"a": "caf\u00e9 \u4e2d", "b": [1, 2.5, null, true], "c": {"d": "x"}}'
BODIES = [
    _DOC.encode(),
    b"\xef\xbb\xbf" + _DOC.encode(),
    *(_DOC.encode(c) for c in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le")),
    _DOC.encode("utf-32-be"),
    b"{",
    b"{}",
    b"{\x00",
    b"{\x00}",
    b"{\x00\x00",
    b"{a",
    b"",
    b" {}",
    b'{"a": "\xff"}',
    b'{"a": "\xed\xa0\x80"}',  # a surrogate's UTF-8 bytes: surrogatepass reads them
    b'{"a": "\\ud800"}',
    b'{"a": NaN, "b": Infinity}',
    b"{} extra",
    b'{"a": 1}\x00',
    b"[" * 100_000,
    b'{"a":' * 100_000,
]


def _outcome(read: Callable[[bytes], Any], raw: bytes) -> Any:
    try:
        return ("ok", repr(read(raw)))
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


@pytest.mark.parametrize("raw", BODIES, ids=lambda b: repr(b[:12]))
def test_the_json_body_reads_as_json_loads_does(raw: bytes) -> None:
    assert _outcome(_json_body, raw) == _outcome(json.loads, raw)


# --- the request body's encoding -----------------------------------------------------------------

_encode = json.JSONEncoder().encode


class _Text(str):
    pass


def _value_long_way(value: Any) -> str:
    if type(value) is body_mod.JsonText:
        return value.json
    text = _encode(value)
    return _encode(body_mod._scrubbed(value)) if "\\ud" in text else text


def _escape_long_way(text: str) -> str:
    escaped = _encode(text)
    if "\\ud" in escaped:
        escaped = _encode(body_mod._SURROGATE_RE.sub("\ufffd", text))
    return escaped[1:-1]


VALUES: list[Any] = [
    *body_mod._KNOWN,
    "",
    "other",
    "caf\u00e9 \U0001f600",
    "lone \ud800 and \udfff",
    "the text \\ud800 itself",
    '\x00\x1f\x7f"\\',
    _Text("role"),
    _Text("x\ud800"),
    body_mod.JsonText.of("role", "not role"),
    1,
    1.5,
    None,
    True,
    ["a", "\udc00", 2],
    {"k": "\ud800", "\udfff": 1},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_message_value_encodes_as_the_encoder_does(value: Any) -> None:
    assert body_mod._value(value) == _value_long_way(value)
    if isinstance(value, str) and type(value) is not body_mod.JsonText:
        assert body_mod.json_escape(value) == _escape_long_way(value)


def test_a_chat_body_encodes_as_the_same_dict_built_plainly() -> None:
    messages = [
        {"role": "system", "content": body_mod.JsonText.of("sys", "sys")},
        {"role": "user", "content": "hi \ud800"},
        {"role": _Text("assistant"), "content": "ok", "name": "bob"},
        {},
    ]
    fields = {"model": "m", "temperature": 0.0, "messages": []}
    body = body_mod.ChatBody.framed(fields, body_mod.ChatBody.frame_of(fields))
    body["messages"] = messages
    plain = {**fields, "messages": [{k: str(v) for k, v in m.items()} for m in messages]}
    assert body_mod.encode_json(body) == body_mod.encode_json(plain)


# --- the copy check's squash ----------------------------------------------------------------------

_SPACES = re.compile(r"\s+")
_WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())


def test_the_squash_removes_what_the_regex_removes() -> None:
    rng = random.Random(14)
    alphabet = _WHITESPACE + 'ab{}":5\u00e9\u4e2d\x00\x1c\x85'
    texts = [_WHITESPACE, "", "a", *("".join(rng.choices(alphabet, k=40)) for _ in range(500))]
    for text in texts:
        assert _squash(text) == _SPACES.sub("", text)
    for c in map(chr, range(sys.maxunicode + 1)):
        assert bool(_SPACES.fullmatch(c)) == c.isspace()


@pytest.mark.parametrize(
    ("core", "response"),
    [
        ("", "anything"),
        (" \n\u3000", "anything"),
        ('{"score": 5}', 'text {"score":5} more'),
        ('{ "score" : 5 }', '{\n"score":\t5}'),
        ('{"score": 5}', "no brace at all"),
        ('{"score": 5}', "{ but not the rest"),
        ('\u3000{"score": 5}', '{"score":5}'),
        ("x", ""),
        ("a b", "a\u2028b"),
    ],
)
def test_the_copy_check_answers_as_the_regex_squash_does(core: str, response: str) -> None:
    squashed = _SPACES.sub("", core)
    assert _copies(core, response) == (bool(squashed) and squashed in _SPACES.sub("", response))


# --- the score built once -------------------------------------------------------------------------


def _made(build: Callable[[], GraderScore]) -> Any:
    try:
        s = build()
    except ValidationError as exc:
        return ("invalid", [(e["type"], e["msg"]) for e in exc.errors()])
    fields = sorted(s.model_fields_set)
    return (s, fields, s.model_dump(), s.model_dump_json(), repr(s), type(s.score))


@pytest.mark.parametrize(
    "score",
    [0.0, 1.0, 0.5, -0.0, 1e-300, float("nan"), float("inf"), -0.1, 1.0000000001, 1, 0, True],
    ids=repr,
)
@pytest.mark.parametrize(
    ("name", "reason", "metadata"),
    [
        ("judge", "why", {"a": 1, "b": {"c": [1]}}),
        (_Text("judge"), _Text("why"), OrderedDict(a=1)),
        ("judge", "", {}),
    ],
)
def test_scored_equals_the_validated_model(
    score: Any, name: str, reason: str, metadata: Any
) -> None:
    ours = _made(lambda: scored(name, score, reason, metadata))
    theirs = _made(lambda: GraderScore(name=name, score=score, reason=reason, metadata=metadata))
    assert ours == theirs


def _no_model() -> Any:
    raise AssertionError("scoring never asks the judge")


def _result(text: str, **kw: Any) -> ChatResult:
    return ChatResult(text=text, model="m", usage=Usage(3, 4), **kw)


@pytest.mark.parametrize("higher", [True, False])
@pytest.mark.parametrize("mode", ["sampled", "expected"])
def test_a_score_with_extra_metadata_equals_the_copy_that_added_it(higher: bool, mode: Any) -> None:
    g = LLMGrader(_no_model, rubric="r", score_mode=mode, higher_is_better=higher)
    tokens = [TokenLogprob(t, 0.0, ()) for t in ['{"reason": "r", "score": ', "4", "}"]]
    tokens[1] = TokenLogprob("4", -0.2, (("4", -0.2), ("5", -1.8), ("x", -3.0)))
    result = _result('{"reason": "r", "score": 4}', logprobs=tuple(tokens))
    meta = {"model": "m", "attempts": 1}
    extra = {"cross_check": {"ran": False}, "decided_by": "judge", "model": "override"}
    for value in (1.0, 3.0, 5.0):
        verdict = _Verdict(value, "r", (25, 26), "core")
        plain = g._score(verdict, result, dict(meta))
        copied = plain.model_copy(update={"metadata": {**plain.metadata, **extra}})
        assert g._score(verdict, result, dict(meta), extra) == copied
        assert list(g._score(verdict, result, dict(meta), extra).metadata) == list(copied.metadata)
        assert g._score(verdict, result, dict(meta), {}) == plain


def _answer_for(body: dict[str, Any]) -> Reply:
    text = body["messages"][-1]["content"]
    if "cut" in text:
        return Reply('{"reason": "fine", "score": 4}', finish_reason="length")
    return Reply('{"reason": "fine", "score": 2}')


FIELDS = [
    {"query": "What is the capital of France?", "response": "Paris is the capital of France."},
    {"query": "Explain heaps (cut).", "response": "A heap keeps its smallest item on top."},
    {"query": "Say something.", "response": ""},  # a pre-gate decides: no note
]


@pytest.mark.parametrize("note", [None, {"ran": False, "reason": "no embeddings here"}])
@pytest.mark.parametrize("kind", [RelevanceGrader, HarmfulnessGrader])
async def test_a_named_judge_notes_its_cross_check_as_the_copy_did(kind: Any, note: Any) -> None:
    async with JudgeServer(_answer_for) as srv:
        model = OpenAIChatModel("judge", base_url=srv.base_url, api_key="sk-x")
        grader = kind(model=model, cross_check="off")
        grader._cross_note = note  # as when the local extra is missing
        for fields in FIELDS:
            ours = await grader._aevaluate(**fields)
            plain = await LLMGrader._aevaluate(grader, **fields)
            if note is not None and "pregate" not in plain.metadata:
                meta = {**plain.metadata, "cross_check": note}
                plain = plain.model_copy(update={"metadata": meta})
            assert _timeless(ours) == _timeless(plain)
        await model.aclose()


def _timeless(result: GraderScore) -> Any:
    meta = {k: v for k, v in result.metadata.items() if k != "latency_s"}
    return (result.name, result.score, result.reason, list(meta), meta)


@pytest.mark.parametrize(
    "response", ["Heaps are trees (cut).", "It is 7, or maybe 8 (cut).", "The answer: B"]
)
async def test_correctness_on_the_judge_adds_its_rule_metadata_as_the_copy_did(
    response: str,
) -> None:
    async with JudgeServer(_answer_for) as srv:
        model = OpenAIChatModel("judge", base_url=srv.base_url, api_key="sk-x")
        grader = CorrectnessGrader(model=model)
        fields = {"response": response, "reference_response": "A heap is a tree."}
        ours = await grader._aevaluate(**fields)
        # The long way: the judge's own score, then the rule's metadata added by a copy.
        ref, decision = await decide(response, fields["reference_response"], grader._math)
        meta: dict[str, Any] = {
            "reference_kind": ref.kind,
            "reference_answer": clip(ref.answer, 200),
        }
        if decision.answers:
            meta["final_answer"] = clip(decision.answers[-1], 200)
        if len(decision.answers) > 1:
            meta["final_answers"] = [clip(a, 200) for a in decision.answers]
        if decision.source:
            meta["answer_source"] = decision.source
        meta = {"decided_by": "judge", "rule": decision.reason, **meta}
        judged = await LLMGrader._aevaluate(grader, **fields)
        copied = judged.model_copy(update={"metadata": {**judged.metadata, **meta}})
        assert _timeless(ours) == _timeless(copied)
        await model.aclose()


# --- the first attempt, outside the retry loop ----------------------------------------------------

_POLICY = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.002)
_OK = Reply('{"reason": "ok", "score": 3}')
_MALFORMED = Reply(body=b"<html>", content_type="text/html")
SCRIPTS = {
    "ok": [_OK],
    "429_then_ok": [Reply.rate_limited(0), _OK],
    "500_always": [Reply.server_error()] * 5,
    "503_twice_then_ok": [Reply.server_error(503)] * 2 + [_OK],
    "400": [Reply.error(400)],
    "malformed_then_ok": [_MALFORMED, _OK],
    "malformed_twice": [_MALFORMED] * 2 + [_OK],
    "refusal": [Reply(body=b'{"choices": [{"message": {"content": null, "refusal": "no"}}]}')],
    "cut": [Reply('{"reason": "o', finish_reason="length")],
}


async def _long_way(model: OpenAIChatModel, messages: list[dict[str, str]]) -> ChatResult:
    """The call as it was: every attempt, the first included, made by retry_async."""
    loop = asyncio.get_running_loop()
    state = model._states.get(loop) or await model._loop_state(loop)
    body = model._build_body(messages, model.default_params)
    started = time.perf_counter()
    deadline = loop.time() + model.deadline

    async def attempt(n: int) -> ChatResult:
        return await model._attempt(state, loop, body, 0.0, deadline, n, started)

    return await retry_async(attempt, model.retry_policy, deadline=deadline, clock=loop.time)


async def _called(call: Any) -> Any:
    try:
        r = await call
    except JudgeError as exc:
        extra = (getattr(exc, "status", None), getattr(exc, "retry_after", None))
        return ("error", type(exc).__name__, str(exc), exc.attempts, extra)
    return ("ok", r.text, r.model, r.usage, r.finish_reason, r.attempts, r.logprobs)


@pytest.mark.parametrize("name", list(SCRIPTS))
async def test_retries_from_the_first_attempt_are_retry_asyncs(name: str) -> None:
    messages = [{"role": "user", "content": "grade this"}]
    outcomes = []
    for way in ("ours", "long"):
        async with JudgeServer(lambda body: _OK) as srv:
            model = OpenAIChatModel("judge", base_url=srv.base_url, retry_policy=_POLICY)
            srv.script(*SCRIPTS[name])
            t = time.perf_counter()
            if way == "ours":
                outcome = await _called(model.achat(messages))
            else:
                outcome = await _called(_long_way(model, messages))
            outcomes.append((outcome, srv.stats.requests))
            if way == "ours" and outcome[0] == "ok":  # its latency is the whole call's
                r = await model.achat(messages)
                assert 0.0 < r.latency_s <= time.perf_counter() - t
            await model.aclose()
    assert outcomes[0] == outcomes[1]


# --- the HTTP client ------------------------------------------------------------------------------


def _head(status: int, *headers: str, version: str = "HTTP/1.1") -> bytes:
    return ("\r\n".join([f"{version} {status} X", *headers]) + "\r\n\r\n").encode("latin-1")


_JSON = json.dumps({"choices": [], "pad": "x" * 300}).encode()
_BIG = json.dumps({"pad": "y" * (_READ_SIZE + 50_000)}).encode()
_GZ = gzip.compress(_JSON, mtime=0)


def _chunked(data: bytes, size: int) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


ANSWERS: dict[str, bytes] = {
    "length": _head(200, f"Content-Length: {len(_JSON)}") + _JSON,
    "big": _head(200, f"content-length: {len(_BIG)}") + _BIG,
    "chunked": _head(200, "Transfer-Encoding: chunked") + _chunked(_JSON, 7),
    "gzip": _head(200, "Content-Encoding: gzip", f"Content-Length: {len(_GZ)}") + _GZ,
    "identity": _head(200, "content-encoding:  Identity ", f"Content-Length: {len(_JSON)}") + _JSON,
    "interim": _head(100) + _head(103, "Link: x") + _head(200, "Content-Length: 2") + b"{}",
    "odd": _head(200, "X-A: 1", "x-a: 2", "X-Tab:\tv ", "X-L: caf\u00e9", "Content-Length: 2")
    + b"{}",
    "close": _head(200, "Connection: keep-alive, CLOSE", "Content-Length: 2") + b"{}",
    "http10": _head(200, version="HTTP/1.0") + _JSON,
    "500_gzip": _head(500, "Content-Encoding: gzip", f"Content-Length: {len(_GZ)}") + _GZ,
    "500_bad_gzip": _head(500, "Content-Encoding: gzip", "Content-Length: 4") + b"oops",
    "429": _head(429, "Retry-After: 0.5", "Content-Length: 4") + b"slow",
    "307": _head(307, "Location: http://x/", "Content-Length: 0"),
    "no_colon": _head(200, "Content-Length 2") + b"{}",
    "bad_chunk": _head(200, "Transfer-Encoding: chunked") + b"zz\r\n",
    "br": _head(200, "Content-Encoding: br", "Content-Length: 2") + b"{}",
}


def _old_content(poster: Http1Poster, resp: _Response, n: int) -> bytes:
    """The answer's body as the client read it before: inflated from its coding as named, and
    from ``identity`` when none is (the path the shortcut now skips), whatever the status."""
    headers = resp.headers
    if "content-encoding" not in headers:
        headers = {**headers, "content-encoding": "identity"}
    return poster._content(_Response(resp.status, headers, resp.body), n)


def _error(exc: BaseException) -> Any:
    extra = (getattr(exc, "status", None), getattr(exc, "retry_after", None))
    return ("error", type(exc).__name__, str(exc), extra)


_GZIP_BODY = gzip.compress(b'{"a": 1}', mtime=0)


@pytest.mark.parametrize("status", [200, 201, 307, 400, 429, 500])
@pytest.mark.parametrize(
    ("coding", "body"),
    [
        (None, b'{"a": 1}'),
        ("identity", b'{"a": 1}'),
        (" IDENTITY ", b"\xff\xfe"),
        ("", b"x"),
        ("gzip", _GZIP_BODY),
        ("gzip", b"not gzip"),
        ("br", b"x"),
    ],
)
def test_a_body_with_no_coding_named_is_read_as_identity(
    status: int, coding: str | None, body: bytes
) -> None:
    headers = {"retry-after": "1.5", "location": "http://x/"}
    if coding is not None:
        headers["content-encoding"] = coding
    resp = _Response(status, headers, body)
    poster = Http1Poster("http://127.0.0.1:1/v1", {}, pool=1, who="judge")
    outcomes = []
    for read in (poster._content, lambda r, n: _old_content(poster, r, n)):
        try:
            outcomes.append(("ok", read(resp, 2)))
        except Exception as exc:
            outcomes.append(_error(exc))
    assert outcomes[0] == outcomes[1]


async def _one_piece(poster: Http1Poster, raw: bytes) -> Any:
    """``raw`` given to a connection in one piece (``data_received``, then the close), as the
    client read it before, and the outcome the old ``post`` made of it."""
    conn = _Connection()
    conn.connection_made(_NullTransport())  # type: ignore[arg-type]
    waiter = conn.request(b"")
    conn.data_received(raw)
    if not waiter.done():
        conn.connection_lost(None)
    try:
        return ("ok", _old_content(poster, await waiter, 1))
    except JudgeError as exc:
        return _error(exc)
    except Exception as exc:
        return _error(poster._error(exc, 1))


@pytest.fixture
async def dribbler() -> AsyncIterator[Callable[[bytes], Any]]:
    """A server that answers every request with ``answer`` in pieces of 1 to 97 bytes."""
    servers: list[asyncio.Server] = []

    async def start(answer: bytes) -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            rng = random.Random(7)
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    size = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
                    await reader.readexactly(size)
                    i = 0
                    while i < len(answer):
                        step = rng.randint(1, 97) if i < 4096 else 65536
                        writer.write(answer[i : i + step])
                        await writer.drain()
                        await asyncio.sleep(0)
                        i += step
                    if b"HTTP/1.0" in answer[:9] or b"CLOSE" in answer:
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"

    yield start
    for s in servers:
        s.close()


async def _posted(poster: Http1Poster) -> Any:
    try:
        return ("ok", await poster.post({"q": 1}, 1))
    except JudgeError as exc:
        return _error(exc)


@pytest.mark.parametrize("name", list(ANSWERS))
async def test_answers_read_through_the_shared_buffer_equal_one_piece_read(
    dribbler: Any, name: str
) -> None:
    url = await dribbler(ANSWERS[name])
    poster = Http1Poster(url, {}, pool=4, who="judge")
    expected = await _one_piece(poster, ANSWERS[name])
    # Four at once, each on its own connection, their pieces interleaved in the one buffer.
    got = await asyncio.gather(*(_posted(poster) for _ in range(4)))
    await poster.close()
    assert got == [expected] * 4


@pytest.mark.parametrize(
    "value", [None, "", "close", "Close", "keep-alive, CLOSE", "closed", "keep-alive", " close "]
)
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
async def test_a_kept_connection_is_judged_by_its_tokens_as_before(
    value: str | None, version: str
) -> None:
    headers = [] if value is None else [f"Connection: {value}"]
    conn = _Connection()
    conn.connection_made(_NullTransport())  # type: ignore[arg-type]
    waiter = conn.request(b"")
    conn.data_received(_head(200, *headers, "Content-Length: 0", version=version))
    assert waiter.done()
    tokens = _tokens("" if value is None else value.strip())
    kept = "close" not in tokens and (version == "HTTP/1.1" or "keep-alive" in tokens)
    assert conn.reusable == kept


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass
