"""A runner's aggregators: what ``aggregators=`` takes, how each is bound, which is the reward.

``GradingRunner`` binds its aggregators once, at construction: each is copied (the caller's
instance may serve elsewhere) and bound to the results it may read, the graders' and the earlier
aggregators'. Apart from :mod:`rm_service._runner`, which schedules the grader calls, because
this is configuration, run once, never per record.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aggregators import WeightedSumAggregator
from aggregators._base import BaseAggregator as _BaseAggregator
from aggregators._base import FunctionAggregator, as_aggregator
from rm_service._exceptions import ConfigError
from rm_service._result import GraderResult

__all__ = ["Aggregator", "AggregatorLike", "bind_aggregators", "default_reward"]

Aggregator = _BaseAggregator | FunctionAggregator
AggregatorLike = Aggregator | Callable[[Mapping[str, GraderResult]], Any]
"""One of what ``aggregators=`` takes: an aggregator, or a plain ``f(results_by_name)``."""


def bind_aggregators(
    aggregators: AggregatorLike | Sequence[AggregatorLike] | None,
    reward: str | None,
    graders: Sequence[str],
) -> list[Aggregator]:
    """The runner's aggregators, each a bound copy, in order: ``aggregators`` as one or a list,
    or an equal-weight ``WeightedSumAggregator("reward")`` when there are none, no ``reward``
    is named and there are several ``graders``. Each sees the graders and the aggregators
    before it.

    Raises:
        ConfigError: an aggregator named as a grader or an earlier aggregator, or one with no
            components or one not among those.
    """
    items: list[AggregatorLike]
    if aggregators is None:
        items = []
    elif isinstance(aggregators, Sequence) and not isinstance(aggregators, str):
        items = list(aggregators)
    else:
        items = [aggregators]
    bound: list[Aggregator] = []
    available = list(graders)
    if not items and reward is None and len(available) > 1:
        items = [WeightedSumAggregator("reward")]
    for item in items:
        # A copy: binding resolves components, and the caller's instance may serve elsewhere.
        agg = copy.copy(as_aggregator(item))
        if agg.name in available:
            raise ConfigError(f"aggregator name {agg.name!r} clashes with another result")
        # "Every component" means every grader; named components may be earlier aggregates.
        every = isinstance(agg, _BaseAggregator) and agg.components is None
        agg.bind(list(graders) if every else available)
        bound.append(agg)
        available.append(agg.name)
    return bound


def default_reward(aggregators: Sequence[Aggregator], names: Sequence[str]) -> str:
    """Which result is a record's reward when none is named: the aggregator named ``reward``,
    else the last aggregator (later ones may wrap earlier ones), else the first grader."""
    agg_names = [a.name for a in aggregators]
    if "reward" in agg_names:
        return "reward"
    return agg_names[-1] if agg_names else names[0]
