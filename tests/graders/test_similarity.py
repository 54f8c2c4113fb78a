"""Embedder, SimilarityGrader and EmbeddingRelevanceGrader on the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import asyncio
import json
import math
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a hub

from graders._base import get_grader
from graders._similarity import (
    RELEVANCE_HIGH,
    RELEVANCE_LOW,
    EmbeddingRelevanceGrader,
    SimilarityGrader,
    cosine_to_score,
)
from rm_service import ConfigError, GraderError, GraderScore
from rm_service.models import _embed
from rm_service.models._embed import Embedder, EmbedderUnavailable, cosine
from tests.support import embedding_model_missing

DATA = Path(__file__).resolve().parents[1] / "data" / "judge_labelled.jsonl"


_MISSING = embedding_model_missing()
needs_model = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))


# --- pure parts ----------------------------------------------------------------------------------


def test_cosine_helper() -> None:
    assert cosine([1.0, 0.0], [2.0, 0.0]) == pytest.approx(1.0)
    assert cosine([1.0, 0.0], [0.0, 3.0]) == pytest.approx(0.0)
    assert cosine([1.0, 1.0], [-1.0, -1.0]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="length"):
        cosine([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="zero vector"):
        cosine([0.0, 0.0], [1.0, 2.0])


@pytest.mark.parametrize(
    ("cos", "expected"),
    [(-0.3, 0.0), (0.15, 0.0), (0.30, 0.5), (0.45, 1.0), (0.9, 1.0)],
)
def test_piecewise_mapping(cos: float, expected: float) -> None:
    assert cosine_to_score(cos, 0.15, 0.45) == pytest.approx(expected)


def test_bad_ramp_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="low < high"):
        SimilarityGrader(low=0.5, high=0.5)
    with pytest.raises(ConfigError, match="low < high"):
        EmbeddingRelevanceGrader(low=-2.0)


def test_missing_model_package_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_embed, "_DEFAULT_PACKAGE", "no_such_package_for_rm_service")
    with pytest.raises(ConfigError, match=r"rm-service\[local\]"):
        SimilarityGrader()


async def test_missing_model_directory_is_unscored(tmp_path: Path) -> None:
    g = SimilarityGrader(model=tmp_path / "nope")
    r = await g.aevaluate(response="a", reference_response="b")
    assert isinstance(r, GraderError) and r.kind == "internal"
    assert "no sentence-transformers model directory" in r.error
    with pytest.raises(EmbedderUnavailable):
        Embedder(tmp_path / "nope").embed(["x"])


@needs_model
def test_registered_by_name() -> None:
    assert isinstance(get_grader("similarity"), SimilarityGrader)
    rel = get_grader("relevance_embedding", low=0.2, high=0.6)
    assert isinstance(rel, EmbeddingRelevanceGrader)
    assert (rel.low, rel.high, rel.name) == (0.2, 0.6, "relevance_embedding")
    assert (EmbeddingRelevanceGrader().low, 0.45) == (RELEVANCE_LOW, RELEVANCE_HIGH)


@needs_model
async def test_missing_and_bad_fields() -> None:
    sim, rel = SimilarityGrader(), EmbeddingRelevanceGrader()
    r = await sim.aevaluate(response="x")
    assert isinstance(r, GraderError) and r.kind == "invalid_input"
    assert "reference_response" in r.error
    r = await rel.aevaluate(response="x", query=None)
    assert isinstance(r, GraderError) and r.kind == "invalid_input"
    r = await rel.aevaluate(query=["not", "text"], response="x")
    assert isinstance(r, GraderError) and r.kind == "invalid_input"
    r = await rel.aevaluate(query="  ", response="x")  # nothing to compare against
    assert isinstance(r, GraderError) and r.kind == "invalid_input"
    # An empty answer is a verdict (it relates to nothing), scored without the model.
    r = await rel.aevaluate(query="Why is the sky blue?", response="")
    assert isinstance(r, GraderScore) and r.score == 0.0 and "empty" in r.reason


# --- with the packaged MiniLM --------------------------------------------------------------------


@needs_model
async def test_embedder_vectors() -> None:
    e = Embedder()
    vecs = await e.aembed(["The cat sat on the mat.", "A cat is sitting on a mat.", "Tax law"])
    assert len(vecs) == 3 and all(len(v) == 384 for v in vecs)
    assert all(math.isclose(math.hypot(*v), 1.0, abs_tol=1e-4) for v in vecs)  # normalised
    assert cosine(vecs[0], vecs[1]) > 0.7 > 0.2 > cosine(vecs[0], vecs[2])
    again = e.embed(["Tax law"])  # the LRU and a fresh encode agree
    assert again[0] == pytest.approx(vecs[2], abs=1e-5)
    assert await e.aembed([]) == []
    assert await e.asimilarity("same text", "same text") == pytest.approx(1.0, abs=1e-5)


@needs_model
async def test_similarity_grader_on_clear_pairs() -> None:
    g = SimilarityGrader()
    same = await g.aevaluate(
        response="Canberra is the capital of Australia.",
        reference_response="The capital of Australia is Canberra.",
    )
    other = await g.aevaluate(
        response="Cats sleep most of the day.",
        reference_response="The capital of Australia is Canberra.",
    )
    assert isinstance(same, GraderScore) and isinstance(other, GraderScore)
    assert same.score > 0.85 and other.score < 0.15
    assert same.score == pytest.approx(max(0.0, same.metadata["cosine"]), abs=1e-6)
    assert same.metadata["model"] == "all-MiniLM-L6-v2"
    assert same.name == "similarity" and "cosine" in same.reason


@needs_model
async def test_relevance_grader_separates_the_labelled_pairs() -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["criterion"] == "relevance"]
    assert len(rows) == 20
    g = EmbeddingRelevanceGrader()
    results = await asyncio.gather(*(g.aevaluate(**r) for r in rows))
    for row, result in zip(rows, results, strict=True):
        assert isinstance(result, GraderScore), result
        expected = 1.0 if row["label"] == "relevant" else 0.0
        assert result.score == expected, (row["id"], result.metadata["cosine"])


@needs_model
async def test_concurrent_calls_match_sequential_ones() -> None:
    # Concurrent calls are combined into shared encode batches; padding inside a batch must not
    # change the vectors beyond float noise. Texts are fresh and the LRU is cleared in between, so
    # both passes really encode.
    g = EmbeddingRelevanceGrader()
    pairs = [
        (f"How do I cook dish {i}?", f"Simmer dish {i} for {i * 7} minutes.") for i in range(12)
    ]
    sequential = [await g.aevaluate(query=q, response=r) for q, r in pairs]
    for shared in _embed._MODELS.values():
        shared.lru.clear()
    concurrent = await asyncio.gather(*(g.aevaluate(query=q, response=r) for q, r in pairs))
    for a, b in zip(concurrent, sequential, strict=True):
        assert isinstance(a, GraderScore) and isinstance(b, GraderScore)
        assert a.metadata["cosine"] == pytest.approx(b.metadata["cosine"], abs=1e-5)


@needs_model
async def test_many_records_in_flight_share_a_few_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every record in flight joins one queue, so 150 records (300 fresh texts) need a couple of
    # encodes, not one per worker thread's turn (the thread pool has only a handful of threads).
    e = Embedder()
    e.load()
    shared = e._shared()
    shared.lru.clear()
    calls: list[int] = []
    real = shared.st.encode

    def counting(texts: list[str], *args: object, **kwargs: object) -> object:
        calls.append(len(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(shared.st, "encode", counting)
    pairs = [
        (f"Question {i}: what is {i} + {i}?", f"It is {2 * i}, twice {i}.") for i in range(150)
    ]
    sims = await asyncio.gather(*(e.asimilarity(q, r) for q, r in pairs))
    assert sum(calls) == 300 and len(calls) <= 4, calls
    shared.lru.clear()
    one = [e.embed([q, r]) for q, r in pairs[:5]]  # one pair per encode, no batching
    assert sims[:5] == pytest.approx([cosine(a, b) for a, b in one], abs=1e-5)


@needs_model
async def test_a_lone_surrogate_is_embedded_and_fails_no_record_beside_it() -> None:
    """One record holding a lone surrogate (valid JSON) made the tokenizer raise, and every
    record sharing its encode batch came back unscored (``internal: TypeError``). It is read
    as U+FFFD, as a UTF-8 round trip reads it; the others are graded as they are alone."""
    g = EmbeddingRelevanceGrader()
    q = "How do I boil an egg so the yolk stays soft?"
    good = [f"Boil the egg for {n} minutes, then cool it in cold water." for n in (5, 6, 7)]
    alone = [await g.aevaluate(query=q, response=r) for r in good]
    for shared in _embed._MODELS.values():
        shared.lru.clear()
    results = await asyncio.gather(
        *(g.aevaluate(query=q, response=r) for r in [*good, "Boil \ud800 six minutes"])
    )
    assert all(isinstance(r, GraderScore) for r in results), results
    for a, b in zip(results, alone, strict=False):
        assert isinstance(a, GraderScore) and isinstance(b, GraderScore)
        assert a.metadata["cosine"] == pytest.approx(b.metadata["cosine"], abs=1e-5)
    assert (
        results[-1].score == (await g.aevaluate(query=q, response="Boil \ufffd six minutes")).score
    )


@needs_model
async def test_a_text_the_model_cannot_take_fails_its_own_record_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever makes an encode fail, it fails the request holding that text, not every
    request that shared the batch."""
    e = Embedder()
    e.load()
    shared = e._shared()
    shared.lru.clear()
    real = shared.st.encode

    def picky(texts: list[str], *args: object, **kwargs: object) -> object:
        if any("POISON" in t for t in texts):
            raise TypeError("the tokenizer cannot take this text")
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(shared.st, "encode", picky)
    pairs = [(f"Question {i}?", f"Answer {i}.") for i in range(6)] + [("Q?", "POISON")]
    results = await asyncio.gather(*(e.asimilarity(q, r) for q, r in pairs), return_exceptions=True)
    assert isinstance(results[-1], TypeError)
    assert all(isinstance(r, float) for r in results[:-1]), results


@needs_model
@pytest.mark.parametrize("broken", [math.nan, 0.0], ids=["nan", "zero"])
async def test_an_embedding_with_no_direction_is_unscored_not_a_perfect_match(
    monkeypatch: pytest.MonkeyPatch, broken: float
) -> None:
    """A NaN embedding (a float16 overflow) gave ``max(-1, min(1, nan))`` = 1.0, a perfect
    match for unrelated texts; an all-zero one gave cosine 0. Both are unscored now, and the
    relevance judge's cross-check steps aside for the judge."""
    grader = SimilarityGrader()
    grader.embedder.load()
    shared = grader.embedder._shared()
    shared.lru.clear()
    real = shared.st.encode

    def broken_encode(texts: list[str], *args: object, **kwargs: object) -> object:
        return real(texts, *args, **kwargs) * broken

    monkeypatch.setattr(shared.st, "encode", broken_encode)
    result = await grader.aevaluate(
        response="The cat sat on the mat.", reference_response="Quarterly revenue rose 4%."
    )
    assert isinstance(result, GraderError) and result.kind == "internal", result
    assert "no direction" in result.error
    shared.lru.clear()


@needs_model
async def test_bfloat16_keeps_unit_vectors_and_the_labelled_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The opt-in bfloat16 encoder: unit float32 vectors (normalised after the cast), a text's
    # cosine with itself exactly 1, vectors within a few thousandths of float32's, and the
    # relevance grader still right on every labelled pair.
    texts = ["Why is the sky blue?", "Rayleigh scattering makes short wavelengths dominate.", "Tax"]
    half = await Embedder(dtype="bfloat16").aembed_array(texts)
    full = Embedder(dtype="float32").embed_array(texts)
    assert half.dtype.name == "float32"
    assert [float(n) for n in (half * half).sum(1)] == pytest.approx([1.0] * 3, abs=1e-5)
    assert min(float(c) for c in (half * full).sum(1)) > 0.99
    assert await Embedder(dtype="bfloat16").asimilarity(texts[1], texts[1]) == pytest.approx(
        1.0, abs=1e-6
    )
    monkeypatch.setenv(_embed.DTYPE_ENV, "bfloat16")
    g = EmbeddingRelevanceGrader()
    assert g.embedder.dtype == "bfloat16"
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["criterion"] == "relevance"]
    results = await asyncio.gather(*(g.aevaluate(**r) for r in rows))
    for row, result in zip(rows, results, strict=True):
        assert isinstance(result, GraderScore), result
        assert result.score == (1.0 if row["label"] == "relevant" else 0.0), row["id"]


def test_a_bad_embedding_dtype_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="embedding dtype"):
        Embedder(dtype="half")
    monkeypatch.setenv(_embed.DTYPE_ENV, "fp8")
    with pytest.raises(ConfigError, match="RM_SERVICE_EMBED_DTYPE"):
        EmbeddingRelevanceGrader()


@needs_model
def test_usable_across_event_loops() -> None:
    g = SimilarityGrader()
    kwargs = {"response": "Paris is in France.", "reference_response": "Paris, France"}
    a = asyncio.run(g.aevaluate(**kwargs))
    b = asyncio.run(g.aevaluate(**kwargs))
    assert isinstance(a, GraderScore) and a == b


# --- pre-gates on the embedding graders ----------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ECHO = "Explain photosynthesis briefly."


@needs_model
async def test_copied_question_is_gated_under_examples_judges_yaml() -> None:
    # Issue 11: the offline default paid a copied question (relevance 1.0, reward 0.81), which a
    # GRPO policy learns to emit. Both embedding graders now gate it, and the honest answers of
    # the sample keep the rewards they had.
    from rm_service._config import build_runner, load_config

    runner = build_runner(load_config(EXAMPLES / "judges.yaml"))
    gold = "Plants use light energy to turn water and carbon dioxide into glucose and oxygen."
    echo = {"id": "echo", "query": ECHO, "response": ECHO, "ground_truth": gold}
    honest = [
        json.loads(line)
        for line in (EXAMPLES / "chat_sample.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    results = await runner.agrade([echo, *honest])
    first = results[0]
    assert first.reward is not None and first.reward <= 0.2, first.components
    for name in ("relevance", "similarity"):
        c = first.components[name]
        assert isinstance(c, GraderScore) and c.score == 0.0
        assert c.metadata == {"pregate": "restates_query"}, c
    by_id = {r.id: r.reward for r in results[1:]}
    for rid in ("c00", "c02", "c03", "c04", "c06", "c07", "c08", "c09", "c10"):
        reward = by_id[rid]
        assert reward is not None and reward > 0.5, (rid, reward)


@needs_model
async def test_embedding_graders_gate_before_the_model() -> None:
    rel, sim = EmbeddingRelevanceGrader(), SimilarityGrader()
    q = "How do I change a flat tire?"
    ref = "Loosen the nuts, jack the car up, swap the wheel, tighten the nuts."
    for response, gate in [
        (ECHO, "restates_query"),
        ("Changing a flat tire: how do I?", "near_copy"),
        ("Great question! It depends on many factors.", "non_answer"),
        ("tire flat tire change wheel tire jack tire wrench", "keyword_stuffing"),
        ("Loosen the nuts and swap the wheel. " * 60, "repetition"),
    ]:
        query = ECHO if response == ECHO else q
        r = await rel.aevaluate(query=query, response=response)
        s = await sim.aevaluate(query=query, response=response, reference_response=ref)
        for res in (r, s):
            assert isinstance(res, GraderScore) and res.score == 0.0, (response, res)
            assert res.metadata == {"pregate": gate} and res.reason.startswith("pre-gate: ")
    # Without a query the similarity grader has nothing to compare an echo with: it is graded.
    s = await sim.aevaluate(response=ECHO, reference_response=ref)
    assert isinstance(s, GraderScore) and "pregate" not in s.metadata
    # A query that is not text is the data's fault, as in every field a grader reads.
    e = await sim.aevaluate(query=[{"role": "user"}], response=ECHO, reference_response=ref)
    assert isinstance(e, GraderError) and e.kind == "invalid_input" and "'query'" in e.error
    # The length gate: 20x the reference (at least 2000 characters) for similarity.
    long = " ".join(f"Step {i}: turn nut {i} by {i * 37 % 360} degrees." for i in range(150))
    s = await sim.aevaluate(query=q, response=long, reference_response=ref)
    assert isinstance(s, GraderScore) and s.metadata == {"pregate": "length"}


@needs_model
async def test_embedding_gates_are_switchable_per_grader() -> None:
    off = EmbeddingRelevanceGrader(pregates={"restates_query": False, "near_copy": False})
    r = await off.aevaluate(query=ECHO, response=ECHO)
    assert isinstance(r, GraderScore) and r.score == 1.0 and "cosine" in r.metadata
    none = SimilarityGrader(pregates=[])
    s = await none.aevaluate(query=ECHO, response=ECHO, reference_response=ECHO)
    assert isinstance(s, GraderScore) and s.score == pytest.approx(1.0, abs=1e-5)
    soft = EmbeddingRelevanceGrader(pregate_score=0.1)
    r = await soft.aevaluate(query=ECHO, response=ECHO)
    assert isinstance(r, GraderScore) and r.score == 0.1 and r.metadata["pregate"]
    assert "length" in [g.name for g in get_grader("relevance_embedding").pregates]
    with pytest.raises(ConfigError, match="relevance_embedding: pregates: unknown pre-gate"):
        EmbeddingRelevanceGrader(pregates={"no_such_gate": False})
    # The same switches in a reward config.
    from rm_service._config import build_runner, load_config

    spec = {"type": "relevance_embedding", "pregates": {"length": False}, "pregate_score": 0.1}
    built = build_runner(load_config({"graders": {"rel": spec}})).grader_configs["rel"].grader
    assert isinstance(built, EmbeddingRelevanceGrader) and built.pregate_score == 0.1
    assert "length" not in [g.name for g in built.pregates]
    with pytest.raises(ConfigError, match=r"graders\.rel: .*unknown pre-gate 'nope'"):
        load_config({"graders": {"rel": {"type": "relevance_embedding", "pregates": ["nope"]}}})
    with pytest.raises(ConfigError, match="pregate_score must be in"):
        SimilarityGrader(pregate_score=2)
