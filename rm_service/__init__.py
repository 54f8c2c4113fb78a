"""rm-service: reward signals for LLM post-training.

One engine, :class:`GradingRunner`, runs graders (``graders``) and aggregators (``aggregators``)
over records at bounded concurrency. Every component result is a :class:`GraderScore` in [0, 1]
or an honest :class:`GraderError`; faces (CLI, HTTP, TRL) carry *unscored* through as null/None.
"""

from rm_service._advantages import grpo_advantages
from rm_service._config import AggregatorSpec, GraderSpec, RewardConfig, build_runner, load_config
from rm_service._exceptions import ConfigError, InputError, MappingError, RMServiceError
from rm_service._mapper import GraderConfig, Mapper
from rm_service._offline import GradeFileResult, agrade_file, grade_file
from rm_service._result import ErrorKind, GraderError, GraderResult, GraderScore, RecordResult
from rm_service._rollout import RolloutRewardCalculator, TurnReward
from rm_service._runner import DEFAULT_MAX_CONCURRENCY, GradingRunner
from rm_service._summary import ComponentStats, RunSummary, summarize_jsonl

__version__ = "0.1.0"

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
    "TurnReward",
    "agrade_file",
    "build_runner",
    "grade_file",
    "grpo_advantages",
    "load_config",
    "summarize_jsonl",
]
