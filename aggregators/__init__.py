"""Aggregators: combine a record's components into one reward, with an explicit failure policy."""

from aggregators._base import BaseAggregator, FunctionAggregator, OnError, as_aggregator

__all__ = ["BaseAggregator", "FunctionAggregator", "OnError", "as_aggregator"]
