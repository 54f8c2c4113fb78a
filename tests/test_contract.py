"""The declared grader contract, the runner's call hook, and build-once.

The engine reads graders only through ``graders._base.GraderContract``; the service closes and
probes judges through it, watches calls through ``agrade(observer=...)`` instead of wrapping
graders, and a loaded config builds its runner once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graders import CommitteeGrader, FormatGrader, LLMGrader
from graders._base import BaseGrader, contract
from rm_service import GraderScore, GradingRunner, build_runner, load_config
from rm_service.cli import main
from rm_service.models import ChatResult, SamplingParams
from tests.app import make_app


class _ClosingModel:
    """A ``ChatModel`` that answers a fixed verdict and counts ``aclose`` calls."""

    def __init__(self) -> None:
        self.model = "closing"
        self.closed = 0

    async def achat(self, messages: Sequence[Any], params: SamplingParams | None = None) -> Any:
        return ChatResult(text='{"reason": "ok", "score": 5}', model=self.model)

    async def aclose(self) -> None:
        self.closed += 1


class _CacheSpy:
    closed = 0

    def close(self) -> None:
        self.closed += 1


class _Minimal:
    """A grader with only the minimal protocol: ``name`` and ``aevaluate``."""

    name = "minimal"

    async def aevaluate(self, **fields: Any) -> GraderScore:
        return GraderScore(name=self.name, score=1.0)


async def test_judge_aclose_closes_its_built_model_and_cache() -> None:
    model, cache = _ClosingModel(), _CacheSpy()
    judge = LLMGrader(model, rubric="helpful", cache=cache)  # type: ignore[arg-type]
    assert list(judge.judges()) == [model]
    await judge.aclose()
    assert (model.closed, cache.closed) == (1, 1)


async def test_judge_aclose_does_not_build_a_lazy_model() -> None:
    built: list[object] = []
    judge = LLMGrader(lambda: built.append(1) or _ClosingModel(), rubric="r")  # type: ignore[arg-type,func-returns-value]
    assert list(judge.judges()) == []
    await judge.aclose()
    assert built == []


async def test_committee_aclose_closes_every_member() -> None:
    models = [_ClosingModel(), _ClosingModel()]
    committee = CommitteeGrader(
        [LLMGrader(m, rubric="r", name=f"j{i}") for i, m in enumerate(models)]
    )
    assert list(committee.judges()) == models
    await committee.aclose()
    assert [m.closed for m in models] == [1, 1]


class _LoadingModel(_ClosingModel):
    """An embedded-style backend: ``load()`` must run before it answers quickly."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded = 0

    def load(self) -> None:
        self.loaded += 1


async def test_committee_aload_builds_and_loads_every_members_judge() -> None:
    models = [_LoadingModel(), _LoadingModel()]
    members = [
        LLMGrader(lambda m=m: m, rubric="r", name=f"j{i}")  # lazy: built by aload
        for i, m in enumerate(models)
    ]
    committee = CommitteeGrader(members)
    assert list(committee.judges()) == []
    await committee.aload()
    assert [m.loaded for m in models] == [1, 1]
    assert list(committee.judges()) == models


async def test_contract_gives_defaults_for_a_minimal_grader() -> None:
    view = contract(_Minimal())
    assert (view.inline, view.required_fields, view.optional_fields, view.members) == (
        False,
        (),
        (),
        (),
    )
    assert list(view.judges()) == []
    await view.aload()  # nothing to load or close, and no error
    await view.aclose()
    rule = FormatGrader()
    assert contract(rule) is rule and isinstance(rule, BaseGrader)


class _Spy:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[tuple[str, bool]] = []

    def on_start(self, grader: str) -> None:
        self.started.append(grader)

    def on_finish(self, grader: str, seconds: float, awaited: bool) -> None:
        assert seconds >= 0
        self.finished.append((grader, awaited))


async def test_runner_tells_the_observer_of_every_call() -> None:
    spy = _Spy()

    class Observer:
        started = staticmethod(spy.on_start)
        finished = staticmethod(spy.on_finish)

    runner = GradingRunner({"fmt": FormatGrader(), "min": _Minimal()})
    records = [{"response": "a"}, {"response": "b"}]
    got = await runner.agrade(records, observer=Observer())
    assert len(got) == 2
    assert spy.started == ["min", "min"]  # only awaited calls are "in flight"
    assert sorted(spy.finished) == [("fmt", False)] * 2 + [("min", True)] * 2


def test_app_serves_the_runner_it_was_given() -> None:
    runner = GradingRunner({"fmt": FormatGrader()})
    app = make_app({"r": runner})
    assert app.state.rewards["r"].runner is runner


_BUILT: list[int] = []


class CountingFormat(FormatGrader):
    """A format grader counting its constructions (named in configs by import string)."""

    def __init__(self, **params: Any) -> None:
        _BUILT.append(1)
        super().__init__(**params)


COUNTING = f"{__name__}:CountingFormat"


def test_load_config_then_build_runner_builds_the_graders_once() -> None:
    _BUILT.clear()
    cfg = load_config({"graders": {"f": {"type": COUNTING}}})
    first = build_runner(cfg)
    assert len(_BUILT) == 1
    second = build_runner(cfg)  # a later call builds a runner of its own
    assert len(_BUILT) == 2 and second is not first


def test_cli_grade_builds_the_graders_once(tmp_path: Path) -> None:
    cfg = tmp_path / "reward.yaml"
    cfg.write_text(f"graders:\n  f: {{type: '{COUNTING}'}}\n")
    src = tmp_path / "in.jsonl"
    src.write_text('{"response": "<think>a</think><answer>b</answer>"}\n')
    _BUILT.clear()
    argv = ["grade", str(src), "-c", str(cfg), "-o", str(tmp_path / "out.jsonl")]
    assert main([*argv, "--no-progress", "--max-concurrency", "2"]) == 0
    assert len(_BUILT) == 1


def test_an_offline_line_is_shaped_by_the_result_itself() -> None:
    """Record shaping in one place: ``record_json(rec, line=)`` adds the line, lets it stand in
    for a missing id, and names the line instead of the runner's index in error texts."""
    from rm_service import GraderError, RecordResult, record_json

    err = GraderError(name="f", error="record 0: no field 'x'", kind="invalid_input")
    row = record_json(RecordResult(index=0, reward_name="f", components={"f": err}), line=7)
    assert (row["line"], row["id"]) == (7, 7)
    assert row["errors"] == {"f": {"kind": "invalid_input", "error": "line 7: no field 'x'"}}
    assert "line" not in record_json(RecordResult(index=0, components={"f": err}))
