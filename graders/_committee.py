"""``CommitteeGrader``: several judges (or several samples of one) vote on one response.

Why: one judge model has one set of blind spots. Mixed-model committees cut prompt-injection
success sharply in the published red-teaming of LLM judges, and sampling a
judge several times at temperature > 0 averages out its noise. ``combine="min"`` is the
conservative choice against reward hacking: one member fooled into a high score does not raise
the reward.

Failure handling follows the project's rule (a failure is never a plausible number): members
that come back unscored are left out of the vote, and fewer than ``min_valid`` valid verdicts
make the committee itself unscored. Every member's score (or failure kind) is listed in
metadata, so a disagreement is visible.

Cross-checks (:func:`min_cross_check`, :func:`cross_check_unavailable`) are the smallest
committee: a built-in LLM judge and an offline grader that checks it, combined by ``min``, so a
gullible judge cannot carry a response alone (``HarmfulnessGrader`` with the offline harm
detector, ``RelevanceGrader`` with embedding relevance).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from graders._base import BaseGrader, Grader, Unscored, contract, grader
from graders._judge import LLMGrader, ModelSpec
from rm_service._exceptions import ConfigError
from rm_service._result import GraderError, GraderResult, GraderScore, checked

__all__ = [
    "CombineRule",
    "CommitteeGrader",
    "CrossCheck",
    "combine_scores",
    "cross_check_mode",
    "cross_check_unavailable",
    "min_cross_check",
]

CombineRule = Literal["mean", "majority", "min"]
CrossCheck = Literal["auto", "required", "off"]
"""When a built-in judge runs its offline cross-check: ``auto`` (whenever the ``local`` extra is
installed; otherwise a warning, once, and ``metadata["cross_check"]`` saying it did not run),
``required`` (a missing extra is a :class:`ConfigError`), ``off`` (never). YAML ``true`` is
``auto``, ``false`` is ``off``."""

_log = logging.getLogger("rm_service.graders")
_warned: set[str] = set()
_warned_lock = threading.Lock()


def combine_scores(scores: Sequence[float], rule: CombineRule) -> float:
    """Combine valid member scores.

    * ``mean``: the arithmetic mean.
    * ``majority``: the most frequent score (a vote, as Inspect's ``mode`` reducer); a tie goes
      to the *lowest* tied score, so a split committee never rounds an attack up.
    * ``min``: the lowest score (the most sceptical member wins).

    Raises:
        ValueError: no scores, or an unknown rule.
    """
    if not scores:
        raise ValueError("no scores to combine")
    if rule == "mean":
        return sum(scores) / len(scores)
    if rule == "min":
        return min(scores)
    if rule == "majority":
        counts = Counter(round(s, 9) for s in scores)
        top = max(counts.values())
        return min(s for s, c in counts.items() if c == top)
    raise ValueError(f"unknown combine rule {rule!r}")


@grader
class CommitteeGrader(BaseGrader):
    """Several judges grade the same record; their valid verdicts are combined.

    Build it from graders (any :class:`~graders._base.Grader`, typically differently configured
    :class:`~graders._judge.LLMGrader`\\ s), or from ``models`` plus what each member should be
    (``judge``, ``template`` and judge arguments), one member per model.

    With ``n_samples > 1`` each member grades ``n_samples`` times. An ``LLMGrader`` member draws
    independent samples (its copies differ in cache key and, when a seed is set, in seed), which
    needs ``temperature > 0``; other graders are simply called again.

    Metadata: ``combine``, ``valid``, ``total``, and ``members``: one entry per verdict with the
    member's name, sample index, score (``None`` when unscored) and failure kind. When every valid
    verdict was a pre-gate hit, ``pregate`` is copied up.

    Args:
        graders: the members.
        models: alternatively, judge backends (or factories) to build one member each.
        judge: the member class built for each model (e.g. ``RelevanceGrader``).
        template: the members' template (``LLMGrader``'s; named judges have their own).
        n_samples: verdicts drawn per member.
        combine: ``"mean"``, ``"majority"`` or ``"min"`` (see :func:`combine_scores`).
        min_valid: the fewest valid verdicts for a score; default a strict majority of all
            verdicts (``total // 2 + 1``).
        name: the result name.
        **judge_kwargs: passed to ``judge`` for every member built from ``models``.

    Raises:
        ConfigError: no members, both or neither of ``graders``/``models``, a bad rule or count,
            or ``n_samples > 1`` with a deterministic (temperature 0) judge.
    """

    default_name: ClassVar[str] = "committee"

    def __init__(
        self,
        graders: Sequence[Grader] | None = None,
        *,
        models: Sequence[ModelSpec] | None = None,
        judge: type[LLMGrader] = LLMGrader,
        template: str | Path | None = None,
        n_samples: int = 1,
        combine: CombineRule = "mean",
        min_valid: int | None = None,
        name: str | None = None,
        **judge_kwargs: Any,
    ) -> None:
        super().__init__(name=name)
        if (graders is None) == (models is None):
            raise ConfigError("CommitteeGrader takes either graders= or models=, not both")
        if combine not in get_args(CombineRule):
            raise ConfigError(f"combine must be one of {get_args(CombineRule)}, got {combine!r}")
        if not isinstance(n_samples, int) or n_samples < 1:
            raise ConfigError(f"n_samples must be a positive integer, got {n_samples!r}")
        if models is not None:
            if template is not None:
                judge_kwargs["template"] = template
            graders = [
                judge(m, name=f"{self.name}[{i}]", **judge_kwargs) for i, m in enumerate(models)
            ]
        elif template is not None or judge_kwargs:
            raise ConfigError("template= and judge arguments apply only with models=")
        members = list(graders or [])
        if not members:
            raise ConfigError("a committee needs at least one member")
        for g in members:
            if not isinstance(g, Grader):
                raise ConfigError(f"committee member {g!r} is not a grader")
        self.members: tuple[Grader, ...] = tuple(members)
        self.n_samples = n_samples
        self.combine: CombineRule = combine
        self._voters = self._build_voters()
        total = len(self._voters)
        self.min_valid = total // 2 + 1 if min_valid is None else min_valid
        if not 1 <= self.min_valid <= total:
            raise ConfigError(
                f"min_valid must be in 1-{total} (the verdict count), got {min_valid}"
            )
        required: list[str] = []
        optional: list[str] = []
        for g in map(contract, self.members):
            required += [f for f in g.required_fields if f not in required]
            optional += [f for f in g.optional_fields if f not in optional]
        self.required_fields = tuple(required)
        self.optional_fields = tuple(f for f in optional if f not in required)

    def _build_voters(self) -> tuple[tuple[Grader, int], ...]:
        """Every (grader, sample index) pair to ask: members × samples, built once."""
        voters: list[tuple[Grader, int]] = []
        for g in self.members:
            if isinstance(g, LLMGrader) and self.n_samples > 1:
                if g.params.temperature <= 0.0:
                    raise ConfigError(
                        f"n_samples={self.n_samples} with member {g.name!r} at temperature 0 "
                        "would draw the same verdict every time; set temperature > 0"
                    )
                voters += [(g.with_sample_index(j), j) for j in range(self.n_samples)]
            else:
                voters += [(g, j) for j in range(self.n_samples)]
        return tuple(voters)

    def __repr__(self) -> str:
        names = ", ".join(g.name for g in self.members)
        return f"CommitteeGrader(name={self.name!r}, members=[{names}], combine={self.combine!r})"

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        results: list[GraderResult] = [
            _as_result(g, r)
            for (g, _), r in zip(
                self._voters,
                await asyncio.gather(*(g.aevaluate(**fields) for g, _ in self._voters)),
                strict=True,
            )
        ]
        members = [
            {
                "member": g.name,
                "sample": j,
                "score": r.score if isinstance(r, GraderScore) else None,
                **({"error": r.kind} if isinstance(r, GraderError) else {}),
            }
            for (g, j), r in zip(self._voters, results, strict=True)
        ]
        valid = [r for r in results if isinstance(r, GraderScore)]
        meta: dict[str, Any] = {
            "combine": self.combine,
            "valid": len(valid),
            "total": len(results),
            "members": members,
        }
        if len(valid) < self.min_valid:
            errors = [r for r in results if isinstance(r, GraderError)]
            kind = Counter(e.kind for e in errors).most_common(1)[0][0]
            first = errors[0]
            raise Unscored(
                f"only {len(valid)} of {len(results)} committee verdicts are valid "
                f"(need {self.min_valid}); first failure: {first.name}: {first.error}",
                kind=kind,
                **meta,
            )
        scores = [r.score for r in valid]
        score = combine_scores(scores, self.combine)
        gates = {r.metadata.get("pregate") for r in valid}
        if len(gates) == 1 and None not in gates:
            meta["pregate"] = gates.pop()
        shown = ", ".join(f"{s:.3g}" for s in scores)
        return GraderScore(
            name=self.name,
            score=score,
            reason=f"{self.combine} of {len(valid)}/{len(results)} valid verdicts ({shown})",
            metadata=meta,
        )


def _as_result(member: Any, out: Any) -> GraderResult:
    """A member's verdict as a result: a protocol-only member (any object with ``aevaluate``) may
    hand back a bare number or ``None``, which was dropped unnamed (or, with no valid verdict
    left, failed as an ``IndexError``); it is an ``internal`` error naming the member."""
    if isinstance(out, GraderScore | GraderError):
        return checked(out)  # a score built without its check (model_construct) is one too
    name = str(getattr(member, "name", type(member).__name__))
    return GraderError(
        name=name, error=f"returned {out!r}, not a GraderScore or GraderError", kind="internal"
    )


# --- cross-checks --------------------------------------------------------------------------------


def cross_check_mode(value: object) -> CrossCheck:
    """``value`` as a :data:`CrossCheck` mode (``True`` is ``auto``, ``False`` is ``off``).

    Raises:
        ConfigError: anything else.
    """
    if value is True:
        return "auto"
    if value is False or value is None:
        return "off"
    for mode in get_args(CrossCheck):
        if value == mode:
            return mode
    raise ConfigError(
        f"cross_check must be one of {', '.join(map(repr, get_args(CrossCheck)))} or a bool, "
        f"got {value!r}"
    )


def cross_check_unavailable(mode: CrossCheck, what: str, reason: str) -> dict[str, Any]:
    """The note for a cross-check that cannot run, after logging it (once per reason).

    ``required`` makes it a :class:`ConfigError` instead: the user asked for the check, and a
    judge that silently runs without it would be the gullible judge the check exists to stop.

    Returns:
        ``{"ran": False, "reason": ...}``, for ``metadata["cross_check"]`` of every result.
    """
    message = f"{what}: the offline cross-check does not run: {reason}"
    if mode == "required":
        raise ConfigError(message)
    with _warned_lock:
        first = message not in _warned
        _warned.add(message)
    if first:
        _log.warning(
            "%s; the judge's verdict is used alone (metadata cross_check.ran=false)", message
        )
    return {"ran": False, "reason": reason}


def min_cross_check(judged: GraderScore, check: GraderResult, *, name: str) -> GraderScore:
    """The judge's score, lowered to the cross-check's where that is lower (a ``min`` of two).

    ``metadata["cross_check"]`` records the check (its name, score, whether it decided, and its
    own metadata); the reason says when the check overruled the judge. A check that failed on
    this record leaves the judge's score as it is, with ``ran: False`` and the failure kind: the
    record is still graded, and the result says plainly that it was graded by the judge alone.
    """
    if isinstance(check, GraderError):
        note: dict[str, Any] = {
            "ran": False,
            "grader": check.name,
            "error": check.kind,
            "reason": check.error,
        }
        return judged.model_copy(update={"metadata": {**judged.metadata, "cross_check": note}})
    decided = check.score < judged.score
    note = {
        "ran": True,
        "grader": check.name,
        "score": check.score,
        "judge_score": judged.score,
        "decided": decided,
        **_plain(check.metadata),
    }
    if not decided:
        return judged.model_copy(update={"metadata": {**judged.metadata, "cross_check": note}})
    return GraderScore(
        name=name,
        score=check.score,
        reason=(
            f"cross-check ({check.name}): {check.reason}; the judge said {judged.score:.2f}"
            + (f" ({judged.reason})" if judged.reason else "")
        ),
        metadata={**judged.metadata, "cross_check": note},
    )


def _plain(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in ("ran", "grader", "score", "decided")}
