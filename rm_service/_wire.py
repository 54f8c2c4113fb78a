"""The one JSON shape of a graded record, written and read by every face.

The offline grader writes it as one line per record, ``POST /grade`` returns a list of it, and
the remote backend (``integrations``, the TRL/verl/OpenRLHF reward functions pointed at a
server) reads it back into the :class:`~rm_service.RecordResult` the server had. One module, so a
file graded offline, a ``/grade`` response and a remote reward function can never disagree about
what a field means::

    {"id": "q1", "index": 0, "reward": 0.75, "status": "ok",
     "scores":  {"math": 1.0, "relevance": null, "reward": 0.75},
     "reasons": {"math": "...", "reward": "..."},
     "errors":  {"relevance": {"kind": "timeout", "error": "..."}},
     "usage":   {"calls": 1, "cached_calls": 0, "prompt_tokens": 412, "completion_tokens": 9},
     "metadata": {"math": {...}}}

* ``status`` is :data:`~rm_service._result.Status`: ``ok``, ``unscored`` or ``error``.
* ``scores`` names every component (graders and aggregators); an unscored one is ``null`` and
  has an entry in ``errors``. ``reasons`` holds each scored component's reason.
* ``usage`` is what the record's judge calls cost: ``calls`` paid for, ``cached_calls`` served
  from the judge cache (free), and the paid calls' tokens.
* ``metadata`` (per component, only those that have any) is written to files, and sent by
  ``/grade`` when the request asks for it (``include_metadata``; else ``{}``): a verdict's raw
  text, logprobs and timings are worth keeping in a file and too heavy for every training step.
* ``line`` (offline only) is the record's 1-based position in the input file.

:class:`~rm_service._summary.RunSummary` folds these dicts into the one summary every face
reports.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, cast, get_args

from rm_service._result import ErrorKind, GraderError, GraderScore, RecordResult, Status

__all__ = [
    "USAGE_KEYS",
    "json_text",
    "plain_json",
    "plain_line",
    "record_from_json",
    "record_json",
    "record_status",
    "reindexed",
    "usage",
    "usage_of",
]

USAGE_KEYS = ("calls", "cached_calls", "prompt_tokens", "completion_tokens")
_KINDS: frozenset[str] = frozenset(get_args(ErrorKind))


def plain_json(value: Any) -> Any:
    """``value`` with what strict JSON cannot carry made plain: a NaN or infinite float is
    ``null``, a numpy or torch value its ``tolist()``, a tuple a list, a key a string, and
    anything else its ``repr``.

    For a grader's metadata, which is free-form: a custom grader may put a numpy number or a
    NaN there, and a response holding one could not be encoded (``/grade`` answered 500 for the
    whole batch). Faces call it only when encoding the plain way failed, so the common case
    costs nothing.
    """
    if value is None or type(value) in (str, bool, int):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_json(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        with contextlib.suppress(Exception):
            return plain_json(tolist())
    return repr(value)


def json_text(value: Any) -> str:
    """``value`` as strict JSON text that UTF-8 can hold: the one encoding of a result row
    for every file face (offline JSONL, Ray's output).

    UTF-8 as a person would write it where it can be; :func:`plain_json` where strict JSON
    cannot carry a value (a NaN or numpy number in a grader's metadata); ASCII-escaped where
    the value holds a lone surrogate (valid JSON, not encodable as UTF-8), which reads back the
    same."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        value = plain_json(value)
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, allow_nan=False)
    return text


def record_status(rec: RecordResult) -> Status:
    """The record's :attr:`~rm_service.RecordResult.status` (a function, for callbacks)."""
    return rec.status


def usage(rec: RecordResult) -> dict[str, int]:
    """What the record's judge calls cost (see :func:`usage_of`)."""
    return usage_of(comp.metadata for comp in rec.components.values())


def usage_of(metadata: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """What judge calls cost, from components' metadata: a component with ``usage`` metadata
    is a judge call, and ``cached`` ones were served from the cache and cost nothing."""
    out = dict.fromkeys(USAGE_KEYS, 0)
    for meta in metadata:
        used = meta.get("usage") if meta else None
        if not isinstance(used, Mapping):
            continue
        if meta.get("cached"):
            out["cached_calls"] += 1
        else:
            out["calls"] += 1
            out["prompt_tokens"] += int(used.get("prompt_tokens") or 0)
            out["completion_tokens"] += int(used.get("completion_tokens") or 0)
    return out


def record_json(
    rec: RecordResult, *, line: int | None = None, metadata: bool = True
) -> dict[str, Any]:
    """``rec`` in the wire shape (see the module docstring).

    ``line``: the record's 1-based input line, for a record read from a file. It is added as
    ``"line"``, stands in for a missing ``id``, and replaces the runner's "record <index>: " in
    error texts: the index restarts at 0 on resume, so it means nothing next to a line number.
    ``metadata``: include per-component metadata (files do; ``/grade`` only when asked).
    """
    scores: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    errors: dict[str, dict[str, str]] = {}
    metas: dict[str, dict[str, Any]] = {}  # the components that have any
    # One pass over the components: the reward, the status and the usage are read from what it
    # collects rather than from RecordResult's properties, each of which walks them again.
    for name, comp in rec.components.items():
        if isinstance(comp, GraderScore):
            scores[name] = comp.score
            reasons[name] = comp.reason
        else:
            scores[name] = None
            errors[name] = {"kind": comp.kind, "error": comp.error}
        if comp.metadata:
            metas[name] = comp.metadata
    reward = scores.get(rec.reward_name) if rec.reward_name is not None else None
    out = _line(
        rec,
        reward,
        "ok" if reward is not None else rec.status,
        scores,
        reasons,
        errors,
        usage_of(metas.values()) if metas else dict.fromkeys(USAGE_KEYS, 0),
        metas if metadata else {},
    )
    if line is not None:
        out["line"] = line
        if out["id"] is None:
            out["id"] = line
        old, new = f"record {rec.index}: ", f"line {line}: "
        for err in errors.values():
            err["error"] = err["error"].replace(old, new)
    return out


def plain_line(rec: RecordResult, *, metadata: bool = True) -> dict[str, Any] | None:
    """``record_json(rec, metadata=metadata)`` for a *plain* record, else ``None``: every
    component a :class:`GraderScore` (by exact type), a reward, and no judge call in any
    component's metadata (no ``usage`` or ``cached`` key). Such a line has no status to work
    out, no errors and no usage to add up.

    Why: ``POST /grade`` builds a line for every record it answers, and on a cheap reward the
    general reading was a visible share of a record's cost; a face folding the line into a
    summary can also skip reading it back (see ``RunSummary.add_results``)."""
    scores: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    metas: dict[str, dict[str, Any]] = {}
    for name, comp in rec.components.items():
        if type(comp) is not GraderScore:
            return None
        scores[name] = comp.score
        reasons[name] = comp.reason
        if comp.metadata:
            metas[name] = comp.metadata
    reward = scores.get(rec.reward_name) if rec.reward_name is not None else None
    if reward is None or (metas and not _unjudged(metas)):
        return None
    usage = dict.fromkeys(USAGE_KEYS, 0)
    return _line(rec, reward, "ok", scores, reasons, {}, usage, metas if metadata else {})


def _unjudged(metas: Mapping[str, Mapping[str, Any]]) -> bool:
    """No component's metadata speaks of a judge call: none has ``usage`` or ``cached``, which
    the usage totals and the metrics read. The keys are tested, not their values: an
    aggregate's metadata may hold anything there (an array has no truth value), and the
    general reading, which reads them only where they count, takes such a record."""
    return not any(meta.get("usage") is not None or "cached" in meta for meta in metas.values())


def _line(
    rec: RecordResult,
    reward: float | None,
    status: str,
    scores: dict[str, float | None],
    reasons: dict[str, str],
    errors: dict[str, dict[str, str]],
    usage: dict[str, int],
    metadata: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The wire record's keys, in their order (see the module docstring)."""
    return {
        "id": rec.id,
        "index": rec.index,
        "reward": reward,
        "status": status,
        "scores": scores,
        "reasons": reasons,
        "errors": errors,
        "usage": usage,
        "metadata": metadata,
    }


def reindexed(rec: RecordResult, index: int) -> RecordResult:
    """``rec`` at another position (a face that graded a subset of its rows): the index, and
    the runner's "record <index>: " in its error texts, which named the old position."""
    if rec.index == index:
        return rec
    old, new = f"record {rec.index}: ", f"record {index}: "
    components = {
        k: v.model_copy(update={"error": v.error.replace(old, new)})
        if isinstance(v, GraderError) and old in v.error
        else v
        for k, v in rec.components.items()
    }
    return rec.model_copy(update={"index": index, "components": components})


def record_from_json(out: Mapping[str, Any], index: int, reward_name: str) -> RecordResult:
    """The :class:`RecordResult` a :func:`record_json` dict came from (``index`` is the
    caller's: a remote server numbers each request's records from 0).

    Raises:
        KeyError, TypeError, ValueError: ``out`` is not in the wire shape (a score out of
            ``[0, 1]`` included); the caller says which server sent it.
    """
    reasons = out.get("reasons") or {}
    errors = out.get("errors") or {}
    meta = out.get("metadata") or {}
    components: dict[str, GraderScore | GraderError] = {}
    for name, score in out["scores"].items():
        extra = meta.get(name) or {}
        if score is not None:
            reason = str(reasons.get(name, ""))
            components[name] = GraderScore(name=name, score=score, reason=reason, metadata=extra)
            continue
        err = errors.get(name) or {}
        kind = err.get("kind")
        components[name] = GraderError(
            name=name,
            error=str(err.get("error", "unscored")),
            kind=cast(ErrorKind, kind) if kind in _KINDS else "internal",
            metadata=extra,
        )
    return RecordResult(
        index=index,
        id=out.get("id"),
        reward_name=reward_name,
        components=components,
    )
