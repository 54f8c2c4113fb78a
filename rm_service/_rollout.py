"""Per-turn rewards for multi-turn rollouts: step graders, rollout graders and environment rewards.

An agentic rollout is one conversation with several assistant turns. A trainer that updates on
each turn needs, per assistant turn, the prompt the model saw, what it said, and a reward. The
design follows the retrain library's ``RewardCalculator`` (``teilomillet/retrain``,
``retrain/reward/calculator.py``): step-level graders score each turn, rollout-level graders
score the whole conversation once, and a distribution strategy decides which turns the
rollout-level reward reaches. Where this differs, and why:

* **Unscored stays unscored.** retrain turns a failed reward function, a ``None`` or a malformed
  turn into ``0.0``; here any unscored input a turn's reward depends on makes that turn's reward
  ``None``, with the reasons in :attr:`TurnReward.errors`. An unscored rollout-level reward voids
  every turn of the rollout, including turns ``last_step`` gives a zero share: their rewards are
  only meaningful next to the final turn's, so the whole trajectory is masked rather than half.
* **A convex combination, not a sum.** retrain adds the environment reward, every step reward
  and the rollout shares, so a turn's reward has no fixed range. Here the turn reward is a
  weighted mean of the sources in use, ``(w_s * step + w_r * rollout_share + w_e * env) /
  (w_s + w_r + w_e)``, which stays a reward in ``[0, 1]`` like every other score in the project.
  ``step`` is the step runner's reward for the turn (combine several step graders with that
  runner's aggregators), ``rollout_share`` the turn's share of the rollout runner's reward, and
  ``env`` the environment's reward for the turn. A source is in use when its runner is configured
  (``step``, ``rollout``) or the rollout carries ``env_rewards`` (``env``). Default weights are
  equal; a weight of 0 leaves that source out entirely, its failures included (as
  ``WeightedSumAggregator`` does).
* **Distribution.** ``last_step`` (retrain's default) gives the rollout reward ``R`` to the last
  assistant turn and 0 to the others; ``all_steps`` gives every turn ``R`` (retrain's
  ``all_steps_equal``); ``discounted`` gives turn ``t`` of ``T`` the share ``gamma**(T-1-t) * R``,
  so credit fades with distance from the outcome. retrain's ``all_steps_average`` (``R / T``) is
  left out: it makes the same outcome worth less in a longer rollout. One strategy per
  calculator, not per rollout function: the rollout runner already folds its graders into one
  reward.
* **Malformed input raises.** retrain logs and substitutes; here a rollout with no assistant
  turn, an unknown role, or ``env_rewards``/``step_infos`` whose length differs from the number
  of assistant turns is an :class:`InputError` naming the rollout and message index, raised
  before any grader runs. A chat template that fails is an error too (retrain silently falls back
  to a plain join, which trains on a prompt the model never saw).
* **Batched grading.** :meth:`RolloutRewardCalculator.acompute_many` grades every turn of every
  rollout in one step-runner pass and every rollout in one rollout-runner pass, the two passes
  concurrently, so the runners' concurrency applies across the whole batch.

A rollout is a mapping (one JSONL line)::

    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "env_rewards": [0.0, 1.0],           # optional: one per assistant turn, in [0, 1] or None
     "step_infos": [{...}, {...}],        # optional: one dict per assistant turn
     "ground_truth": "42"}                # anything else is metadata, passed to every grader

or just the list of messages. Records the graders see:

* step level, one per assistant turn: the metadata, then ``tool_calls`` (the turn's own calls:
  its ``tool_calls``, or its legacy ``function_call`` as a list of one, ``[]`` when it made
  none), then that turn's step info (which may give ``tool_calls`` of its own), then
  ``query`` (the last user message before the turn, ``None`` if there is none), ``response``
  (the turn's content), ``messages`` (the history before the turn) and ``turn`` (its 0-based
  index among the assistant turns). ``messages`` stops before the turn, so without
  ``tool_calls`` a tool-call step grader read the earlier turns' calls as this turn's;
* rollout level, one per rollout: the metadata, then ``query`` (the first user message),
  ``response`` (the final assistant message), ``messages`` (the full history) and ``step_infos``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from graders._text import as_text, is_content_parts
from graders._unscored import Unscored
from rm_service._exceptions import ConfigError, InputError
from rm_service._result import RecordResult
from rm_service._runner import GradingRunner, _run_sync

__all__ = ["ROLES", "Distribution", "RolloutRewardCalculator", "TurnReward"]

Distribution = Literal["last_step", "all_steps", "discounted"]
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
"""The message roles a rollout may use (OpenAI chat roles plus ``tool``)."""

_SOURCES = ("step", "rollout", "env")
_STEP_RESERVED = frozenset({"query", "response", "messages", "turn"})
_ROLLOUT_RESERVED = frozenset({"query", "response", "messages", "step_infos"})
_ROLLOUT_KEYS = frozenset({"messages", "env_rewards", "step_infos"})


@dataclass(frozen=True, slots=True)
class TurnReward:
    """The reward for one assistant turn of a rollout.

    Attributes:
        turn: 0-based index among the rollout's assistant turns.
        message_index: the turn's index in the rollout's ``messages``.
        prompt: what the model saw: the chat-templated string when a tokenizer was given, else
            the message history before the turn.
        completion: the assistant message's content.
        reward: the combined reward in ``[0, 1]``, or ``None`` when anything it depends on is
            unscored (see :attr:`errors`).
        components: every input to the reward, ``None`` where unscored: ``step`` (the step
            runner's reward), ``step/<name>`` (each of its results), ``rollout`` (this turn's
            share of the rollout reward), ``rollout/<name>`` (the rollout runner's results,
            undistributed), ``env`` (the environment reward). Only sources in use appear.
        errors: why each unscored component is unscored, by component name.
    """

    turn: int
    message_index: int
    prompt: str | list[dict[str, Any]]
    completion: str
    reward: float | None
    components: dict[str, float | None]
    errors: dict[str, str]


@dataclass(slots=True)
class _Rollout:
    """A validated rollout: its messages, assistant turn positions and per-turn extras."""

    messages: list[Mapping[str, Any]]
    turns: list[int]
    env_rewards: list[float | None] | None
    step_infos: list[Mapping[str, Any]]
    metadata: dict[str, Any]


class RolloutRewardCalculator:
    """Turn multi-turn rollouts into one :class:`TurnReward` per assistant turn.

    Args:
        step_runner: graders applied to each assistant turn (see the module docstring for the
            record they see); its ``reward`` is the turn's step reward.
        rollout_runner: graders applied once to the whole conversation; its ``reward`` is
            distributed over the turns.
        distribution: how the rollout reward reaches the turns: ``"last_step"``, ``"all_steps"``
            or ``"discounted"`` (which needs ``gamma``).
        gamma: the discount in ``[0, 1]`` for ``"discounted"``; not allowed otherwise.
        weights: ``{"step", "rollout", "env"}`` to a weight ``>= 0`` (default 1 each); the turn
            reward is the weighted mean of the sources in use.
        tokenizer: anything with ``apply_chat_template``; when given, each prompt is
            ``apply_chat_template(history, tokenize=False, add_generation_prompt=True)``.

    Raises:
        ConfigError: no runner, a bad distribution or gamma, a weight that is negative, unknown
            or for a runner not given, no positive weight, or a tokenizer without
            ``apply_chat_template``.

    Example::

        calc = RolloutRewardCalculator(
            step_runner=GradingRunner({"format": FormatGrader()}),
            rollout_runner=GradingRunner({"math": GraderConfig(MathGrader(), mapper=...)}),
            distribution="discounted", gamma=0.9,
        )
        turns = await calc.acompute({"messages": [...], "ground_truth": "42"})
    """

    def __init__(
        self,
        step_runner: GradingRunner | None = None,
        rollout_runner: GradingRunner | None = None,
        *,
        distribution: Distribution = "last_step",
        gamma: float | None = None,
        weights: Mapping[str, float] | None = None,
        tokenizer: Any = None,
    ) -> None:
        for label, runner in (("step_runner", step_runner), ("rollout_runner", rollout_runner)):
            if runner is not None and not isinstance(runner, GradingRunner):
                raise ConfigError(f"{label} must be a GradingRunner, got {type(runner).__name__}")
        if step_runner is None and rollout_runner is None:
            raise ConfigError(
                "RolloutRewardCalculator needs a step_runner, a rollout_runner, or both"
            )
        if distribution not in ("last_step", "all_steps", "discounted"):
            raise ConfigError(
                f"distribution must be 'last_step', 'all_steps' or 'discounted', "
                f"got {distribution!r}"
            )
        if distribution == "discounted":
            if not _is_number(gamma) or not 0.0 <= gamma <= 1.0:
                raise ConfigError(f"distribution 'discounted' needs gamma in [0, 1], got {gamma!r}")
        elif gamma is not None:
            raise ConfigError(
                f"gamma applies only to distribution 'discounted', not {distribution!r}"
            )
        if tokenizer is not None and not callable(getattr(tokenizer, "apply_chat_template", None)):
            raise ConfigError(
                f"tokenizer must have an apply_chat_template method, got {type(tokenizer).__name__}"
            )
        self.step_runner = step_runner
        self.rollout_runner = rollout_runner
        self.distribution: Distribution = distribution
        self.gamma = None if gamma is None else float(gamma)
        self.tokenizer = tokenizer
        self.weights = self._check_weights(weights)

    def _check_weights(self, weights: Mapping[str, float] | None) -> dict[str, float]:
        given = dict(weights) if weights is not None else {}
        unknown = sorted(set(given) - set(_SOURCES))
        if unknown:
            raise ConfigError(f"unknown weight(s) {unknown}; the sources are {list(_SOURCES)}")
        for name, runner in (("step", self.step_runner), ("rollout", self.rollout_runner)):
            if name in given and runner is None:
                raise ConfigError(f"weight for {name!r} given, but no {name}_runner")
        for name, w in given.items():
            if not _is_number(w) or not 0.0 <= w < math.inf:
                raise ConfigError(f"weight {name!r} must be a finite number >= 0, got {w!r}")
        out = {name: float(given.get(name, 1.0)) for name in _SOURCES}
        if not any(out[name] > 0 for name in _SOURCES if name == "env" or self._runner(name)):
            raise ConfigError(f"at least one source in use needs a positive weight, got {out}")
        return out

    def _runner(self, source: str) -> GradingRunner | None:
        return self.step_runner if source == "step" else self.rollout_runner

    # --- public API ------------------------------------------------------------------------

    async def acompute(self, rollout: Any) -> list[TurnReward]:
        """The rewards of one rollout's assistant turns, in order (errors name it rollout 0)."""
        return (await self.acompute_many([rollout]))[0]

    async def acompute_many(self, rollouts: Iterable[Any]) -> list[list[TurnReward]]:
        """Per-turn rewards for many rollouts, in input order.

        Every rollout is validated and every prompt built before any grader runs, so a malformed
        rollout costs no judge calls. Then all turns go through the step runner in one pass and
        all rollouts through the rollout runner in another, concurrently.

        Raises:
            InputError: a malformed rollout, naming its index (and the message index).
        """
        parsed = [_parse(r, i) for i, r in enumerate(rollouts)]
        prompts = [[self._prompt(p, i, m) for m in p.turns] for i, p in enumerate(parsed)]
        for i, p in enumerate(parsed):
            if not any(self.weights[s] > 0 for s in self._sources(p)):
                raise InputError(
                    f"rollout {i}: every reward source in use has weight 0 "
                    f"(sources: {self._sources(p)}, weights: {self.weights})"
                )
        step_records = [_step_record(p, t) for p in parsed for t in range(len(p.turns))]
        rollout_records = [_rollout_record(p) for p in parsed]
        step_results, rollout_results = await asyncio.gather(
            _grade(self.step_runner, step_records), _grade(self.rollout_runner, rollout_records)
        )
        out: list[list[TurnReward]] = []
        offset = 0
        for i, p in enumerate(parsed):
            n = len(p.turns)
            steps = step_results[offset : offset + n] if step_results is not None else None
            whole = rollout_results[i] if rollout_results is not None else None
            out.append(self._turn_rewards(p, prompts[i], steps, whole))
            offset += n
        return out

    @staticmethod
    def records(rollout: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The records the graders see for ``rollout``: one per assistant turn for the step
        graders, and one for the rollout graders. For checking a config against a dataset before
        grading anything (:meth:`GradingRunner.check`).

        Raises:
            InputError: as :meth:`acompute`, for a rollout that is not one.
        """
        parsed = _parse(rollout, 0)
        steps = [_step_record(parsed, t) for t in range(len(parsed.turns))]
        return steps, _rollout_record(parsed)

    def compute(self, rollout: Any) -> list[TurnReward]:
        """Synchronous :meth:`acompute`; not callable from inside a running event loop."""
        return _run_sync(self.acompute(rollout))

    def compute_many(self, rollouts: Iterable[Any]) -> list[list[TurnReward]]:
        """Synchronous :meth:`acompute_many`; not callable from inside a running event loop."""
        return _run_sync(self.acompute_many(rollouts))

    # --- internals -------------------------------------------------------------------------

    def _sources(self, p: _Rollout) -> list[str]:
        used = [s for s in ("step", "rollout") if self._runner(s) is not None]
        return [*used, "env"] if p.env_rewards is not None else used

    def _prompt(self, p: _Rollout, index: int, m: int) -> str | list[dict[str, Any]]:
        history = [dict(msg) for msg in p.messages[:m]]
        if self.tokenizer is None:
            return history
        try:
            prompt = self.tokenizer.apply_chat_template(
                history, tokenize=False, add_generation_prompt=True
            )
        except Exception as exc:
            raise InputError(
                f"rollout {index}, message {m}: tokenizer.apply_chat_template failed on the "
                f"history before this turn: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(prompt, str):
            raise InputError(
                f"rollout {index}, message {m}: apply_chat_template(tokenize=False) returned "
                f"{type(prompt).__name__}, not str"
            )
        return prompt

    def _shares(self, reward: float | None, n: int) -> list[float | None]:
        """The rollout reward's share for each of ``n`` turns under the distribution."""
        if reward is None:
            return [None] * n
        if self.distribution == "all_steps":
            return [reward] * n
        if self.distribution == "discounted" and self.gamma is not None:  # always set for it
            return [self.gamma ** (n - 1 - t) * reward for t in range(n)]
        return [*([0.0] * (n - 1)), reward]

    def _turn_rewards(
        self,
        p: _Rollout,
        prompts: list[str | list[dict[str, Any]]],
        steps: list[RecordResult] | None,
        whole: RecordResult | None,
    ) -> list[TurnReward]:
        n = len(p.turns)
        shares = self._shares(whole.reward if whole is not None else None, n)
        out: list[TurnReward] = []
        for t, m in enumerate(p.turns):
            components: dict[str, float | None] = {}
            errors: dict[str, str] = {}
            if steps is not None:
                components["step"] = steps[t].reward
                _add_results(components, errors, "step", steps[t])
            if whole is not None:
                components["rollout"] = shares[t]
                _add_results(components, errors, "rollout", whole)
            if p.env_rewards is not None:
                components["env"] = p.env_rewards[t]
                if p.env_rewards[t] is None:
                    errors["env"] = "the environment reward for this turn is None (unscored)"
            out.append(
                TurnReward(
                    turn=t,
                    message_index=m,
                    prompt=prompts[t],
                    completion=_content(p.messages[m]),
                    reward=self._combine(components),
                    components=components,
                    errors=errors,
                )
            )
        return out

    def _combine(self, components: Mapping[str, float | None]) -> float | None:
        """The weighted mean of the sources in use with a positive weight; ``None`` if any of
        them is unscored."""
        used = [(components[s], self.weights[s]) for s in _SOURCES if s in components]
        used = [(v, w) for v, w in used if w > 0]
        scored = [(v, w) for v, w in used if v is not None]
        if len(scored) < len(used):
            return None
        return math.fsum(v * w for v, w in scored) / math.fsum(w for _, w in scored)


def _add_results(
    components: dict[str, float | None], errors: dict[str, str], prefix: str, rec: RecordResult
) -> None:
    components.update({f"{prefix}/{k}": v for k, v in rec.scores().items()})
    errors.update({f"{prefix}/{k}": f"{e.kind}: {e.error}" for k, e in rec.errors.items()})


async def _grade(
    runner: GradingRunner | None, records: list[dict[str, Any]]
) -> list[RecordResult] | None:
    if runner is None or not records:
        return None if runner is None else []
    return await runner.agrade(records)


def _step_record(p: _Rollout, t: int) -> dict[str, Any]:
    m = p.turns[t]
    query = next((_content(msg) for msg in reversed(p.messages[:m]) if msg["role"] == "user"), None)
    return {
        **p.metadata,
        "tool_calls": _own_calls(p.messages[m]),
        **p.step_infos[t],
        "query": query,
        "response": _content(p.messages[m]),
        "messages": list(p.messages[:m]),
        "turn": t,
    }


def _own_calls(msg: Mapping[str, Any]) -> Any:
    """An assistant turn's own tool calls as a list, as it holds them (the graders read the
    call shapes); ``[]`` for a turn that called nothing, so a grader does not fall back to the
    history's calls."""
    calls = msg.get("tool_calls")
    if calls is not None and not (isinstance(calls, str | Sequence | Mapping) and not calls):
        return calls
    call = msg.get("function_call")  # OpenAI's legacy single call
    return [call] if call else []


def _rollout_record(p: _Rollout) -> dict[str, Any]:
    query = next((_content(msg) for msg in p.messages if msg["role"] == "user"), None)
    return {
        **p.metadata,
        "query": query,
        "response": _content(p.messages[p.turns[-1]]),
        "messages": list(p.messages),
        "step_infos": list(p.step_infos),
    }


def _content(msg: Mapping[str, Any]) -> str:
    """A message's text; ``None`` content (a tool-call-only assistant turn) reads as ``""``."""
    content = msg.get("content")
    return "" if content is None else content


# --- validation ------------------------------------------------------------------------------


def _parse(rollout: Any, i: int) -> _Rollout:
    """Validate one rollout, naming it (and the message) in every error."""
    if isinstance(rollout, Mapping):
        if "messages" not in rollout:
            raise InputError(f"rollout {i}: no 'messages' key (has: {sorted(map(str, rollout))})")
        messages_in = rollout["messages"]
        metadata = {k: v for k, v in rollout.items() if k not in _ROLLOUT_KEYS}
        env_in = rollout.get("env_rewards")
        infos_in = rollout.get("step_infos")
    elif isinstance(rollout, Sequence) and not isinstance(rollout, str | bytes):
        messages_in, metadata, env_in, infos_in = rollout, {}, None, None
    else:
        raise InputError(
            f"rollout {i}: expected a mapping with 'messages' or a list of messages, "
            f"got {type(rollout).__name__}"
        )
    messages = _check_messages(messages_in, i)
    turns = [m for m, msg in enumerate(messages) if msg["role"] == "assistant"]
    if not turns:
        raise InputError(f"rollout {i}: no assistant message among {len(messages)} message(s)")
    clash = sorted(_ROLLOUT_RESERVED.union(_STEP_RESERVED).intersection(metadata))
    if clash:
        raise InputError(
            f"rollout {i}: metadata key(s) {clash} clash with the fields the calculator sets; "
            f"rename them"
        )
    return _Rollout(
        messages=messages,
        turns=turns,
        env_rewards=_check_env(env_in, turns, i),
        step_infos=_check_infos(infos_in, turns, i),
        metadata=metadata,
    )


def _check_messages(messages: Any, i: int) -> list[Mapping[str, Any]]:
    """``messages`` checked, each content as text: a content in OpenAI's parts form
    (``[{"type": "text", "text": ...}]``, as OpenAI-format datasets write it) is read as its
    text once here (:func:`~graders._text.as_text`), so every grader and the chat template see
    the text the model saw."""
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        raise InputError(f"rollout {i}: 'messages' must be a list, got {type(messages).__name__}")
    out: list[Mapping[str, Any]] = []
    for m, msg in enumerate(messages):
        where = f"rollout {i}, message {m}"
        if not isinstance(msg, Mapping):
            raise InputError(f"{where}: expected a {{'role', 'content'}} mapping, got {msg!r}")
        role = msg.get("role")
        if role not in ROLES:
            raise InputError(f"{where}: role {role!r} is not one of {sorted(ROLES)}")
        content = msg.get("content")
        if content is None and not (role == "assistant" and msg.get("tool_calls")):
            raise InputError(f"{where}: no 'content' (only an assistant tool call may omit it)")
        if content is not None and not isinstance(content, str):
            if not is_content_parts(content):
                raise InputError(
                    f"{where}: 'content' must be a string or a list of text content parts, "
                    f"got {type(content).__name__}"
                )
            try:
                msg = {**msg, "content": as_text(content, "content")}
            except Unscored as exc:
                raise InputError(f"{where}: {exc}") from None
        out.append(msg)
    return out


def _one_per_turn(value: Any, key: str, turns: list[int], i: int) -> Sequence[Any]:
    """``value`` checked to be a list with one entry per assistant turn."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise InputError(f"rollout {i}: {key!r} must be a list, got {type(value).__name__}")
    if len(value) != len(turns):
        raise InputError(
            f"rollout {i}: {key!r} has {len(value)} entries but the rollout has "
            f"{len(turns)} assistant turn(s) (messages {turns}); give one per assistant turn"
        )
    return value


def _check_env(env: Any, turns: list[int], i: int) -> list[float | None] | None:
    if env is None:
        return None
    env = _one_per_turn(env, "env_rewards", turns, i)
    out: list[float | None] = []
    for t, r in enumerate(env):
        if r is not None and not (_is_number(r) and 0.0 <= r <= 1.0):
            raise InputError(
                f"rollout {i}, message {turns[t]}: env_rewards[{t}] is {r!r}; an environment "
                f"reward must be a number in [0, 1], or None when unscored"
            )
        out.append(None if r is None else float(r))
    return out


def _check_infos(infos: Any, turns: list[int], i: int) -> list[Mapping[str, Any]]:
    if infos is None:
        return [{} for _ in turns]
    infos = _one_per_turn(infos, "step_infos", turns, i)
    for t, info in enumerate(infos):
        if not isinstance(info, Mapping):
            raise InputError(
                f"rollout {i}, message {turns[t]}: step_infos[{t}] must be a mapping, "
                f"got {type(info).__name__}"
            )
        clash = sorted(_STEP_RESERVED.intersection(info))
        if clash:
            raise InputError(
                f"rollout {i}, message {turns[t]}: step_infos[{t}] key(s) {clash} clash with "
                f"the fields the calculator sets; rename them"
            )
    return list(infos)


def _is_number(x: Any) -> TypeGuard[float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and not math.isnan(x)
