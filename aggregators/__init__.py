"""Aggregators: combine a record's components into one reward, with an explicit failure policy."""

# rm_service first: its runner and mapper import this package's base module, and importing it
# halfway through this file would find that module half-built.
import rm_service  # noqa: F401, I001

from aggregators._base import BaseAggregator, FunctionAggregator, OnError, as_aggregator
from aggregators._formula import FormulaAggregator
from aggregators._gate import GateAggregator
from aggregators._registry import get_aggregator, list_aggregators, register_aggregator
from aggregators._weighted import MaxAggregator, MinAggregator, WeightedSumAggregator

__all__ = [
    "BaseAggregator",
    "FormulaAggregator",
    "FunctionAggregator",
    "GateAggregator",
    "MaxAggregator",
    "MinAggregator",
    "OnError",
    "WeightedSumAggregator",
    "as_aggregator",
    "get_aggregator",
    "list_aggregators",
    "register_aggregator",
]
