"""The verl shim: one key set for every sample (scored, unscored, failed) that never names a key
verl writes itself, the fallback score, the record verl's arguments make (numpy values made
plain), config / URL / environment choices of the reward (a real uvicorn service on 127.0.0.1),
the sync batch variant, prime's float variant, and many threads at once.

verl's own code paths (its reward managers, Hydra config, validation) are driven in
``test_verl_real.py`` when verl is installed."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import rm_service.integrations.verl as shim
from rm_service import ConfigError, InputError
from rm_service._http_schemas import ServiceSettings
from rm_service._runner import GradingRunner
from rm_service.app import create_app
from rm_service.integrations import _targets
from rm_service.integrations.verl import compute_score, compute_score_batch, compute_score_sync
from tests.integrations.conftest import SEEN, SHIM_CONFIG
from tests.support import serve_in_thread

pytestmark = pytest.mark.usefixtures("shim_env")

KEYS = [
    "score",
    *("rm/short", "rm/short/unscored", "rm/num", "rm/num/unscored"),
    *("rm/reward", "rm/reward/unscored", "rm_error"),
]
"""Every sample's keys, in order: each component's score then its unscored flag."""


def flag(score: float | None) -> tuple[float, float]:
    """A component's ``(rm/<name>, rm/<name>/unscored)``: ``None`` is unscored (-1, the
    fallback the cases use, flagged)."""
    return (-1.0, 1.0) if score is None else (score, 0.0)


def sample(
    score: float, short: float | None, num: float | None, reward: float | None, rm_error: float
) -> dict[str, float]:
    """The expected dict, a component ``None`` where it is unscored (fallback_score=-1)."""
    values = [score, *flag(short), *flag(num), *flag(reward), rm_error]
    return dict(zip(KEYS, values, strict=True))


# (solution_str, ground_truth) -> the expected dict with fallback_score=-1.
CASES: list[tuple[str, str | None, dict[str, float]]] = [
    ("7", "7", sample(0.975, 0.95, 1.0, 0.975, 0.0)),
    ("no 8", "7", sample(0.4, 0.8, 0.0, 0.4, 0.0)),
    ("8", None, sample(-1.0, 0.95, None, None, 1.0)),
    ("FAIL", "7", sample(-1.0, None, 0.0, None, 1.0)),
]

VERL_KEYS = frozenset(
    {
        # ray_trainer.py _validate (0.7.0-0.9.1) and ppo/v1/trainer_base.py (0.9.1): its own
        # column, before every key compute_score returns; "acc" becomes the core metric when
        # present, "pred" feeds majority voting (metric_utils.process_validation_metrics).
        *("reward", "acc", "pred"),
        # _dump_generations / _log_rollout_data row fields.
        *("input", "output", "gts", "step", "request_id"),
        # reward managers: DAPO's overlong penalty, rate_limited's failure flags, the reward
        # loop's own result keys (experimental/reward_loop/reward_manager/*.py).
        *("overlong_reward", "overlong", "timeout", "error", "reward_score", "reward_extra_info"),
        # non_tensor_batch columns the returned keys are written next to (agent_loop.py
        # _postprocess, rl_dataset.py, ray_trainer.py), where a clash overwrites or fails
        # DataProto.union.
        *("data_source", "reward_model", "extra_info", "uid", "index", "raw_prompt"),
        *("tools_kwargs", "interaction_kwargs", "__num_turns__", "multi_modal_inputs"),
        *("turn_scores", "tool_rewards", "extras", "seq_reward", "seq_final_reward"),
    }
)
"""Keys verl writes itself next to ``compute_score``'s (sources named per line; the real code is
scanned in ``test_verl_real.py`` when verl is installed). ``score`` is not here: verl requires
it and writes the same number under it."""


def approx(d: dict[str, float]) -> Any:
    return pytest.approx(d)


async def test_every_sample_has_the_same_keys_and_unscored_is_the_fallback() -> None:
    got = [
        await compute_score(
            "gsm8k", s, gt, {"question": "q"}, config=SHIM_CONFIG, fallback_score=-1
        )
        for s, gt, _ in CASES
    ]
    assert all(list(d) == KEYS for d in got)
    assert got == [approx(want) for _, _, want in CASES]
    assert all(isinstance(v, float) for d in got for v in d.values())
    default = await compute_score("gsm8k", "8", None, config=SHIM_CONFIG)
    assert default["score"] == 0.0 and default["rm_error"] == 1.0


async def test_a_backend_that_raises_gives_the_fallback_not_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: Any, records: Any, **kwargs: Any) -> Any:
        raise RuntimeError("grading blew up")

    # The runner, under both the default deadline and none (LocalBackend.agrade).
    monkeypatch.setattr(GradingRunner, "agrade", broken)
    for deadline in (shim.DEFAULT_DEADLINE, None):
        got = await compute_score(
            "d", "7", "7", config=SHIM_CONFIG, fallback_score=0.5, deadline=deadline
        )
        fallback = dict.fromkeys(KEYS, 0.5) | {k: 1.0 for k in KEYS if k.endswith("unscored")}
        assert got == fallback | {"rm_error": 1.0}


async def test_a_backend_that_raises_leaves_each_component_its_kind_and_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The trainers' stand-in for a failed batch held no components: unscored, with no kind
    and no reason anywhere (only a log line). Each component is now an ``internal`` error
    naming the exception, as every other face reports one."""

    async def broken(self: Any, records: Any, **kwargs: Any) -> Any:
        raise RuntimeError("grading blew up")

    monkeypatch.setattr(GradingRunner, "agrade", broken)
    target = await _targets.acached_target(_targets.reward_key(SHIM_CONFIG, None, None, None))
    results = await _targets.grade_safely(target, [{"response": "7"}, {"response": "8"}])
    assert [r.index for r in results] == [0, 1]
    for rec in results:
        assert rec.status == "unscored" and rec.reward is None
        assert set(rec.errors) == {*target.names, target.reward}
        for err in rec.errors.values():
            assert err.kind == "internal" and "RuntimeError: grading blew up" in err.error


async def test_no_key_is_one_verl_writes_itself_whatever_the_components_are_called() -> None:
    """verl's _validate adds its own ``reward`` column, then appends every returned key: an
    aggregator named ``reward`` made that column twice as long and failed its length assert.
    Components are prefixed, so even ones named like verl's own columns cannot collide."""
    names = ["reward", "acc", "pred", "uid", "data_source", "reward_score"]
    cfg = {
        "graders": {n: {"type": "format", "mode": "think_answer"} for n in names[1:]},
        "aggregators": [{"type": "weighted_sum", "name": "reward"}],
    }
    got = await compute_score("d", "<think>a</think><answer>7</answer>", "7", config=cfg)
    columns = [f"rm/{n}{flag}" for n in [*names[1:], "reward"] for flag in ("", "/unscored")]
    assert list(got) == ["score", *columns, "rm_error"]
    assert set(got) & VERL_KEYS == set()
    assert got["score"] == got["rm/reward"] == got["rm/acc"] == 1.0 and got["rm_error"] == 0.0
    for s, gt, _ in CASES:  # the shim's own config: the same holds
        assert set(await compute_score("d", s, gt, config=SHIM_CONFIG)) & VERL_KEYS == set()


def test_prime_gets_the_reward_as_a_float() -> None:
    """verl's legacy ``prime`` manager (workers/reward_manager/prime.py, 0.7.0-0.9.1) calls
    ``evaluation_func(task, completion, reference, task_extra_info)`` positionally in a process
    pool and keeps ``float(result)`` for numbers, ``float(result[0])`` otherwise: a dict raised
    there and verl scored the whole batch 0.0."""
    from rm_service.integrations import verl

    def prime_reads(result: Any) -> float:  # parallel_compute_score_async's result handling
        return float(result) if isinstance(result, int | float | bool) else float(result[0])

    kwargs = {"config": SHIM_CONFIG, "fallback_score": -1}
    for s, gt, want in CASES:
        fn = partial(verl.compute_score_float, "gsm8k", s, gt, {"question": "q"}, **kwargs)
        assert prime_reads(fn()) == pytest.approx(want["score"])
    assert type(verl.compute_score_float("d", "7", "7", config=SHIM_CONFIG)) is float


async def test_the_record_and_question_key() -> None:
    cfg = {"graders": {"seen": {"type": "tests.integrations.conftest:seen"}}}
    info = {"prompt_text": "What is 3+4?", "index": np.int64(3), "tags": np.array([1, 2])}
    await compute_score(
        "gsm8k",
        "7",
        ["7", "seven"],
        info,
        config=cfg,
        question_key="prompt_text",
        split="train",
        reward_router_address="10.0.0.1:8000",  # verl's GenRM extras: never in a record
        reward_model_tokenizer=object(),
        client=object(),  # no JSON form: dropped too
    )
    await compute_score("gsm8k", "7", "7", None, config=cfg)
    first, second = SEEN
    assert first == {
        "query": "What is 3+4?",
        "response": "7",
        "ground_truth": ["7", "seven"],
        "data_source": "gsm8k",
        "extra_info": {"prompt_text": "What is 3+4?", "index": 3, "tags": [1, 2]},
        "split": "train",
    }
    assert type(first["extra_info"]["index"]) is int
    assert second["query"] == "" and second["extra_info"] is None


async def test_numpy_ground_truths_reach_the_graders_as_plain_values() -> None:
    """A parquet list column arrives from verl as a numpy array (often of acceptable answers),
    a number as a numpy scalar: graders get lists and plain numbers, as over HTTP."""
    cfg = {"graders": {"seen": {"type": "tests.integrations.conftest:seen"}}}
    golds = [
        np.array(["7", "seven"], dtype=object),
        np.array([7, 8]),
        np.int64(7),
        np.float32(0.5),
        np.str_("7"),
        np.array([[1, 2], [3, 4]]),
    ]
    for gold in golds:
        await compute_score("gsm8k", "7", gold, config=cfg)
    compute_score_batch(["gsm8k"], ["7"], [np.array(["7", "seven"])], None, config=cfg)
    got = [rec["ground_truth"] for rec in SEEN]
    assert got == [["7", "seven"], [7, 8], 7, 0.5, "7", [[1, 2], [3, 4]], ["7", "seven"]]
    assert [type(g) for g in got[2:5]] == [int, float, str]


async def test_a_numpy_array_of_acceptable_answers_is_graded() -> None:
    """verl hands a parquet list column over as a numpy array: any of its answers is correct."""
    cfg = {
        "graders": {"correct": {"type": "math", "mapper": {"reference_response": "ground_truth"}}}
    }
    golds = np.array(["14", "7"], dtype=object)
    right = await compute_score("d", "so \\boxed{7}", golds, config=cfg)
    wrong = await compute_score("d", "so \\boxed{9}", golds, config=cfg)
    flag = {"rm/correct/unscored": 0.0, "rm_error": 0.0}
    assert right == {"score": 1.0, "rm/correct": 1.0, **flag}
    assert wrong == {"score": 0.0, "rm/correct": 0.0, **flag}


def test_yaml_config_env_fallback_and_clear_errors(
    tmp_path: Path, shim_env: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "reward.yaml"
    path.write_text(yaml.safe_dump(SHIM_CONFIG))
    want = approx(CASES[0][2])
    assert compute_score_sync("d", "7", "7", config=str(path)) == want
    with pytest.raises(ConfigError, match="RM_SERVICE_CONFIG or RM_SERVICE_URL"):
        compute_score_sync("d", "7", "7")
    shim_env.setenv("RM_SERVICE_CONFIG", str(path))
    assert compute_score_sync("d", "7", "7") == want
    assert len(_targets._targets) == 1  # the same file, explicit or from the env: one backend
    with pytest.raises(ConfigError, match="not both"):
        compute_score_sync("d", "7", "7", config=str(path), url="http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="needs url"):
        compute_score_sync("d", "7", "7", config=str(path), reward="other")
    with pytest.raises(ConfigError, match="fallback_score"):
        compute_score_sync("d", "7", "7", fallback_score=float("nan"))
    with pytest.raises(ConfigError, match=r"graders\.x\.call_timeout"):
        compute_score_sync(
            "d", "7", "7", config={"graders": {"x": {"type": "format", "call_timeout": -1}}}
        )
    clash = {"graders": {"score": {"type": "format"}}}
    with pytest.raises(ConfigError, match=r"\['score'\] clash"):
        compute_score_sync("d", "7", "7", config=clash)


async def test_url_mode_against_a_real_service(shim_env: pytest.MonkeyPatch) -> None:
    app = create_app({"math": SHIM_CONFIG}, ServiceSettings(api_key="k"))
    with serve_in_thread(app) as url:
        got = [
            await compute_score("d", s, gt, url=url, api_key="k", fallback_score=-1)
            for s, gt, _ in CASES
        ]
        assert got == [approx(want) for _, _, want in CASES]
        batch = await asyncio.to_thread(
            compute_score_batch,
            ["d"] * 4,
            [s for s, _, _ in CASES],
            [gt for _, gt, _ in CASES],
            url=url,
            api_key="k",
            reward="math",
            fallback_score=-1,
        )
        assert batch == got
        shim_env.setenv("RM_SERVICE_URL", url)
        shim_env.setenv("RM_SERVICE_CONFIG", "/nonexistent.yaml")  # the URL wins
        shim_env.setenv("RM_SERVICE_API_KEY", "k")
        assert await compute_score("d", "7", "7", fallback_score=-1) == got[0]
        with pytest.raises(ConfigError, match="401"):  # a wrong key fails on first use
            await compute_score("d", "7", "7", url=url, api_key="wrong")
        with pytest.raises(ConfigError, match="no reward 'other'"):
            await compute_score("d", "7", "7", url=url, reward="other")


async def test_batch_keeps_order_and_length_even_from_inside_a_loop() -> None:
    cases = CASES * 3
    kwargs: dict[str, Any] = {"config": SHIM_CONFIG, "fallback_score": -1}
    got = compute_score_batch(  # a running loop here: graded on a worker thread
        ["d"] * len(cases), [s for s, _, _ in cases], [gt for _, gt, _ in cases], None, **kwargs
    )
    assert got == [approx(want) for _, _, want in cases]
    with pytest.raises(InputError, match="'ground_truths' has 1 values for 2"):
        compute_score_batch(["d", "d"], ["7", "8"], ["7"], **kwargs)
    with pytest.raises(InputError, match="'extra_infos' has 3 values for 2"):
        compute_score_batch(["d", "d"], ["7", "8"], ["7", "7"], [{}] * 3, **kwargs)


def test_many_threads_at_once_build_one_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    builds = []
    real_build = _targets._build

    def counting(key: Any) -> Any:
        builds.append(threading.get_ident())
        return real_build(key)

    monkeypatch.setattr(_targets, "_build", counting)
    cases = CASES * 10

    def one(i: int) -> dict[str, float]:
        s, gt, _ = cases[i]
        if i % 2:
            return compute_score_sync("d", s, gt, config=SHIM_CONFIG, fallback_score=-1)
        return asyncio.run(compute_score("d", s, gt, config=SHIM_CONFIG, fallback_score=-1))

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, range(len(cases))))
    assert got == [approx(want) for _, _, want in cases]
    assert len(builds) == 1 and len(_targets._targets) == 1


# --- found by an adversarial review of the trainer faces -----------------------------------------


async def test_a_config_handed_over_as_omegaconf_nodes_keeps_every_part() -> None:
    """verl passes ``reward_kwargs`` as OmegaConf nodes; the ``aggregators`` list (a ListConfig)
    was dropped without a word, and the 0.9/0.1 weighted reward became an equal-weight sum."""
    from omegaconf import OmegaConf

    cfg = {
        "graders": {
            "correct": {"type": "number", "mapper": {"reference_response": "ground_truth"}},
            "format": {"type": "format", "mode": "think_answer"},
        },
        "aggregators": [
            {"type": "weighted_sum", "name": "reward", "weights": {"correct": 0.9, "format": 0.1}}
        ],
    }
    nodes = OmegaConf.create({"config": cfg}).config
    right_answer_wrong_format = "<answer>5</answer>"
    plain = await compute_score("d", right_answer_wrong_format, "5", {}, config=cfg)
    via_verl = await compute_score("d", right_answer_wrong_format, "5", {}, config=nodes)
    assert plain["score"] == pytest.approx(0.9)
    assert via_verl == plain
    with pytest.raises(ConfigError, match=r"config.graders.x.mapper: a object has no place"):
        await compute_score("d", "5", "5", {}, config={"graders": {"x": {"mapper": object()}}})


async def test_a_deadline_given_as_text_is_used_as_a_number() -> None:
    """``deadline="240"`` passed the check and then failed every comparison as a string: every
    sample got the fallback score."""
    got = await compute_score("d", "7", "7", {}, config=SHIM_CONFIG, deadline="240")
    assert got["rm_error"] == 0.0 and got["rm/num"] == 1.0
    with pytest.raises(ConfigError, match="deadline must be a finite number"):
        await compute_score("d", "7", "7", {}, config=SHIM_CONFIG, deadline="soon")


async def test_a_fallback_above_every_reward_is_refused() -> None:
    """fallback_score=5 trained every unscored sample at 5, above any answer's reward."""
    with pytest.raises(ConfigError, match="fallback_score must be at most 1"):
        await compute_score("d", "7", "7", {}, config=SHIM_CONFIG, fallback_score=5)


# --- a failed component under a reward that still scores ---------------------------------------

SKIP_CONFIG: dict[str, Any] = {
    "graders": {
        "correct": {"type": "number", "mapper": {"reference_response": "ground_truth"}},
        "format": {"type": "format", "mode": "think_answer"},
    },
    "aggregators": [
        {
            "type": "weighted_sum",
            "name": "reward",
            "weights": {"correct": 0.7, "format": 0.3},
            "on_error": "skip",
        }
    ],
}
"""The README's kind of reward: ``correct`` may fail (a gold it cannot read) while the reward
still scores, from ``format`` alone."""

WRONG = "<think>x</think><answer>1</answer>"


async def test_a_failed_component_is_flagged_apart_from_a_wrong_answer() -> None:
    """A gold the grader cannot read left ``correct`` unscored, but the reward scored (skip):
    verl got ``rm/correct = 0.0`` and ``rm_error = 0.0``, the very dict of a wrong answer, so
    DAPO's filter and verl's val-aux means counted the failure as a wrong answer. The flag
    ``rm/correct/unscored`` now tells them apart, for every way verl calls us."""
    unreadable = await compute_score("d", WRONG, "see solution manual", config=SKIP_CONFIG)
    wrong = await compute_score("d", WRONG, "56", config=SKIP_CONFIG)
    assert unreadable["rm_error"] == wrong["rm_error"] == 0.0
    assert unreadable["rm/correct"] == wrong["rm/correct"] == 0.0  # the fallback, and a score
    assert unreadable["rm/correct/unscored"] == 1.0
    assert wrong["rm/correct/unscored"] == 0.0
    for got in (unreadable, wrong):
        assert got["rm/format/unscored"] == got["rm/reward/unscored"] == 0.0
    assert list(unreadable) == list(wrong)  # verl reads the first sample's keys from all
    assert unreadable["score"] == 1.0 and wrong["score"] == pytest.approx(0.3)
    batch = compute_score_batch(
        ["d", "d"], [WRONG, WRONG], ["see solution manual", "56"], config=SKIP_CONFIG
    )
    sync = compute_score_sync("d", WRONG, "see solution manual", config=SKIP_CONFIG)
    assert batch == [unreadable, approx(wrong)] and sync == unreadable


async def test_the_fallback_stays_a_number_and_only_the_flag_says_unscored() -> None:
    """GDPO trains on ``rm/<name>`` and DAPO compares it, so an unscored component keeps
    ``fallback_score`` there (a float, never NaN); its flag is 1.0 and a scored one's 0.0."""
    got = await compute_score("d", WRONG, None, config=SKIP_CONFIG, fallback_score=-0.5)
    assert got["rm/correct"] == -0.5 and got["rm/correct/unscored"] == 1.0
    assert got["rm/format"] == 1.0 and got["rm/format/unscored"] == 0.0
    assert all(type(v) is float for v in got.values())


async def test_components_whose_keys_would_coincide_are_refused() -> None:
    """``a`` and ``a/unscored`` would both make ``rm/a/unscored``: one column silently
    overwriting the other. Refused, naming the key, as a clash with verl's keys is."""
    cfg = {"graders": {n: {"type": "format"} for n in ("a", "a/unscored")}}
    with pytest.raises(ConfigError, match="'rm/a/unscored' twice"):
        await compute_score("d", "7", "7", config=cfg)
