"""Request/response models and settings of the HTTP service, and the result shaping they share.

Kept apart from ``rm_service.app`` so they can be imported (and unit-tested) without FastAPI.

``/grade`` answers each record in the one wire shape (``rm_service._wire``) that the offline
grader writes and the remote backend reads. A failure is never a number on this face: an unscored
reward or component is ``null`` with its error. Only ``/get_reward`` (OpenRLHF's
protocol, whose client needs numbers) substitutes a fallback value, and flags it ``rm_error=1``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, NoReturn

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from rm_service._exceptions import ConfigError
from rm_service._openrlhf import DEFAULT_STRIP_PATTERNS, ChatTokenStripper
from rm_service._query_split import strip_patterns_setting
from rm_service._result import ErrorKind, Status
from rm_service.integrations._targets import fallback_reward
from rm_service.models._body import escape_surrogates

__all__ = [
    "FALLBACK_SETTING",
    "OPENRLHF_CLIENT_TIMEOUT",
    "ComponentError",
    "ErrorBody",
    "GetRewardRequest",
    "GradeRequest",
    "GradeResponse",
    "GradeSummary",
    "RecordOut",
    "ServiceSettings",
    "Usage",
    "error_detail",
    "field_error",
    "json_safe",
    "more_errors",
    "shown_errors",
]


OPENRLHF_CLIENT_TIMEOUT = 180.0
"""Seconds OpenRLHF's ``/get_reward`` client waits for an answer before it retries (five tries,
one second apart, then the run fails): ``requests.post(..., timeout=180)`` in 0.9.0's
``utils/remote_rm_utils.py``, ``aiohttp.ClientTimeout(total=180)`` in 0.11's ``utils/agent.py``."""

FALLBACK_SETTING = "unscored_fallback (--unscored-fallback, RM_SERVICE_UNSCORED_FALLBACK)"


@dataclass(frozen=True)
class ServiceSettings:
    """Limits and protocol knobs of one app instance.

    Attributes:
        api_key: when set, every endpoint but ``/healthz`` needs ``Authorization: Bearer <key>``.
        max_records: records per ``/grade`` request; more is a 413.
        max_body_bytes: ``/grade`` (and every other endpoint's) request body size; more is a 413
            before parsing.
        max_in_flight: records being graded at once across all requests (admission control). A
            request with more records counts as ``max_in_flight``: it runs alone.
        max_queue: records allowed to wait for admission; beyond it, 429 with ``Retry-After``.
            Only waiting records count: a request that fits in the free slots is admitted, and
            one with more records than ``max_queue`` waits when nothing else does (0: nothing
            waits), so no request the limits accept is refused for its size alone.
        queue_timeout: seconds a request may wait in the queue: then ``/grade`` gets a 429,
            and ``/get_reward`` (its deadline permitting) answers every record unscored
            (``timeout``), since OpenRLHF fails the run after a few 429s. ``None``: no limit
            but the request's deadline.
        retry_after: the ``Retry-After`` seconds sent with a 429.
        deadline: the per-request grading deadline in seconds (a request may ask for less),
            counted from when the request is parsed, its wait for admission included;
            components unfinished at the deadline come back unscored with kind ``timeout``.
        get_reward_max_records: records per ``/get_reward`` request. OpenRLHF <= 0.9.0 sends a
            whole rollout batch (``rollout_batch_size * n_samples_per_prompt``, split evenly
            over its reward URLs) in one request and gives up after five refusals, so the
            default, 16384, holds 1024 prompts x 16 samples.
        get_reward_max_body_bytes: ``/get_reward``'s body size: 256 MiB holds 16384 records of
            ~4k tokens (query and prompt) each.
        get_reward_deadline: ``/get_reward``'s deadline (also capped by ``deadline``). OpenRLHF's
            client gives up after :data:`OPENRLHF_CLIENT_TIMEOUT` seconds and sends the batch
            again (five tries), so the default, 170, answers before that, with what is
            unfinished unscored (``rm_error=1``), rather than grading a batch five times and
            killing the run.
        unscored_fallback: the number ``/get_reward`` reports as an unscored record's reward
            (its clients need numbers), flagged ``rm_error=1``. Finite: OpenRLHF turns the
            rewards into tensors, and a NaN (``null`` in JSON) fails there
            (``RM_SERVICE_UNSCORED_FALLBACK`` in :meth:`from_env`).
        label_field: the record field ``/get_reward`` puts each label in (map it in the config,
            e.g. ``mapper: {reference_response: label}``).
        strip_patterns: regexes removed from ``/get_reward`` queries and prompts (chat special
            tokens).
        ready_timeout: seconds per judge endpoint probe in ``/readyz``.
        shutdown_grace: seconds requests in flight may go on grading once the server begins
            shutting down; then each gets a 503 (its client sends it again, through a load
            balancer to another replica), as do requests still queued at once. Below
            ``docker stop``'s 10 s, so every request is answered before the process is killed.
    """

    api_key: str | None = None
    max_records: int = 1024
    max_body_bytes: int = 16 * 1024 * 1024
    max_in_flight: int = 4096
    max_queue: int = 8192
    queue_timeout: float | None = 30.0
    retry_after: int = 1
    deadline: float | None = 300.0
    get_reward_max_records: int = 1024 * 16
    get_reward_max_body_bytes: int = 256 * 1024 * 1024
    get_reward_deadline: float | None = OPENRLHF_CLIENT_TIMEOUT - 10.0
    unscored_fallback: float = 0.0
    label_field: str = "label"
    strip_patterns: Sequence[str] = DEFAULT_STRIP_PATTERNS
    ready_timeout: float = 2.0
    shutdown_grace: float = 5.0
    _stripper: ChatTokenStripper = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_records < 1 or self.max_in_flight < self.max_records:
            raise ValueError(
                f"need 1 <= max_records ({self.max_records}) <= max_in_flight "
                f"({self.max_in_flight}): a full request must be able to fit"
            )
        for name in ("deadline", "get_reward_deadline"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        if not 0 <= self.shutdown_grace < math.inf:
            raise ValueError(f"shutdown_grace must be >= 0 seconds, got {self.shutdown_grace!r}")
        for name in ("get_reward_max_records", "get_reward_max_body_bytes", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.api_key is not None and self.api_key != self.api_key.strip():
            # The token is read with the spaces after the scheme skipped: such a key could
            # never be sent, and every client got a 401 with no hint why.
            raise ValueError(
                "api_key (RM_SERVICE_API_KEY) starts or ends with whitespace, which no "
                "Authorization header can carry: remove it"
            )
        if self.max_queue < 0:  # it failed later, in every worker, as a traceback
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue!r}")
        try:
            fallback = fallback_reward(self.unscored_fallback, FALLBACK_SETTING)
        except ConfigError as exc:
            raise ConfigError(
                f"{exc}: /get_reward sends it as an unscored record's reward, and OpenRLHF "
                "cannot train on NaN or null (the record is flagged rm_error=1 instead)"
            ) from None
        object.__setattr__(self, "unscored_fallback", fallback)
        try:
            stripper = ChatTokenStripper(self.strip_patterns)
        except re.error as exc:  # it was a traceback at start-up, naming no setting
            raise ValueError(
                f"strip_patterns (RM_SERVICE_STRIP_PATTERNS): invalid regex: {exc}"
            ) from None
        object.__setattr__(self, "_stripper", stripper)

    @classmethod
    def from_env(cls, **overrides: Any) -> ServiceSettings:
        """Settings with ``api_key`` from ``RM_SERVICE_API_KEY``, ``unscored_fallback`` from
        ``RM_SERVICE_UNSCORED_FALLBACK`` and ``strip_patterns`` from ``RM_SERVICE_STRIP_PATTERNS``
        (whitespace-separated regexes, as OpenRLHF's ``reward_func`` reads them; empty: strip
        nothing) (environment, else ``.env`` in the working directory); ``overrides`` win.

        Raises:
            ConfigError: a fallback that is not a finite number (the message names the flag
                and the variable).
        """
        from dotenv import find_dotenv, load_dotenv

        load_dotenv(find_dotenv(usecwd=True), override=False)
        overrides.setdefault("api_key", os.environ.get("RM_SERVICE_API_KEY") or None)
        fallback = os.environ.get("RM_SERVICE_UNSCORED_FALLBACK")
        if fallback:
            overrides.setdefault("unscored_fallback", fallback)
        overrides.setdefault(
            "strip_patterns", strip_patterns_setting(os.environ.get("RM_SERVICE_STRIP_PATTERNS"))
        )
        return cls(**overrides)

    @property
    def stripper(self) -> ChatTokenStripper:
        """What removes chat special tokens from ``/get_reward`` queries and cuts them."""
        return self._stripper

    def strip(self, text: str) -> str:
        """``text`` without the chat special tokens."""
        return self._stripper.strip(text)


# --- few errors per 422 ---------------------------------------------------------------------

ERROR_LIMIT = 50
"""Validation errors a 422 lists at most (:func:`shown_errors`): a backstop over the
per-field cap of :data:`ITEM_ERROR_LIMIT`, so a body with many bad fields stays small too."""

ITEM_ERROR_LIMIT = 20
"""Bad items of one list field a 422 lists; the rest are counted (:func:`few_item_errors`).
Pydantic reports one error per bad item, so a 2 MB body of a million non-objects made a million
errors: echoing them was a 105 MB answer that held the event loop (and ``/healthz``) for a
minute. The first few say what is wrong."""

CHUNK = 4096
"""Items of a long list validated at a time (:func:`few_item_errors`): turning a chunk's errors
into dicts, as pydantic and FastAPI do for every error, costs at most this many."""


def shown_errors(errors: Sequence[Any], limit: int = ERROR_LIMIT) -> tuple[list[Any], int]:
    """The first ``limit`` of ``errors`` and how many more there were. Sliced before anything
    encodes them, so a 422's cost does not grow with the number of errors."""
    return list(errors[:limit]), max(len(errors) - limit, 0)


def more_errors(loc: Sequence[str | int], shown: int, more: int) -> list[dict[str, Any]]:
    """The 422 ``detail`` entry saying ``more`` errors at ``loc`` were left out after the
    ``shown`` ones, in FastAPI's shape (``type``, ``loc``, ``msg``) so a client reading the list
    reads it too; empty when none were."""
    if more <= 0:
        return []
    return [
        {
            "type": "too_many_errors",
            "loc": list(loc),
            "msg": f"{more} more error(s) not shown ({shown + more} in all; the first {shown} "
            "are listed)",
            "ctx": {"shown": shown, "more": more},
        }
    ]


def _shifted(exc: ValidationError, offset: int, room: int) -> list[InitErrorDetails]:
    """Up to ``room`` of a chunk's errors as they were (type, message, context), their item
    index moved by the chunk's ``offset``."""
    out: list[InitErrorDetails] = []
    if room <= 0:  # errors() builds a dict per error: only counted, past the first ones
        return out
    for err in exc.errors(include_url=False)[:room]:
        loc = err["loc"]
        if loc and isinstance(loc[0], int):
            loc = (loc[0] + offset, *loc[1:])
        # The message is already formatted: a custom error of the same type carries it as is.
        kind = PydanticCustomError(err["type"], err["msg"], err.get("ctx"))
        out.append(InitErrorDetails(type=kind, loc=loc, input=err["input"]))
    return out


def _raise_few(errors: list[InitErrorDetails], more: int) -> NoReturn:
    """Raise ``errors`` and, when ``more`` were left out, a ``too_many_errors`` one counting
    them."""
    if more > 0:
        summary = more_errors((), len(errors), more)[0]
        kind = PydanticCustomError(summary["type"], summary["msg"], summary["ctx"])
        errors = [*errors, InitErrorDetails(type=kind, loc=(), input=None)]
    raise ValidationError.from_exception_data("list", errors)


def _by_chunks(value: list[Any], handler: ValidatorFunctionWrapHandler) -> list[Any]:
    """``value`` validated :data:`CHUNK` items at a time; only the first
    :data:`ITEM_ERROR_LIMIT` errors are turned into dicts, the rest counted."""
    out: list[Any] = []
    errors: list[InitErrorDetails] = []
    more = 0
    for start in range(0, len(value), CHUNK):
        try:
            out.extend(handler(value[start : start + CHUNK]))
        except ValidationError as exc:
            kept = _shifted(exc, start, ITEM_ERROR_LIMIT - len(errors))
            errors.extend(kept)
            more += exc.error_count() - len(kept)
    if errors:
        _raise_few(errors, more)
    return out


def few_item_errors(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a list field keeping the first :data:`ITEM_ERROR_LIMIT` item errors, with their
    item's index, and counting the rest: pydantic and FastAPI build a dict per error, which for a
    body of a million bad items took a minute on the event loop. A long list is validated a
    chunk at a time, so the errors past the first chunks are only counted."""
    if not isinstance(value, list) or len(value) <= CHUNK:
        try:
            return handler(value)
        except ValidationError as exc:
            count = exc.error_count()
            if count <= ITEM_ERROR_LIMIT:
                raise
            _raise_few(_shifted(exc, 0, ITEM_ERROR_LIMIT), count - ITEM_ERROR_LIMIT)
    return _by_chunks(value, handler)


FewErrors = WrapValidator(few_item_errors)
"""Annotate a list field with it (``Annotated[list[str], FewErrors]``) to cap its item errors;
the JSON schema is the list's own."""


# --- /grade -------------------------------------------------------------------------------------


class GradeRequest(BaseModel):
    """A batch of records to grade with one configured reward.

    Unknown fields are refused (422 naming them): a misspelt ``"rewards"`` or ``"dedline"``
    was ignored, and the batch came back graded by the default reward, or with the server's
    deadline, as if asked for."""

    model_config = ConfigDict(extra="forbid")

    records: Annotated[list[dict[str, Any]], FewErrors] = Field(
        description="the records, JSON objects with the fields the reward's graders read"
    )
    reward: str | None = Field(default=None, description="a configured reward; default: the first")
    deadline: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="seconds; components unfinished by then are unscored (kind 'timeout'). "
        "Capped by the server's deadline.",
    )
    include_metadata: bool = Field(
        default=False,
        description="send each component's metadata (a verdict's raw text, logprobs, timings) "
        "with each record, as the offline grader writes it",
    )


class ErrorBody(BaseModel):
    """The body of a 400, 401, 413 or 429: one sentence naming the limit or the problem."""

    detail: str


def field_error(loc: Sequence[str | int], msg: str) -> list[dict[str, Any]]:
    """A 422 ``detail`` in FastAPI's own list shape, so every 422 reads the same way."""
    return [{"loc": ["body", *loc], "msg": msg, "type": "value_error"}]


ECHO_LIMIT = 500
"""Characters of a request's value echoed back in an error's ``input`` or ``ctx``: enough to see
what was wrong, not a whole batch sent back (a validator on ``records`` gets the batch)."""


def json_safe(value: Any, limit: int | None = ECHO_LIMIT) -> Any:
    """``value`` if strict JSON can carry it within ``limit`` characters, else its JSON text.

    Python's ``json`` reads ``NaN``, ``Infinity`` and lone surrogates (``"\\ud800"``) in a
    request, but a response holding them cannot be encoded (``allow_nan=False``, UTF-8), and a
    handler that tried answered 500 with the input in a traceback. So such a value, or a long
    one, is echoed as its JSON text (ASCII: ``[NaN]``, ``"\\ud800"``), cut to ``limit``.
    """
    if isinstance(value, str):
        text = escape_surrogates(value)
    else:
        try:
            text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
            text.encode()
        except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
            text = json.dumps(value, ensure_ascii=True, default=repr, separators=(",", ":"))
        else:
            if limit is None or len(text) <= limit:
                return value
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    return text


def error_detail(detail: Any) -> Any:
    """An error ``detail`` (a message, or FastAPI's list of ``{type, loc, msg, input, ctx}``)
    that strict JSON can carry: messages keep their text (surrogates escaped), and ``input`` and
    ``ctx`` values go through :func:`json_safe`."""
    if not isinstance(detail, list):
        return json_safe(detail, limit=None)
    out: list[Any] = []
    for err in detail:
        if not isinstance(err, Mapping):
            out.append(json_safe(err, limit=None))
            continue
        safe: dict[str, Any] = {}
        for key, value in err.items():
            if key == "loc" and isinstance(value, list | tuple):
                safe[key] = [x if isinstance(x, int) else escape_surrogates(str(x)) for x in value]
            elif key == "ctx" and isinstance(value, Mapping):
                safe[key] = {escape_surrogates(str(k)): json_safe(v) for k, v in value.items()}
            elif key in ("input", "ctx"):
                safe[key] = json_safe(value)
            else:
                safe[key] = json_safe(value, limit=None)
        out.append(safe)
    return out


class Usage(BaseModel):
    """What judge calls cost: ``calls`` paid for and their tokens; ``cached_calls`` were served
    from the judge cache and cost nothing."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ComponentError(BaseModel):
    """Why a component is unscored."""

    kind: ErrorKind
    error: str


class RecordOut(BaseModel):
    """One record's grade, in the wire shape every face shares (the offline grader writes the
    same dict per line). ``status``: ``ok`` (the reward is a number), ``error`` (unscored
    because the record itself is invalid: a missing field, a mapper path that does not resolve),
    ``unscored`` (unscored for any other reason: timeout, judge failure)."""

    id: Any = Field(default=None, description="the record's id as sent: any JSON value")
    index: int
    reward: float | None
    status: Status
    scores: dict[str, float | None] = Field(
        description="every component (graders and aggregates); null where unscored"
    )
    reasons: dict[str, str] = Field(description="each scored component's reason")
    errors: dict[str, ComponentError] = Field(description="each unscored component's error")
    usage: Usage
    metadata: dict[str, dict[str, Any]] = Field(
        description="per component that has any; {} unless the request sets include_metadata"
    )


class GradeSummary(BaseModel):
    """What the batch came to.

    ``ok``, ``unscored`` and ``error`` count *records* by their ``status`` and add up to ``n``;
    a record with no reward is ``unscored`` or ``error``, and ``unscored_records_by_kind`` says
    why. ``unscored_components_by_kind`` counts *components* (graders and aggregates), so one bad
    record adds one to each component it left unscored.
    """

    n: int = Field(description="records in the batch")
    ok: int = Field(description="records with a reward (status 'ok')")
    unscored: int = Field(
        description="records with no reward for a reason other than bad input (status "
        "'unscored': a timeout, a judge failure); records with bad input count in 'error'"
    )
    error: int = Field(description="records with no reward because of bad input (status 'error')")
    means: dict[str, float | None] = Field(description="per component, over scored records")
    unscored_records_by_kind: dict[str, int] = Field(
        description="records with no reward, by the kind of failure that left the reward "
        "unscored ('invalid_input' for each 'error' record); adds up to unscored + error"
    )
    unscored_components_by_kind: dict[str, int] = Field(
        description="unscored components (graders and aggregates) over all records, by kind"
    )
    unscored_by_kind: dict[str, int] = Field(
        deprecated=True,
        description="the same as unscored_components_by_kind (kept for older clients)",
    )
    usage: Usage
    latency_s: float


class GradeResponse(BaseModel):
    reward: str
    results: list[RecordOut]
    summary: GradeSummary


# --- /get_reward (OpenRLHF) ---------------------------------------------------------------------


class GetRewardRequest(BaseModel):
    """OpenRLHF's remote reward request. ``query[i]`` is prompt + response as the policy saw it;
    ``prompts`` and ``labels``, when sent, are as long as ``query``."""

    model_config = ConfigDict(extra="allow")

    query: Annotated[list[str], FewErrors]
    prompts: Annotated[list[str] | None, FewErrors] = None
    labels: list[Any] | None = None
    reward: str | None = Field(default=None, description="a configured reward; default: first")
