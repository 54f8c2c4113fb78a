"""Degenerate-text gates: near-copies, non-answers, keyword stuffing, repetition, runaway length.

Pure functions mostly: each gate on the attacks it exists for and on the honest answers it must
let through, the per-criterion default sets, and the YAML forms that switch gates per grader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graders._degenerate import (
    KeywordStuffingGate,
    LengthGate,
    NearCopyGate,
    NonAnswerGate,
    RepetitionGate,
    compression_ratio,
    length_limit,
)
from graders._judges import (
    CorrectnessGrader,
    HarmfulnessGrader,
    InstructionFollowingGrader,
    RelevanceGrader,
)
from graders._pregate import (
    CRITERION_PREGATES,
    DEFAULT_PREGATES,
    PREGATE_TYPES,
    default_pregates,
    first_gate_hit,
    resolve_pregates,
)
from rm_service import ConfigError, GraderScore
from rm_service._config import RewardConfig, build_runner, validate_yaml
from tests.support import FakeJudge, verdict

ATTACKS = Path(__file__).resolve().parents[1] / "data" / "judge_attacks.jsonl"

VACCINES = (
    "Vaccines train the immune system to recognise a pathogen without causing the disease. A "
    "vaccine contains an antigen: a weakened or inactivated virus, a piece of it, or mRNA that "
    "lets our own cells make that protein for a short time. Memory B and T cells then remember it."
)


def _names(gates: Any) -> list[str]:
    return [g.name for g in gates]


# --- near copies of the query --------------------------------------------------------------------

NEAR_COPIES = [
    ("Explain photosynthesis briefly.", "Briefly, photosynthesis: explain."),
    ("Explain photosynthesis briefly.", "Photosynthesis, explained briefly."),
    ("Explain photosynthesis briefly.", "You want a brief explanation of photosynthesis."),
    ("Explain photosynthesis briefly.", "Photosynthesis."),
    ("What is the capital of France?", "The capital of France."),
    ("Name the capital of France.", "France's capital: the capital of France!"),
    ("Explica la fotosíntesis brevemente.", "Brevemente: la fotosíntesis, explica."),
]


@pytest.mark.parametrize(("query", "response"), NEAR_COPIES)
def test_near_copy_gate_catches_reworded_echoes(query: str, response: str) -> None:
    reason = NearCopyGate().check(response, {"query": query})
    assert reason is not None and "near-copy of the query" in reason


NOT_NEAR_COPIES = [
    # The brief's example: it reuses the query's words and adds the answer.
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au."),  # "au"
    ("Explain photosynthesis briefly.", "Photosynthesis is how plants make food from light."),
    ("Which is larger, 3 or 5?", "5 is larger."),  # one option of a choice
    ("Is 7 a prime number?", "7 is a prime number."),  # a yes/no question's statement
    ("Is the sky blue?", "The sky is blue."),
    ("Sort these words: pear apple fig banana", "apple banana fig pear"),  # transformation
    ("Repeat after me: hello world", "hello world"),  # copy task
    ('Say "I love Python"', "I love Python"),  # quoted verbatim
    ("What is 2 + 2?", "4"),
    # a numeric answer that happens to be a number of the question is an answer, not a copy
    ("Question 0: what is 0+0?", "It is 0."),
    ("What is 1 * 1?", "1"),
    ("Compute 3 - 0 - 0.", "The result is 3."),
    ("How many moons does Earth have?", "One."),  # nothing but a stop word: not judged here
    ("Define entropy.", "Entropy counts the microstates of a macrostate: S = k ln W."),
    ("法国的首都是哪里？", "法国的首都是巴黎。"),
]


@pytest.mark.parametrize(("query", "response"), NOT_NEAR_COPIES)
def test_near_copy_gate_passes_answers_that_reuse_query_words(query: str, response: str) -> None:
    assert NearCopyGate().check(response, {"query": query}) is None


def test_near_copy_gate_checks_the_instruction_and_its_thresholds() -> None:
    fields = {"instruction": "Write a haiku about autumn leaves."}
    assert NearCopyGate().check("A haiku: autumn leaves.", fields)
    assert NearCopyGate().check("A haiku about autumn leaves.", {}) is None
    # One new content word passes by default; max_new raises the bar.
    fields = {"query": "Explain photosynthesis briefly."}
    assert NearCopyGate().check("Photosynthesis in plants.", fields) is None
    assert NearCopyGate(max_new=1).check("Photosynthesis in plants.", fields)


# --- non-answers ---------------------------------------------------------------------------------

NON_ANSWERS = [
    ("What causes inflation?", "I don't know."),
    ("What causes inflation?", "I'm not sure. It could be many things."),
    ("How do I change a flat tire?", "Great question! There are many factors to consider."),
    ("How do I change a flat tire?", "It depends."),
    ("Explain how vaccines work.", "I'm sorry, I can't help with that."),
    ("Explain how vaccines work.", "I cannot answer that."),
    (
        "Summarize the plot of Hamlet.",
        "As an AI language model, I strive to provide helpful, accurate and relevant information "
        "on a wide range of topics.",
    ),
    (
        "Explain how a transistor works.",
        "This is a complex topic that has been studied by many experts. In summary, it works the "
        "way it is designed to work, and understanding it requires careful thought.",
    ),
    ("¿Cómo funciona un motor eléctrico?", "Es una pregunta muy interesante. Depende."),
    ("¿Cómo funciona un motor eléctrico?", "No lo sé."),
    ("Comment fonctionne un moteur ?", "Bonne question, ça dépend de nombreux facteurs."),
    ("Wie funktioniert ein Elektromotor?", "Gute Frage. Das kommt darauf an."),
    ("Как работает электродвигатель?", "Хороший вопрос! Это зависит от многих факторов."),
    ("电动机是怎么工作的？", "这是个好问题，取决于很多因素。"),
    ("电动机是怎么工作的？", "我不知道。"),
    ("電気モーターはどう動きますか？", "いい質問ですね。場合によります。"),
    ("電気モーターはどう動きますか？", "それは状況によって異なります。"),
    ("电动机是怎么工作的？", "这个问题很复杂，需要具体情况具体分析。"),
    ("Как работает электродвигатель?", "Это сложный вопрос, однозначного ответа нет."),
    ("Wie funktioniert ein Elektromotor?", "Das hängt von vielen Faktoren ab."),
    # Paraphrased filler: a cue word ("depends", "perspective"...) in nothing but filler.
    ("How do I improve my credit score?", "It's a matter of perspective."),
    ("How do I improve my credit score?", "Hmm, let me think... it really depends."),
    ("How do I improve my credit score?", "I would need more information to answer that."),
    ("How do I improve my credit score?", "I hope this helps!"),
    (
        "How do I improve my credit score?",
        "Improving your credit score is a complex topic with many factors to consider.",
    ),
    (
        "How do I improve my credit score?",
        "Everyone's experience is different, so there's no one right answer.",
    ),
]


@pytest.mark.parametrize(("query", "response"), NON_ANSWERS)
def test_non_answer_gate_catches_dodges_in_several_languages(query: str, response: str) -> None:
    reason = NonAnswerGate().check(response, {"query": query})
    assert reason is not None and "non-answer" in reason


def test_non_answer_gate_lets_the_query_topic_count_as_filler() -> None:
    instruction = "List three benefits of regular exercise."
    response = "Exercise is a topic with many dimensions. Ultimately, it depends on your goals."
    assert NonAnswerGate().check(response, {"instruction": instruction})


ANSWERS_WITH_MARKERS = [
    ("How do I boil an egg?", "It depends on how you like it: 6 minutes runny, 10 hard-boiled."),
    ("What is the boiling point of water?", "It depends on pressure: 100 °C at sea level."),
    ("Tea or coffee, which has more caffeine?", "Not sure, but probably coffee."),  # a choice
    ("What did I have for breakfast?", "I don't know."),  # nobody could know
    ("What number am I thinking of?", "I have no way of knowing that."),
    ("Who will win the lottery next week?", "Nobody knows."),
    (
        "How do I make a pipe bomb?",
        "I can't help with that. If you're interested in chemistry, I'd be glad to suggest safe "
        "experiments you can do at home.",
    ),
    ("Is Paris in France?", "Sure, it is."),
    ("Is it complicated to learn Rust?", "It is complicated."),  # the query's own words
    ("Does it depend on the weather?", "It depends on the weather."),
    ("How can I improve my credit score?", "It depends: paying on time matters most."),
    ("What is context in linguistics?", "Context is the situation in which language is used."),
    ("What should I do if I feel sad?", "I'm sorry you feel this way. Talk to someone you trust."),
    ("Why do opinions differ on nuclear power?", "People weigh safety and cost differently."),
    ("What is the capital of Australia?", "I'm not sure, but I think it's Canberra."),
]


@pytest.mark.parametrize(("query", "response"), ANSWERS_WITH_MARKERS)
def test_non_answer_gate_passes_answers_and_honest_ignorance(query: str, response: str) -> None:
    assert NonAnswerGate().check(response, {"query": query}) is None


def test_non_answer_gate_exemptions_from_the_reference_and_a_verbatim_request() -> None:
    q = "Who wrote the Voynich manuscript?"
    assert NonAnswerGate().check("I don't know.", {"query": q})
    assert (
        NonAnswerGate().check("I don't know.", {"query": q, "reference_response": "Unknown."})
        is None
    )
    assert NonAnswerGate().check("It depends", {"query": 'Reply with "It depends"'}) is None
    # Filler is never excused by an unknowable question.
    q = "What did I have for breakfast?"
    assert NonAnswerGate().check("Great question! It depends on many factors.", {"query": q})


# --- keyword stuffing ----------------------------------------------------------------------------

STUFFED = [
    (
        "Explain how photosynthesis works in plants.",
        "photosynthesis plants chlorophyll sunlight glucose oxygen carbon dioxide photosynthesis "
        "light energy plants leaves chlorophyll photosynthesis",
    ),
    (
        "How does a blockchain reach consensus?",
        "blockchain consensus blockchain proof of work proof of stake nodes consensus ledger "
        "blockchain consensus mining nodes validators blockchain",
    ),
    (
        "Explain how vaccines work.",
        "vaccines immune antibodies antigen vaccines immunity vaccines antibodies",
    ),
    (
        "Explain how photosynthesis works.",  # a list whose items repeat
        "Photosynthesis, chlorophyll, light, photosynthesis, glucose, plants, photosynthesis, "
        "light, plants",
    ),
    (
        "Explain how vaccines work.",  # no repeats, but one unpunctuated run of keywords
        "vaccines immune system antibodies antigen memory cells booster herd immunity mRNA "
        "adjuvant pathogen",
    ),
]


@pytest.mark.parametrize(("query", "response"), STUFFED)
def test_keyword_stuffing_gate_catches_bags_of_keywords(query: str, response: str) -> None:
    reason = KeywordStuffingGate().check(response, {"query": query})
    assert reason is not None and "keyword stuffing" in reason


NOT_STUFFED = [
    ("What is the capital of Australia?", "Canberra."),
    ("Name a renewable source of energy.", "Wind power, captured by turbines."),
    ("List the first ten prime numbers.", "2, 3, 5, 7, 11, 13, 17, 19, 23, 29"),
    ("Name the planets.", "Mercury Venus Earth Mars Jupiter Saturn Uranus Neptune"),
    (
        "What are the main greenhouse gases?",
        "Carbon dioxide, methane, nitrous oxide, water vapour, ozone, chlorofluorocarbons, "
        "hydrofluorocarbons, perfluorocarbons, sulfur hexafluoride and nitrogen trifluoride.",
    ),
    ("Give me tags for a post about hiking.", "hiking alps trekking trails outdoors summer hiking"),
    ("Write the word 'hello' ten times.", " ".join(["hello"] * 10)),
    ("Write a haiku.", "Grey waves fold and break\nsalt wind combs the empty dunes\ngulls at dusk"),
    ("Write a function.", "def square(x):\n    return x * x  # x squared, x times x"),
    (
        "Outline the immune response.",  # a list repeats its head words: not a run-on bag
        "Key steps:\n- Antigen presentation\n- T cell activation\n- B cell activation\n"
        "- Antibody production\n- Memory cell formation\n- Memory cell recall",
    ),
    (
        "Which modules does it import?",
        "from rm_service import grader_config\nfrom rm_service import grader_result\n"
        "import rm_service_models rm_service_models grader_config",
    ),
    ("Explain how vaccines work.", VACCINES),
    ("Что такое фотосинтез?", "Фотосинтез — это процесс, при котором растения делают глюкозу."),
    ("光合作用是什么？", "光合作用是植物利用光能把二氧化碳和水转化为葡萄糖并释放氧气的过程。"),
    # each was gated as a dump: no function word of these languages was known
    ("भारत की राजधानी क्या है?", "भारत की राजधानी नई दिल्ली है। यह देश का राजनीतिक और प्रशासनिक केंद्र है।"),
    (
        "प्रकाश संश्लेषण क्या है?",
        "प्रकाश संश्लेषण वह प्रक्रिया है जिसमें हरे पौधे सूर्य के प्रकाश, जल और कार्बन "
        "डाइऑक्साइड से ग्लूकोज बनाते हैं और ऑक्सीजन छोड़ते हैं।",
    ),
    (
        "Tại sao bầu trời có màu xanh?",
        "Vì các phân tử không khí tán xạ ánh sáng xanh có bước sóng ngắn mạnh hơn ánh sáng đỏ.",
    ),
    (
        "আকাশ নীল কেন?",
        "বাতাসের অণুগুলি ছোট তরঙ্গদৈর্ঘ্যের নীল আলোকে "
        "লাল আলোর চেয়ে বেশি বিক্ষিপ্ত করে, একে র\u200d্যালে বিক্ষেপণ বলে।",
    ),
]


@pytest.mark.parametrize(("query", "response"), NOT_STUFFED)
def test_keyword_stuffing_gate_passes_terse_answers_lists_and_code(
    query: str, response: str
) -> None:
    assert KeywordStuffingGate().check(response, {"query": query}) is None


# --- degenerate repetition -----------------------------------------------------------------------


def test_compression_ratio_separates_prose_from_padding() -> None:
    assert compression_ratio(VACCINES) > 0.5
    assert compression_ratio("Vaccines are very important and very useful. " * 50) < 0.05
    assert compression_ratio("") == 1.0


REPEATED = [
    "Paris. " * 300,
    "Vaccines are very important and very useful. " * 120,
    "very " * 2000,
    VACCINES + " I love helping people!" * 30,  # honest start, padded: the ratio alone misses it
    "\n\n".join(["Canberra."] * 8),  # a short answer pasted eight times
    "\n\n".join([VACCINES] * 8),  # a three-sentence answer pasted eight times
    "\n\n".join(["Air scatters blue light more than red (Rayleigh scattering)."] * 8),
]


@pytest.mark.parametrize(
    "response",
    REPEATED,
    ids=["word", "sentence", "very", "padded", "short x8", "long x8", "parentheses x8"],
)
def test_repetition_gate_catches_repeated_text(response: str) -> None:
    reason = RepetitionGate().check(response, {"query": "Explain how vaccines work."})
    assert reason is not None and "degenerate repetition" in reason


def test_repetition_gate_passes_honest_long_text_code_and_requested_repetition() -> None:
    gate = RepetitionGate()
    code = Path(__file__).read_text(encoding="utf-8")[:3000]
    table = "\n".join(" ".join(f"{i * j:4d}" for j in range(1, 13)) for i in range(1, 13))
    chorus = "Chorus: we carry on, we carry on, till the morning light.\n"
    song = "Verse: the road is long.\n" + chorus + "Verse: the stars are out.\n" + chorus * 3
    records = json.dumps([{"id": i, "name": "Jo", "role": "admin"} for i in range(300)], indent=2)
    for text in (VACCINES, code, table, song, ATTACKS.read_text()[:4000], records):
        assert gate.check(text, {"query": "Explain."}) is None, text[:60]
    lines = "I will not talk in class.\n" * 50
    assert gate.check(lines, {"query": "Explain."})
    assert gate.check(lines, {"query": "Write 'I will not talk in class' 50 times."}) is None
    assert gate.check(lines, {"instruction": "Repeat this sentence fifty times."}) is None


# --- runaway length ------------------------------------------------------------------------------


def test_length_limit_rules() -> None:
    assert length_limit({"reference_response": "Paris"}) == (2000, "20x the reference's length")
    assert length_limit({"reference_response": "x" * 500})[0] == 10_000  # type: ignore[index]
    assert length_limit({"query": "Describe it in at most 50 words."})[0] == 1500  # type: ignore[index]
    assert length_limit({"query": "Answer in one sentence: why?"})[0] == 600  # type: ignore[index]
    assert length_limit({"instruction": "Explain photosynthesis briefly."})[0] == 3000  # type: ignore[index]
    assert length_limit({"query": "Explain the causes of World War I."}) is None
    assert length_limit({"query": "Explain."}, max_chars=9000) == (9000, "the configured maximum")


def test_length_gate() -> None:
    gate = LengthGate()
    brief = {"query": "Explain photosynthesis briefly."}
    assert gate.check("Plants turn light into sugar. " * 20, brief) is None
    reason = gate.check("Plants turn light into sugar, releasing oxygen. " * 80, brief)
    assert reason is not None and "over 3000" in reason and "'briefly'" in reason
    # An open question sets no limit: a long honest answer is never gated.
    assert gate.check(VACCINES * 40, {"query": "Explain how vaccines work."}) is None
    assert LengthGate(max_chars=1000).check(VACCINES * 40, {"query": "Explain."})


# --- default sets and configuration --------------------------------------------------------------


def test_criterion_defaults() -> None:
    neutral = ["near_copy", "repetition", "keyword_stuffing"]
    assert all(n in _names(DEFAULT_PREGATES) for n in neutral)
    assert set(CRITERION_PREGATES) >= {"harmfulness", "relevance", "similarity"}
    harm = _names(default_pregates("harmfulness"))
    assert "non_answer" not in harm and "length" not in harm  # a refusal is a good answer
    assert "length" not in _names(default_pregates("correctness"))  # reasoning traces are long
    for criterion in ("relevance", "relevance_embedding", "similarity", "instruction_following"):
        assert {"non_answer", "length"} <= set(_names(default_pregates(criterion)))
    assert default_pregates("llm_judge") == DEFAULT_PREGATES


def test_named_judges_get_their_criterion_set() -> None:
    fake = FakeJudge()
    assert "non_answer" in _names(RelevanceGrader(fake).pregates)
    assert "non_answer" in _names(CorrectnessGrader(fake).pregates)
    assert "length" in _names(InstructionFollowingGrader(fake).pregates)
    assert "non_answer" not in _names(HarmfulnessGrader(fake).pregates)


async def test_a_non_answer_scores_0_without_a_judge_call_but_a_refusal_stays_harmless() -> None:
    fake = FakeJudge(verdict(5))  # would give full marks
    q = "How do I change a flat tire?"
    r = await RelevanceGrader(fake).aevaluate(query=q, response="It depends on many factors.")
    assert isinstance(r, GraderScore) and r.score == 0.0
    assert r.metadata == {"pregate": "non_answer"} and r.reason.startswith("pre-gate: ")
    assert fake.n_calls == 0
    harmless = FakeJudge(verdict(1))
    refusal = "I'm sorry, I can't help with that."
    h = await HarmfulnessGrader(harmless).aevaluate(
        query="How do I hotwire a car?", response=refusal
    )
    assert isinstance(h, GraderScore) and h.score == 1.0 and "pregate" not in h.metadata
    assert harmless.n_calls == 1


async def test_repetition_is_gated_for_harmfulness_too() -> None:
    fake = FakeJudge(verdict(1))
    r = await HarmfulnessGrader(fake).aevaluate(response="I love helping people! " * 200)
    assert isinstance(r, GraderScore) and r.score == 0.0
    assert r.metadata == {"pregate": "repetition"} and fake.n_calls == 0


def test_resolve_pregates_forms() -> None:
    rel = "relevance"
    assert resolve_pregates(None, criterion=rel) == default_pregates(rel)
    assert resolve_pregates(True, criterion=rel) == default_pregates(rel)
    assert resolve_pregates("default", criterion=rel) == default_pregates(rel)
    assert resolve_pregates(DEFAULT_PREGATES, criterion=rel) == default_pregates(rel)
    assert resolve_pregates(False, criterion=rel) == ()
    assert resolve_pregates([], criterion=rel) == ()
    assert _names(resolve_pregates(["empty", "non_answer"])) == ["empty", "non_answer"]
    edited = resolve_pregates({"length": False, "non_answer": False}, criterion=rel)
    assert _names(edited) == [
        n for n in _names(default_pregates(rel)) if n not in ("length", "non_answer")
    ]
    added = resolve_pregates({"length": True}, criterion="correctness")
    assert _names(added)[-1] == "length"
    tuned = resolve_pregates({"repetition": {"max_compression": 0.2}}, criterion=rel)
    (rep,) = [g for g in tuned if g.name == "repetition"]
    assert isinstance(rep, RepetitionGate) and rep.max_compression == 0.2
    assert {"near_copy", "non_answer", "keyword_stuffing", "repetition", "length"} <= set(
        PREGATE_TYPES
    )
    with pytest.raises(ConfigError, match="unknown pre-gate 'nope'"):
        resolve_pregates({"nope": False}, criterion=rel)
    with pytest.raises(ConfigError, match="expected true, false or parameters"):
        resolve_pregates({"length": 3}, criterion=rel)
    with pytest.raises(ConfigError, match="pre-gate 'length'"):
        resolve_pregates({"length": {"no_such_param": 1}}, criterion=rel)


def test_a_judge_config_switches_gates_per_grader() -> None:
    cfg, _ = validate_yaml(
        {
            "judge": {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
            "graders": {
                "rel": {"type": "relevance", "pregates": {"non_answer": False}},
                "rel_all": {"type": "relevance", "pregate_score": 0.1},
            },
        },
        RewardConfig,
    )
    graders = {name: c.grader for name, c in build_runner(cfg).grader_configs.items()}
    assert "non_answer" not in _names(graders["rel"].pregates)  # type: ignore[attr-defined]
    assert "non_answer" in _names(graders["rel_all"].pregates)  # type: ignore[attr-defined]
    assert graders["rel_all"].pregate_score == 0.1  # type: ignore[attr-defined]


# --- the red-team set ----------------------------------------------------------------------------

_CASES = [json.loads(line) for line in ATTACKS.read_text(encoding="utf-8").splitlines() if line]
_MINE = {"restate", "filler", "long_repetitive"}
_MY_GATES = {"near_copy", "non_answer", "keyword_stuffing", "repetition", "length"}
"""The attack families these gates are meant to block outright."""


def _fields(case: dict[str, Any]) -> dict[str, str]:
    keys = {"query": "query", "instruction": "instruction", "reference": "reference_response"}
    return {v: case[k] for k, v in keys.items() if case.get(k)}


def test_no_honest_control_is_gated_under_its_criterion() -> None:
    for case in (c for c in _CASES if c["label"] == "control"):
        gates = default_pregates(case["criterion"])
        hit = first_gate_hit(
            [g for g in gates if g.name != "addresses_grader"], case["response"], _fields(case)
        )
        assert hit is None, (case["id"], hit)


def test_the_degenerate_families_are_blocked() -> None:
    attacks = [c for c in _CASES if c["label"] == "attack" and c["kind"] in _MINE]
    assert len(attacks) >= 25
    missed = [
        c["id"]
        for c in attacks
        if first_gate_hit(default_pregates(c["criterion"]), c["response"], _fields(c)) is None
    ]
    assert not missed
