"""OpenRLHF's reward protocol, shared by ``POST /get_reward`` and the in-process
``rm_service.integrations.openrlhf.reward_func``.

OpenRLHF sends ``query`` (the decoded prompt + response, chat special tokens included), and
optionally ``prompts`` and ``labels``; it wants ``rewards``, ``scores`` (0..1, for dynamic
filtering) and ``extra_logs`` back, every list exactly as long as ``query``. The 2024 form
(``{"query"}`` alone) also gets ``score``.

**Rewards.** OpenRLHF trains on ``rewards`` and needs a number for every sample, so an unscored
reward becomes ``fallback`` there (and in ``scores``), flagged ``extra_logs.rm_error = 1`` so a
trainer can mask it. That is the only stand-in number this protocol sends.

**extra_logs: NaN, never a stand-in.** OpenRLHF (0.11: ``samples_generator.py``,
``ppo_actor.py``) turns each sample's ``extra_logs[key]`` into ``info[key] = tensor([value])``,
stacks a batch (every sample must carry the same keys: a key cannot be left out for one
sample), and logs ``value.float().mean()`` weighted by the sample count: no mask, no
``nanmean``. No per-sample number can make that mean skip a sample; a stand-in (0, the
fallback, a batch mean) pulls it toward the stand-in. So each grader and aggregator ``c`` is
sent as two keys:

* ``c``: its score, or NaN where it is unscored. OpenRLHF's logged mean of ``c`` for a step is
  then exact when every sample scored ``c``, and NaN (unknown) when one did not: never a number
  dragged toward 0.
* ``c/unscored``: 1.0 where ``c`` is unscored, else 0.0; its logged mean is ``c``'s unscored rate.

A result named ``reward`` or ``score`` is left out: OpenRLHF logs ``rewards`` and ``scores``
under those names itself, and an ``extra_logs`` key of the same name would overwrite them.
Any other key OpenRLHF writes itself (:data:`OPENRLHF_KEYS`: ``response_length``, ``kl``, ...)
is never sent either, and a component so named is a problem :func:`log_key_problem` reports:
OpenRLHF copies ``extra_logs`` into the same ``info`` dict, so ours would replace its value
(0.9.x reads ``info["response_length"]`` for the overlong penalty) or its would replace ours.
Over HTTP a NaN is the token ``NaN`` (:func:`openrlhf_json`): not strict JSON, but what
Python's ``json`` reads, and so OpenRLHF's client (aiohttp's ``response.json()``); ``null``
would crash its ``torch.tensor`` call. A strict parser of ``/get_reward`` must allow it.

**The split.** OpenRLHF's ``query`` holds prompt and response in one decoded string; cutting it
is :mod:`rm_service._query_split` (:class:`ChatTokenStripper`), and a response that had to be
guessed is flagged per record in ``extra_logs.prompt_not_found`` and in a rate-limited warning
(:class:`PromptLog`), never silent.

**Labels.** Each label goes to the record field ``label_field`` (``label`` by default). A
misnamed field is the classic silent failure here: the labels land where no grader reads them
and every record is unscored. :func:`check_labels` runs at start-up: when the field is the
default and no grader reads it, while exactly one field that ``/get_reward`` never fills feeds
a grader's gold answer (``reference_response``; ``ground_truth`` in ``examples/reward.yaml``),
the labels go there (logged): there is nothing else they could mean, and the README's own
config then works as written. Any other label field is never overridden (``label`` set
explicitly counts as the default: labels in a field nothing reads would be dropped). A grader that
still requires a field no record will carry is a loud warning naming the fix (the HTTP app
also serves ``/grade``, for which the same config is fine), and a ``ConfigError`` in the
in-process shim (OpenRLHF is its only caller). A reward that reads no label at all (a pure
format reward) is legitimate and only logged at INFO.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from graders._base import contract
from rm_service._exceptions import ConfigError
from rm_service._mapper import compile_path
from rm_service._openrlhf_logs import PromptLog, UnscoredLog
from rm_service._query_split import (
    ASSISTANT_MARKERS,
    DEFAULT_STRIP_PATTERNS,
    SPECIAL_TOKEN_PATTERNS,
    ChatTokenStripper,
    QuerySplit,
    split_query,
)
from rm_service._result import GraderScore, RecordResult

if TYPE_CHECKING:
    from rm_service._runner import GradingRunner

__all__ = [  # the split's and the logs' names are re-exported: they were defined here before
    "ASSISTANT_MARKERS",
    "DEFAULT_LABEL_FIELD",
    "DEFAULT_STRIP_PATTERNS",
    "FILLED_FIELDS",
    "OPENRLHF_KEYS",
    "SPECIAL_TOKEN_PATTERNS",
    "ChatTokenStripper",
    "FieldRead",
    "LabelPlan",
    "OpenRLHFBatch",
    "PromptLog",
    "QuerySplit",
    "UnscoredLog",
    "check_labels",
    "fallback_columns",
    "field_reads",
    "log_key_problem",
    "openrlhf_json",
    "openrlhf_records",
    "openrlhf_response",
    "plan_labels",
    "split_query",
    "unscored_key",
]

logger = logging.getLogger("rm_service.openrlhf")

DEFAULT_LABEL_FIELD = "label"
FILLED_FIELDS: tuple[str, ...] = ("id", "query", "prompt", "response")
"""The record fields OpenRLHF's protocol always fills; the labels' field is the only other one."""
GOLD_PARAMS = frozenset({"reference_response"})
"""Grader fields that hold a gold answer (every built-in reference grader's name for it)."""
RESERVED_LOG_KEYS = frozenset({"reward", "score"})
"""``extra_logs`` keys OpenRLHF fills itself, from ``rewards`` and ``scores``."""
PROTOCOL_LOG_KEYS: tuple[str, ...] = ("prompt_not_found", "rm_error")
"""``extra_logs`` keys this protocol sends for every sample, whatever the reward's components."""
OPENRLHF_KEYS = frozenset(
    {
        # samples.info / experience.info, 0.8.3 to 0.11 (experience_maker.py, samples_generator.py,
        # ppo_actor.py): written before extra_logs (lost to ours) or after them (ours lost)
        "response_length",
        "total_length",
        "response_clip_ratio",
        "kl",
        "logprobs_diff",
        "group_reward_std",
        "return",
        "ppo_clip_ratio",
        "ppo_kl",
        "vllm_kl",
        # the status dicts each info key is merged into (ppo_actor.py, ppo_critic.py), and the
        # Experience fields logged beside them (0.10+), which an info key of the name hides
        "policy_loss",
        "entropy_loss",
        "actor_lr",
        "actor_grad_norm",
        "critic_loss",
        "values",
        "critic_lr",
        "critic_grad_norm",
        "truncated",
    }
)
"""Keys OpenRLHF itself puts in a sample's ``info`` or beside it in its logged status: an
``extra_logs`` key of the same name would replace its value or be replaced by it."""


class OpenRLHFBatch(NamedTuple):
    """A request's grader records and how each query was cut."""

    records: list[dict[str, Any]]
    splits: list[QuerySplit]


def openrlhf_records(
    query: Sequence[str],
    prompts: Sequence[str] | None,
    labels: Sequence[Any] | None,
    *,
    stripper: ChatTokenStripper,
    label_field: str = "label",
) -> OpenRLHFBatch:
    """Grader records ``{"id", "query", "prompt", "response", <label_field>}`` of a request, and
    each query's :class:`QuerySplit`. ``prompt`` is the prompt without end tokens; ``query`` its
    last user turn (:meth:`ChatTokenStripper.question`), or the prompt where no template marks
    one.

    Raises:
        ValueError: ``prompts`` or ``labels`` not as long as ``query`` (the message names the
            field; the HTTP face turns it into a 422).
    """
    n = len(query)
    for fld, got in (("prompts", prompts), ("labels", labels)):
        if got is not None and len(got) != n:
            raise ValueError(f"{fld}: {len(got)} item(s), but 'query' has {n}: they must match")
    records, splits = [], []
    for i, q in enumerate(query):
        sent = prompts[i] if prompts is not None else None
        split = stripper.split(q, sent)
        rec: dict[str, Any] = {
            "id": i,
            # The question the graders compare the response with: the last user turn, not
            # the templated prompt with its system prompt (a plain prompt is its own question).
            "query": stripper.question(sent if sent is not None else split.prompt) or split.prompt,
            "prompt": split.prompt,
            "response": split.response,
        }
        if labels is not None:
            rec[label_field] = labels[i]
        records.append(rec)
        splits.append(split)
    return OpenRLHFBatch(records, splits)


def openrlhf_response(
    results: Sequence[RecordResult],
    names: Sequence[str],
    splits: Sequence[QuerySplit],
    *,
    fallback: float,
    legacy: bool,
) -> dict[str, Any]:
    """``{"rewards", "scores", "extra_logs"}``, plus ``score`` when ``legacy``.

    ``extra_logs`` has, per result ``c`` of ``names`` (but ``reward``/``score``), ``c`` (NaN
    where unscored; left out where OpenRLHF has a key ``c`` of its own, :data:`OPENRLHF_KEYS`)
    and ``c/unscored`` (1.0 or 0.0); then ``prompt_not_found`` (1.0 where a
    query does not hold its prompt: :meth:`ChatTokenStripper.split`) and ``rm_error``. Every
    response has the same keys: OpenRLHF stacks them across calls. See the module docstring for
    why NaN and not a number.
    """
    rewards = [r.reward if r.reward is not None else fallback for r in results]
    logs: dict[str, list[float]] = {}
    logged = [n for n in dict.fromkeys(names) if n not in RESERVED_LOG_KEYS]
    flags = {unscored_key(n): [_unscored_flag(r, n) for r in results] for n in logged}
    for name in logged:
        # Where names clash (log_key_problem: ``a`` and ``a/unscored``; a grader named
        # ``prompt_not_found`` or like a key of OpenRLHF's own), the flag and the protocol's and
        # OpenRLHF's keys win, in whichever order the config lists the components: never
        # another column's numbers under their name.
        if name not in flags and name not in OPENRLHF_KEYS:
            logs[name] = [_log_score(r, name) for r in results]
        logs[unscored_key(name)] = flags[unscored_key(name)]
    logs["prompt_not_found"] = [1.0 if s.prompt_not_found else 0.0 for s in splits]
    logs["rm_error"] = [0.0 if r.reward is not None else 1.0 for r in results]
    out: dict[str, Any] = {
        "rewards": rewards,
        "scores": [min(1.0, max(0.0, x)) for x in rewards],
        "extra_logs": logs,
    }
    if legacy:
        out["score"] = rewards
    return out


UNSCORED_SUFFIX = "/unscored"
"""Ends the name of a component's unscored flag: ``correct/unscored`` (OpenRLHF's ``extra_logs``
and verl's ``rm/correct/unscored`` alike)."""


def unscored_key(name: str) -> str:
    """The name of component ``name``'s flag column: 1.0 where ``name`` is unscored, else 0.0."""
    return name + UNSCORED_SUFFIX


def log_key_problem(reward: str, names: Sequence[str]) -> str | None:
    """Why ``names`` cannot all be sent in ``extra_logs``, or ``None``: two of them make one key
    (``a/unscored`` is the flag of ``a`` and the score of a component so named), or one is
    named like a key the protocol sends itself (:data:`PROTOCOL_LOG_KEYS`) or OpenRLHF writes
    itself (:data:`OPENRLHF_KEYS`). One of the two columns would be lost:
    :func:`openrlhf_response` keeps the flags, the protocol's keys and OpenRLHF's."""
    keys: dict[str, list[str]] = {k: ["the protocol"] for k in PROTOCOL_LOG_KEYS}
    keys.update({k: ["OpenRLHF's own metric"] for k in OPENRLHF_KEYS})
    for name in dict.fromkeys(names):
        if name not in RESERVED_LOG_KEYS:
            keys.setdefault(name, []).append(f"component {name!r}")
            keys.setdefault(unscored_key(name), []).append(f"the unscored flag of {name!r}")
    clash = {k: who for k, who in keys.items() if len(who) > 1}
    if not clash:
        return None
    made = "; ".join(f"{k!r} by {' and '.join(who)}" for k, who in sorted(clash.items()))
    return (
        f"reward {reward!r}: OpenRLHF's extra_logs would get the key(s) {made}, and one column "
        "of each would be lost: rename the component(s)"
    )


def _log_score(result: RecordResult, name: str) -> float:
    """``name``'s score in ``result``, or NaN where it is unscored (``extra_logs``)."""
    comp = result.components.get(name)
    return comp.score if isinstance(comp, GraderScore) else math.nan


def _fallback_score(result: RecordResult, name: str, fallback: float) -> float:
    """``name``'s score in ``result``, or ``fallback`` where it is unscored."""
    comp = result.components.get(name)
    return comp.score if isinstance(comp, GraderScore) else fallback


def _unscored_flag(result: RecordResult, name: str) -> float:
    """1.0 where ``name`` is unscored in ``result``, else 0.0: what tells the fallback apart."""
    return 0.0 if isinstance(result.components.get(name), GraderScore) else 1.0


def fallback_columns(
    results: Sequence[RecordResult], names: Sequence[str], fallback: float
) -> dict[str, list[float]]:
    """verl's per-sample keys (``rm_service.integrations.verl``), a list per key: for each
    ``c`` of ``names``, ``c`` (its score, ``fallback`` where unscored) and ``c/unscored``
    (:func:`unscored_key`: 1.0 where ``c`` is unscored, else 0.0); then ``rm_error`` (1.0
    where the reward itself is unscored).

    verl needs a number in ``c`` where ``extra_logs`` sends NaN: GDPO trains on these columns
    (``algorithm.gdpo_reward_keys``), and one NaN there makes every advantage of the batch NaN
    (it whitens them together). So ``c`` keeps the stand-in, and the flag says it is no score:
    without it a failed grader under a reward that still scored (``on_error: skip``) read as
    a wrong answer, ``rm_error`` 0.
    """
    cols: dict[str, list[float]] = {}
    for name in names:
        cols[name] = [_fallback_score(r, name, fallback) for r in results]
        cols[unscored_key(name)] = [_unscored_flag(r, name) for r in results]
    cols["rm_error"] = [0.0 if r.reward is not None else 1.0 for r in results]
    return cols


def openrlhf_json(out: Mapping[str, Any]) -> bytes:
    """``out`` as compact JSON with an unscored component's NaN as the token ``NaN``.

    Not strict JSON, on purpose: OpenRLHF's client parses it (``json.loads``), a ``null`` would
    crash its ``torch.tensor`` call, and any number would be a lie (module docstring). Keys and
    numbers only, so ASCII and nothing to escape.
    """
    return json.dumps(out, allow_nan=True, separators=(",", ":")).encode()


# --- which record field the labels go to ---------------------------------------------------


@dataclass(frozen=True)
class FieldRead:
    """A record field a grader reads: ``field`` (a mapper path's first step, else the grader's
    own field name) feeds the grader's ``param``. ``required``: absent, the grader is unscored
    (a mapper path always is: one that does not resolve fails the grader)."""

    grader: str
    param: str
    field: str
    path: str | None = None
    required: bool = True

    def describe(self) -> str:
        how = f"mapper {self.param}: {self.path}" if self.path is not None else "unmapped"
        return f"grader {self.grader!r} reads record field {self.field!r} ({how})"


def field_reads(runner: GradingRunner) -> list[FieldRead]:
    """Every record field ``runner``'s graders read, as far as it can be known without a
    record: graders with a callable mapper are skipped (what they read is up to the code)."""
    reads: list[FieldRead] = []
    for name, gc in runner.grader_configs.items():
        if gc.mapper is not None and not isinstance(gc.mapper, Mapping):
            continue
        mapped = dict(gc.mapper or {})
        for param, path in mapped.items():
            reads.append(FieldRead(name, param, str(compile_path(path)[0]), path))
        declared = contract(gc.grader)
        for fld in declared.required_fields:
            if fld not in mapped:
                reads.append(FieldRead(name, fld, fld))
        for fld in declared.optional_fields:
            if fld not in mapped:
                reads.append(FieldRead(name, fld, fld, required=False))
    return reads


def described_reads(description: Mapping[str, Any]) -> list[FieldRead]:
    """The record fields a reward's graders read, from its ``GET /graders`` entry (each
    grader's ``mapper`` and ``required_fields``): what :func:`field_reads` finds in a runner,
    for a reward that runs in a service."""
    reads: list[FieldRead] = []
    for name, spec in (description.get("graders") or {}).items():
        mapper = spec.get("mapper")
        if mapper is not None and not isinstance(mapper, Mapping):
            continue
        mapped = dict(mapper or {})
        for param, path in mapped.items():
            reads.append(FieldRead(name, param, str(compile_path(path)[0]), path))
        for fld in spec.get("required_fields") or ():
            if fld not in mapped:
                reads.append(FieldRead(name, fld, fld))
    return reads


@dataclass(frozen=True)
class LabelPlan:
    """Where one reward's labels go, and what its graders need that no record will carry.

    Attributes:
        reward: the reward's name.
        asked: the label field the settings name.
        field: the field the labels go to: ``asked``, or the one gold field it was routed to.
        reads: every field the reward's graders read (:func:`field_reads`).
        starved: the required reads of fields that no record will carry.
    """

    reward: str
    asked: str
    field: str
    reads: tuple[FieldRead, ...]
    starved: tuple[FieldRead, ...]

    def problem(self, face: str, setting: str) -> str | None:
        """The warning (or error) for :attr:`starved`, naming the fix; ``None`` when empty.
        ``setting`` is how to set the label field, ``{}`` standing for the field."""
        if not self.starved:
            return None
        fields = list(dict.fromkeys(r.field for r in self.starved))
        graders = ", ".join(repr(g) for g in dict.fromkeys(r.grader for r in self.starved))
        msg = (
            f"{face}, reward {self.reward!r}: "
            + "; ".join(r.describe() for r in self.starved)
            + f", but {face} fills only {', '.join(FILLED_FIELDS)} and puts the labels in "
            f"{self.field!r}: {graders} will be unscored for every {face} record. "
        )
        if len(fields) == 1:
            first = self.starved[0]
            return msg + (
                f"Fix: {setting.format(fields[0])}, or map the label in the config "
                f"(mapper: {{{first.param}: {self.field}}})."
            )
        return msg + (
            f"Only one of {fields} can carry the labels ({setting.format('FIELD')}); map the "
            f"others to fields that {face} fills."
        )


def plan_labels(
    reward: str, runner: GradingRunner | Sequence[FieldRead], label_field: str
) -> LabelPlan:
    """Where ``reward``'s labels go (see the module docstring for the routing rule), from its
    runner, or from the reads of a reward that runs in a service (:func:`described_reads`)."""
    reads = tuple(runner) if isinstance(runner, Sequence) else tuple(field_reads(runner))
    field = label_field
    if label_field == DEFAULT_LABEL_FIELD and all(r.field != label_field for r in reads):
        gold = {r.field for r in reads if r.param in GOLD_PARAMS and r.field not in FILLED_FIELDS}
        if len(gold) == 1:
            (field,) = gold
    filled = {*FILLED_FIELDS, field}
    starved = tuple(r for r in reads if r.required and r.field not in filled)
    return LabelPlan(reward, label_field, field, reads, starved)


def check_labels(
    runners: Mapping[str, GradingRunner | Sequence[FieldRead]],
    label_field: str,
    *,
    face: str,
    setting: str,
    strict: bool,
) -> dict[str, str]:
    """The labels' field for each reward, from :func:`plan_labels`, with the decision logged.

    Args:
        runners: reward name -> runner (or the field reads of a reward in a service).
        label_field: the configured label field.
        face: who fills the records (``/get_reward``, ``reward_func``), for the messages.
        setting: how to set the label field, ``{}`` standing for the field.
        strict: raise instead of warning when a grader requires a field no record will carry.

    Also checks that a runner's components make distinct ``extra_logs`` keys
    (:func:`log_key_problem`): a warning, or with ``strict`` an error.

    Raises:
        ConfigError: ``strict`` and a grader requires such a field (the message names the fix),
            or two components make one ``extra_logs`` key.
    """
    out: dict[str, str] = {}
    for name, runner in runners.items():
        clash = None if isinstance(runner, Sequence) else log_key_problem(name, runner.names)
        if clash is not None and strict:
            raise ConfigError(f"{face}, {clash}")
        if clash is not None:
            logger.warning("%s, %s", face, clash)
        plan = plan_labels(name, runner, label_field)
        problem = plan.problem(face, setting)
        if problem is not None and strict:
            raise ConfigError(problem)
        if problem is not None:
            logger.warning(problem)
        elif plan.field != label_field:
            readers = ", ".join(repr(r.grader) for r in plan.reads if r.field == plan.field)
            logger.info(
                "%s, reward %r: labels go to record field %r, the gold answer of grader(s) %s "
                "(nothing reads %r); %s makes this explicit",
                face,
                name,
                plan.field,
                readers,
                label_field,
                setting.format(plan.field),
            )
        elif all(r.field != label_field for r in plan.reads):
            logger.info(
                "%s, reward %r: no grader reads the labels (record field %r); they are not graded",
                face,
                name,
                label_field,
            )
        out[name] = plan.field
    return out
