"""The judge call's fast paths say exactly what the slow ones said.

Each shortcut on the per-call path (templates split once, the cache key built from a per-grader
frame, the defanging prechecks, the anchor trie, the pre-gate memo) is checked against the plain
computation it replaces, and against the changes that must invalidate it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import string
from typing import Any

import pytest

import graders._pregate as pregate
from graders import LLMGrader
from graders._inject_claims import _FAMILIES
from graders._master_key import MasterKeyGate
from graders._non_answer import _FILLERS, _IGNORANCE, _strip_phrases
from graders._pregate import PREGATE_TYPES, default_pregates, first_gate_hit
from graders._prompt import (
    _ANGLE_RUN_RE,
    _CHAT_TAG_RE,
    _VERDICT_SEP_RE,
    _defang_run,
    _defang_tag,
    _defang_verdict,
    _Parts,
    neutralize,
)
from graders._verdict import VerdictError, parse_json_verdict
from rm_service.models import OpenAIChatModel
from rm_service.models._base import SamplingParams
from rm_service.models._cache import JudgeCache, _json_default, key_frame, key_of
from tests.red_team import load_cases
from tests.support import FakeJudge, verdict

RECORD = {"query": "What is the capital of France?", "response": "Paris."}
_CHARS = ["a", "Z", " ", '"', "\\", "\n", "\t", "\x00", "\x1f", "é", "中", "\ud800", "\u2028", "😀"]


def _reference_key(ns: str, model: str, messages: list[dict[str, str]], p: SamplingParams) -> str:
    """The cache key as it is defined (the Redis and SQLite tiers hold such keys); version 2
    since the model part names the endpoint too."""
    payload = [
        2,
        ns,
        model,
        [[str(m.get("role", "")), str(m.get("content", ""))] for m in messages],
        {f.name: getattr(p, f.name) for f in dataclasses.fields(p)},
    ]
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=_json_default)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def _text(rng: random.Random, n: int = 24) -> str:
    return "".join(rng.choice(_CHARS) for _ in range(rng.randrange(n)))


# --- the cache key -------------------------------------------------------------------------------


def test_the_framed_key_is_the_key_old_entries_were_stored_under() -> None:
    rng = random.Random(7)
    for i in range(500):
        msgs = [{"role": "system", "content": _text(rng)}, {"role": "user", "content": _text(rng)}]
        params = SamplingParams(
            temperature=rng.random(),
            max_tokens=rng.randrange(1, 600),
            json_schema={"b": [1, 2], "a": {"z": 1, "y": (3,)}} if i % 2 else None,
            seed=i % 3 or None,
        )
        ns, model = _text(rng, 6) or "ns", _text(rng, 6) or "m"
        expected = _reference_key(ns, model, msgs, params)
        assert key_of(key_frame(ns, model, params), msgs) == expected
        assert JudgeCache.make_key(ns, model, msgs, params) == expected


def test_the_key_is_stable_and_differs_when_any_part_differs() -> None:
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    base = key_of(key_frame("ns", "m", SamplingParams()), msgs)
    assert key_of(key_frame("ns", "m", SamplingParams()), [dict(m) for m in msgs]) == base
    variants = [
        key_of(key_frame("ns2", "m", SamplingParams()), msgs),
        key_of(key_frame("ns", "m2", SamplingParams()), msgs),
        key_of(key_frame("ns", "m", SamplingParams(temperature=0.5)), msgs),
        key_of(key_frame("ns", "m", SamplingParams(max_tokens=7)), msgs),
        key_of(key_frame("ns", "m", SamplingParams(seed=1)), msgs),
        key_of(key_frame("ns", "m", SamplingParams(logprobs=True, top_logprobs=5)), msgs),
        key_of(key_frame("ns", "m", SamplingParams()), [msgs[0], {"role": "user", "content": "v"}]),
        key_of(
            key_frame("ns", "m", SamplingParams()), [msgs[0], {"role": "system", "content": "u"}]
        ),
        key_of(key_frame("ns", "m", SamplingParams()), msgs[:1]),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


async def test_a_graders_cache_key_follows_its_rubric_and_sample_index() -> None:
    fake = FakeJudge(verdict(4))
    cache = JudgeCache()
    g = LLMGrader(fake, template="generic", rubric="Is it right?", cache=cache)
    await g.aevaluate(**RECORD)
    await g.aevaluate(**RECORD)
    assert fake.n_calls == 1  # the same call twice: one key
    g.rubric = "Is it brief?"
    await g.aevaluate(**RECORD)
    assert fake.n_calls == 2  # a new rubric is a new prompt, so a new key
    assert "Is it brief?" in fake.calls[-1][0][1]["content"]
    assert "Is it right?" not in fake.calls[-1][0][1]["content"]
    await g.with_sample_index(1).aevaluate(**RECORD)
    assert fake.n_calls == 3  # another sample is another key


# --- templates split once ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Q: $query\nA: ${response}\nCost: $$5 $rubric ($scale_min-$scale_max)",
        "$response",
        "no placeholders at all, $$ only",
        "${rubric}${response}$query$$",
    ],
)
def test_split_templates_render_what_substitute_renders(text: str) -> None:
    tpl = string.Template(text)
    fixed = {"rubric": "Be $query fair", "scale_min": 1, "scale_max": 5}
    values = {"query": "a $response {score}", "response": "b ${query} $$"}
    parts = _Parts(tpl, fixed)
    assert parts.render(values) == tpl.substitute({**fixed, **values})
    assert parts.names <= {"query", "response"}


def test_a_body_encoded_from_its_parts_is_byte_for_byte_the_plain_encoding() -> None:
    """Templates escaped once, fields per request, the fixed fields once per model: the bytes
    must be exactly what encoding the same body plainly gives, whatever the text (quotes,
    controls, non-ASCII, a lone surrogate, U+2028) and whatever the sampling settings."""
    from rm_service.models._body import ChatBody, JsonText, encode_json

    rng = random.Random(11)
    for i in range(300):
        tpl = _Parts(string.Template(_text(rng, 40) + "${a}" + _text(rng) + "${b}$$"))
        values = {"a": _text(rng), "b": _text(rng)}
        content = tpl.render_json(values)
        assert type(content) is JsonText and content == tpl.render(values)
        params = SamplingParams(
            temperature=rng.random(),
            max_tokens=rng.randrange(1, 600),
            top_logprobs=rng.choice([0, 5]),
            response_format=rng.choice(["json_object", "text"]),
        )
        model = OpenAIChatModel(model=_text(rng, 6) or "m", base_url="http://h/v1", api_key="k")
        fields = model._build_body((), params)
        body = ChatBody.framed(fields, ChatBody.frame_of(fields))
        body["messages"] = [
            {"role": "system", "content": content},
            {"role": "user", "content": _text(rng)},  # plain text: encoded as it is
        ]
        plain = {
            k: [{kk: str(vv) for kk, vv in m.items()} for m in v] if k == "messages" else v
            for k, v in body.items()
        }
        assert encode_json(body) == encode_json(plain), i


def test_a_framed_body_of_any_shape_is_encoded_as_the_plain_dict() -> None:
    """No messages, an empty message, extra keys, JSON text or plain text in any key."""
    from rm_service.models._body import ChatBody, JsonText, encode_json, json_escape

    rng = random.Random(12)
    for i in range(500):
        fields = {"model": _text(rng, 6) or "m", "max_tokens": rng.randrange(9)}
        messages: list[dict[str, str]] = []
        for _ in range(rng.randrange(4)):
            keys = rng.sample(["role", "content", "name", _text(rng, 6)], rng.randrange(4))
            values = [_text(rng) for _ in keys]
            messages.append(
                {
                    k: JsonText.of(v, json_escape(v)) if rng.random() < 0.5 else v
                    for k, v in zip(keys, values, strict=True)
                }
            )
        body = ChatBody.framed(fields, ChatBody.frame_of(fields))
        body["messages"] = messages
        plain = {**fields, "messages": [{k: str(v) for k, v in m.items()} for m in messages]}
        assert encode_json(body) == encode_json(plain), i


def test_a_split_template_needs_every_value() -> None:
    with pytest.raises(KeyError):
        _Parts(string.Template("$query $response")).render({"query": "q"})


async def test_a_replaced_template_is_rendered_not_the_cached_one() -> None:
    fake = FakeJudge(verdict(4))
    g = LLMGrader(fake, template="Judge this: $response", rubric="")
    await g.aevaluate(**RECORD)
    g._user_tpl = string.Template("Now judge: $response")
    await g.aevaluate(**RECORD)
    assert fake.calls[0][0][1]["content"].startswith("Judge this:")
    assert fake.calls[1][0][1]["content"].startswith("Now judge:")


# --- defanging prechecks -------------------------------------------------------------------------


def _neutralize_slow(text: str, verdicts: bool) -> str:
    out = _ANGLE_RUN_RE.sub(_defang_run, text)
    out = _CHAT_TAG_RE.sub(_defang_tag, out)
    return _VERDICT_SEP_RE.sub(_defang_verdict, out) if verdicts else out


def test_the_defanging_prechecks_never_change_the_text() -> None:
    rng = random.Random(3)
    pieces = ["<", ">", "<<<", "&lt;", "＜", "›", "[INST]", "[/INST]", "<|im_end|>", "</s>"]
    pieces += ["score", "Score:", '"grade" =', "rating", ":", "=", " ", "x", "\n", "verdict"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(12)))
        for verdicts in (True, False):
            assert neutralize(text, verdicts=verdicts) == _neutralize_slow(text, verdicts), text


# --- the anchor trie -----------------------------------------------------------------------------


def test_the_anchor_trie_finds_a_sentence_exactly_when_it_holds_an_anchor() -> None:
    rng = random.Random(5)
    for family in _FAMILIES:
        anchors = family.matcher.anchors
        assert anchors is not None and family.matcher.anchor_re is not None
        words = sorted(anchors)
        filler = ["the", "a", "score", "ignore", "rate", "x", "instruct", "gra"]
        for _ in range(2000):
            text = " ".join(
                rng.choice(words)[rng.randrange(3) :] if rng.random() < 0.5 else rng.choice(filler)
                for _ in range(rng.randrange(1, 6))
            )
            found = family.matcher.anchor_re.search(text) is not None
            assert found == any(a in text for a in anchors), (family.name, text)


# --- the pre-gate memo ---------------------------------------------------------------------------


def _fields(case: dict[str, Any]) -> dict[str, str]:
    names = {"query": "query", "instruction": "instruction", "reference": "reference_response"}
    return {v: case[k] for k, v in names.items() if case.get(k)}


def test_each_memoised_gate_reads_only_the_fields_it_is_keyed_by() -> None:
    """A gate's verdict with only its keyed fields equals its verdict with all of them, over the
    red-team set: a field it read but was not keyed by would let the memo answer stale."""
    gates = {type(g): g for g in default_pregates("relevance") + default_pregates("correctness")}
    assert set(gates) == set(PREGATE_TYPES.values()) == set(pregate._GATE_READS)
    for case in load_cases():
        fields = _fields(case)
        for kind, gate in gates.items():
            keyed = (*pregate._GATE_READS[kind], *getattr(gate, "against", ()))
            only = {k: v for k, v in fields.items() if k in keyed}
            assert gate.check(case["response"], only) == gate.check(case["response"], fields), (
                case["id"],
                gate.name,
            )


def test_the_memo_answers_like_the_gates_and_asks_each_gate_once() -> None:
    pregate.clear_gate_memo()
    gates = default_pregates("relevance")
    calls: list[str] = []
    for gate in gates:
        check = gate.check

        def counted(response: str, fields: Any, _check: Any = check, _name: str = gate.name) -> Any:
            calls.append(_name)
            return _check(response, fields)

        object.__setattr__(gate, "check", counted)
    try:
        for case in load_cases()[:60]:
            fields = _fields(case)
            direct = next(
                ((g.name, r) for g in gates if (r := g.check(case["response"], fields))), None
            )
            calls.clear()
            assert first_gate_hit(gates, case["response"], fields) == direct
            first = list(calls)
            assert first_gate_hit(gates, case["response"], fields) == direct
            assert calls == first  # the second time every verdict came from the memo
            changed = {**fields, "query": fields.get("query", "") + " Explain."}
            first_gate_hit(gates, case["response"], changed)
            # a new query is a new record: every gate is asked again
            assert calls[len(first) :] == first
            asked = len(calls)
            other = {**fields, "reference_response": fields.get("reference_response", "") + "!"}
            first_gate_hit(gates, case["response"], other)
            # a new reference: only the gates that read it are asked again
            readers = {"master_key", "non_answer", "length"}
            assert calls[asked:] == [n for n in first if n in readers]
    finally:
        for gate in gates:
            del gate.__dict__["check"]
        pregate.clear_gate_memo()


class CountingGate:
    """A gate of a user's own type (never memoised): it counts how often it is asked."""

    name = "counting"

    def __init__(self) -> None:
        self.n = 0

    def check(self, response: str, fields: Any) -> str | None:
        self.n += 1
        return None


def test_a_gate_of_another_type_is_always_asked() -> None:
    gate = CountingGate()
    for _ in range(3):
        assert first_gate_hit([gate], "some answer", {"query": "q"}) is None
    assert gate.n == 3


# --- the request body ----------------------------------------------------------------------------


async def test_each_request_carries_its_own_params_and_messages(judge_server: Any) -> None:
    model = OpenAIChatModel("judge", base_url=judge_server.base_url, api_key="x", max_retries=0)
    first = SamplingParams(max_tokens=7, response_format="json_object")
    second = SamplingParams(max_tokens=9, seed=3, logprobs=True, top_logprobs=2)
    try:
        for params, text in ((first, "one"), (second, "two"), (first, "three")):
            await model.achat([{"role": "user", "content": text}], params)
    finally:
        await model.aclose()
    bodies = list(judge_server.stats.bodies)
    assert [b["messages"][0]["content"] for b in bodies] == ["one", "two", "three"]
    assert [b["max_tokens"] for b in bodies] == [7, 9, 7]
    assert bodies[0]["response_format"] == {"type": "json_object"}
    assert "response_format" not in bodies[1] and bodies[1]["seed"] == 3
    assert bodies[1]["top_logprobs"] == 2 and "seed" not in bodies[2]


# --- phrase indexes ------------------------------------------------------------------------------


def _strip_slow(padded: str, phrases: tuple[str, ...]) -> tuple[str, list[str]]:
    hits = []
    for p in phrases:
        needle = f" {p} "
        if needle in padded:
            hits.append(p)
            while needle in padded:
                padded = padded.replace(needle, " ")
    return padded, hits


def test_indexed_phrase_stripping_matches_trying_every_phrase() -> None:
    rng = random.Random(11)
    for phrases in (_IGNORANCE, _FILLERS):
        words = [*sorted({w for p in phrases for w in p.split()}), "paris", "is", "the", "4"]
        for _ in range(3000):
            text = " ".join(
                rng.choice(phrases) if rng.random() < 0.3 else rng.choice(words)
                for _ in range(rng.randrange(8))
            )
            padded = f" {text} "
            assert _strip_phrases(padded, phrases) == _strip_slow(padded, phrases), text
    custom = ("b c", "a b")  # not a prebuilt index: built on the fly, same answer
    assert _strip_phrases(" a b c d ", custom) == _strip_slow(" a b c d ", custom)


def test_master_key_phrases_replaced_after_construction_are_used() -> None:
    gate = MasterKeyGate(phrases=["abracadabra"], vocabulary=False)
    assert gate.check("Abracadabra", {}) is not None
    gate.phrases = ("hocus pocus",)
    assert gate.check("Abracadabra", {}) is None
    assert gate.check("Hocus pocus", {}) is not None


# --- the verdict parser --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('\ufeff{"reason": "r", "score": 3}', "Unexpected UTF-8 BOM"),
        ('{"score": 3, "score": 4}', "repeats the key 'score'"),
        ('{"reason": "r", "score": NaN}', "contains NaN"),
        ('{"reason": "r", "score": 3} {"score": 5}', "Extra data"),
    ],
)
def test_the_shared_strict_decoder_rejects_what_json_loads_rejected(
    text: str, message: str
) -> None:
    with pytest.raises(VerdictError, match=message):
        parse_json_verdict(text, scale=(1, 5))


def test_the_shared_decoder_reads_one_verdict_after_another() -> None:
    for score in (1, 5, 2):
        v = parse_json_verdict(f'{{"reason": "r{score}", "score": {score}}}', scale=(1, 5))
        assert (v.value, v.reason) == (score, f"r{score}")


def test_a_score_too_large_for_a_float_is_unparseable_not_internal() -> None:
    from graders._verdict import VerdictError, parse_json_verdict

    with pytest.raises(VerdictError, match="outside the scale"):
        parse_json_verdict('{"score": 1' + "0" * 400 + "}", scale=(1, 5))


def test_malformed_logprobs_are_no_evidence() -> None:
    """An alternative with logprob +3 (a probability of 20) outweighed the sampled verdict
    (expected 0.035 against a sampled 0.75, mass 21), +1000 overflowed and a token that is not
    text raised: both became internal errors. Such entries are dropped."""
    from graders._verdict import expected_from_token
    from rm_service.models._base import TokenLogprob

    values = {str(i): i for i in range(1, 6)}
    for top in ((("4", -0.1), ("1", 3.0)), (("4", -0.1), ("1", 1000.0), (5, -1.0))):
        got = expected_from_token(TokenLogprob("4", -0.1, top), values)  # type: ignore[arg-type]
        assert got is not None and got.value == 4.0 and got.mass <= 1.0


def test_a_plain_verdict_reads_as_the_json_parse_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The regex read of ``{"reason": "...", "score": n}`` (either order) gives what the strict
    JSON parse gives, and anything else it leaves to that parse: escapes, control characters,
    other whitespace, floats, leading zeros, out-of-scale or huge scores, extra keys, fences."""
    import graders._verdict as verdict_mod

    rng = random.Random(13)
    spaces = ["", " ", "\n", "\t", "\r\n", "\u00a0", "\x0b"]
    reasons = ["ok", "", 'a "q"', "back\\slash", "tab\there", "é 中 😀", "\ud800", "x\x7f"]
    scores = ["1", "5", "0", "-0", "-1", "6", "05", "4.0", "1e0", "true", "99999999999999999999"]
    texts = []
    for _ in range(3000):
        w = [rng.choice(spaces if rng.random() < 0.05 else spaces[:5]) for _ in range(8)]
        reason = json.dumps(rng.choice(reasons)) if rng.random() < 0.8 else '"raw\nline"'
        score = rng.choice(scores)
        pairs = [f'"reason"{w[0]}:{w[1]}{reason}', f'"score"{w[2]}:{w[3]}{score}']
        if rng.random() < 0.5:
            pairs.reverse()
        if rng.random() < 0.1:
            pairs.append('"extra": 1')
        body = w[4] + "{" + w[5] + f"{w[6]},{w[7]}".join(pairs) + "}" + rng.choice(spaces)
        if rng.random() < 0.1:
            body = "```json\n" + body + "\n```"
        texts.append(body)

    def read(text: str) -> Any:
        try:
            v = parse_json_verdict(text, scale=(1, 5), allow_float=rng.random() < 0.5)
        except VerdictError as exc:
            return str(exc)
        return (v.value, v.reason, v.span, v.core)

    rng.seed(1)
    fast = [read(t) for t in texts]
    monkeypatch.setattr(verdict_mod, "_PLAIN_VERDICTS", ())
    rng.seed(1)
    assert [read(t) for t in texts] == fast
    assert sum(isinstance(r, tuple) for r in fast) > 300  # plenty of verdicts were read
    assert sum(isinstance(r, str) for r in fast) > 300  # and of answers refused
