"""A gate: one component must pass before another one counts ("format must pass, else 0").

This is the gating that verifier-style rewards use: a cheap check (the answer is in a box, the
JSON parses, the code compiles) decides whether the expensive, meaningful score is awarded at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from aggregators._base import BaseAggregator, OnError
from aggregators._registry import aggregator
from rm_service._exceptions import ConfigError
from rm_service._result import GraderError, GraderResult, GraderScore

__all__ = ["GateAggregator"]


def _unit(owner: str, what: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0.0 <= value <= 1.0
    ):
        raise ConfigError(f"{owner}: {what} must be a number in [0, 1], got {value!r}")
    return float(value)


@aggregator(name="gate")
class GateAggregator(BaseAggregator):
    """``inner`` if ``gate >= threshold``, else a fixed ``penalty``; ``metadata["gated"]`` tells.

    Precisely, for one record:

    1. **The gate scored and failed** (``score < threshold``): the result is ``penalty`` with
       ``metadata["gated"] = True``, *whatever* ``inner`` is, even unscored. The value of
       ``inner`` cannot change the outcome, so its failure does not make the reward unscored
       (it stays visible as its own component, and is named in ``metadata["unscored_ignored"]``).
    2. **The gate scored and passed** (``score >= threshold``): the result is ``inner``'s score
       with ``gated = False``. If ``inner`` is unscored, ``on_error`` decides: unscored by
       default, or the substitute value.
    3. **The gate is unscored**: nobody knows whether the record passed, so under the default
       ``on_error="unscored"`` the aggregate is unscored too (never the penalty: a judge timeout
       is not a format failure). With a float ``on_error`` the substitute is used as the gate's
       score and compared with ``threshold`` like a real one (``on_error=0.0`` reads "a gate that
       could not run counts as failed").

    ``on_error="skip"`` is rejected: a gate with its gate or its inner dropped has nothing left to
    decide, so "skip" could only ever mean "unscored" in disguise.

    Args:
        name: the result name.
        gate: the component that must pass (a grader, or an earlier aggregator's result).
        threshold: the gate passes when its score is ``>= threshold`` (in ``[0, 1]``; for a 0/1
            check, any value in ``(0, 1]`` means "must be 1").
        inner: the component whose score the record gets when the gate passes; may be an earlier
            aggregator's result (a gate around a weighted sum), or the gate itself.
        penalty: the reward when the gate fails, in ``[0, 1]``.
        on_error: ``"unscored"`` (default) or a float in ``[0, 1]`` (see above).

    Raises:
        ConfigError: empty names, ``threshold`` or ``penalty`` outside ``[0, 1]``, or
            ``on_error="skip"``.
    """

    def __init__(
        self,
        name: str,
        gate: str,
        threshold: float,
        inner: str,
        penalty: float = 0.0,
        *,
        on_error: OnError = "unscored",
    ) -> None:
        owner = f"GateAggregator {name!r}"
        for what, value in (("gate", gate), ("inner", inner)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{owner}: {what} must be a component name, got {value!r}")
        if on_error == "skip":
            raise ConfigError(
                f"{owner}: on_error='skip' cannot apply to a gate (without its gate or its inner "
                "component there is nothing to decide); use 'unscored' or a float substitute"
            )
        self.gate = gate
        self.inner = inner
        self.threshold = _unit(owner, "threshold", threshold)
        self.penalty = _unit(owner, "penalty", penalty)
        components = (gate,) if gate == inner else (gate, inner)
        super().__init__(name, components=components, on_error=on_error)

    def __repr__(self) -> str:
        return (
            f"GateAggregator(name={self.name!r}, gate={self.gate!r}, threshold={self.threshold!r}, "
            f"inner={self.inner!r}, penalty={self.penalty!r}, on_error={self.on_error!r})"
        )

    def __call__(self, results: Mapping[str, GraderResult]) -> GraderResult:
        g = results.get(self.gate)
        inner = results.get(self.inner)
        if isinstance(g, GraderScore):
            if g.score < self.threshold:
                meta: dict[str, Any] = {"gated": True}
                if not isinstance(inner, GraderScore):
                    kind = inner.kind if isinstance(inner, GraderError) else "internal"
                    meta["unscored_ignored"] = {self.inner: kind}
                return GraderScore(
                    name=self.name,
                    score=self.penalty,
                    reason=f"gate {self.gate}={g.score:.3g} < {self.threshold:g}: penalty",
                    metadata=meta,
                )
            if isinstance(inner, GraderScore):  # the common case, without the policy machinery
                return GraderScore(
                    name=self.name,
                    score=inner.score,
                    reason=(
                        f"gate {self.gate}={g.score:.3g} >= {self.threshold:g}; "
                        f"{self.inner}={inner.score:.3g}"
                    ),
                    metadata={"gated": False},
                )
        # Something is unscored where it matters: the base applies on_error.
        out = super().__call__(results)
        if isinstance(out, GraderScore):
            # Either the gate scored and passed, or it failed to score and on_error (a float here,
            # since "unscored" returned above and "skip" is rejected) stood in for it.
            gated = not isinstance(g, GraderScore) and float(self.on_error) < self.threshold
            return out.model_copy(update={"metadata": {**out.metadata, "gated": gated}})
        return out

    def combine(self, values: Mapping[str, float]) -> tuple[float, str]:
        g = values[self.gate]
        if g < self.threshold:  # only reachable with a substituted gate value
            return self.penalty, f"gate {self.gate}={g:.3g} < {self.threshold:g}: penalty"
        v = values[self.inner]
        return v, f"gate {self.gate}={g:.3g} >= {self.threshold:g}; {self.inner}={v:.3g}"
