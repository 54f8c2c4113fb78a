"""rm-service: reward signals for LLM post-training."""

from rm_service._exceptions import ConfigError, InputError, MappingError, RMServiceError
from rm_service._result import ErrorKind, GraderError, GraderResult, GraderScore, RecordResult

__all__ = [
    "ConfigError",
    "ErrorKind",
    "GraderError",
    "GraderResult",
    "GraderScore",
    "InputError",
    "MappingError",
    "RMServiceError",
    "RecordResult",
]
