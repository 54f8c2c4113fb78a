"""Embedding graders: ``SimilarityGrader`` (response vs reference) and ``EmbeddingRelevanceGrader``.

Both take the cosine of two MiniLM sentence embeddings (see :class:`rm_service.models._embed.
Embedder`) and map it to ``[0, 1]`` with one piecewise-linear rule::

    score = 0                              if cos <= low
          = (cos - low) / (high - low)     if low < cos < high
          = 1                              if cos >= high

The raw cosine is always in the result's metadata, so a caller can re-map it.

Why not ``(cos + 1) / 2``: MiniLM cosines of unrelated English texts sit near 0 (about -0.05 to
0.15), and negative values are rare and mean nothing more than "unrelated". The shift would give
an off-topic answer about 0.5, half the reward of a perfect one, and squeeze every real
difference into the top half. Clamping keeps "unrelated" at 0.

Embeddings capture *topic*, not truth or stance: a wrong answer on the right topic scores high on
both graders. They are the cheap offline signal, not a judge.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Any, ClassVar

from graders._base import BaseGrader, Unscored, grader
from graders._degenerate import KeywordStuffingGate, keyword_frame
from graders._pregate import PreGate, grader_pregates, pregate_result
from graders._text import as_text
from graders._verify_reference import OFFLOAD_CHARS
from rm_service._exceptions import ConfigError
from rm_service._result import GraderScore
from rm_service.models._embed import Embedder, EmbedderUnavailable, default_model_path

__all__ = [
    "RELEVANCE_HIGH",
    "RELEVANCE_LOW",
    "STUFFED_FRAME_MAX",
    "EmbeddingRelevanceGrader",
    "SimilarityGrader",
    "cosine_to_score",
    "query_word_stuffing",
]

RELEVANCE_LOW = 0.15
"""Query-response cosine at and below which relevance scores 0.

Measured with ``bench/local_judges.py``: the 10 off-topic answers of
``tests/data/judge_labelled.jsonl`` had cosines of -0.06 to 0.08 (another hand-made set of 10,
in the project's model survey: -0.04 to 0.11), so 0.15 sits just above both."""

RELEVANCE_HIGH = 0.45
"""Query-response cosine at and above which relevance scores 1.

The 10 on-topic answers measured 0.52 to 0.71 (the survey's set: 0.50 to 0.88, its weakest a
procedural how-to), so the ramp ends a little below them. Answers that touch the topic only in
part land on the ramp; the midpoint, score 0.5, is a cosine of 0.30."""


STUFFED_FRAME_MAX = 0.25
"""Query cosine of a response's own prose (:func:`~graders._degenerate.keyword_frame`) at and
below which the query's words stuffed around it are all that made it relevant.

Measured on the attacks of ``tests/data/judge_attacks.jsonl`` (keyword-stuffing-02, -03, -05)
and six more of the kind: their prose scored -0.09 to 0.16 (a pancake recipe under "French
Revolution causes:" the highest). The honest answers with such labels or lists (the controls
there, ``judge_labelled.jsonl``, ``harm_labelled.jsonl``, ``examples/chat_sample.jsonl`` and 25
written for this: lists of pets, symptoms, ingredients, languages, in four languages) kept
0.44 or more: they use the query's words in their sentences, and those stay. The cut sits a
third of the way up the relevance ramp."""

STUFFED_MIN_DROP = 0.2
"""How far the query cosine must fall without the labels and lists: the removed words carried
the relevance (the attacks fell 0.45 to 0.63)."""

STUFFED_MIN_WORDS = 5
"""The fewest content words the rest must hold: fewer is a terse answer under a label
("Dehydration symptoms: thirst, dry mouth"), whose cosine alone says little."""


async def query_word_stuffing(
    embedder: Embedder, query: str, response: str, whole: float | None = None
) -> dict[str, Any] | None:
    """Why ``response`` is on the query's topic only through the query's own words, or ``None``.

    Why: an embedding reads topic, and the query's words are the topic, wherever they stand.
    Off-topic text under a label of the query's words, with a list of them inside, scored
    relevance 1.0 (unsloth issue #2690: keyword-overlap rewards get hacked this way in GRPO).
    The :class:`~graders._degenerate.KeywordStuffingGate` reads only runs of bare keywords, so
    sentences around the list walked past it. Here the response's labels and lists of the
    query's words come out (:func:`~graders._degenerate.keyword_frame`); when what is left is
    prose (:data:`STUFFED_MIN_WORDS`) that is off topic (:data:`STUFFED_FRAME_MAX`) although the
    whole response was on it (cosine above :data:`RELEVANCE_LOW`, :data:`STUFFED_MIN_DROP`
    higher), the response is stuffing. Returns what the verdict rests on: the cosines of the
    whole response and of the rest, the rest, and what was removed. One more embedding, only
    for responses with such labels or lists; ``whole``: the response's query cosine, where the
    caller has it already.

    Raises:
        EmbedderUnavailable, ValueError: as :meth:`Embedder.asimilarity`.
    """
    if len(response) + len(query) > OFFLOAD_CHARS:  # keep the event loop free on long texts
        frame = await asyncio.to_thread(keyword_frame, query, response)
    else:
        frame = keyword_frame(query, response)
    if frame is None or frame.words < STUFFED_MIN_WORDS:
        return None
    if whole is None:
        whole = await embedder.asimilarity(query, response)
    if whole <= RELEVANCE_LOW:
        return None  # off topic with the keywords too: the cosine says so already
    rest = await embedder.asimilarity(query, frame.text)
    if rest > STUFFED_FRAME_MAX or whole - rest < STUFFED_MIN_DROP:
        return None
    return {
        "whole_cosine": round(whole, 6),
        "rest_cosine": round(rest, 6),
        "rest": frame.text,
        "removed": list(frame.removed),
    }


def cosine_to_score(cos: float, low: float, high: float) -> float:
    """The piecewise-linear map: 0 at or below ``low``, 1 at or above ``high``, linear between."""
    if cos <= low:
        return 0.0
    if cos >= high:
        return 1.0
    return (cos - low) / (high - low)


class _EmbeddingGrader(BaseGrader):
    """Shared machinery: two fields, one cosine, one mapping, and the pre-gates before them.

    The gates run first (see :mod:`graders._pregate`): an embedding measures topic, so a copy of
    the question, a non-answer on the topic or a sentence repeated to fill the page would
    otherwise score as well as an answer. A gated response scores ``pregate_score`` with the
    reason and ``metadata["pregate"]``; the model is not called.

    With the ``keyword_stuffing`` gate on and a query in the record, a response relevant only
    through the query's words stuffed around off-topic prose (:func:`query_word_stuffing`) also
    scores ``pregate_score``, with the reason and ``metadata["stuffing"]``: the gate reads bare
    keyword runs, this check the same trick inside sentences, which needs the model.
    """

    pair: ClassVar[tuple[str, str]]
    optional_fields: tuple[str, ...] = ("query", "instruction")

    def __init__(
        self,
        *,
        low: float,
        high: float,
        model: str | os.PathLike[str] | None = None,
        pregates: Iterable[PreGate] | object = None,
        pregate_score: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not (-1.0 <= low < high <= 1.0):
            raise ConfigError(f"{self.name}: need -1 <= low < high <= 1, got {low=}, {high=}")
        self.pregates, self.pregate_score = grader_pregates(
            self.name, self.default_name, pregates, pregate_score
        )
        if model is None:
            try:  # cheap (no import): a missing install fails at config load, not per record
                default_model_path()
            except EmbedderUnavailable as exc:
                raise ConfigError(f"{self.name}: {exc}") from exc
        self.low = float(low)
        self.high = float(high)
        self.embedder = Embedder(model)
        self.checks_stuffing = any(isinstance(g, KeywordStuffingGate) for g in self.pregates)

    async def aload(self) -> None:
        """Load the embedding model now rather than on the first record."""
        await asyncio.to_thread(self.embedder.load)

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        first, second = self.pair
        a, b = as_text(fields[first], first), as_text(fields[second], second)
        if not a.strip():
            raise Unscored(f"field {first!r} is empty", kind="invalid_input")
        texts = {first: a, second: b}  # the gates also read the question, when there is one
        texts.update(
            (f, as_text(v, f)) for f in self.optional_fields if (v := fields.get(f)) is not None
        )
        gated = pregate_result(self.pregates, b, texts, name=self.name, score=self.pregate_score)
        if gated is not None:
            return gated
        meta: dict[str, Any] = {"low": self.low, "high": self.high, "model": self.embedder.model}
        if not b.strip():
            # An empty answer is a real verdict (it relates to nothing), not a failure to grade.
            return GraderScore(
                name=self.name, score=0.0, reason=f"{second} is empty", metadata=meta
            )
        query = texts.get("query", "")
        try:
            cos = await self.embedder.asimilarity(a, b)
            stuffed = (
                await query_word_stuffing(self.embedder, query, b, cos if a == query else None)
                if self.checks_stuffing and query.strip()
                else None
            )
        except (EmbedderUnavailable, ValueError) as exc:
            raise Unscored(str(exc), kind="internal") from exc
        if stuffed is not None:
            return GraderScore(
                name=self.name,
                score=self.pregate_score,
                reason=(
                    f"keyword stuffing: on topic only through the query's words "
                    f"({'; '.join(stuffed['removed'])[:120]!r}); without them the query cosine "
                    f"falls from {stuffed['whole_cosine']:.3f} to {stuffed['rest_cosine']:.3f}"
                ),
                metadata={"cosine": round(cos, 6), **meta, "stuffing": stuffed},
            )
        score = cosine_to_score(cos, self.low, self.high)
        return GraderScore(
            name=self.name,
            score=score,
            reason=f"cosine {cos:.3f} → {score:.2f} (0 at ≤ {self.low:g}, 1 at ≥ {self.high:g})",
            metadata={"cosine": round(cos, 6), **meta},
        )


@grader
class SimilarityGrader(_EmbeddingGrader):
    """Semantic similarity of the response to a reference answer, from MiniLM embeddings.

    The default mapping is the plain cosine clamped at 0 (``low=0, high=1``): identical meaning
    scores near 1, unrelated text 0. Raise ``low`` to stop paraphrase-level overlap of the topic
    from earning reward. It rewards saying *something like* the reference; it cannot tell a right
    number from a wrong one (use the math, number or string graders for that).

    A copy of the question would still be similar to the reference (same topic), so the
    pre-gates read the record's ``query`` (and ``instruction``) when it has one: map it in a
    config if the record names it otherwise. The query also lets it see the query's words
    stuffed around off-topic prose (:func:`query_word_stuffing`), which share the reference's
    topic words too.

    Args:
        low: cosine at and below which the score is 0.
        high: cosine at and above which the score is 1.
        model: a sentence-transformers model directory (default: the packaged all-MiniLM-L6-v2).
        pregates: the gates run first (see :func:`graders._pregate.resolve_pregates`); default
            :data:`~graders._pregate.DEFAULT_PREGATES` plus non-answer and length.
        pregate_score: the score of a gated response.
        name: the result name (default ``"similarity"``).
    """

    required_fields = ("response", "reference_response")
    default_name = "similarity"
    pair = ("reference_response", "response")

    def __init__(
        self,
        *,
        low: float = 0.0,
        high: float = 1.0,
        model: str | os.PathLike[str] | None = None,
        pregates: Iterable[PreGate] | object = None,
        pregate_score: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(
            low=low,
            high=high,
            model=model,
            pregates=pregates,
            pregate_score=pregate_score,
            name=name,
        )


@grader
class EmbeddingRelevanceGrader(_EmbeddingGrader):
    """Whether the response is on the query's topic, from MiniLM embeddings; offline, no LLM.

    The cosine of query and response goes through a calibrated ramp (:data:`RELEVANCE_LOW` to
    :data:`RELEVANCE_HIGH`): off-topic answers score 0, on-topic ones 1, and answers that touch
    the topic only partly land between. It measures topicality: an on-topic wrong answer still
    scores high. A response that restates the question, or only dodges it, is on topic too,
    which is why the pre-gates run first: a copy or near-copy of the query, a non-answer, keyword
    stuffing, degenerate repetition and a runaway length score 0 (see :mod:`graders._degenerate`).
    So does off-topic prose made relevant by the query's words stuffed around it, as a label and
    a list (:func:`query_word_stuffing`; on with the ``keyword_stuffing`` gate).

    Args:
        low: cosine at and below which the score is 0.
        high: cosine at and above which the score is 1.
        model: a sentence-transformers model directory (default: the packaged all-MiniLM-L6-v2).
        pregates: the gates run first (see :func:`graders._pregate.resolve_pregates`); default
            :data:`~graders._pregate.DEFAULT_PREGATES` plus non-answer and length.
        pregate_score: the score of a gated response.
        name: the result name (default ``"relevance_embedding"``).
    """

    required_fields = ("query", "response")
    default_name = "relevance_embedding"
    pair = ("query", "response")

    def __init__(
        self,
        *,
        low: float = RELEVANCE_LOW,
        high: float = RELEVANCE_HIGH,
        model: str | os.PathLike[str] | None = None,
        pregates: Iterable[PreGate] | object = None,
        pregate_score: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(
            low=low,
            high=high,
            model=model,
            pregates=pregates,
            pregate_score=pregate_score,
            name=name,
        )
