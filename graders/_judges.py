"""The four named LLM judges: harmfulness, relevance, correctness, instruction following.

Each is a thin preset of :class:`~graders._judge.LLMGrader`: a bundled template with its 1-5
rubric (``graders/prompts/<name>.md``), its record fields, and the default pre-gates (empty,
master-key and question-restating responses score 0.0 without a judge call). Everything else
(output mode, expected scoring, cache, sampling) is passed through.

Correctness is verifiable first: where the reference is checkable (a choice letter, a number, a
math expression, a short string) the response's final answer is decided by rule
(:mod:`graders._verify`) and the judge is asked only where the rule cannot decide, so no judge,
however gullible, can rescue a verifiably wrong or hedged answer.

Harmfulness and relevance are cross-checked offline, so a gullible judge cannot carry them alone:
harmfulness is the ``min`` of the judge and the offline harm detector (:mod:`graders._harm`),
and relevance scores 0 without a judge call when MiniLM embeddings put an English answer
clearly off the query's topic. Both are on whenever the ``local`` extra is installed
(``cross_check="auto"``); without it they warn once and say so in ``metadata["cross_check"]``.

Harmfulness is rated as *harm* (1 = harmless, 5 = severely harmful) and flipped, so its score,
like every score here, is higher-is-better: 1.0 means harmless. Its pre-gates are on too, which
is a deliberate policy: an empty or content-free response is worthless, so it must not farm the
harmlessness reward (a policy that learns to say nothing is perfectly "harmless"). Pass
``pregates=()`` to rate such responses on harm alone.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_args

from graders._base import Unscored, grader
from graders._committee import (
    CrossCheck,
    cross_check_mode,
    cross_check_unavailable,
    min_cross_check,
)
from graders._degenerate import KeywordStuffingGate
from graders._harm import OfflineHarmGrader, is_english
from graders._judge import LLMGrader, ModelSpec
from graders._math import MathGrader
from graders._math_echo import echo_of_query
from graders._pregate import DEFAULT_PREGATES, PreGate, first_gate_hit
from graders._similarity import query_word_stuffing
from graders._text import clip
from graders._verify import Verify, decide, decide_ahead
from rm_service._exceptions import ConfigError
from rm_service._result import GraderError, GraderScore, scored
from rm_service.models._embed import Embedder, EmbedderUnavailable, default_model_path

__all__ = [
    "RELEVANCE_CROSS_CHECK_COSINE",
    "RELEVANCE_CROSS_CHECK_MIN_WORDS",
    "CorrectnessGrader",
    "HarmfulnessGrader",
    "InstructionFollowingGrader",
    "RelevanceGrader",
]

_T = TypeVar("_T")

_BUNDLED_SCALE = (1, 5)
_ANSWER_LIMIT = 200
"""Longest answer text copied into metadata."""


class _NamedJudge(LLMGrader):
    """Shared preset logic: the bundled template fixes the scale and the direction.

    A bundled rubric is written for 1-5 in one direction; a different ``scale`` or
    ``higher_is_better`` with it would make the judge and the grader disagree about what a number
    means, so either needs your own ``template``.
    """

    default_higher_is_better: ClassVar[bool] = True

    def __init__(
        self,
        model: ModelSpec,
        *,
        template: str | Path | None = None,
        scale: tuple[int, int] = _BUNDLED_SCALE,
        higher_is_better: bool | None = None,
        pregates: Iterable[PreGate] = DEFAULT_PREGATES,
        **kwargs: Any,
    ) -> None:
        if template is None:
            if tuple(scale) != _BUNDLED_SCALE:
                raise ConfigError(
                    f"{type(self).__name__}: the bundled rubric is on a 1-5 scale; pass your own "
                    f"template= to use scale={tuple(scale)}"
                )
            if higher_is_better not in (None, self.default_higher_is_better):
                raise ConfigError(
                    f"{type(self).__name__}: the bundled rubric fixes higher_is_better="
                    f"{self.default_higher_is_better}; pass your own template= to change it"
                )
        super().__init__(
            model,
            template=template,
            scale=scale,
            higher_is_better=(
                self.default_higher_is_better if higher_is_better is None else higher_is_better
            ),
            pregates=pregates,
            **kwargs,
        )


def _cross_checker(
    mode: CrossCheck, what: str, build: Callable[[], _T]
) -> tuple[_T | None, dict[str, Any] | None]:
    """The offline checker a judge cross-checks with, or why there is none.

    It is built only when the check is on and the packaged embedding model is installed; without
    it the judge carries ``cross_check_unavailable``'s note into every result (or, under
    ``required``, fails at load), so a missing check is never a silent pass.
    """
    if mode == "off":
        return None, None
    try:
        default_model_path()
    except EmbedderUnavailable as exc:
        return None, cross_check_unavailable(mode, what, str(exc))
    return build(), None


@grader
class HarmfulnessGrader(_NamedJudge):
    """How harmless the response is: 1.0 = harmless, 0.0 = severely harmful.

    Fields: ``response``; optional ``query`` (a refused harmful request is harmless, so the query
    helps the judge, but the response is what is rated). Other arguments as
    :class:`~graders._judge.LLMGrader`.

    Cross-checked by default: the offline harm detector (:class:`~graders._harm.
    OfflineHarmGrader`) rates the same response, and the score is the ``min`` of the two, so a
    gullible judge cannot pass a phishing email with a "this is safe" note, or a fake refusal
    followed by compliance, on its own. ``metadata["cross_check"]`` holds the detector's score,
    the judge's, and whether the detector decided. Its false alarms cost honest answers on
    harm-adjacent topics some reward (see ``bench/harm_auc.py``).

    Args:
        cross_check: ``"auto"`` (default: on whenever the ``local`` extra is installed; without
            it a warning, once, and ``cross_check.ran = false`` in every result's metadata),
            ``"required"`` (a missing extra is a config error) or ``"off"``.
    """

    default_name: ClassVar[str] = "harmfulness"
    default_template: ClassVar[str] = "harmfulness"
    default_optional_fields: ClassVar[tuple[str, ...]] = ("query",)
    default_higher_is_better: ClassVar[bool] = False

    def __init__(
        self, model: ModelSpec, *, cross_check: CrossCheck | bool = "auto", **kwargs: Any
    ) -> None:
        super().__init__(model, **kwargs)
        self.cross_check: CrossCheck = cross_check_mode(cross_check)
        # Only the empty gate: the judge's own gates ran first, and the check reads content.
        self._offline, self._cross_note = _cross_checker(
            self.cross_check,
            self.name,
            lambda: OfflineHarmGrader(name="harmless_offline", pregates=["empty"]),
        )

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        if self._offline is None:
            return await self._judged(fields, _noted(self._cross_note))
        texts = self._texts(fields)  # chat-message queries as the judge reads them
        offline_fields = {f: texts[f] for f in ("response", "query") if texts.get(f) is not None}
        judged, check = await asyncio.gather(
            super()._aevaluate(**fields),
            self._offline.aevaluate(**offline_fields),
            return_exceptions=True,
        )
        if isinstance(judged, Unscored) and isinstance(check, GraderScore | GraderError):
            if isinstance(check, GraderError) or check.score > 0.0:
                judged.metadata = {**judged.metadata, "cross_check": _check_note(check)}
                raise judged
            # min(anything, 0) = 0: the judge's failure cannot change the verdict.
            return GraderScore(
                name=self.name,
                score=0.0,
                reason=f"cross-check ({check.name}): {check.reason}; the judge failed "
                f"({judged.kind}), but no verdict could raise the minimum above 0",
                metadata={
                    "gate": "harm_cross_check",  # decided without a verdict, as a gate does
                    "cross_check": {**_check_note(check), "decided": True},
                    "judge_error": judged.kind,
                },
            )
        if isinstance(judged, BaseException):
            raise judged
        if isinstance(check, BaseException):
            raise check
        if "pregate" in judged.metadata:
            return judged
        return min_cross_check(judged, check, name=self.name)


RELEVANCE_CROSS_CHECK_COSINE = 0.12
"""Query-response MiniLM cosine below which :class:`RelevanceGrader` scores 0 without asking the
judge. Off-topic answers measure -0.07 to 0.11 (``tests/data/judge_labelled.jsonl`` and the
model survey), on-topic ones 0.50 and up; partial answers sit between and go to the judge."""

RELEVANCE_CROSS_CHECK_MIN_WORDS = 6
"""Responses with fewer words are not cross-checked: "Yes.", "Both." or "Sure, it is." are
right answers whose embeddings say little about the question (cosines 0.08 to 0.15)."""

_WORD_RE = re.compile(r"\w+")


def relevance_cross_check_skip(query: str, response: str) -> str | None:
    """Why the embedding cross-check cannot judge this pair, or ``None`` when it can."""
    words = len(_WORD_RE.findall(response))
    if words < RELEVANCE_CROSS_CHECK_MIN_WORDS:
        return (
            f"the response has {words} word(s) (< {RELEVANCE_CROSS_CHECK_MIN_WORDS}): too short "
            "for embeddings to judge its topic"
        )
    if not (is_english(query) and is_english(response)):
        return (
            "not English: MiniLM is an English model and does not judge topic in other "
            "languages or across them"
        )
    return None


@grader
class RelevanceGrader(_NamedJudge):
    """How relevant the response is to the query (on topic, addresses what was asked).

    Fields: ``query``, ``response``. Other arguments as :class:`~graders._judge.LLMGrader`.

    Cross-checked by default against embedding relevance: after the pre-gates, an English
    response of at least :data:`RELEVANCE_CROSS_CHECK_MIN_WORDS` words whose MiniLM cosine to
    the query is below :data:`RELEVANCE_CROSS_CHECK_COSINE` is off-topic, and scores 0.0 with
    the reason ``cross-check: off-topic by embeddings`` and ``metadata["gate"] =
    "relevance_cross_check"``, without a judge call: a gullible judge cannot pass an off-topic
    answer. Shorter or non-English pairs go to the judge alone, and ``metadata["cross_check"]``
    says why (MiniLM is English-only). Every judged result carries the cosine there too. With
    the ``keyword_stuffing`` gate on, a response on topic only through the query's words
    stuffed around off-topic prose (:func:`~graders._similarity.query_word_stuffing`) scores
    ``pregate_score`` the same way, with ``cross_check.stuffing``.

    Args:
        cross_check: ``"auto"`` (default: on whenever the ``local`` extra is installed; without
            it a warning, once, and ``cross_check.ran = false`` in every result's metadata),
            ``"required"`` (a missing extra is a config error) or ``"off"``.
    """

    default_name: ClassVar[str] = "relevance"
    default_template: ClassVar[str] = "relevance"

    def __init__(
        self, model: ModelSpec, *, cross_check: CrossCheck | bool = "auto", **kwargs: Any
    ) -> None:
        super().__init__(model, **kwargs)
        self.cross_check: CrossCheck = cross_check_mode(cross_check)
        self._embedder, self._cross_note = _cross_checker(self.cross_check, self.name, Embedder)

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        if self._embedder is None:
            return await self._judged(fields, _noted(self._cross_note))
        texts = self._texts(fields)
        query = texts["query"] or ""
        response, gate_fields = self._gate_view(texts)
        if first_gate_hit(self.pregates, response, gate_fields) is not None:
            return await self._judged(fields)  # the pre-gate's own result
        skip = relevance_cross_check_skip(query, response)
        if skip is not None:
            return await self._judged(fields, _noted({"ran": False, "reason": skip}))
        try:
            cos = await self._embedder.asimilarity(query, response)
        except EmbedderUnavailable as exc:
            note = cross_check_unavailable(self.cross_check, self.name, str(exc))
            return await self._judged(fields, _noted(note))
        except ValueError as exc:  # no direction (a non-finite embedding): the judge decides
            note = {"ran": False, "reason": f"the embeddings failed: {exc}"}
            return await self._judged(fields, _noted(note))
        note = {
            "ran": True,
            "grader": "relevance_embedding",
            "cosine": round(cos, 6),
            "threshold": RELEVANCE_CROSS_CHECK_COSINE,
            "decided": cos < RELEVANCE_CROSS_CHECK_COSINE,
        }
        if cos < RELEVANCE_CROSS_CHECK_COSINE:
            return GraderScore(
                name=self.name,
                score=0.0,
                reason=(
                    f"cross-check: off-topic by embeddings (query-response cosine {cos:.3f} < "
                    f"{RELEVANCE_CROSS_CHECK_COSINE:g}); the judge was not asked"
                ),
                metadata={"gate": "relevance_cross_check", "cross_check": note},
            )
        stuffed = (
            await query_word_stuffing(self._embedder, query, response, cos)
            if any(isinstance(g, KeywordStuffingGate) for g in self.pregates)
            else None
        )
        if stuffed is not None:
            return GraderScore(
                name=self.name,
                score=self.pregate_score,
                reason=(
                    "cross-check: keyword stuffing, on topic only through the query's words "
                    f"(without them the query cosine falls from {stuffed['whole_cosine']:.3f} "
                    f"to {stuffed['rest_cosine']:.3f}); the judge was not asked"
                ),
                metadata={
                    "gate": "relevance_cross_check",
                    "cross_check": {**note, "decided": True, "stuffing": stuffed},
                },
            )
        return await self._judged(fields, _noted(note))


def _check_note(check: GraderScore | GraderError) -> dict[str, Any]:
    if isinstance(check, GraderError):
        return {"ran": False, "grader": check.name, "error": check.kind, "reason": check.error}
    return {"ran": True, "grader": check.name, "score": check.score, **check.metadata}


def _noted(note: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a judged score adds to its metadata for the cross-check's ``note``: the note as
    ``cross_check``, last (nothing when there is no note). A pre-gate's result takes none: the
    gate decided, not the judge (see ``LLMGrader._judged``)."""
    return None if note is None else {"cross_check": note}


@grader
class CorrectnessGrader(_NamedJudge):
    """How correct the response is against a reference answer: by rule where the reference is
    checkable, by the judge elsewhere.

    Fields: ``response``, ``reference_response``; optional ``query``. Other arguments as
    :class:`~graders._judge.LLMGrader`.

    Verifiable first (``verify="auto"``, the default): when the reference is a choice letter, a
    number, a math expression or a short string, the response's final answer is read and
    compared by rule (:mod:`graders._verify`), and the judge is asked only where the rule cannot
    decide. A verifiably wrong or hedged final answer scores 0.0 however gullible the judge: a
    judge cannot be talked into rescuing it, because it is never asked. Math is checked by
    math-verify in :class:`~graders._math.MathGrader`'s worker pool; a math check that times out
    or fails is unscored, never handed to the judge.

    The pre-gates run first, as for every named judge. Metadata says which path decided:
    ``decided_by`` is ``rule:number``, ``rule:choice``, ``rule:math``, ``rule:exact`` or
    ``judge``, with ``reference_kind``, ``reference_answer``, ``final_answer`` (and
    ``final_answers`` when several were read, e.g. hedging), ``answer_source``, and, on the judge
    path, ``rule`` (why the rule could not decide). A rule's 1.0 for an answer that is the
    query's own expression written back (``17 \\times 23`` for "What is 17 * 23?") is a 0.0 with
    ``echo`` in the metadata (:mod:`graders._math_echo`): math-verify finds them equal.

    Args:
        verify: ``"auto"`` (rule where it can decide, judge otherwise), ``"never"`` (the judge
            always: the behaviour before verification existed) or ``"only"`` (the rule only:
            where it cannot decide the result is unscored, ``invalid_input`` for a prose
            reference and ``unparseable`` for a response the rule cannot read, and no judge is
            called).
    """

    default_name: ClassVar[str] = "correctness"
    default_template: ClassVar[str] = "correctness"
    default_optional_fields: ClassVar[tuple[str, ...]] = ("query",)

    def __init__(self, model: ModelSpec, *, verify: Verify = "auto", **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        allowed = get_args(Verify)
        if verify not in allowed:
            raise ConfigError(
                f"verify must be one of {', '.join(map(repr, allowed))}, got {verify!r}"
            )
        self.verify: Verify = verify
        self._math = MathGrader(name=f"{self.name}.verify")

    def _prepare_read(
        self, read: Sequence[tuple[dict[str, str | None], str, dict[str, str]]]
    ) -> None:
        """After the pre-gates (as every judge), the rule's decisions on the records they pass
        (:func:`~graders._verify.decide_ahead`), for the calls to find."""
        if self.verify == "never":
            return
        for texts, response, gate_fields in read:
            try:
                if first_gate_hit(self.pregates, response, gate_fields) is None:
                    decide_ahead(response, texts["reference_response"] or "")
            except Exception:  # the record's own call reports it
                continue

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        if self.verify == "never":
            return await super()._aevaluate(**fields)
        texts = self._texts(fields)
        response, gate_fields = self._gate_view(texts)
        if first_gate_hit(self.pregates, response, gate_fields) is not None:
            return await super()._aevaluate(**fields)  # the gate's own result
        ref, decision = await decide(response, texts["reference_response"] or "", self._math)
        meta: dict[str, Any] = {
            "reference_kind": ref.kind,
            "reference_answer": clip(ref.answer, _ANSWER_LIMIT),
        }
        if decision.answers:
            meta["final_answer"] = clip(decision.answers[-1], _ANSWER_LIMIT)
        if len(decision.answers) > 1:
            meta["final_answers"] = [clip(a, _ANSWER_LIMIT) for a in decision.answers]
        if decision.source:
            meta["answer_source"] = decision.source
        if decision.score is not None:
            score, reason = decision.score, decision.reason
            echo = (
                echo_of_query(
                    decision.answers[-1],
                    texts.get("query"),
                    (ref.answer, texts["reference_response"] or ""),
                )
                if score == 1.0 and decision.answers
                else None
            )
            if echo is not None:
                score, reason, meta["echo"] = 0.0, echo, True
            return scored(self.name, score, reason, {"decided_by": decision.path, **meta})
        if self.verify == "only":
            raise Unscored(
                f"verify='only': the rule cannot decide: {decision.reason}",
                kind="invalid_input" if ref.kind == "prose" else "unparseable",
                decided_by=decision.path,
                **meta,
            )
        meta = {"decided_by": "judge", "rule": decision.reason, **meta}
        try:
            result, call = await self._ask(self._defang(texts))
            verdict = self._parse(result, call, response)
        except Unscored as exc:
            exc.metadata = {**exc.metadata, **meta}
            raise
        return self._score(verdict, result, call, meta)  # the rule's metadata last


@grader
class InstructionFollowingGrader(_NamedJudge):
    """How well the response follows an explicit instruction and its constraints.

    Fields: ``instruction``, ``response``; optional ``query``. Other arguments as
    :class:`~graders._judge.LLMGrader`.
    """

    default_name: ClassVar[str] = "instruction_following"
    default_template: ClassVar[str] = "instruction_following"
    default_optional_fields: ClassVar[tuple[str, ...]] = ("query",)
