"""rm-service: reward signals for LLM post-training.

One engine, :class:`GradingRunner`, runs graders (``graders``) and aggregators (``aggregators``)
over records at bounded concurrency. Every component result is a :class:`GraderScore` in [0, 1]
or an honest :class:`GraderError`; faces (CLI, HTTP, TRL) carry *unscored* through as null/None.

This package is the bottom layer (result types and exceptions) *and* the engine's front door, so
only the types are imported here eagerly: ``graders`` and ``aggregators`` import
``rm_service._result``, which runs this file first, and an eager engine import would loop back
into them. Everything else is loaded on first attribute access (module ``__getattr__``); the
``TYPE_CHECKING`` block lets type checkers and IDEs see the same names.
"""

from __future__ import annotations

import typing as _typing

from rm_service._exceptions import ConfigError, InputError, MappingError, RMServiceError
from rm_service._lazy import lazy_attributes as _lazy_attributes
from rm_service._result import (
    ErrorKind,
    GraderError,
    GraderResult,
    GraderScore,
    RecordResult,
    Status,
)

if _typing.TYPE_CHECKING:
    from rm_service._advantages import grpo_advantages
    from rm_service._config import (
        AggregatorSpec,
        GraderSpec,
        RewardConfig,
        build_runner,
        load_config,
    )
    from rm_service._mapper import GraderConfig, Mapper
    from rm_service._offline import GradeFileResult, agrade_file, grade_file
    from rm_service._rollout import RolloutRewardCalculator, TurnReward
    from rm_service._runner import DEFAULT_MAX_CONCURRENCY, GradingRunner
    from rm_service._summary import ComponentStats, RunSummary, summarize_jsonl
    from rm_service._wire import record_from_json, record_json

__version__ = "0.1.0"

# name -> the module that defines it; imported on first access by ``__getattr__``.
_LAZY: dict[str, str] = {
    "grpo_advantages": "rm_service._advantages",
    **dict.fromkeys(
        ("AggregatorSpec", "GraderSpec", "RewardConfig", "build_runner", "load_config"),
        "rm_service._config",
    ),
    **dict.fromkeys(("GraderConfig", "Mapper"), "rm_service._mapper"),
    **dict.fromkeys(("GradeFileResult", "agrade_file", "grade_file"), "rm_service._offline"),
    **dict.fromkeys(("RolloutRewardCalculator", "TurnReward"), "rm_service._rollout"),
    **dict.fromkeys(("DEFAULT_MAX_CONCURRENCY", "GradingRunner"), "rm_service._runner"),
    **dict.fromkeys(("ComponentStats", "RunSummary", "summarize_jsonl"), "rm_service._summary"),
    **dict.fromkeys(("record_from_json", "record_json"), "rm_service._wire"),
}


__getattr__, __dir__ = _lazy_attributes(__name__, globals(), _LAZY)


__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "AggregatorSpec",
    "ComponentStats",
    "ConfigError",
    "ErrorKind",
    "GradeFileResult",
    "GraderConfig",
    "GraderError",
    "GraderResult",
    "GraderScore",
    "GraderSpec",
    "GradingRunner",
    "InputError",
    "Mapper",
    "MappingError",
    "RMServiceError",
    "RecordResult",
    "RewardConfig",
    "RolloutRewardCalculator",
    "RunSummary",
    "Status",
    "TurnReward",
    "agrade_file",
    "build_runner",
    "grade_file",
    "grpo_advantages",
    "load_config",
    "record_from_json",
    "record_json",
    "summarize_jsonl",
]
