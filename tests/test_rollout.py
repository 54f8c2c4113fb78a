"""``RolloutRewardCalculator``: distributions, combining, unscored, prompts, errors."""

from __future__ import annotations

from typing import Any

import pytest

from graders import FunctionGrader
from rm_service import (
    ConfigError,
    GradingRunner,
    InputError,
    RolloutRewardCalculator,
    TurnReward,
)
from tests.support import approx


def number(response: str) -> float:
    """Step grader: the turn's content is its score ("oops" raises, so it is unscored)."""
    return float(response)


def outcome(score: float) -> float:
    """Rollout grader: the rollout's ``score`` metadata (missing: unscored, invalid_input)."""
    return score


def step_runner() -> GradingRunner:
    return GradingRunner({"num": FunctionGrader(number)})


def rollout_runner() -> GradingRunner:
    return GradingRunner({"outcome": FunctionGrader(outcome)})


def rollout(*contents: str | None, **extra: Any) -> dict[str, Any]:
    """A system prompt, then a user/assistant pair per assistant content."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "be brief"}]
    for i, c in enumerate(contents):
        messages.append({"role": "user", "content": f"q{i}"})
        messages.append({"role": "assistant", "content": c})
    return {"messages": messages, **extra}


def rewards(turns: list[TurnReward]) -> list[float | None]:
    return [t.reward for t in turns]


# --- distributions and combination -----------------------------------------------------------


@pytest.mark.parametrize(
    ("distribution", "gamma", "shares"),
    [
        ("last_step", None, [0.0, 0.0, 0.8]),
        ("all_steps", None, [0.8, 0.8, 0.8]),
        ("discounted", 0.5, [0.2, 0.4, 0.8]),  # 0.5**2 * 0.8, 0.5**1 * 0.8, 0.5**0 * 0.8
    ],
)
async def test_distributions(distribution: str, gamma: float | None, shares: list[float]) -> None:
    calc = RolloutRewardCalculator(
        step_runner(), rollout_runner(), distribution=distribution, gamma=gamma
    )  # type: ignore[arg-type]
    turns = await calc.acompute(rollout("0.2", "0.4", "0.6", score=0.8))
    steps = [0.2, 0.4, 0.6]
    assert [t.components["rollout"] for t in turns] == approx(shares)
    assert rewards(turns) == approx([(s + r) / 2 for s, r in zip(steps, shares, strict=True)])
    last = turns[-1]
    assert (last.turn, last.message_index, last.completion) == (2, 6, "0.6")
    assert last.components["step"] == last.components["step/num"] == 0.6
    assert last.components["rollout/outcome"] == 0.8  # undistributed, on every turn
    assert turns[0].components["rollout/outcome"] == 0.8
    assert all(t.errors == {} for t in turns)


async def test_env_rewards_with_weights() -> None:
    calc = RolloutRewardCalculator(step_runner(), weights={"step": 2, "env": 1})
    turns = await calc.acompute(rollout("0.2", "0.4", "0.6", env_rewards=[1.0, 0, 0.5]))
    assert rewards(turns) == approx([(0.4 + 1.0) / 3, 0.8 / 3, (1.2 + 0.5) / 3])
    assert [t.components["env"] for t in turns] == [1.0, 0.0, 0.5]
    assert "rollout" not in turns[0].components


async def test_without_env_rewards_env_is_not_a_source() -> None:
    calc = RolloutRewardCalculator(rollout_runner=rollout_runner(), distribution="all_steps")
    turns = await calc.acompute(rollout("a", "b", score=0.3))
    assert rewards(turns) == approx([0.3, 0.3])
    assert set(turns[0].components) == {"rollout", "rollout/outcome"}


# --- unscored propagation ----------------------------------------------------------------------


async def test_unscored_step_voids_only_its_turn() -> None:
    calc = RolloutRewardCalculator(step_runner(), rollout_runner())
    turns = await calc.acompute(rollout("0.2", "oops", "0.6", score=1.0))
    assert rewards(turns) == approx([0.1, None, 0.8])
    assert turns[1].components["step"] is None
    assert "could not convert" in turns[1].errors["step/num"]
    assert turns[1].errors["step/num"].startswith("internal: ")


async def test_unscored_rollout_reward_voids_every_turn() -> None:
    calc = RolloutRewardCalculator(step_runner(), rollout_runner())  # last_step
    turns = await calc.acompute(rollout("0.2", "0.6"))  # no score: rollout grader unscored
    assert rewards(turns) == [None, None]
    assert turns[0].components["rollout"] is None
    assert turns[0].errors["rollout/outcome"].startswith("invalid_input: ")


async def test_unscored_env_reward_voids_its_turn_unless_weighted_zero() -> None:
    ro = rollout("0.2", "0.6", env_rewards=[None, 1.0])
    turns = await RolloutRewardCalculator(step_runner()).acompute(ro)
    assert rewards(turns) == approx([None, 0.8])
    assert "env" in turns[0].errors
    zero = RolloutRewardCalculator(step_runner(), weights={"env": 0})
    assert rewards(await zero.acompute(ro)) == approx([0.2, 0.6])


async def test_rollout_whose_sources_all_weigh_zero_raises() -> None:
    calc = RolloutRewardCalculator(step_runner(), weights={"step": 0})
    assert rewards(await calc.acompute(rollout("0.2", env_rewards=[0.7]))) == [0.7]
    with pytest.raises(InputError, match="rollout 0: every reward source in use has weight 0"):
        await calc.acompute(rollout("0.2"))


# --- what the graders see ----------------------------------------------------------------------


async def test_records_seen_by_step_and_rollout_graders() -> None:
    seen: dict[str, list[dict[str, Any]]] = {"step": [], "rollout": []}

    def spy(level: str) -> FunctionGrader:
        def grade(**fields: Any) -> float:
            seen[level].append(fields)
            return 1.0

        return FunctionGrader(grade, name=level)

    calc = RolloutRewardCalculator(
        GradingRunner({"s": spy("step")}), GradingRunner({"r": spy("rollout")})
    )
    ro = rollout("a0", "a1", ground_truth="42", step_infos=[{"tool": "x"}, {"tool": "y"}])
    ro["messages"].insert(3, {"role": "tool", "content": "result"})  # between a0 and q1
    await calc.acompute(ro)
    s0, s1 = sorted(seen["step"], key=lambda f: f["turn"])
    assert (s0["query"], s0["response"], s0["tool"], s0["ground_truth"]) == ("q0", "a0", "x", "42")
    assert s0["messages"] == ro["messages"][:2]
    assert (s1["query"], s1["response"], s1["tool"], s1["turn"]) == ("q1", "a1", "y", 1)
    assert s1["messages"] == ro["messages"][:5]
    [r] = seen["rollout"]
    assert (r["query"], r["response"], r["ground_truth"]) == ("q0", "a1", "42")
    assert r["messages"] == ro["messages"]
    assert r["step_infos"] == [{"tool": "x"}, {"tool": "y"}]


# --- prompts -----------------------------------------------------------------------------------


class FakeTokenizer:
    def __init__(self) -> None:
        self.calls: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []

    def apply_chat_template(self, messages: list[dict[str, Any]], **kwargs: Any) -> str:
        self.calls.append((messages, kwargs))
        body = "".join(f"<{m['role']}>{m['content']}" for m in messages)
        return body + ("<assistant>" if kwargs.get("add_generation_prompt") else "")


async def test_prompt_is_history_or_chat_template() -> None:
    ro = rollout("0.5", "0.5")
    plain = await RolloutRewardCalculator(step_runner()).acompute(ro)
    assert plain[1].prompt == ro["messages"][:4]
    tok = FakeTokenizer()
    turns = await RolloutRewardCalculator(step_runner(), tokenizer=tok).acompute(ro)
    assert turns[0].prompt == "<system>be brief<user>q0<assistant>"
    assert turns[1].prompt == "<system>be brief<user>q0<assistant>0.5<user>q1<assistant>"
    assert tok.calls[0][1] == {"tokenize": False, "add_generation_prompt": True}


async def test_failing_chat_template_names_rollout_and_message() -> None:
    class Broken:
        def apply_chat_template(self, messages: Any, **kwargs: Any) -> str:
            raise ValueError("roles must alternate")

    calc = RolloutRewardCalculator(step_runner(), tokenizer=Broken())
    with pytest.raises(InputError, match=r"rollout 0, message 2: .*roles must alternate"):
        await calc.acompute(rollout("0.5"))


# --- batches and sync --------------------------------------------------------------------------


async def test_batch_grades_in_one_pass_per_level() -> None:
    steps, whole = step_runner(), rollout_runner()
    calls = {"step": 0, "rollout": 0}
    for name, runner in (("step", steps), ("rollout", whole)):
        original = runner.agrade

        async def counted(records: Any, *, _name: str = name, _orig: Any = original) -> Any:
            calls[_name] += 1
            return await _orig(records)

        runner.agrade = counted  # type: ignore[method-assign]
    calc = RolloutRewardCalculator(steps, whole, distribution="all_steps")
    bare = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "0.6"}]
    batch = [rollout("0.2", score=0.4), rollout("1", "0", score=1.0), bare]
    out = await calc.acompute_many(batch)
    assert calls == {"step": 1, "rollout": 1}
    assert [rewards(t) for t in out] == [approx([0.3]), approx([1.0, 0.5]), [None]]
    assert out[2][0].errors["rollout/outcome"].startswith("invalid_input")


def test_sync_compute() -> None:
    calc = RolloutRewardCalculator(step_runner())
    assert rewards(calc.compute(rollout("0.25"))) == [0.25]
    assert [rewards(t) for t in calc.compute_many([rollout("1"), rollout("0")])] == [[1.0], [0.0]]


async def test_tool_call_turn_without_content_reads_as_empty() -> None:
    calc = RolloutRewardCalculator(rollout_runner=rollout_runner())
    ro = rollout("ignored", score=0.5)
    ro["messages"][2] = {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}
    [turn] = await calc.acompute(ro)
    assert (turn.completion, turn.reward) == ("", 0.5)


# --- malformed input and config ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, r"rollout 1: no assistant message"),
        (rollout("0", "1", env_rewards=[0.5]), r"rollout 1: 'env_rewards' has 1 entries .* 2 "),
        (rollout("0", step_infos=[{}, {}]), r"rollout 1: 'step_infos' has 2 entries"),
        (rollout("0", "1", env_rewards=[0.5, 2.0]), r"rollout 1, message 4: env_rewards\[1\]"),
        (
            {"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]},
            r"rollout 1, message 1: role 'bot'",
        ),
        (
            {"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}]},
            r"rollout 1, message 0: 'content' must be a string",
        ),
        (
            {"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]},
            r"rollout 1, message 0: no 'content'",
        ),
        ({"turns": []}, r"rollout 1: no 'messages' key"),
        ("hello", r"rollout 1: expected a mapping"),
        (rollout("0", query="x"), r"rollout 1: metadata key\(s\) \['query'\]"),
        (rollout("0", step_infos=[{"response": 1}]), r"rollout 1, message 2: step_infos\[0\]"),
    ],
)
async def test_malformed_rollouts_raise_before_grading(bad: Any, match: str) -> None:
    graded = []

    def count(response: str) -> float:
        graded.append(response)
        return 1.0

    calc = RolloutRewardCalculator(GradingRunner({"c": FunctionGrader(count)}))
    with pytest.raises(InputError, match=match):
        await calc.acompute_many([rollout("0.5"), bad])
    assert graded == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step_runner": None}, "needs a step_runner, a rollout_runner, or both"),
        ({"distribution": "discounted"}, "needs gamma in"),
        ({"distribution": "discounted", "gamma": 1.5}, "needs gamma in"),
        ({"gamma": 0.9}, "gamma applies only to distribution 'discounted'"),
        ({"distribution": "first_step"}, "distribution must be"),
        ({"weights": {"bonus": 1}}, "unknown weight"),
        ({"weights": {"rollout": 1}}, "no rollout_runner"),
        ({"weights": {"step": -1}}, "must be a finite number >= 0"),
        ({"weights": {"step": 0, "env": 0}}, "at least one source in use needs a positive"),
        ({"tokenizer": object()}, "apply_chat_template"),
        ({"step_runner": "runner"}, "must be a GradingRunner"),
    ],
)
def test_config_errors(kwargs: dict[str, Any], match: str) -> None:
    kwargs = {"step_runner": step_runner(), **kwargs}
    with pytest.raises(ConfigError, match=match):
        RolloutRewardCalculator(**kwargs)
