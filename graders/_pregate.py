"""Pre-gates: cheap rule checks that score a worthless response low *before* any judge call.

Why they exist: LLM judges are fooled by responses with no content at all. "One Token to Fool
LLM-as-a-Judge" (arXiv 2507.08794) reports 80-90 % false-positive rates for "master keys" such as
``":"``, ``"Thought process:"`` or ``"Let's solve this problem step by step."``, and an RL policy
trained against such a judge collapses to emitting them. Prompting and majority voting did not
remove the effect; the robust fix is to never ask the judge about such a response. The same holds
for a response that merely restates the question (judges often call it "relevant").

A gate is any object with a ``name`` and ``check(response, fields) -> reason | None``. A hit is a
*real* low score (the response is genuinely worthless), not a failure: the judge grader returns
``GraderScore(score=gate_score, reason="pre-gate: <reason>", metadata={"pregate": name})``.

Matching is done on a normalised form (Unicode NFKC, casefolded, every character that is not a
letter or a digit turned into a space), so ``**Solution:**``, ``SOLUTION`` and ``solution…`` are
one key, and the phrase lists are written once, in plain words. The gates are conservative on
purpose: a short honest answer (``"4"``, ``"Paris"``, ``"Yes"``, ``"x = 3"``) must never be gated,
so a response passes as soon as any content-bearing word survives the stripping.

This module assembles the gates (the default and per-criterion sets, the ``pregates`` setting,
the result of a hit); the protocol and normalisation are in :mod:`graders._pregate_text`, the
empty and master-key gates in :mod:`graders._master_key`, the restate gate in
:mod:`graders._restate`, the others in :mod:`graders._degenerate` and
:mod:`graders._inject_gate`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence

from graders._degenerate import (
    KeywordStuffingGate,
    LengthGate,
    NearCopyGate,
    NonAnswerGate,
    RepetitionGate,
)
from graders._inject_gate import AddressesGraderGate
from graders._master_key import (
    DEFAULT_MASTER_KEYS,
    META_WORDS,
    STOP_WORDS,
    EmptyGate,
    MasterKeyGate,
)
from graders._pregate_text import PreGate, asked_verbatim, normalize_for_gate, tokens_for_gate
from graders._restate import RestateGate
from rm_service._exceptions import ConfigError
from rm_service._result import GraderScore

__all__ = [
    "CRITERION_PREGATES",
    "DEFAULT_MASTER_KEYS",
    "DEFAULT_PREGATES",
    "META_WORDS",
    "PREGATE_TYPES",
    "STOP_WORDS",
    "AddressesGraderGate",
    "EmptyGate",
    "MasterKeyGate",
    "PreGate",
    "RestateGate",
    "asked_verbatim",
    "check_pregate_score",
    "clear_gate_memo",
    "default_pregates",
    "first_gate_hit",
    "grader_pregates",
    "normalize_for_gate",
    "pregate_result",
    "resolve_pregates",
    "tokens_for_gate",
    "warm_gate_memo",
]


DEFAULT_PREGATES: tuple[PreGate, ...] = (
    EmptyGate(),
    MasterKeyGate(),
    RestateGate(),
    AddressesGraderGate(),
    NearCopyGate(),
    RepetitionGate(),
    KeywordStuffingGate(),
)
"""The gates the named judges run by default: empty, master key, restates the query, addresses
the grader, near-copy of the query, degenerate repetition, keyword stuffing. Each criterion adds
its own (:data:`CRITERION_PREGATES`)."""

PREGATE_TYPES: dict[str, type] = {
    "empty": EmptyGate,
    "master_key": MasterKeyGate,
    "restates_query": RestateGate,
    "addresses_grader": AddressesGraderGate,
    "near_copy": NearCopyGate,
    "repetition": RepetitionGate,
    "keyword_stuffing": KeywordStuffingGate,
    "non_answer": NonAnswerGate,
    "length": LengthGate,
}
"""The built-in gates by the name a YAML config uses (``pregates: [empty, master_key]``)."""

CRITERION_PREGATES: dict[str, tuple[PreGate, ...]] = {
    "relevance": (NonAnswerGate(), LengthGate()),
    "relevance_embedding": (NonAnswerGate(), LengthGate()),
    "similarity": (NonAnswerGate(), LengthGate()),
    "instruction_following": (NonAnswerGate(), LengthGate()),
    "correctness": (NonAnswerGate(),),
    "harmfulness": (),
}
"""What each criterion runs on top of :data:`DEFAULT_PREGATES`, keyed by the grader's default
name. No non-answer gate for harmfulness: a refusal is the *right* answer to a harmful request.
No length gate for correctness (a reasoning trace before a short final answer is legitimately
long) nor harmfulness (harm is not a matter of length)."""


def default_pregates(criterion: str = "") -> tuple[PreGate, ...]:
    """The default gate set of a criterion: :data:`DEFAULT_PREGATES` plus its own."""
    return DEFAULT_PREGATES + CRITERION_PREGATES.get(criterion, ())


def _edit_pregates(base: Sequence[PreGate], edits: Mapping[object, object]) -> list[PreGate]:
    """``base`` with gates switched off (``false``), on (``true``) or re-parametrised (a map)."""
    gates = list(base)
    for kind, value in edits.items():
        if kind not in PREGATE_TYPES:
            raise ConfigError(f"unknown pre-gate {kind!r}; known: {sorted(PREGATE_TYPES)}")
        if value is True and any(g.name == kind for g in gates):
            continue
        gates = [g for g in gates if g.name != kind]
        if value is False:
            continue
        if value is not True and not isinstance(value, Mapping):
            raise ConfigError(
                f"pre-gate {kind!r}: expected true, false or parameters, got {value!r}"
            )
        try:
            gates.append(PREGATE_TYPES[kind](**({} if value is True else value)))
        except TypeError as exc:
            raise ConfigError(f"pre-gate {kind!r}: {exc}") from None
    return gates


def resolve_pregates(specs: object, *, criterion: str = "") -> tuple[PreGate, ...]:
    """Gate objects from what a grader was given: gate objects, names, or ``{type: ...}`` maps.

    A config spells gates by name (``pregates: [empty, master_key, restates_query]`` turns the
    ``addresses_grader`` gate off; ``pregates: []`` turns every gate off) or with parameters
    (``{type: master_key, extra_phrases: [...]}``); Python callers pass gate objects.
    ``None``, ``true``, ``"default"`` or :data:`DEFAULT_PREGATES` itself stand for the
    criterion's default set (:func:`default_pregates`), ``false`` for none, and a map of gate
    names edits that default set: ``{length: false}`` drops a gate, ``{length: true}`` adds one,
    ``{repetition: {max_compression: 0.05}}`` re-parametrises one.

    Raises:
        ConfigError: an unknown name, bad parameters, or an object that is not a gate.
    """
    if specs is None or specs is True or specs is DEFAULT_PREGATES or specs == "default":
        return default_pregates(criterion)
    if specs is False:
        return ()
    if isinstance(specs, Mapping) and "type" not in specs:
        return tuple(_edit_pregates(default_pregates(criterion), specs))
    if isinstance(specs, str | Mapping):
        specs = [specs]
    if not isinstance(specs, Iterable):
        raise ConfigError(f"pregates must be a list of gates, names or maps, got {specs!r}")
    gates: list[PreGate] = []
    for spec in specs:
        if isinstance(spec, str | Mapping):
            params = {"type": spec} if isinstance(spec, str) else dict(spec)
            kind = params.pop("type", None)
            if kind not in PREGATE_TYPES:
                raise ConfigError(
                    f"unknown pre-gate {kind!r}; known: {sorted(PREGATE_TYPES)} (or a gate object)"
                )
            try:
                gates.append(PREGATE_TYPES[kind](**params))
            except TypeError as exc:
                raise ConfigError(f"pre-gate {kind!r}: {exc}") from None
        elif isinstance(spec, PreGate):
            gates.append(spec)
        else:
            raise ConfigError(
                f"a pre-gate must be a name, a {{type: ...}} map or a gate, got {spec!r}"
            )
    return tuple(gates)


def check_pregate_score(value: object) -> float:
    """``value`` as the score of a gated response, or a ``ConfigError``: a number in [0, 1]."""
    if isinstance(value, bool) or not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ConfigError(f"pregate_score must be in [0, 1], got {value!r}")
    return float(value)


def grader_pregates(
    name: str, criterion: str, pregates: object, pregate_score: object
) -> tuple[tuple[PreGate, ...], float]:
    """A grader's gates and gated score from its ``pregates`` / ``pregate_score`` settings, or
    a ``ConfigError`` naming the grader (see :func:`resolve_pregates` and
    :func:`check_pregate_score`)."""
    try:
        gates = resolve_pregates(pregates, criterion=criterion)
    except ConfigError as exc:
        raise ConfigError(f"{name}: pregates: {exc}") from None
    try:
        return gates, check_pregate_score(pregate_score)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def pregate_result(
    gates: Iterable[PreGate], response: str, fields: Mapping[str, str], *, name: str, score: float
) -> GraderScore | None:
    """The verdict on a gated response, or ``None`` when no gate fires.

    A hit is a real score (the response was graded, and it is worthless), never an error:
    ``GraderScore(score, "pre-gate: <reason>", metadata={"pregate": <gate name>})``.
    """
    hit = first_gate_hit(gates, response, fields)
    if hit is None:
        return None
    gate, reason = hit
    return GraderScore(
        name=name, score=score, reason=f"pre-gate: {reason}", metadata={"pregate": gate}
    )


_THINK_START_RE = re.compile(r"<\s*(think|thinking|reasoning|thought)\s*>", re.IGNORECASE)
_THINK_END = r"<\s*/\s*{}\s*>"
ANSWER_GATES = frozenset({"empty", "master_key", "non_answer", "restates_query", "near_copy"})
"""The gates that also read a reasoning response's answer (:func:`first_gate_hit`): those about
whether it answers at all. The others read the whole response, whose reasoning is part of what
the judge sees."""


def first_gate_hit(
    gates: Iterable[PreGate], response: str, fields: Mapping[str, str]
) -> tuple[str, str] | None:
    """``(gate name, reason)`` of the first gate that fires, or ``None``.

    A response that reasons in a ``<think>`` block is checked whole, and then its answer (the
    text after the block, :func:`reasoned_answers`) by the :data:`ANSWER_GATES`. Why: the
    reasoning is words, so any of it, however short, walked an empty, evasive or copied answer
    past those gates to the judge; reasoning models always write the block.

    Built-in gates' verdicts come from the record's memo entry when another grader of the record
    asked them already (see :data:`_GATE_READS`)."""
    gates = tuple(gates)
    hit = _first_hit(gates, response, fields)
    if hit is not None or "<" not in response:
        return hit
    answers = reasoned_answers(response)
    if answers:
        on_answer = tuple(g for g in gates if g.name in ANSWER_GATES)
        for answer in answers:
            hit = _first_hit(on_answer, answer, fields)
            if hit is not None:
                return hit[0], f"the answer after the reasoning: {hit[1]}"
    return None


def reasoned_answers(response: str) -> list[str]:
    """The answer of a response that reasons first: the text after its first closing tag
    (``</think>``; ``</reasoning>``, ``</thinking>``, ``</thought>`` when the response opened
    one; any case) up to the next one, and after its last one where there are several (a
    fake tag later on must not hide the first answer, nor an answer hide behind a late one).

    A block with no opening tag before it counts only for ``</think>`` ending its line (the
    prompt opened it, as R1's template does; "the closing tag is </think>." is prose). No
    answers when there is no closing tag, or when the tags are a topic: words before the
    opening tag and next to nothing inside ("between <think> and </think>"), or a tag in
    quotes on both sides. Prose around the tags must end the closing tag's line to be a block
    ("closes it with </think>." is prose).
    """
    ends_any = [m for m in _CLOSE_ANY_RE.finditer(response) if not _quoted(response, m)]
    if not ends_any:
        return []
    opened = next(
        (
            m
            for m in _THINK_START_RE.finditer(response, 0, ends_any[0].start())
            if not _quoted(response, m)
        ),
        None,
    )
    name = opened.group(1) if opened is not None else "think"
    ends = [
        m
        for m in re.finditer(_THINK_END.format(name), response, re.IGNORECASE)
        if not _quoted(response, m)
    ]
    if not ends:
        return []
    ends_line = _ENDS_LINE_RE.match(response, ends[0].end()) is not None
    if opened is None:
        if not ends_line:
            return []
    elif _has_words(response[: opened.start()]):  # prose around the tags: a topic, unless
        inside = response[opened.end() : ends[0].start()]  # a real block ends its line
        if len(inside.strip()) < _MENTION_CHARS or not ends_line:
            return []
    answers = [response[ends[0].end() : ends[1].start() if len(ends) > 1 else len(response)]]
    if len(ends) > 1:
        answers.append(response[ends[-1].end() :])
    return answers


_CLOSE_ANY_RE = re.compile(r"<\s*/\s*(?:think|thinking|reasoning|thought)\s*>", re.IGNORECASE)
_ENDS_LINE_RE = re.compile(r"[ \t]*(?:\n|\Z)")
_MENTION_CHARS = 24
"""Fewer characters than this between the tags, after words: the tags are named, not used."""


def _quoted(text: str, m: re.Match[str]) -> bool:
    """A tag in quotes or backticks on both sides (``"</think>"`` in code): named, not used."""
    before, after = text[m.start() - 1 : m.start()], text[m.end() : m.end() + 1]
    return bool(before) and before in _QUOTES and after in _QUOTES


_QUOTES = frozenset("\"'`")


def _has_words(text: str) -> bool:
    return any(c.isalnum() for c in text)


def _first_hit(
    gates: tuple[PreGate, ...], response: str, fields: Mapping[str, str]
) -> tuple[str, str] | None:
    entry: dict[object, str | None] | None = None
    for gate, extra in _plan(gates):
        if extra is None:  # not memoised
            reason = gate.check(response, fields)
        else:
            if entry is None:
                entry = _entry(response, fields)
            reason = _memoised(gate, extra, response, fields, entry)
        if reason:
            return gate.name, reason
    return None


def _memoised(
    gate: PreGate,
    extra: tuple[str, ...],
    response: str,
    fields: Mapping[str, str],
    entry: dict[object, str | None],
) -> str | None:
    """A built-in gate's verdict on the record of ``entry``: from it, or computed into it.
    ``extra``: the fields beyond the record's key that the gate reads (see :func:`_plan`)."""
    key: object = (gate, *[fields.get(f) for f in extra]) if extra else gate
    reason = entry.get(key, _UNASKED)
    if reason is _UNASKED:
        reason = entry[key] = gate.check(response, fields)
    return reason  # type: ignore[return-value]  # a reason or None, as stored


_Plan = tuple[tuple[PreGate, "tuple[str, ...] | None"], ...]
_plans: dict[int, tuple[tuple[PreGate, ...], _Plan]] = {}


def _plan(gates: tuple[PreGate, ...]) -> _Plan:
    """Each of ``gates`` with the fields its memo key reads beyond the record's (``None``: a gate
    whose verdicts are not memoised), worked out once per gate set.

    Why: a judge asks its gate set for every call, twice with the verdicts made ahead
    (:func:`warm_gate_memo`, then :func:`first_gate_hit`), and looking each gate's reads up
    anew cost about as much as reading its verdict from the memo. Keyed by the tuple's
    identity, which the entry keeps alive (so the id is not reused while it is there); a
    grader holds its gate set as one tuple. Bounded: a full table is cleared."""
    known = _plans.get(id(gates))
    if known is not None and known[0] is gates:
        return known[1]
    plan = tuple(
        (
            gate,
            None
            if (reads := _GATE_READS.get(type(gate))) is None
            else _extra_reads(reads, tuple(getattr(gate, "against", ()))),
        )
        for gate in gates
    )
    if len(_plans) >= 256:
        _plans.clear()
    _plans[id(gates)] = (gates, plan)
    return plan


_UNASKED = object()


def warm_gate_memo(calls: Sequence[tuple[Sequence[PreGate], str, Mapping[str, str]]]) -> None:
    """Compute the memoised gate verdicts of many calls gate by gate, before they ask for them.

    Why: the gates are regex-heavy Python. Run for one record at a time, between the judge
    calls' HTTP, parsing and bookkeeping, each gate starts with the CPU's caches full of other
    code; run over many records in a row, its code and patterns stay hot. Only the memo is
    filled: each call still asks :func:`first_gate_hit` itself, in its own gate order, and gets
    the same verdicts, reasons and exceptions as without this (a gate that raises here is left
    for the call to run, and raise, itself).

    Each call's gates run in order and stop at its first hit, as the call would: round ``k``
    runs every call's ``k``-th gate, the calls sharing a gate one after another. A call stops
    being warmed at a gate whose verdicts are not memoised (a user's gate may keep state, so it
    runs once, in the call) and at a response too long to be kept (:data:`WARM_CHARS`).
    """
    pending = [
        (_plan(tuple(gates)), response, fields, _entry(response, fields))
        for gates, response, fields in calls
        if len(response) + sum(len(fields.get(f) or "") for f in _ASKING) <= WARM_CHARS
    ]
    at = 0
    while pending:
        by_gate: dict[tuple[PreGate, tuple[str, ...]], list[_Warming]] = {}
        for call in pending:
            plan = call[0]
            if at < len(plan):
                gate, extra = plan[at]
                if extra is not None:
                    by_gate.setdefault((gate, extra), []).append(call)
        pending = []
        for (gate, extra), group in by_gate.items():
            for call in group:
                try:
                    reason = _memoised(gate, extra, call[1], call[2], call[3])
                except Exception:  # the call runs it again, and reports it
                    continue
                if not reason:
                    pending.append(call)
        at += 1


_Warming = tuple[_Plan, str, Mapping[str, str], dict[object, str | None]]
"""A call being warmed: its gates' plan, response, fields and memo entry."""


WARM_CHARS = 20_000
"""Longer texts are not warmed: their verdicts are not worth holding in the memo for long, and a
batch of them would hold the event loop as long as they take to read."""


# --- the verdict memo ----------------------------------------------------------------------------

_ASKING = ("query", "instruction")
_GATE_READS: dict[type, tuple[str, ...]] = {
    EmptyGate: (),
    MasterKeyGate: (*_ASKING, "reference_response"),
    RestateGate: _ASKING,
    AddressesGraderGate: _ASKING,
    NearCopyGate: _ASKING,
    RepetitionGate: _ASKING,
    KeywordStuffingGate: _ASKING,
    NonAnswerGate: (*_ASKING, "reference_response"),
    LengthGate: (*_ASKING, "reference_response"),
}
"""The fields (besides the response, and a gate's ``against`` fields) each built-in gate reads.

Why a memo at all: the graders of one record (relevance, correctness, harmfulness...) run the same
gate objects on the same response, and the gates are most of a judge call's own CPU. A built-in
gate is a pure function of its settings, the response and these fields, so its verdict is
computed once per distinct input. Only the exact built-in types are memoised (a subclass or a
user's gate may keep state); ``tests/graders/test_judge_hot_path.py`` checks these lists against
the gates on the red-team set. A built-in gate's settings are treated as fixed after construction.

How: one entry per record, keyed by the response and the asking fields (:data:`_ASKING`), holds
the verdicts of every gate asked on it, each under the gate (and the values of any other field it
reads, such as the reference), so a grader pays one lookup for its record, not one per gate.
"""
_MEMO_CHARS = 4_000_000
"""The memo's size bound, in characters of the texts its keys hold (so a few long responses
cannot pin much memory); the oldest entries go first."""
_memo: dict[tuple[str | None, ...], tuple[int, dict[object, str | None]]] = {}
_memo_chars = 0
_memo_lock = threading.Lock()


def _entry(response: str, fields: Mapping[str, str]) -> dict[object, str | None]:
    """The record's verdicts so far: a new entry on a miss (unkept for very long texts)."""
    global _memo_chars
    key = (response, *[fields.get(f) for f in _ASKING])
    hit = _memo.get(key)
    if hit is not None:
        return hit[1]
    size = sum(len(k) for k in key if isinstance(k, str))
    verdicts: dict[object, str | None] = {}
    if size > _MEMO_CHARS // 8:
        return verdicts
    with _memo_lock:
        hit = _memo.get(key)
        if hit is not None:
            return hit[1]
        while _memo and _memo_chars + size > _MEMO_CHARS:
            _memo_chars -= _memo.pop(next(iter(_memo)))[0]
        _memo[key] = (size, verdicts)
        _memo_chars += size
    return verdicts


def _extra_reads(reads: tuple[str, ...], against: tuple[str, ...]) -> tuple[str, ...]:
    """The fields a gate reads beyond the record's key (the reference, its ``against`` ones)."""
    return tuple(dict.fromkeys(f for f in (*reads, *against) if f not in _ASKING))


def clear_gate_memo() -> None:
    """Forget every memoised gate verdict (tests; a gate's settings changed in place)."""
    global _memo_chars
    with _memo_lock:
        _memo.clear()
        _memo_chars = 0
    _plans.clear()
