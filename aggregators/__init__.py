"""Aggregators: combine a record's components into one reward, with an explicit failure policy."""

from aggregators._base import BaseAggregator, FunctionAggregator, OnError, as_aggregator
from aggregators._formula import FormulaAggregator
from aggregators._gate import GateAggregator
from aggregators._registry import aggregator, get_aggregator, list_aggregators, register_aggregator
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
    "aggregator",
    "as_aggregator",
    "get_aggregator",
    "list_aggregators",
    "register_aggregator",
]
