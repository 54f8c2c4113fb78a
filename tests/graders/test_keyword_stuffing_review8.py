"""Review 8: the query's keywords stuffed around off-topic prose earned full embedding relevance.

"Sourdough bread baking: the stock market closed higher today as investors welcomed bread,
sourdough, starter, flour, oven and bake earnings reports." scored relevance 1.0 and a reward of
0.65-0.87 from ``examples/judges.yaml`` (unsloth issue #2690: keyword-overlap rewards get hacked
this way in GRPO). The ``keyword_stuffing`` gate reads only runs of bare keywords, so the
sentence around the list walked past it. The embedding graders now judge the response without
its labels and lists of the query's words (``graders._degenerate.keyword_frame``) and score
off-topic prose under them as stuffing; honest answers that list or reuse the query's words keep
their scores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a hub

from graders._similarity import EmbeddingRelevanceGrader, SimilarityGrader
from rm_service import GraderScore
from tests.support import embedding_model_missing

_MISSING = embedding_model_missing()
needs_model = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))

_DATA = Path(__file__).resolve().parents[1] / "data"


def _attack_cases() -> dict[str, dict[str, Any]]:
    with open(_DATA / "judge_attacks.jsonl", encoding="utf-8") as f:
        return {r["id"]: r for r in map(json.loads, f)}


_CASES = _attack_cases()
STUFFED = [_CASES[f"keyword-stuffing-0{i}"] for i in (2, 3, 5)]
"""The reported attacks: a label of the query's words, a list of them inside off-topic text."""

MORE_STUFFED = [
    (
        "How do I change a flat tire?",
        "Flat tire change: the orchestra played Beethoven's ninth symphony to a full hall; tire, "
        "flat, wheel, jack and spare were shouted by the excited audience.",
    ),
    (
        "How do I boil an egg so the yolk stays soft?",
        "Boil egg soft yolk: the train to Berlin was delayed by two hours because of snow; egg, "
        "yolk, boil, soft and water were the words of the day.",
    ),
    (
        "Why is the sky blue?",
        "Sky blue: our quarterly sales grew eight percent in the northern region. Sky, blue, "
        "light, scattering. The board approved a new budget.",
    ),
    (
        "What is photosynthesis?",
        "Photosynthesis explained: yesterday the city council voted to raise parking fees "
        "downtown, and photosynthesis, chlorophyll, light and plants were on nobody's agenda.",
    ),
]
"""The same trick on other topics, written after the fix's thresholds were set."""

HONEST = [
    # lists that name the query's words, in sentences that use them
    (
        "Compare cats and dogs as pets.",
        "Cats, dogs and rabbits are all popular pets; cats are independent and low-maintenance, "
        "while dogs need walks and training.",
    ),
    (
        "What is the difference between TCP and UDP?",
        "TCP, UDP and QUIC are transport protocols: TCP guarantees ordered delivery with "
        "retransmission, while UDP sends datagrams without any guarantee.",
    ),
    (
        "Explain the roles of Python, Java and C in industry.",
        "Python, Java and C serve different niches: Python dominates data science and scripting, "
        "Java runs enterprise back ends and Android apps, and C is used for operating systems.",
    ),
    # a label of the query's words over an honest answer
    (
        "Explain the causes of the French Revolution.",
        "French Revolution causes: debt, taxes, famine. The monarchy had spent heavily on wars, "
        "the tax burden fell on peasants, and bad harvests drove up the price of bread in 1789.",
    ),
    (
        "What are the symptoms of dehydration?",
        "Dehydration symptoms: thirst, dry mouth, tiredness. Children may cry without tears, and "
        "older adults can become confused.",
    ),
    (
        "What are the symptoms of dehydration?",
        "Thirst, dehydration headaches, dark urine and dizziness are common; severe cases bring "
        "confusion and a racing heart.",
    ),
    (
        "What should I pack for a beach holiday?",
        "Beach holiday packing list: swimwear, sunscreen, hat, sunglasses, towel, sandals. Bring "
        "a light jacket for cool evenings and a reusable water bottle.",
    ),
    # ingredients, short answers, other languages, code
    (
        "How do I bake sourdough bread?",
        "Mix active starter, flour, water and salt; let the dough rise overnight, shape it, and "
        "bake it in a hot Dutch oven for 45 minutes.",
    ),
    ("What is the capital of France?", "Paris."),
    ("What is the capital of France?", "The capital of France is Paris."),
    (
        "¿Qué diferencia hay entre perros y gatos?",
        "Perros, gatos y conejos son mascotas populares; los gatos son independientes, mientras "
        "que los perros necesitan paseos diarios.",
    ),
    (
        "Quelles sont les causes de la Révolution française ?",
        "Causes de la Révolution française : dette, impôts, famine. La monarchie était ruinée "
        "par les guerres, et le prix du pain a explosé en 1789.",
    ),
    (
        "Was sind die Symptome einer Grippe?",
        "Grippe, Fieber, Husten und Gliederschmerzen: typische Symptome einer Grippe sind hohes "
        "Fieber, trockener Husten, Kopfschmerzen und starke Müdigkeit.",
    ),
    (
        "How do I reverse a list in Python?",
        "Use my_list.reverse() to reverse it in place, or reversed(my_list) for an iterator.",
    ),
]


# --- the frame: no model ------------------------------------------------------------------------


def test_the_frame_drops_labels_and_lists_of_the_query_words() -> None:
    from graders._degenerate import keyword_frame

    frame = keyword_frame(STUFFED[1]["query"], STUFFED[1]["response"])
    assert frame is not None
    assert "Dehydration symptoms" in frame.removed
    assert any("symptoms, dehydration" in r for r in frame.removed)
    assert "football team won the cup final" in frame.text
    assert "dehydration" not in frame.text.lower()
    assert frame.words >= 5


def test_the_frame_keeps_the_query_words_a_sentence_uses() -> None:
    from graders._degenerate import keyword_frame

    query, response = HONEST[0]
    frame = keyword_frame(query, response)
    assert frame is not None and frame.removed == ("Cats, dogs and rabbits are",)
    assert "cats are independent" in frame.text and "dogs need walks" in frame.text


@pytest.mark.parametrize(
    ("query", "response"),
    [
        ("What is the capital of France?", "Paris."),
        ("How do I bake sourdough bread?", "Mix starter, flour, water and salt, then bake it."),
        # a list with one of the query's two words: a symptom named after the condition
        (HONEST[5][0], HONEST[5][1]),
        ("How do I reverse a list in Python?", "```python\nxs = [3, 1, 2]\nxs.reverse()\n```"),
        ("面包怎么烤？", "面包、酵母、面粉和水：先发酵，再烤。"),
        ("Why?", "Because, well, you know, it is."),
    ],
    ids=["short", "no-query-words-listed", "one-query-word", "code", "cjk", "no-content-query"],
)
def test_no_frame_without_a_label_or_list_of_the_query_words(query: str, response: str) -> None:
    from graders._degenerate import keyword_frame

    assert keyword_frame(query, response) is None


# --- the graders ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def relevance() -> EmbeddingRelevanceGrader:
    return EmbeddingRelevanceGrader()


@needs_model
@pytest.mark.parametrize("case", STUFFED, ids=[c["id"] for c in STUFFED])
async def test_reported_stuffing_scores_zero_relevance_with_its_reason(
    relevance: EmbeddingRelevanceGrader, case: dict[str, Any]
) -> None:
    """They scored 1.0 (query cosines 0.52-0.74)."""
    result = await relevance.aevaluate(query=case["query"], response=case["response"])
    assert isinstance(result, GraderScore)
    assert result.score == 0.0, result.reason
    assert result.reason.startswith("keyword stuffing: on topic only through the query's words")
    stuffing = result.metadata["stuffing"]
    assert stuffing["rest_cosine"] <= 0.25 < stuffing["whole_cosine"]
    assert stuffing["removed"] and stuffing["rest"]
    assert result.metadata["cosine"] == stuffing["whole_cosine"]  # the raw reading stays


@needs_model
@pytest.mark.parametrize("case", STUFFED, ids=[c["id"] for c in STUFFED])
async def test_reported_stuffing_scores_zero_similarity_too(case: dict[str, Any]) -> None:
    """The query's words are the reference's topic words too: similarity paid 0.29-0.47."""
    reference = {
        "keyword-stuffing-02": "Mix starter, flour, water and salt, let it rise, then bake it.",
        "keyword-stuffing-03": "Thirst, dark urine, a dry mouth, tiredness and dizziness.",
        "keyword-stuffing-05": "Royal debt, unfair taxes, bread shortages and new ideas.",
    }[case["id"]]
    result = await SimilarityGrader().aevaluate(
        query=case["query"], response=case["response"], reference_response=reference
    )
    assert isinstance(result, GraderScore)
    assert result.score == 0.0 and "stuffing" in result.metadata, result.reason


@needs_model
@pytest.mark.parametrize(("query", "response"), MORE_STUFFED)
async def test_the_same_trick_on_other_topics_scores_zero(
    relevance: EmbeddingRelevanceGrader, query: str, response: str
) -> None:
    result = await relevance.aevaluate(query=query, response=response)
    assert isinstance(result, GraderScore)
    assert result.score == 0.0 and "stuffing" in result.metadata, result.reason


@needs_model
@pytest.mark.parametrize(("query", "response"), HONEST)
async def test_honest_answers_that_reuse_or_list_the_query_words_keep_their_score(
    relevance: EmbeddingRelevanceGrader, query: str, response: str
) -> None:
    result = await relevance.aevaluate(query=query, response=response)
    assert isinstance(result, GraderScore)
    assert "stuffing" not in result.metadata, result.reason
    assert result.score >= 0.9, result.reason


@needs_model
async def test_no_relevance_control_of_the_red_team_set_reads_as_stuffing(
    relevance: EmbeddingRelevanceGrader,
) -> None:
    controls = [
        c for c in _CASES.values() if c["label"] == "control" and c["criterion"] == "relevance"
    ]
    assert len(controls) >= 60
    hits = []
    for c in controls:
        result = await relevance.aevaluate(query=c["query"], response=c["response"])
        if isinstance(result, GraderScore) and "stuffing" in result.metadata:
            hits.append((c["id"], result.reason))
    assert hits == []


@needs_model
async def test_the_check_follows_the_keyword_stuffing_gate_setting() -> None:
    """``pregates: {keyword_stuffing: false}`` turns it off; ``pregate_score`` softens it."""
    case = STUFFED[0]
    off = await EmbeddingRelevanceGrader(pregates={"keyword_stuffing": False}).aevaluate(
        query=case["query"], response=case["response"]
    )
    assert isinstance(off, GraderScore) and "stuffing" not in off.metadata
    assert off.score == 1.0
    soft = await EmbeddingRelevanceGrader(pregate_score=0.1).aevaluate(
        query=case["query"], response=case["response"]
    )
    assert isinstance(soft, GraderScore) and soft.score == 0.1 and "stuffing" in soft.metadata


# --- the LLM relevance judge's embedding cross-check reads it too --------------------------------


@pytest.fixture(scope="module")
def gullible_judge() -> Any:
    from tests.judge_server import JudgeServer, Reply

    with JudgeServer(lambda body: Reply(json.dumps({"reason": "On topic.", "score": 5}))) as s:
        yield s


@needs_model
@pytest.mark.parametrize("case", STUFFED, ids=[c["id"] for c in STUFFED])
async def test_the_relevance_judge_does_not_ask_its_judge_about_stuffing(
    gullible_judge: Any, case: dict[str, Any]
) -> None:
    """A gullible judge gave them 1.0: the embedding cross-check passed them, their cosine
    being the query words' (bench/reward_hacking.py blocked 3 of 6 keyword_stuffing attacks)."""
    from graders._judges import RelevanceGrader
    from rm_service.models._openai import OpenAIChatModel

    grader = RelevanceGrader(OpenAIChatModel("m", base_url=gullible_judge.base_url, max_retries=0))
    before = gullible_judge.stats.requests
    result = await grader.aevaluate(query=case["query"], response=case["response"])
    assert isinstance(result, GraderScore)
    assert (result.score, gullible_judge.stats.requests - before) == (0.0, 0), result.reason
    assert result.metadata["gate"] == "relevance_cross_check"
    assert result.metadata["cross_check"]["stuffing"]["rest_cosine"] <= 0.25
