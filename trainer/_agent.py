"""The reward of an agent rollout: step graders, rollout graders and the environment's reward,
combined by :class:`~rm_service._rollout.RolloutRewardCalculator` into the one number GRPO needs.

**What TRL passes** (``GRPOTrainer._calculate_rewards``, trl 1.16, with ``tools`` or
``environment_factory``): ``prompts[i]`` is the prompt's message list (after ``reset()``'s
observation was appended to its last message); ``completions[i]`` is every message the rollout
added, in order: assistant turns (``content``, and ``tool_calls`` as ``{"type": "function",
"function": {"name", "arguments"}}`` when the turn called tools), each followed by one
``{"role": "tool", "name", "content"}`` message per call with the tool's result as a string
(``{'error': ...}`` when the tool raised or does not exist). The dataset's other columns come as
lists, plus ``environments`` (the instances, one per rollout) and TRL's ``log_metric`` /
``log_extra`` / ``trainer_state``.

**From that to one reward.** ``prompt + completion`` is the rollout's conversation. Each
assistant turn gets a step info ``{"tool_calls": [{"name", "arguments"}], "tool_results":
[...]}``; every grader also sees the row's columns and ``available_tools`` (the JSON schemas
of the tools that rollout could call). The calculator gives each assistant turn
``(w_s * step + w_r * rollout_share + w_e * env) / (w_s + w_r + w_e)`` over the sources in use,
where the environment's ``get_reward()`` is the ``env`` of every turn. TRL trains the whole
completion (all its turns) on one advantage, so the rollout's reward is the **mean of its turn
rewards**. Written out:

* ``all_steps`` (the default here): ``(w_s * mean step reward + w_r * R + w_e * E) / W``;
* ``last_step``: as above with ``R / T`` for a rollout of ``T`` assistant turns, the rollout
  reward diluted by its length: a deliberate length penalty, not a neutral choice;
* ``discounted``: ``R`` times the mean of ``gamma**(T-1-t)``, between the two.

**Unscored stays unscored.** Anything a turn's reward depends on that is unscored makes the turn
``None`` and so the rollout ``None``, which TRL masks (NaN reward, advantage 0). An environment
reward that raises, is not a number or lies outside ``[0, 1]`` is unscored too, with a warning
that says which; it is never clipped into a plausible number.

**A rollout cut short is not graded as if it had finished.** TRL ends a rollout whose last turn
called tools without running them when it reaches ``max_tool_calling_iterations``
(``environment.max_turns``) or when their results would pass ``max_completion_length``: the
environment never answered and the model never gave its final answer, so its "final" message is
a tool call. Grading that as the rollout's outcome scored an unfinished episode as a finished one
(a ``final_answer`` that reads the call's text, an environment reward on a half-done state). Such
a rollout is not graded: its reward is ``None`` (``reward.on_cut: unscored``, the default: TRL
masks it, as DAPO masks overlong samples) or the number ``reward.on_cut`` gives (e.g. 0.0, to
teach the policy to answer within its turns), with the reason in ``agent/errors``. A plain
reward (``reward.config`` / ``url``) in a run with an environment is masked the same way
(:class:`CutMasked`): each of its functions gives a cut rollout ``None``, and so does the
environment's ``get_reward()``, which rm-service then hands TRL as a reward function of its own
(:class:`EnvRewardFunction`, named and weighted as TRL would) rather than TRL adding it unmasked.
All of a rollout's functions ``None``: TRL leaves it out.

**Logged** through TRL's ``log_metric`` every step: ``rewards/<component>/mean`` for ``step``
(each rollout's mean over its turns), ``step/<grader>``, ``rollout`` (the rollout graders'
reward, undistributed), ``rollout/<grader>`` and ``env``, each over the rollouts where it was
scored; ``agent/turns`` and ``agent/tool_calls`` per rollout; ``agent/tool_errors`` (tool results
that are TRL's ``{'error': ...}``); ``agent/unscored_rate``; ``agent/cut_rate`` (rollouts cut short,
above). The completions table gets each rollout's reasons for anything unscored or cut
(``agent/errors``).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from rm_service._exceptions import ConfigError
from rm_service._rollout import RolloutRewardCalculator, TurnReward
from trainer._env import LoadedEnvironment

__all__ = [
    "AGENT_FIELDS",
    "AgentReward",
    "CutMasked",
    "EnvRewardFunction",
    "cut_reason",
    "env_reward_functions",
    "rollout_of",
    "rollout_reward",
    "rollout_tools",
]

_log = logging.getLogger("trainer")

_TRL_EXTRAS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})
AGENT_FIELDS = frozenset(
    {
        "query",
        "response",
        "messages",
        "turn",
        "step_infos",
        "env_rewards",
        "tool_calls",
        "tool_results",
        "available_tools",
    }
)
"""Record fields this module and the calculator set: a dataset column may not use them."""


def _text(content: Any) -> str:
    """A message's content as text: multimodal blocks keep their text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return str(content)


def _calls(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An assistant message's tool calls as ``{"name", "arguments"}``."""
    out = []
    for call in message.get("tool_calls") or []:
        function = call.get("function", call) if isinstance(call, Mapping) else {}
        out.append({"name": function.get("name"), "arguments": function.get("arguments")})
    return out


def rollout_of(
    prompt: Any,
    completion: Any,
    metadata: Mapping[str, Any],
    *,
    env_reward: float | bool | None = False,
    tools: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The calculator's rollout for one of TRL's (prompt, completion) pairs.

    ``env_reward`` is the environment's reward for the whole rollout, given to every assistant
    turn (``None``: unscored); ``False`` when the rollout has no environment reward.
    """
    head = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    tail = (
        [{"role": "assistant", "content": completion}]
        if isinstance(completion, str)
        else list(completion)
    )
    messages: list[dict[str, Any]] = []
    infos: list[dict[str, Any]] = []
    for msg in [*head, *tail]:
        role = msg.get("role")
        clean: dict[str, Any] = {"role": role, "content": _text(msg.get("content"))}
        if role == "assistant":
            calls = _calls(msg)
            if calls:
                clean["tool_calls"] = msg["tool_calls"]
            infos.append({"tool_calls": calls, "tool_results": []})
        elif role == "tool":
            if msg.get("name") is not None:
                clean["name"] = msg["name"]
            if infos:
                infos[-1]["tool_results"].append(clean["content"])
        messages.append(clean)
    # Turns before the completion (a prompt that holds assistant messages) are graded too.
    out: dict[str, Any] = {**metadata, "available_tools": list(tools)}
    out.update(messages=messages, step_infos=infos)
    if env_reward is not False:
        out["env_rewards"] = [env_reward] * len(infos)
    return out


def rollout_reward(turns: Sequence[TurnReward]) -> float | None:
    """The one reward of a rollout: the mean of its turn rewards; ``None`` if any is ``None``."""
    rewards = [t.reward for t in turns]
    if not rewards or any(r is None for r in rewards):
        return None
    return math.fsum(r for r in rewards if r is not None) / len(rewards)


def cut_reason(rollout: Mapping[str, Any]) -> str | None:
    """Why ``rollout`` (from :func:`rollout_of`) was cut short, or ``None`` when it finished:
    its last assistant turn called tools and no result follows (see the module docstring).

    Only a rollout that had tools to call can be cut: with none (no ``environment:``), TRL runs
    no tool round, yet still parses a ``<tool_call>`` the model writes into ``tool_calls``. That
    call is the model's final answer, graded as such (a hallucinated call scores what the
    graders give it), never masked as a rollout cut at ``max_turns``."""
    infos = rollout["step_infos"]
    if not rollout.get("available_tools"):
        return None
    if not infos or not infos[-1]["tool_calls"] or infos[-1]["tool_results"]:
        return None
    names = [call["name"] for call in infos[-1]["tool_calls"]]
    return (
        f"cut: turn {len(infos) - 1} called {names}, which never ran (the rollout reached "
        "environment.max_turns, or the results would pass max_completion_length), so it has no "
        "final answer"
    )


def _is_tool_error(content: str) -> bool:
    return content.startswith("{'error': ")


class AgentReward:
    """TRL reward function for tool-calling rollouts (see the module docstring).

    Args:
        calculator: the step and rollout runners, distribution and weights.
        environment: the loaded ``environment:`` block (tool schemas per environment; which
            environments score rollouts), or ``None``.
        use_env: include each environment's ``get_reward()`` as the ``env`` source.
        on_cut: the reward of a rollout cut short (:func:`cut_reason`); ``None``: unscored.
    """

    def __init__(
        self,
        calculator: RolloutRewardCalculator,
        environment: LoadedEnvironment | None = None,
        *,
        use_env: bool = True,
        on_cut: float | None = None,
    ) -> None:
        self.__name__ = "reward"  # TRL's name for the function: rewards/reward/mean
        self.calculator = calculator
        self.on_cut = on_cut
        self.environment = environment
        self.use_env = use_env and environment is not None and bool(environment.rewarded)
        self._env_reward = _EnvRewardReader()
        # "step/<its reward's name>" is "step" again: logged once, as "step"
        self._same = {
            f"{source}/{runner.reward_name}"
            for source, runner in (
                ("step", calculator.step_runner),
                ("rollout", calculator.rollout_runner),
            )
            if runner is not None
        }

    def __repr__(self) -> str:
        return f"AgentReward(distribution={self.calculator.distribution!r})"

    async def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        environments = kwargs.get("environments")
        log_metric = kwargs.get("log_metric")
        log_extra = kwargs.get("log_extra")
        columns = {
            k: v for k, v in kwargs.items() if k not in _TRL_EXTRAS and k != "completion_ids"
        }
        n = len(prompts)
        env_rewards = await self._env_rewards(environments, n)
        rollouts = [
            rollout_of(
                prompts[i],
                completions[i],
                {k: v[i] for k, v in columns.items()},
                env_reward=env_rewards[i],
                tools=rollout_tools(self.environment, columns, i),
            )
            for i in range(n)
        ]
        cut = [cut_reason(r) for r in rollouts]
        graded = iter(
            await self.calculator.acompute_many(
                [r for r, c in zip(rollouts, cut, strict=True) if c is None]
            )
        )
        turns = [next(graded) if c is None else [] for c in cut]
        rewards = [
            rollout_reward(t) if c is None else self.on_cut for t, c in zip(turns, cut, strict=True)
        ]
        if callable(log_metric):
            for name, value in _metrics(rollouts, turns, rewards, self._same).items():
                log_metric(name, value)
            log_metric("agent/cut_rate", sum(c is not None for c in cut) / max(1, n))
        if callable(log_extra):
            errors = [
                _errors(t) if c is None else json.dumps({"cut": c})
                for t, c in zip(turns, cut, strict=True)
            ]
            log_extra("agent/errors", errors)
        return rewards

    async def _env_rewards(
        self, environments: Sequence[Any] | None, n: int
    ) -> list[float | bool | None]:
        """Each rollout's environment reward, ``None`` when unscored, ``False`` when its
        environment has no ``get_reward``."""
        if not self.use_env or environments is None:
            return [False] * n
        return [await self._env_reward(env) for env in environments]


class _EnvRewardReader:
    """An environment's own ``get_reward()`` (hidden from TRL or not), checked: one that raises,
    is not a number or lies outside ``[0, 1]`` is unscored (``None``), with a warning once per
    message; ``False`` when the environment has no ``get_reward``."""

    def __init__(self) -> None:
        self._warned: set[str] = set()

    async def __call__(self, env: Any) -> float | bool | None:
        method = LoadedEnvironment.env_reward_method(env)
        if method is None:
            return False
        try:
            value = method()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            self._warn(type(env).__name__, f"get_reward() raised {type(exc).__name__}: {exc}")
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not (0.0 <= value <= 1.0):  # NaN fails the range test too
            self._warn(
                type(env).__name__, f"get_reward() returned {value!r}, not a number in [0, 1]"
            )
            return None
        return float(value)

    def _warn(self, cls: str, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            _log.warning("%s: %s; that rollout's reward is unscored", cls, message)


def rollout_tools(
    environment: LoadedEnvironment | None, columns: Mapping[str, Sequence[Any]], i: int
) -> list[dict[str, Any]]:
    """The JSON schemas of the tools rollout ``i`` could call (its environment's, picked by the
    ``environment`` column when environments are named); none without an environment."""
    if environment is None:
        return []
    name = columns["environment"][i] if environment.named and "environment" in columns else None
    return environment.tool_schemas.get(name, [])


def _cuts(
    environment: LoadedEnvironment | None,
    prompts: Sequence[Any],
    completions: Sequence[Any],
    columns: Mapping[str, Sequence[Any]],
) -> list[str | None]:
    """:func:`cut_reason` of each of TRL's (prompt, completion) pairs."""
    return [
        cut_reason(rollout_of(p, c, {}, tools=rollout_tools(environment, columns, i)))
        for i, (p, c) in enumerate(zip(prompts, completions, strict=True))
    ]


class CutMasked:
    """A plain reward function (``reward.config`` / ``url``) in a run with an environment,
    giving a rollout cut short (:func:`cut_reason`) ``None``: such a rollout's last message is a
    tool call that never ran, and grading it as the answer scored an unfinished episode as a
    finished one. The inner function still grades the whole batch (per-component functions
    share one grading pass per batch, which a subset would split).

    Args:
        inner: the TRL reward function (:class:`~rm_service.integrations.trl.RMServiceReward`).
        environment: the loaded ``environment:`` block (tool schemas per environment).
    """

    def __init__(self, inner: Any, environment: LoadedEnvironment) -> None:
        self.inner = inner
        self.environment = environment
        self.__name__ = getattr(inner, "__name__", "reward")

    def __repr__(self) -> str:
        return f"CutMasked({self.inner!r})"

    async def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        rewards = self.inner(prompts=prompts, completions=completions, **kwargs)
        if inspect.isawaitable(rewards):
            rewards = await rewards
        columns = {k: v for k, v in kwargs.items() if k not in _TRL_EXTRAS}
        cut = _cuts(self.environment, prompts, completions, columns)
        if callable(log_metric := kwargs.get("log_metric")):
            log_metric("agent/cut_rate", sum(c is not None for c in cut) / max(1, len(cut)))
        return [None if c is not None else r for r, c in zip(rewards, cut, strict=True)]


class EnvRewardFunction:
    """The environment's ``get_reward()`` as a TRL reward function of its own, for a plain
    reward in a run with an environment: what TRL adds itself (named after the environment's
    class, weight 1, ``None`` for a rollout in another environment), but ``None`` for a rollout
    cut short, and checked as the rollout reward checks it (:class:`_EnvRewardReader`). TRL's own
    function cannot be masked: it runs before the plain reward's (async) functions.

    Args:
        environment: the loaded ``environment:`` block.
        names: the environment names (``None``: the unnamed one) this function scores.
        class_name: their class's name, the function's name (``rewards/<class>/mean``).
    """

    def __init__(
        self, environment: LoadedEnvironment, names: set[str | None], class_name: str
    ) -> None:
        self.environment = environment
        self.names = names
        self.__name__ = class_name
        self._read = _EnvRewardReader()

    def __repr__(self) -> str:
        return f"EnvRewardFunction({self.__name__!r})"

    async def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        environments = kwargs.get("environments") or [None] * len(prompts)
        columns = {k: v for k, v in kwargs.items() if k not in _TRL_EXTRAS}
        cut = _cuts(self.environment, prompts, completions, columns)
        out: list[float | None] = []
        for i, env in enumerate(environments):
            named = self.environment.named and "environment" in columns
            name = columns["environment"][i] if named else None
            value = (
                None if env is None or cut[i] or name not in self.names else await self._read(env)
            )
            out.append(None if value is False else value)
        return out


def env_reward_functions(environment: LoadedEnvironment | None) -> list[EnvRewardFunction]:
    """One :class:`EnvRewardFunction` per class of the environments that define
    ``get_reward``, as TRL makes one per class."""
    if environment is None:
        return []
    by_class: dict[str, set[str | None]] = {}
    for name in environment.rewarded:
        by_class.setdefault(environment.reward_classes[name], set()).add(name)
    return [EnvRewardFunction(environment, names, cls) for cls, names in by_class.items()]


def _mean(values: Sequence[float | None]) -> float:
    got = [v for v in values if v is not None]
    return math.fsum(got) / len(got) if got else math.nan


def _metrics(
    rollouts: Sequence[Mapping[str, Any]],
    turns: Sequence[Sequence[TurnReward]],
    rewards: Sequence[float | None],
    skip: set[str],
) -> dict[str, float]:
    """One value per metric for the batch (TRL averages them over a logging step)."""
    per_rollout: dict[str, list[float | None]] = {}
    for rollout_turns in turns:
        names: dict[str, None] = {}
        for t in rollout_turns:
            names.update(dict.fromkeys(t.components))
        for name in names:
            if name in skip:
                continue
            if name == "rollout":  # the undistributed rollout reward: the last turn's share
                value = rollout_turns[-1].components.get("rollout")
            else:
                value = _mean([t.components.get(name) for t in rollout_turns])
                value = None if math.isnan(value) else value
            per_rollout.setdefault(name, []).append(value)
    out = {f"rewards/{name}/mean": _mean(values) for name, values in per_rollout.items()}
    infos = [r["step_infos"] for r in rollouts]
    out["agent/turns"] = _mean([float(len(i)) for i in infos])
    out["agent/tool_calls"] = _mean([float(sum(len(s["tool_calls"]) for s in i)) for i in infos])
    out["agent/tool_errors"] = _mean(
        [float(sum(_is_tool_error(c) for s in i for c in s["tool_results"])) for i in infos]
    )
    out["agent/unscored_rate"] = sum(r is None for r in rewards) / max(1, len(rewards))
    return out


def _errors(turns: Sequence[TurnReward]) -> str:
    errors = {f"turn {t.turn}: {k}": v for t in turns for k, v in t.errors.items()}
    return json.dumps(errors) if errors else ""


def check_columns(columns: Sequence[str], where: str) -> None:
    """A dataset column named like a field the rollout reward sets would be shadowed.

    Raises:
        ConfigError: naming ``where`` and the columns.
    """
    clash = sorted(AGENT_FIELDS.intersection(columns))
    if clash:
        raise ConfigError(
            f"{where}: column(s) {clash} clash with the fields the rollout reward sets; rename them"
        )
