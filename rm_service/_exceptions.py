"""Exceptions are for the caller's mistakes; a grading failure is a ``GraderError``, not a raise.

The tree, so callers can catch at the level they care about::

    RMServiceError
    ├── ConfigError          bad reward config, unknown grader name, bad mapper, bad aggregator
    │   └── MappingError     a mapper path does not resolve on a record (carries index and path)
    └── InputError           malformed input data (carries line number or record index)

Inside the runner a per-record mapping problem becomes ``GraderError(kind="invalid_input")``; the
exceptions are raised where the caller asked for a check (config load, the first-record check the
CLI and service do before spending any judge calls, a malformed JSONL line).
"""

from __future__ import annotations

__all__ = ["ConfigError", "InputError", "MappingError", "RMServiceError"]


class RMServiceError(Exception):
    """Base of every error rm-service raises on purpose."""


class ConfigError(RMServiceError):
    """A reward config, grader, mapper or aggregator is wrong; raised before any grading."""


class MappingError(ConfigError):
    """A mapper path that does not resolve on a record.

    Attributes:
        index: the record's position in the input (0-based), when known.
        path: the dotted path that failed, e.g. ``"answer.choices[0].text"``.
        field: the grader field the path was meant to fill.
    """

    def __init__(self, message: str, *, index: int | None, path: str, field: str) -> None:
        where = f"record {index}: " if index is not None else ""
        super().__init__(f"{where}{message}")
        self.index = index
        self.path = path
        self.field = field


class InputError(RMServiceError):
    """Malformed input data, e.g. a JSONL line that is not a JSON object.

    Attributes:
        line: the 1-based line number in the input file, when the input is a file.
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{message}")
        self.line = line
