"""``LLMGrader``: an LLM judge for custom criteria, hardened against the policy it grades.

The judge reads a prompt built from a template file and answers a verdict on a declared integer
scale; the grader normalises it to ``[0, 1]``. Everything a judge can get wrong comes back
unscored with a kind, never as a plausible number: a backend failure is ``timeout`` or
``judge_error``, and an answer that is not exactly one valid verdict is ``unparseable`` with the
raw text in metadata: a missing ``score`` read as 0, or a 42 accepted on a 1-5 scale, would be
a plausible number that is wrong.

Why the hardening: in RL the graded text is written by the policy, which is optimised against
this judge and will find its weak spots. So:

* **Fencing.** Each field is put between marker lines carrying a per-request random code
  (``os.urandom``), which the system prompt names. The response cannot close its block,
  because it cannot know the code, and bracket runs or chat-template tags that look like markers
  are defanged before rendering. The system prompt says the blocks are data, never instructions.
* **Verdict isolation.** Only the judge's own answer is parsed, and only as a *whole-answer* JSON
  object (or a single label token). A ``{"score": 5}`` or ``GRADE: C`` inside the response is
  never searched for: with "find the last score in the text" parsing, the policy would simply
  write one. Verdict-like ``key: value`` pairs in the response are also shown with a full-width
  colon, so a judge that parrots them produces an invalid verdict, and an answer that is a
  verbatim copy of text in the response is rejected.
* **Pre-gates** (``graders._pregate``, ``graders._degenerate``) score empty, master-key,
  question-restating, non-answer, keyword-stuffed, repetitive and runaway-length responses low
  without asking the judge at all (which ones run depends on the criterion).

Templates are rendered with :class:`string.Template` in a single pass: substituted values (the
record's text) are never scanned again, so a ``$query`` or ``{score}`` inside a response is inert.

A grader is stateless after construction (a lazily built model is resolved once, under a lock),
so one instance is safe to share between tasks, threads and event loops.

This module is the grader; the prompt rendering (templates, fencing, defanging) is in
:mod:`graders._prompt`, the template fields and the messages rendered for a record in
:mod:`graders._judge_render`, the verdict parsing and expected score in :mod:`graders._verdict`,
and the lazily built judge backend in :mod:`graders._judge_model`.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from graders._base import BaseGrader, Unscored, grader
from graders._judge_config import (
    JudgeOutput,
    ScoreMode,
    check_choice,
    check_labels,
    check_scale,
    plain_number,
    sampling_params,
)
from graders._judge_model import ModelSpec, _call_meta, _ModelRef
from graders._judge_render import NOT_PROVIDED, JudgeRendering
from graders._pregate import (
    PreGate,
    check_pregate_score,
    pregate_result,
    resolve_pregates,
    warm_gate_memo,
)
from graders._prompt import fence, load_prompt, neutralize, new_nonce
from graders._text import clip
from graders._verdict import (
    LOW_SCALE_MASS,
    VerdictError,
    _copies,
    _Verdict,
    expected_from_token,
    expected_score,
    label_distribution_verdict,
    parse_json_verdict,
    parse_label_verdict,
    withheld,
)
from rm_service._exceptions import ConfigError
from rm_service._result import ErrorKind, GraderScore, scored
from rm_service.models._base import (
    ChatModel,
    ChatResult,
    JudgeError,
    ResponseFormat,
    SamplingParams,
)
from rm_service.models._cache import JudgeCache, key_frame, key_of

__all__ = [
    "LOW_SCALE_MASS",
    "NOT_PROVIDED",
    "JudgeOutput",
    "LLMGrader",
    "ModelSpec",
    "ScoreMode",
    "VerdictError",
    "expected_from_token",
    "fence",
    "load_prompt",
    "neutralize",
    "new_nonce",
    "parse_json_verdict",
    "parse_label_verdict",
]

_KEY_NONCE = "0" * 16  # the nonce used when rendering the cache key; see _ask
_RAW_LIMIT = 2000


# --- the grader ----------------------------------------------------------------------------------


@grader
class LLMGrader(JudgeRendering, BaseGrader):
    """A judge model scores the response against a rubric; the verdict is normalised to [0, 1].

    The judge answers ``{"reason": ..., "score": n}`` on ``scale`` (``output="json"``) or a single
    label (``output="label"``, for small local models). ``score = (n - lo) / (hi - lo)``, flipped
    when ``higher_is_better=False`` (a harm scale: 1.0 then means harmless).

    Fields: every ``$name`` in the template except ``$rubric``, ``$scale_min``, ``$scale_max`` and
    ``$labels`` is a record field, required unless listed in ``optional_fields`` (an absent
    optional field renders as ``(not provided)``). The template must use ``$response``.

    ``score_mode="expected"`` asks for logprobs and scores the probability-weighted mean over the
    scale tokens at the position where the score was written (the value after ``"score":`` in
    JSON mode, the label's first token in label mode), renormalised over the scale tokens among the
    alternatives. Without logprobs it falls back to the sampled score and says so
    (``metadata["score_mode"] = "sampled_fallback"`` and ``"fallback_reason"``); a scale mass
    under :data:`LOW_SCALE_MASS` sets ``metadata["low_scale_mass"]``.

    A reasoning judge's ``<think>...</think>`` block before its verdict (JSON or label) is skipped
    unread; only what follows it is the verdict.

    Results: unscored ``timeout`` (:class:`JudgeTimeout`), ``judge_error`` (any other
    :class:`JudgeError`, with its message, or an answer a content filter withheld) or
    ``unparseable`` (with the judge's raw answer, truncated, in ``metadata["raw"]``). Metadata
    always has ``model``, ``usage`` (``prompt_tokens``/``completion_tokens``), ``latency_s``,
    ``attempts`` and ``cached``. A pre-gate hit is a real score:
    ``GraderScore(pregate_score, "pre-gate: ...")`` with ``metadata["pregate"]``, and no judge
    call.

    Args:
        model: the judge backend, or a zero-argument callable returning one (built on first use,
            once, under a lock).
        template: the user-message template: a bundled prompt name (``"generic"``,
            ``"relevance"``...), a ``Path`` to a file, or the template text (``$field``
            placeholders; ``$$`` for a dollar sign).
        rubric: text for the template's ``$rubric`` (required when the template has one).
        scale: the judge's integer scale ``(lo, hi)``.
        output: ``"json"`` (a reason, then the score) or ``"label"`` (one token).
        labels: label mode only: the allowed answers and their scale values (default the
            numbers of ``scale``), e.g. ``{"No": 0, "Yes": 1}`` with ``scale=(0, 1)``.
        response_format: what to ask the backend for, set explicitly, never guessed from the
            model name. Default ``"json_object"`` in JSON mode and ``"text"`` in label mode;
            ``"json_schema"`` sends a strict schema of the verdict.
        score_mode: ``"sampled"`` (the written score) or ``"expected"`` (see above).
        higher_is_better: ``False`` for scales where a high judge score is bad (harm).
        allow_float: accept a non-integer score in JSON mode.
        min_label_mass: label mode with ``score_mode="expected"`` only: when the sampled token is
            not a label, the verdict is read from the probabilities of the labels at that
            position if together they carry at least this much mass (a small local model often
            puts its top token elsewhere while still ranking the labels); below it the answer
            is unparseable, never a number.
        cache: a shared :class:`~rm_service.models.JudgeCache`; ``None`` for no caching.
        pregates: rule checks run before the judge (see ``graders._pregate``): gate objects, or
            built-in gate names as a YAML config spells them (``[empty, master_key]``); none by
            default. ``DEFAULT_PREGATES`` (or ``None``) stands for the criterion's default set,
            and a map edits it (``{length: false}``); see ``resolve_pregates``.
        pregate_score: the score of a gated response.
        optional_fields: template fields that may be absent.
        untrusted_fields: fields written by the policy; their verdict-like text is defanged too
            (every field is fenced and has marker lookalikes defanged).
        system_template: the system-message template (``$nonce``, ``$output_format``).
        temperature, max_tokens, top_logprobs, seed: sampling; ``max_tokens`` defaults to 512 in
            JSON mode and 1 in label mode (the longest label's length when one label begins
            another, as ``1`` and ``10``); ``top_logprobs`` is used in expected mode only.
        sample_index: which independent sample this grader draws (committees set it): part of the
            cache key, and added to ``seed`` when a seed is set.
        name: the result name.

    Raises:
        ConfigError: a bad template, scale, label set or option combination.
    """

    default_name: ClassVar[str] = "llm_judge"
    takes_judge: ClassVar[bool] = True
    """Its ``model`` is a judge backend: a reward config hands it the shared one."""
    default_template: ClassVar[str] = "generic"
    default_optional_fields: ClassVar[tuple[str, ...]] = ()
    # Built on first use and rebuilt when what it was built from changes (see _key_frame).
    _frame: tuple[tuple[str, str, SamplingParams], tuple[str, str]]

    def __init__(
        self,
        model: ModelSpec,
        *,
        template: str | Path | None = None,
        rubric: str = "",
        scale: tuple[int, int] = (1, 5),
        output: JudgeOutput = "json",
        labels: Mapping[str, int] | None = None,
        response_format: ResponseFormat | None = None,
        score_mode: ScoreMode = "sampled",
        higher_is_better: bool = True,
        allow_float: bool = False,
        min_label_mass: float = LOW_SCALE_MASS,
        cache: JudgeCache | None = None,
        pregates: Iterable[PreGate] = (),
        pregate_score: float = 0.0,
        optional_fields: Iterable[str] | None = None,
        untrusted_fields: Iterable[str] = ("response",),
        system_template: str | Path = "system",
        temperature: float = 0.0,
        max_tokens: int | None = None,
        top_logprobs: int = 20,
        seed: int | None = None,
        sample_index: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self._model_ref = _ModelRef(model)
        self.scale = check_scale(scale)
        check_choice("output", output, JudgeOutput)
        check_choice("score_mode", score_mode, ScoreMode)
        self.output: JudgeOutput = output
        self.score_mode: ScoreMode = score_mode
        self.higher_is_better = bool(higher_is_better)
        self.allow_float = bool(allow_float)
        if not 0.0 < min_label_mass <= 1.0:
            raise ConfigError(f"min_label_mass must be in (0, 1], got {min_label_mass!r}")
        self.min_label_mass = float(min_label_mass)
        self.labels = check_labels(self.scale, output, labels)
        self.cache = cache
        self.pregates: tuple[PreGate, ...] = resolve_pregates(
            pregates, criterion=type(self).default_name
        )
        self.pregate_score = check_pregate_score(pregate_score)
        self.untrusted_fields = frozenset(untrusted_fields)
        self.sample_index = int(sample_index)
        self.rubric = rubric
        self._init_templates(
            template if template is not None else self.default_template,
            system_template,
            optional_fields,
        )
        self._base_seed = None if seed is None else int(seed)
        self.params = sampling_params(
            output=output,
            expected=score_mode == "expected",
            allow_float=self.allow_float,
            scale=self.scale,
            response_format=response_format,
            temperature=temperature,
            max_tokens=max_tokens,
            top_logprobs=top_logprobs,
            seed=None if seed is None else int(seed) + self.sample_index,
            labels=self.labels,
        )

    def __repr__(self) -> str:
        model = self._model_ref.name or "<lazy>"
        return f"{type(self).__name__}(name={self.name!r}, model={model!r}, scale={self.scale})"

    # -- model --

    @property
    def model(self) -> ChatModel:
        """The judge backend, built now if it was given as a factory.

        Raises:
            JudgeError: the factory failed or returned something that is not a ChatModel.
        """
        return self._model_ref.get()

    @property
    def judge_identity(self) -> list[Any]:
        """What the judge is (backend, model, endpoint), without building it."""
        return self._model_ref.identity

    def with_sample_index(self, sample_index: int) -> LLMGrader:
        """A copy that draws independent sample ``sample_index`` (for committees).

        The copy shares the model (and a lazy model's one-time construction), the cache and every
        setting; only its cache key and its seed (when one is set) differ.
        """
        clone = copy.copy(self)
        clone.sample_index = int(sample_index)
        seed = self._base_seed
        clone.params = dataclasses.replace(
            self.params, seed=None if seed is None else seed + clone.sample_index
        )
        return clone

    def judges(self) -> Iterator[ChatModel]:
        """The judge backend if it is built already: never built here (see ``GraderContract``)."""
        built = self._model_ref._model
        if built is not None:
            yield built

    async def aload(self) -> None:
        """Build the judge backend now (if given as a factory) and load its model, if it has one
        to load (an embedded judge); a remote judge's client needs nothing."""
        model = await asyncio.to_thread(lambda: self.model)
        aload, load = getattr(model, "aload", None), getattr(model, "load", None)
        if callable(aload):  # ChatModel requires neither: an embedded model has them
            await aload()
        elif callable(load):
            await asyncio.to_thread(load)

    async def aclose(self) -> None:
        """Close the judge backend's client on this loop and the cache's SQLite file (both
        reopen on next use); a backend not built yet is left unbuilt."""
        for model in self.judges():
            close = getattr(model, "aclose", None)  # ChatModel does not require one
            if close is not None:
                await close()
        if self.cache is not None:
            self.cache.close()

    # -- grading --

    def prepare_ahead(self, batch: Sequence[Mapping[str, Any]]) -> None:
        """Compute the pre-gates' verdicts on a few upcoming records together, gate by gate
        (:func:`~graders._pregate.warm_gate_memo`): their calls then find them memoised. The
        runner calls this before their calls start. Why: the gates are most of a judge call's
        own CPU, and run one record at a time, between the other calls' HTTP and parsing, each
        starts on cold CPU caches. A record this cannot read is left for its call to report.
        """
        read: list[tuple[dict[str, str | None], str, dict[str, str]]] = []
        for fields in batch:
            try:
                texts = self._texts(self._select(fields))
            except Exception:  # the record's own call reports it
                continue
            read.append((texts, *self._gate_view(texts)))
        warm_gate_memo([(self.pregates, response, gates) for _, response, gates in read])
        self._prepare_read(read)

    def _prepare_read(
        self, read: Sequence[tuple[dict[str, str | None], str, dict[str, str]]]
    ) -> None:
        """What a judge prepares ahead beyond its gates, from the records as
        :meth:`prepare_ahead` read them (texts, response, the gates' fields): nothing here."""

    @staticmethod
    def _gate_view(texts: Mapping[str, str | None]) -> tuple[str, dict[str, str]]:
        """The response and the fields the pre-gates read, from :meth:`_texts`."""
        return texts["response"] or "", {k: v for k, v in texts.items() if v is not None}

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        return await self._judged(fields)

    async def _judged(
        self, fields: Mapping[str, Any], extra: Mapping[str, Any] | None = None
    ) -> GraderScore:
        """The pre-gates' result, else the judge's score with ``extra`` last in its metadata.

        Why ``extra`` here: a named judge notes its cross-check on the score, and adding it to
        the score once built was a second model (a ``model_copy``) on every call."""
        texts = self._texts(fields)
        response, gate_fields = self._gate_view(texts)
        gated = pregate_result(
            self.pregates, response, gate_fields, name=self.name, score=self.pregate_score
        )
        if gated is not None:
            return gated
        result, meta = await self._ask(self._defang(texts))
        verdict = self._parse(result, meta, response)
        return self._score(verdict, result, meta, extra)

    async def _ask(self, safe: Mapping[str, str | None]) -> tuple[ChatResult, dict[str, Any]]:
        started = time.perf_counter()
        model_name = "<unresolved>"
        try:
            model = self.model
            model_name = str(model.model)
            messages = self._messages(safe, new_nonce(), wire=True)
            if self.cache is None:
                result = await model.achat(messages, self.params)
            else:
                # The key is rendered with a fixed nonce: the answer does not depend on the
                # random code, and a random code in the key would make every lookup a miss.
                key = key_of(self._key_frame(model), self._messages(safe, _KEY_NONCE))
                result = await self.cache.get_or_call(
                    key, lambda: model.achat(messages, self.params), keep=self._parses
                )
        except (JudgeError, TimeoutError) as exc:
            meta = _call_meta(model_name, None, started, getattr(exc, "attempts", 1))
            raise Unscored.backend_failed(exc, "judge", **meta) from None
        return result, _call_meta(model_name, result, started, result.attempts)

    def _key_frame(self, model: Any) -> tuple[str, str]:
        """This grader's cache-key frame (``key_frame``), built once per namespace, backend and
        sampling parameters: a copy with another sample index or params gets its own.

        The backend is its model name, endpoint and ``extra_body``: two servers serving one
        model name (vLLM's ``--served-model-name``, a default like ``gpt-4o-mini``) shared
        verdicts through a shared cache, and ``extra_body`` can override sampling fields. A
        backend with a ``cache_identity`` (a local model: its weights) is named by that.
        """
        extra = getattr(model, "extra_body", None)
        identity = getattr(model, "cache_identity", None)  # a local model: its weights
        backend = json.dumps(
            identity
            if identity is not None
            else [str(model.model), getattr(model, "base_url", None), extra],
            sort_keys=True,
            ensure_ascii=False,
            default=repr,
        )
        ident = (self._cache_namespace, backend, self.params)
        cached = self.__dict__.get("_frame")
        if cached is None or cached[0] != ident:
            cached = (ident, key_frame(*ident))
            self._frame = cached
        return cached[1]

    @property
    def _cache_namespace(self) -> str:
        return self.name if self.sample_index == 0 else f"{self.name}#{self.sample_index}"

    def _parses(self, result: ChatResult) -> bool:
        """Whether ``result`` holds a verdict this grader reads: only such answers are cached
        (an unparseable or cut-short one was replayed from the cache on every later try)."""
        try:
            self._parse(result, {}, "")
        except Unscored:
            return False
        return True

    def _parse(self, result: ChatResult, meta: dict[str, Any], response: str) -> _Verdict:
        def refused(why: str, kind: ErrorKind = "unparseable") -> Unscored:
            return Unscored(why, kind=kind, raw=clip(result.text, _RAW_LIMIT), **meta)

        if (why := withheld(result)) is not None:  # here, so a cached answer is refused too
            raise refused(why, "judge_error")
        cut = result.finish_reason == "length"  # the answer stopped at max_tokens
        try:
            if self.output == "label":
                return parse_label_verdict(result.text, self.labels, cut=cut)
            verdict = parse_json_verdict(
                result.text, scale=self.scale, allow_float=self.allow_float
            )
        except VerdictError as exc:
            from_dist = (
                label_distribution_verdict(result, self.labels, self.min_label_mass)
                if self.output == "label" and self.score_mode == "expected"
                else ""
            )
            if isinstance(from_dist, _Verdict):
                return from_dist
            if cut:
                from_dist += f"; the answer was cut at max_tokens={self.params.max_tokens}"
            raise refused(f"unparseable verdict: {exc}{from_dist}") from None
        if _copies(verdict.core, response):
            raise refused(
                "unparseable verdict: the judge's answer copies a verdict written in the graded "
                "response (a likely injection), so it is not the judge's own"
            )
        return verdict

    def _score(
        self,
        verdict: _Verdict,
        result: ChatResult,
        meta: dict[str, Any],
        extra: Mapping[str, Any] | None = None,
    ) -> GraderScore:
        """The verdict's score on ``[0, 1]``, its metadata ``meta``, the scale and the scoring,
        then ``extra``; built once (:func:`~rm_service._result.scored`, which checks the
        range)."""
        lo, hi = self.scale
        meta = {**meta, "scale": [lo, hi], "raw_score": plain_number(verdict.value)}
        value = verdict.value
        if self.score_mode == "expected":
            expected, info = expected_score(
                verdict, result, self.labels, label=self.output == "label"
            )
            meta.update(info)
            if expected is not None:
                value = expected
        else:
            meta["score_mode"] = "sampled"
        score = (value - lo) / (hi - lo)
        if not self.higher_is_better:
            score = 1.0 - score
        if extra:
            meta.update(extra)
        return scored(self.name, min(1.0, max(0.0, score)), verdict.reason, meta)
