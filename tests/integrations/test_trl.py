"""The TRL face: records from both of TRL's formats, None on unscored, one grading pass shared
by per-component functions, TRL's extras kept out of the records, logging, and the remote
client against a real service (retries, a failed batch as None, never 0)."""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from rm_service import ConfigError, GradingRunner, InputError
from rm_service.app import create_app
from rm_service.integrations.trl import RemoteReward, RMServiceReward, trl_records
from tests.support import approx, serve_in_thread, short_or_unscored

CONFIG: dict[str, Any] = {
    "graders": {
        "short": {"type": "tests.support:short_or_unscored"},
        "digit": {"type": "tests.support:has_digit"},
    },
    "aggregators": [
        {"type": "weighted_sum", "name": "reward", "weights": {"short": 1, "digit": 1}}
    ],
}
PROMPTS = ["say 1", "say a", "say FAIL", "say 22"]
COMPLETIONS = ["1", "aaaaaaaaaa", "FAIL", "22"]
# short: 1-len/20; digit: any digit; reward: their mean (None when short is unscored).
EXPECTED = {
    "short": [0.95, 0.5, None, 0.9],
    "digit": [1.0, 0.0, 0.0, 1.0],
    "reward": [0.975, 0.25, None, 0.95],
}


# What the ``digit`` function returns: ``None`` where the config's reward is unscored.
MASKED_DIGIT = [1.0, 0.0, None, 1.0]


class Counting:
    """A grader counting its calls (to prove one grading pass per batch)."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, response: str) -> float:
        with self.lock:
            self.calls += 1
        return 1.0 if response.isdigit() else 0.0


def test_records_standard_and_conversational() -> None:
    std = trl_records(["p1"], ["c1"], [[5, 6]], {"solution": ["42"]})
    assert std == [
        {
            "solution": "42",
            "prompt": "p1",
            "query": "p1",
            "response": "c1",
            "completion": "c1",
            "completion_ids": [5, 6],
        }
    ]
    prompt = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "what is "}, {"type": "text", "text": "2+2?"}],
        },
    ]
    completion = [{"role": "assistant", "content": "4"}]
    (conv,) = trl_records([prompt], [completion])
    assert conv["query"] == "what is 2+2?"
    assert conv["response"] == "4"
    assert conv["messages"] == [*prompt, *completion]
    assert "completion_ids" not in conv


def test_records_name_a_misaligned_column() -> None:
    with pytest.raises(InputError, match="'solution' has 1 values for 2 completions"):
        trl_records(["a", "b"], ["x", "y"], None, {"solution": ["1"]})


async def test_reward_is_none_when_unscored_and_extras_are_not_forwarded() -> None:
    seen: list[dict[str, Any]] = []

    def spy(**fields: Any) -> float:
        seen.append(fields)
        return 0.5

    runner = GradingRunner({"spy": spy})
    reward = RMServiceReward(runner)
    logged: dict[str, float] = {}
    out = await reward(
        prompts=["p"],
        completions=["c"],
        completion_ids=[[1]],
        ground_truth=["g"],
        trainer_state=object(),
        log_metric=logged.__setitem__,
        log_extra=lambda *_: None,
    )
    assert out == [0.5]
    assert set(seen[0]) == {
        "prompt",
        "query",
        "response",
        "completion",
        "completion_ids",
        "ground_truth",
    }
    assert reward.__name__ == "spy"

    full = RMServiceReward(CONFIG)
    assert full.__name__ == "reward"
    assert await full(prompts=PROMPTS, completions=COMPLETIONS) == approx(EXPECTED["reward"])


async def test_per_component_functions_share_one_grading_pass() -> None:
    counter = Counting()
    runner = GradingRunner(
        {"digits": counter, "short": short_or_unscored},
        aggregators=None,
    )
    funcs = RMServiceReward(runner).per_component()
    assert [f.__name__ for f in funcs] == ["digits", "short"]
    kwargs = {"prompts": PROMPTS, "completions": COMPLETIONS, "completion_ids": [[0]] * 4}
    # As TRL calls async reward functions: concurrently, with the same batch objects.
    got = await asyncio.gather(*(f(**kwargs) for f in funcs))
    assert got[0] == [1.0, 0.0, None, 1.0]  # the reward (their mean) is unscored for record 2
    assert got[1] == approx(EXPECTED["short"])
    assert counter.calls == 4
    # The next batch, even with equal content, is graded again; so is a second call by the same
    # function (a new batch as far as it can tell).
    await asyncio.gather(*(f(**kwargs) for f in funcs))
    assert counter.calls == 8
    await funcs[0](**kwargs)
    assert counter.calls == 12


async def test_logging_through_trl_callbacks() -> None:
    metrics: dict[str, list[float]] = {}
    extra: dict[str, list[Any]] = {}

    def log_metric(name: str, value: float) -> None:
        metrics.setdefault(name, []).append(value)

    reward = RMServiceReward(CONFIG)
    await reward(PROMPTS, COMPLETIONS, log_metric=log_metric, log_extra=extra.__setitem__)
    assert metrics["rm_service/failure_rate"] == [0.25]
    assert metrics["rm_service/short/failure_rate"] == [0.25]
    assert metrics["rm_service/digit/mean"] == [0.5]
    assert metrics["rm_service/latency_s"][0] > 0
    assert extra["rm_service/short"] == approx(EXPECTED["short"])
    assert extra["rm_service/errors"][2].startswith("short: judge_error: the judge said FAIL")
    assert extra["rm_service/errors"][0] == ""

    # Per-component: logged once per batch, and TRL's own columns replace the log_extra ones.
    metrics.clear()
    extra.clear()
    funcs = RMServiceReward(CONFIG).per_component()
    await asyncio.gather(
        *(
            f(PROMPTS, COMPLETIONS, log_metric=log_metric, log_extra=extra.__setitem__)
            for f in funcs
        )
    )
    assert metrics["rm_service/failure_rate"] == [0.25]
    assert set(extra) == {"rm_service/errors"}


def _graders_named(*names: str) -> dict[str, Any]:
    """A reward of ``min_words`` graders under these names, and their minimum."""
    grader = {"type": "tests.support:min_words", "min_words": 1}
    return {
        "graders": {name: dict(grader) for name in names},
        "aggregators": [{"type": "min", "name": "reward"}],
    }


async def test_completions_table_columns_never_replace_trls_or_each_other() -> None:
    """A grader's column went into TRL's completions table under its bare name, after TRL's
    own and its reward functions' columns: a grader named "prompt" replaced the prompts, one
    named like another reward function replaced that function's rewards, and TRL's
    "advantage" replaced a grader so named."""
    config = _graders_named("prompt", "advantage", "format")
    extra: dict[str, list[Any]] = {}
    await RMServiceReward(config)(PROMPTS, COMPLETIONS, log_extra=extra.__setitem__)
    table = {"step": [1] * 4, "prompt": PROMPTS, "completion": COMPLETIONS, "format": [0.0] * 4}
    table |= extra  # TRL: {step, prompt, completion, **rewards, **extra, "advantage": ...}
    table["advantage"] = [0.0] * 4
    assert table["prompt"] == PROMPTS and table["format"] == [0.0] * 4
    assert {"rm_service/prompt", "rm_service/advantage", "rm_service/format"} <= set(table)


async def test_a_grader_named_errors_keeps_its_own_column() -> None:
    """Before: a grader named "errors" was logged as ``rm_service/errors``, the errors
    column's name; TRL extends a column with each list logged under it, so that column held
    twice as many values as rows and TRL's completions table could not be built."""
    config = _graders_named("errors", "errors/score", "fmt")
    extra: dict[str, list[Any]] = {}

    def log_extra(column: str, values: list[Any]) -> None:  # TRL's _log_completion_extra
        extra.setdefault(column, []).extend(values)

    await RMServiceReward(config)(PROMPTS, COMPLETIONS, log_extra=log_extra)
    assert {len(v) for v in extra.values()} == {len(PROMPTS)}, extra
    assert extra["rm_service/errors"] == [""] * len(PROMPTS)
    assert len(extra) == 4  # the three graders' columns and the errors column


async def test_a_null_text_part_is_no_text_not_the_word_none() -> None:
    """A content part ``{"type": "text", "text": None}`` was read as the text "None", which
    a grader then scored as if the model had written it."""
    config = {"graders": {"words": {"type": "tests.support:min_words", "min_words": 1}}}
    said = [{"role": "assistant", "content": [{"type": "text", "text": None}]}]
    prompt = [{"role": "user", "content": "Say something."}]
    assert await RMServiceReward(config)([prompt], [said]) == [0.0]


def test_bad_component_and_bad_config_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'nope' is not one of"):
        RMServiceReward(CONFIG, component="nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("graders: {x: {type: no_such_grader}}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        RMServiceReward(str(bad))


def test_usable_from_a_loop_in_another_thread() -> None:
    """TRL runs async reward functions on its own daemon-thread loop; batches from two such
    loops in turn work on one object."""
    reward = RMServiceReward(CONFIG)
    out: list[Any] = []

    def run() -> None:
        out.append(asyncio.run(reward(PROMPTS, COMPLETIONS)))

    for _ in range(2):
        t = threading.Thread(target=run)
        t.start()
        t.join()
    assert out == [approx(EXPECTED["reward"])] * 2


async def test_remote_reward_matches_in_process() -> None:
    with serve_in_thread(create_app(CONFIG)) as url:
        remote = RemoteReward(url, batch_size=3)  # two chunks, sent concurrently
        assert remote.__name__ == "reward"
        assert await remote(PROMPTS, COMPLETIONS) == approx(EXPECTED["reward"])
        funcs = remote.per_component()
        got = await asyncio.gather(*(f(PROMPTS, COMPLETIONS) for f in funcs))
        assert got == [approx(EXPECTED["short"]), approx(MASKED_DIGIT)]
        assert remote.reward_weights() == [0.5, 0.5]


def test_remote_reward_fails_fast_on_a_wrong_url_key_or_reward(monkeypatch) -> None:
    monkeypatch.delenv("RM_SERVICE_API_KEY", raising=False)
    from rm_service._http_schemas import ServiceSettings

    app = create_app(CONFIG, ServiceSettings(api_key="secret"))
    with serve_in_thread(app) as url:
        with pytest.raises(ConfigError, match="401"):
            RemoteReward(url)
        with pytest.raises(ConfigError, match="no reward 'other'"):
            RemoteReward(url, api_key="secret", reward="other")
        monkeypatch.setenv("RM_SERVICE_API_KEY", "secret")
        assert RemoteReward(url).components == ["short", "digit", "reward"]
    with pytest.raises(ConfigError, match="cannot describe"):
        RemoteReward(url, timeout=1)


def flaky_app(fail_first: int, status: int = 503) -> tuple[FastAPI, list[int]]:
    """A stand-in service: real /graders, and a /grade that fails ``fail_first`` times."""
    app = FastAPI()
    calls: list[int] = []

    @app.get("/graders")
    async def graders() -> Any:
        return {
            "default": "cfg",
            "rewards": {
                "cfg": {
                    "reward": "reward",
                    "graders": {"short": {}, "digit": {}},
                    "aggregators": [{"name": "reward"}],
                }
            },
        }

    @app.post("/grade")
    async def grade(request: Request) -> Any:
        calls.append(1)
        if len(calls) <= fail_first:
            return JSONResponse(
                {"detail": "busy"}, status_code=status, headers={"Retry-After": "0"}
            )
        body = await request.json()
        return {
            "results": [
                {
                    "scores": {"short": 1.0, "digit": None, "reward": 0.5},
                    "errors": {"digit": {"kind": "timeout", "error": "too slow"}},
                }
                for _ in body["records"]
            ]
        }

    return app, calls


async def test_remote_retries_then_succeeds() -> None:
    app, calls = flaky_app(fail_first=2, status=429)
    with serve_in_thread(app) as url:
        remote = RemoteReward(url, retries=3)
        assert await remote(["p"] * 2, ["c"] * 2) == [0.5, 0.5]
        digit = remote.per_component(["digit"])[0]
        assert await digit(["p"], ["c"]) == [None]
    assert len(calls) == 4


async def test_remote_failed_batch_is_none_never_zero(caplog) -> None:
    app, calls = flaky_app(fail_first=100, status=500)
    with serve_in_thread(app) as url:
        remote = RemoteReward(url, retries=2)
        remote._shared.backend.policy = type(remote._shared.backend.policy)(  # no real waits
            max_retries=2, base_delay=0.0, malformed_retries=0
        )
        extra: dict[str, list[Any]] = {}
        out = await remote(["p"] * 3, ["c"] * 3, log_extra=extra.__setitem__)
    assert out == [None, None, None]
    assert len(calls) == 3  # first attempt + 2 retries
    assert "unscored after 3 attempt(s)" in caplog.text
    assert "HTTP 500" in extra["rm_service/errors"][0]


async def test_remote_400_is_not_retried() -> None:
    app, calls = flaky_app(fail_first=100, status=422)
    with serve_in_thread(app) as url:
        assert await RemoteReward(url, retries=3)(["p"], ["c"]) == [None]
    assert len(calls) == 1


def test_a_column_that_would_be_shadowed_is_an_error() -> None:
    """A gold ``response`` column must not be silently replaced by the completion (each
    completion would then be graded against itself)."""
    with pytest.raises(InputError, match=r"\['response'\] would be overwritten"):
        trl_records(["2+2?"], ["5"], None, {"response": ["4"]})


def test_the_response_is_the_last_assistant_message() -> None:
    completion = [
        {"role": "assistant", "content": "let me check", "tool_calls": []},
        {"role": "tool", "content": "4"},
        {"role": "assistant", "content": "It is 4."},
        {"role": "tool", "content": "(cut off)"},
    ]
    (rec,) = trl_records([[{"role": "user", "content": "2+2?"}]], [completion])
    assert rec["response"] == "It is 4."


def test_jsonable_records_for_a_service() -> None:
    from rm_service.integrations._backend import jsonable

    class Image:
        pass

    rec = {"a": math.nan, "b": Image(), "c": [1, Image()], "d": (1.5, math.inf), "e": {"f": 2}}
    assert jsonable(rec) == {"a": None, "d": [1.5, None], "e": {"f": 2}}


async def test_remote_reward_sends_nan_and_drops_unserialisable_columns() -> None:
    with serve_in_thread(create_app(CONFIG)) as url:
        out = await RemoteReward(url)(
            PROMPTS, COMPLETIONS, difficulty=[math.nan, 1.0, 2.0, 3.0], image=[object()] * 4
        )
    assert out == approx(EXPECTED["reward"])


async def test_concurrent_remote_calls_share_one_request() -> None:
    """verl's reward loop gathers one call per sample: on one loop they go out together."""
    from rm_service.integrations._backend import RemoteBackend

    app, calls = flaky_app(fail_first=0)
    with serve_in_thread(app) as url:
        backend = RemoteBackend(url)
        backend.describe()
        parts = await asyncio.gather(*(backend.agrade([{"response": "x"}] * k) for k in (1, 3, 2)))
        assert [[r.index for r in p] for p in parts] == [[0], [0, 1, 2], [0, 1]]
        assert all(r.reward == 0.5 for p in parts for r in p)
        assert len(calls) == 1
        await backend.agrade([{"response": "y"}])  # a later turn: a request of its own
        assert len(calls) == 2


async def test_no_duplicate_means_for_components_trl_already_logs() -> None:
    metrics: dict[str, float] = {}
    funcs = RMServiceReward(CONFIG).per_component()
    await asyncio.gather(*(f(PROMPTS, COMPLETIONS, log_metric=metrics.__setitem__) for f in funcs))
    assert "rm_service/short/mean" not in metrics  # TRL logs rewards/short/mean
    assert metrics["rm_service/reward/mean"] == pytest.approx((0.975 + 0.25 + 0.95) / 3)


def _config(**aggregator: Any) -> dict[str, Any]:
    return {**CONFIG, "aggregators": [{**CONFIG["aggregators"][0], **aggregator}]}


async def test_per_component_functions_are_none_where_the_config_reward_is_unscored() -> None:
    """Issue 10: TRL sums the functions with ``nansum``, so ``digit`` must be ``None`` too where
    ``short`` (and so, under ``on_error: unscored``, the reward) is; else TRL trains on it."""
    funcs = RMServiceReward(CONFIG).per_component()
    got = await asyncio.gather(*(f(PROMPTS, COMPLETIONS) for f in funcs))
    assert got == [approx(EXPECTED["short"]), approx(MASKED_DIGIT)]
    # Every component function, not only per_component()'s.
    assert await RMServiceReward(CONFIG, component="digit")(PROMPTS, COMPLETIONS) == MASKED_DIGIT


@pytest.mark.parametrize("on_error", ["skip", 0.5])
async def test_a_config_that_keeps_the_record_scored_passes_components_through(
    on_error: str | float, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(on_error=on_error)
    assert (await RMServiceReward(config)(PROMPTS, COMPLETIONS))[2] is not None
    funcs = RMServiceReward(config).per_component()
    got = await asyncio.gather(*(f(PROMPTS, COMPLETIONS) for f in funcs))
    assert got == [approx(EXPECTED["short"]), approx(EXPECTED["digit"])]
    # TRL's nansum neither renormalises nor substitutes: said once, not per batch.
    assert caplog.text.count("skipped or substituted unscored components") == 1
    assert "for 1 of 4 records" in caplog.text
    await asyncio.gather(*(f(PROMPTS, COMPLETIONS) for f in funcs))
    assert caplog.text.count("skipped or substituted unscored components") == 1


def test_reward_weights_are_the_configs_normalised() -> None:
    """TRL's ``reward_weights`` are used as given; the aggregator normalises its weights."""
    assert RMServiceReward(_config(weights={"short": 3, "digit": 1})).reward_weights() == [
        0.75,
        0.25,
    ]
    # A zero weight is a function TRL sums with weight 0; order follows ``components``.
    zero = RMServiceReward(_config(weights={"short": 0, "digit": 2}))
    assert zero.reward_weights(["digit", "short"]) == [1.0, 0.0]
    # No aggregator: the runner's equal-weight mean; a single grader: itself.
    runner = GradingRunner({"a": lambda response: 1.0, "b": lambda response: 0.0})
    assert RMServiceReward(runner).reward_weights() == [0.5, 0.5]
    assert RMServiceReward(GradingRunner({"a": lambda response: 1.0})).reward_weights() == [1.0]


def test_reward_weights_refuse_what_no_weights_reproduce() -> None:
    with pytest.raises(ConfigError, match="not a weighted_sum"):
        RMServiceReward(
            {**CONFIG, "aggregators": [{"type": "min", "name": "reward"}]}
        ).reward_weights()
    with pytest.raises(ConfigError, match=r"weighs \['digit'\] too"):
        RMServiceReward(CONFIG).reward_weights(["short"])
    with pytest.raises(ConfigError, match="not among"):
        RMServiceReward(CONFIG).reward_weights(["nope"])


async def test_remote_reward_weights_come_from_the_service() -> None:
    with serve_in_thread(create_app(_config(weights={"short": 1, "digit": 3}))) as url:
        assert RemoteReward(url).reward_weights() == [0.25, 0.75]
    max_config = {**CONFIG, "aggregators": [{"type": "max", "name": "reward"}]}
    with (
        serve_in_thread(create_app(max_config)) as url,
        pytest.raises(ConfigError, match="not a weighted_sum"),
    ):
        RemoteReward(url).reward_weights()


# --- found by an adversarial review of the remote faces ------------------------------------------


def answering_app(body_of: Any) -> FastAPI:
    """A stand-in service whose /grade answers 200 with ``body_of(request body)``."""
    app = FastAPI()

    @app.get("/graders")
    async def graders() -> Any:
        return {
            "default": "cfg",
            "rewards": {"cfg": {"reward": "short", "graders": {"short": {}}, "aggregators": []}},
        }

    @app.post("/grade")
    async def grade(request: Request) -> Any:
        return await body_of(await request.json())

    return app


@pytest.mark.parametrize(
    "answer",
    [
        {"results": {"x": 1}},  # an object of one key: its key read as a result
        {"results": [{"scores": ["short", 1.0]}]},  # scores a list
        {"results": None},
    ],
)
async def test_a_malformed_200_is_none_not_a_crash_of_the_step(answer: Any) -> None:
    """A 200 that is not a /grade answer: every record None (an AttributeError escaped into
    TRL's training step)."""

    async def body_of(_: Any) -> Any:
        return answer

    with serve_in_thread(answering_app(body_of)) as url:
        assert await RemoteReward(url, retries=0)(["p"], ["c"]) == [None]


async def test_the_timeout_bounds_the_whole_request() -> None:
    """httpx's timeout bounds each read: a server that trickles its answer was waited on for as
    long as it liked, and its late answer taken."""
    from starlette.responses import StreamingResponse

    app = answering_app(None)

    @app.post("/slow/grade")
    async def slow(request: Request) -> Any:
        async def trickle() -> Any:
            for piece in ('{"results": [{"scores": {"short": 1.0}}', "]}"):
                yield piece
                await asyncio.sleep(0.6)

        return StreamingResponse(trickle(), media_type="application/json")

    @app.get("/slow/graders")
    async def slow_graders() -> Any:
        return {
            "default": "cfg",
            "rewards": {"cfg": {"reward": "short", "graders": {"short": {}}, "aggregators": []}},
        }

    with serve_in_thread(app) as url:
        remote = RemoteReward(url + "/slow", timeout=1.0, retries=0)
        started = asyncio.get_running_loop().time()
        assert await remote(["p"], ["c"]) == [None]
        assert asyncio.get_running_loop().time() - started < 1.5
        # the same answer, given the time, is taken
        assert await RemoteReward(url + "/slow", timeout=5.0, retries=0)(["p"], ["c"]) == [1.0]


def test_an_endless_timeout_is_refused_at_construction() -> None:
    """``timeout=inf`` was accepted, and every call then failed sending ``deadline: inf``."""
    for bad in (math.inf, math.nan, 0, -1):
        with pytest.raises(ConfigError, match="finite number of seconds"):
            RemoteReward("http://127.0.0.1:1", timeout=bad)


async def test_a_chunk_too_large_for_the_service_is_split_not_lost() -> None:
    """A 413 (the body or record limit) left every record of the chunk unscored; verl merges
    per-sample calls into one chunk, so long completions hit it. Halves go alone."""
    sizes: list[int] = []

    async def body_of(body: Any) -> Any:
        n = len(body["records"])
        sizes.append(n)
        if n > 2:
            return JSONResponse({"detail": "too large"}, status_code=413)
        return {"results": [{"scores": {"short": 1.0}} for _ in range(n)]}

    with serve_in_thread(answering_app(body_of)) as url:
        out = await RemoteReward(url, batch_size=8, retries=0)(["p"] * 7, ["c"] * 7)
    assert out == [1.0] * 7
    assert sizes[0] == 7 and sum(n for n in sizes if n <= 2) == 7  # halved until they fit


async def test_a_lone_surrogate_does_not_take_the_batch_with_it() -> None:
    """A ``str`` may hold a lone surrogate (``json.loads('"\\ud800"')`` of a dataset line),
    which UTF-8 cannot: the request failed to encode and TRL's step crashed with
    ``UnicodeEncodeError`` (verl and OpenRLHF lost the whole coalesced batch as unscored)."""
    bad = "a\ud800a"
    with serve_in_thread(create_app(CONFIG)) as url:
        out = await RemoteReward(url)(PROMPTS, [*COMPLETIONS[:3], bad], note=["\udfff"] * 4)
    assert out == approx([0.975, 0.25, None, 0.425])  # "a\ufffda": 3 chars, no digit


def test_keys_that_differ_only_in_a_lone_surrogate_stay_two_keys() -> None:
    """Each lone surrogate became U+FFFD in keys too: ``{"a\\ud800": 1, "a\\udfff": 2}`` was
    sent as one key, and one value was lost without a word."""
    from rm_service.integrations._backend import jsonable

    keys = ["a" + chr(0xD800), "a" + chr(0xDFFF), "a\ufffd"]  # three keys (ruff reads one)
    got = jsonable({**dict(zip(keys, [1, 2, 3], strict=True)), "é": {"b\ud800": 4}})
    assert got == {"a\\ud800": 1, "a\\udfff": 2, "a\ufffd": 3, "é": {"b\\ud800": 4}}
    assert jsonable({"k": "v\ud800"}) == {"k": "v\ufffd"}  # values as before
