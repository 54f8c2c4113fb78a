"""Every exception rm-service raises on purpose, in one tree, so callers can catch at the level
they care about::

    RMServiceError
    ├── ConfigError                bad reward config, unknown grader name, bad mapper or aggregator
    │   └── MappingError           a mapper path does not resolve on a record (index, path, field)
    ├── InputError                 malformed input data (line number)
    │   └── PatternTooLarge        a regex too large to compile safely (also a ValueError)
    ├── EmbedderUnavailable        the embedding model's dependency or files are missing
    └── JudgeError                 the judge gave no answer (attempts)
        ├── JudgeTimeout           a per-call or overall deadline passed first
        ├── JudgeRateLimited       still 429 after every retry (retry_after)
        ├── JudgeConnectionError   the endpoint could not be reached
        ├── JudgeHTTPError         another non-2xx status, or not a chat completion (status)
        └── LocalModelUnavailable  the local model's dependency, weights or load failed

Exceptions are for the caller's mistakes and for backends that cannot answer; a grading failure is
a ``GraderError``, not a raise. Inside the runner a per-record mapping problem becomes
``GraderError(kind="invalid_input")`` and a judge's ``JudgeError`` a ``GraderError`` of its kind;
the exceptions reach a caller where it asked for a check (config load, the first-record check the
CLI and service do before spending any judge calls, a malformed JSONL line, ``load()``).

Three signals are deliberately outside the tree, because no caller should ever catch them as an
error: ``graders.Unscored`` (a grader's "cannot score this, because", turned into a
``GraderError`` by the grader base), ``graders._verdict.VerdictError`` (a judge answer that is not
one valid verdict, caught by the judge grader) and ``rm_service._admission.Overloaded`` (the HTTP
face's full queue, answered with 429 and Retry-After). :mod:`rm_service.models` re-exports the judge
and embedder exceptions, so the backends' users find them beside the backends.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EmbedderUnavailable",
    "InputError",
    "JudgeConnectionError",
    "JudgeError",
    "JudgeHTTPError",
    "JudgeRateLimited",
    "JudgeTimeout",
    "LocalModelUnavailable",
    "MappingError",
    "PatternTooLarge",
    "RMServiceError",
]


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
        detail: the message without the ``record N:`` prefix, for a caller that adds its own
            context (a grader's name, a file and line) without repeating the record.
    """

    def __init__(self, message: str, *, index: int | None, path: str, field: str) -> None:
        where = f"record {index}: " if index is not None else ""
        super().__init__(f"{where}{message}")
        self.detail = message
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


class PatternTooLarge(InputError, ValueError):
    """A regex refused before it is compiled: too long, or too large once its counted repeats
    are written out (``a{10000000}``). A ``ValueError`` too, as the callers already take a
    pattern the engine refuses: ``invalid_input`` for a record's pattern, a ``ConfigError`` for
    a config's."""


class EmbedderUnavailable(RMServiceError):
    """The embedding model cannot be used: a dependency or the model files are missing."""


class JudgeError(RMServiceError):
    """The judge could not give an answer. ``attempts`` counts the requests made."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class JudgeTimeout(JudgeError):
    """A per-call or overall deadline passed before the judge answered."""


class JudgeRateLimited(JudgeError):
    """The endpoint kept answering 429 after every retry."""

    def __init__(
        self, message: str, *, attempts: int = 1, retry_after: float | None = None
    ) -> None:
        super().__init__(message, attempts=attempts)
        self.retry_after = retry_after


class JudgeConnectionError(JudgeError):
    """The endpoint could not be reached (refused, reset, DNS failure)."""


class JudgeHTTPError(JudgeError):
    """A non-2xx status other than 429, or a response body that is not a chat completion."""

    def __init__(self, message: str, *, attempts: int = 1, status: int | None = None) -> None:
        super().__init__(message, attempts=attempts)
        self.status = status


class LocalModelUnavailable(JudgeError):
    """The local model cannot be used: a dependency, the weights, or the load itself failed.

    Raised from the first call (loading is lazy), so a judge grader reports every record as
    unscored with this message rather than crashing; call
    :meth:`~rm_service.models.LocalChatModel.load` to fail fast instead.
    """
