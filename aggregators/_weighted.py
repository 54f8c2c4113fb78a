"""Weighted sum, min and max: the plain ways to turn several rewards into one.

All three keep the result a reward in ``[0, 1]`` by construction (a convex combination, a min, a
max of values in ``[0, 1]``), so they never need clamping, and all three honour the base's
``on_error`` policy: an unscored component makes the aggregate unscored unless the config says
otherwise, and a record whose components all failed is unscored under every policy, never 0.

Renormalising over the survivors of a failure happens only when asked for (``on_error="skip"``):
done silently, it would change what a record's reward means. The skipped names are listed in the
result's metadata, so a reward whose meaning changed for one record says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

from aggregators._base import BaseAggregator, OnError
from aggregators._registry import aggregator
from rm_service._exceptions import ConfigError

__all__ = ["MaxAggregator", "MinAggregator", "WeightedSumAggregator"]

_ROUNDING = 1e-9
"""How far outside [0, 1] a weighted sum may land by float rounding alone (it is clipped back)."""


def _check_names(owner: str, names: Sequence[str] | None) -> tuple[str, ...] | None:
    """Reject a bare string (``tuple("ab")`` would silently read components ``a`` and ``b``) and
    a mapping (``{a: 0.9, b: 0.1}`` read as ``a, b``, its values silently ignored)."""
    if names is None:
        return None
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{owner}: components must be a list of non-empty names, got {names!r}")
    if not names:
        raise ConfigError(f"{owner}: components is empty; pass None to read every component")
    return tuple(dict.fromkeys(names))


def _terms(weights: Mapping[str, float]) -> tuple[tuple[str, float, str], ...]:
    """Each component's name, weight and the start of its part of the reason (``0.7*correct(``),
    formatted once rather than for every record."""
    return tuple((k, w, f"{w:.3g}*{k}(") for k, w in weights.items())


def _check_resolved(agg: BaseAggregator) -> None:
    if not agg.components:
        raise ConfigError(f"aggregator {agg.name!r} has no components to combine")


@aggregator(name="weighted_sum")
class WeightedSumAggregator(BaseAggregator):
    """A weighted mean of components: ``sum(w_i * score_i)`` with the weights normalised to sum 1.

    Normalising at construction keeps the result in ``[0, 1]`` whatever scale the config's weights
    use (``{"correct": 3, "format": 1}`` is the same as ``{"correct": 0.75, "format": 0.25}``).
    A component with weight 0 cannot move the reward, so it is not read at all: its failure does
    not make the aggregate unscored (its name is still checked in :meth:`bind`).

    Args:
        name: the result name, e.g. ``"reward"``.
        weights: component name to a weight ``>= 0``; at least one must be positive. ``None``
            means equal weights over every component, resolved in :meth:`bind` (before binding,
            the mean of whatever components arrive).
        on_error: ``"unscored"`` (default), ``"skip"`` (renormalise the weights over the components
            that scored; the skipped names land in ``metadata["skipped"]``), or a float in
            ``[0, 1]`` substituted for each failed component.

    Raises:
        ConfigError: a negative, non-finite or non-numeric weight, all weights zero, an empty
            mapping, or a bad ``on_error``.
    """

    def __init__(
        self,
        name: str,
        weights: Mapping[str, float] | None = None,
        *,
        on_error: OnError = "unscored",
    ) -> None:
        self._zero: tuple[str, ...] = ()
        self._weights: dict[str, float] | None = None
        self._terms: tuple[tuple[str, float, str], ...] = ()
        if weights is None:
            super().__init__(name, components=None, on_error=on_error)
            return
        owner = f"WeightedSumAggregator {name!r}"
        if not isinstance(weights, Mapping) or not weights:
            raise ConfigError(
                f"{owner}: weights must be a non-empty mapping of component name to weight "
                f"(or None for equal weights), got {weights!r}"
            )
        for k, w in weights.items():
            if not isinstance(k, str) or not k:
                raise ConfigError(f"{owner}: weight keys must be component names, got {k!r}")
            if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
                raise ConfigError(f"{owner}: weight for {k!r} must be a finite number, got {w!r}")
            if w < 0:
                raise ConfigError(
                    f"{owner}: weight for {k!r} is {w!r}; weights must be >= 0 (a negative weight "
                    "would push the reward outside [0, 1]; use a formula aggregator for penalties)"
                )
        try:
            total = math.fsum(float(w) for w in weights.values())
        except OverflowError:  # each weight finite, their sum not (1e308 + 1e308)
            raise ConfigError(
                f"{owner}: the weights sum past the float range; scale them down"
            ) from None
        if total <= 0:
            raise ConfigError(f"{owner}: all weights are zero; at least one must be positive")
        self._weights = {k: float(w) / total for k, w in weights.items() if w > 0}
        self._terms = _terms(self._weights)
        self._zero = tuple(k for k, w in weights.items() if w == 0)
        super().__init__(name, components=tuple(self._weights), on_error=on_error)

    @property
    def weights(self) -> dict[str, float] | None:
        """The normalised weights (a copy), or ``None`` while equal weights are not yet bound."""
        return dict(self._weights) if self._weights is not None else None

    def __repr__(self) -> str:
        return (
            f"WeightedSumAggregator(name={self.name!r}, weights={self._weights!r}, "
            f"on_error={self.on_error!r})"
        )

    def bind(self, available: Sequence[str]) -> None:
        """Check names (zero-weight ones too) and resolve equal weights over every component."""
        unknown = [k for k in self._zero if k not in available]
        if unknown:
            raise ConfigError(
                f"aggregator {self.name!r} weights unknown component(s) {unknown}; "
                f"available: {list(available)}"
            )
        super().bind(available)
        _check_resolved(self)
        if self._weights is None:
            assert self.components is not None
            self._weights = dict.fromkeys(self.components, 1.0 / len(self.components))
            self._terms = _terms(self._weights)

    def combine(self, values: Mapping[str, float]) -> tuple[float, str]:
        w = self._weights
        if w is not None and len(values) == len(w):
            # The common case: nothing skipped (no failure, or failures substituted). The weight
            # labels of the reason were formatted once, at construction or bind, and the terms
            # and the reason's parts are gathered in one loop (two comprehensions cost more).
            products: list[float] = []
            parts: list[str] = []
            for k, wk, label in self._terms:
                v = values[k]
                products.append(wk * v)
                parts.append(f"{label}{v:.3g})")
            s = math.fsum(products)
            reason = " + ".join(parts)
        else:
            if w is None:  # unbound equal weights: the mean of what arrived
                share = 1.0 / len(values)
                items = [(k, share) for k in values]
            else:  # on_error="skip": renormalise over the survivors
                total = math.fsum([wk for k, wk in w.items() if k in values])
                if total <= 0:
                    raise ValueError("every component that scored has weight 0")
                items = [(k, wk / total) for k, wk in w.items() if k in values]
            s = math.fsum([wk * values[k] for k, wk in items])
            reason = " + ".join([f"{wk:.3g}*{k}({values[k]:.3g})" for k, wk in items])
        # Rounded to 15 significant digits, below which a sum of weighted floats is rounding
        # noise: users read rewards in files and logs, and 0.2 + 0.1 should read 0.3, not
        # 0.30000000000000004. A convex combination of values in [0, 1] is in [0, 1]; clip only
        # float rounding (e.g. 1.0000000000000002), which the base would otherwise reject.
        # Anything further out is no rounding: the base rejects it.
        if s != 1.0 and s != 0.0:  # each of them reads back as itself (-0.0 too)
            s = float(f"{s:.15g}")
        if -_ROUNDING < s < 0.0 or 1.0 < s < 1.0 + _ROUNDING:
            s = min(max(s, 0.0), 1.0)
        return s, reason


class _Extremum(BaseAggregator):
    # Callable[..., str], not min's own overloads, which mypy cannot match against a key function
    _pick: ClassVar[Callable[..., str]] = staticmethod(min)
    _word = ""

    def __init__(
        self,
        name: str,
        components: Sequence[str] | None = None,
        *,
        on_error: OnError = "unscored",
    ) -> None:
        names = _check_names(f"{type(self).__name__} {name!r}", components)
        super().__init__(name, components=names, on_error=on_error)

    def bind(self, available: Sequence[str]) -> None:
        """Check the names, or resolve ``components=None`` to every available component."""
        super().bind(available)
        _check_resolved(self)

    def combine(self, values: Mapping[str, float]) -> tuple[float, str]:
        k = self._pick(values, key=values.__getitem__)
        v = values[k]
        return v, f"{self._word} is {k} ({v:.3g}) of {len(values)}"


@aggregator(name="min")
class MinAggregator(_Extremum):
    """The lowest component: every requirement must hold for a high reward (a soft AND).

    Args:
        name: the result name.
        components: the names to read; ``None`` means every component (resolved in ``bind``).
        on_error: ``"unscored"`` (default), ``"skip"`` (the min of the components that scored),
            or a float in ``[0, 1]`` substituted for each failed component. Note that under
            ``"skip"`` a failed component can only raise the min: choose it knowingly.
    """

    _pick = staticmethod(min)
    _word = "min"


@aggregator(name="max")
class MaxAggregator(_Extremum):
    """The highest component: any one route to a good answer earns the reward (a soft OR).

    Args:
        name: the result name.
        components: the names to read; ``None`` means every component (resolved in ``bind``).
        on_error: ``"unscored"`` (default), ``"skip"`` (the max of the components that scored),
            or a float in ``[0, 1]`` substituted for each failed component.
    """

    _pick = staticmethod(max)
    _word = "max"
