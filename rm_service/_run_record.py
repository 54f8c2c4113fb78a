"""What an offline output was graded from: the run record ``OUT.run.json``.

One idea: resume keys on line numbers, so it is only right while the reward and the graded input
lines are those the output was made with. A run record beside the output holds a fingerprint of
the reward and a digest of each of the input's first lines; a resume from another reward, or
from an input whose graded lines moved or changed, is refused rather than mixed in (it used to
skip and mislabel records, or mix two rewards in one file, without a word).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rm_service._exceptions import InputError
from rm_service._io import io_error, replacing
from rm_service._readers import detect_format, iter_records, row_label
from rm_service._runner import GradingRunner
from rm_service._summary import LineSet

__all__ = ["ShardedInput", "check_run_record", "reward_fingerprint", "write_run_record"]


_HEAD_LINES = 64
"""Input lines a run record fingerprints, one digest each: enough to tell another or a
reordered file. Lines after them, and lines not yet graded (a malformed line being fixed),
may change between runs."""


def reward_fingerprint(runner: GradingRunner, *, settings: bool = True) -> str:
    """A digest of what makes ``runner``'s rewards: its graders (names, kinds, mappers, and
    their settings: :func:`_settings`), its aggregators (names, kinds, components, weights) and
    the reward's name. ``settings=False`` gives the digest run records held before settings
    counted (a grader's repr only)."""

    def shown(obj: Any) -> str:
        text = repr(obj)
        return type(obj).__qualname__ if " at 0x" in text else text

    parts: dict[str, Any] = {
        "reward": runner.reward_name,
        "graders": [
            [name, shown(gc.grader), gc.mapper if isinstance(gc.mapper, Mapping) else "code"]
            for name, gc in runner.grader_configs.items()
        ],
        "aggregators": [
            [a.name, shown(a), getattr(a, "components", None), getattr(a, "weights", None)]
            for a in runner.aggregators
        ],
    }
    if settings:
        parts["settings"] = {
            n: _safe_settings(gc.grader) for n, gc in runner.grader_configs.items()
        }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _safe_settings(grader: Any) -> dict[str, Any]:
    """:func:`_settings`, or its repr's stand-in when a user's grader cannot be read: the
    fingerprint must never fail a run."""
    try:
        return _settings(grader)
    except Exception as exc:
        return {"unreadable": type(exc).__name__}


_NOT_THE_REWARD = frozenset(
    {
        "name", "workers", "queue_timeout", "match_timeout", "cache", "max_wait_ms",
        "max_batch", "batch_size", "max_concurrency", "device",
    }
)  # fmt: skip
"""Grader attributes that say how it runs, not what it scores: changing them keeps a resume."""


def _settings(grader: Any, depth: int = 0) -> dict[str, Any]:
    """A grader's settings as plain data: every public attribute holding text, numbers, a
    regex, a function (by name), a ``partial`` of those, a dataclass or containers of them;
    objects (models, caches, pools, locks) are left out, and so is what only says how it runs.

    Why not its repr: most graders' reprs name a mode or a model but not the pattern, the
    template, a threshold or a function's params, so a resume after changing one mixed two
    rewards in one file without a word.
    """
    out: dict[str, Any] = {}
    for k, value in sorted(_attrs(grader).items()):
        if k in _NOT_THE_REWARD:
            continue
        # Private attributes are mostly state (caches, a loaded model, a note on what is
        # installed), which must not refuse a resume; a regex or a partial there is settings
        # compiled (a format grader's pattern and tags).
        if k.startswith("_") and not isinstance(value, re.Pattern | functools.partial):
            continue
        if (v := _plain(value, depth)) is not _SKIP:
            out[k] = v
    judge = getattr(grader, "judge_identity", None)  # an LLM judge: its model and endpoint
    if judge is not None:
        out["judge"] = judge
    return out


_SKIP = object()


def _attrs(obj: Any) -> dict[str, Any]:
    """An object's attributes: its ``__dict__``, or its slots."""
    found = dict(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        slots = getattr(cls, "__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in found and slot != "__dict__" and hasattr(obj, slot):
                found[slot] = getattr(obj, slot)
    return found


def _is_part(value: Any) -> bool:
    """A part held by a grader whose settings are the reward's too: one of the graders' own
    (a gate, a committee's member, the harm detector), or a user's gate (a class with a
    ``check`` method). Read off the class: a runtime protocol check reads the object's own
    properties, and a user's may raise."""
    cls = type(value)
    return cls.__module__.startswith("graders.") or callable(getattr(cls, "check", None))


def _plain(value: Any, depth: int, loose: bool = False) -> Any:
    """``value`` as plain data, or ``_SKIP``. ``loose``: inside a ``partial``, whose arguments
    are settings compiled (a user regex, a template), an object is kept by its repr."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if depth > 6:  # deep enough for any setting, and a cycle ends here
        return _SKIP
    if isinstance(value, re.Pattern):
        return ["re", value.pattern, value.flags]
    if isinstance(value, functools.partial):
        return ["partial", _plain(value.func, depth + 1), _plain(value.args, depth + 1, True),
                _plain(value.keywords, depth + 1, True)]  # fmt: skip
    if isinstance(value, types.FunctionType | types.BuiltinFunctionType | types.MethodType):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # sampling params
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _plain(fields, depth + 1, loose)
    if isinstance(value, Mapping):
        items = {str(k): _plain(v, depth + 1, loose) for k, v in value.items()}
        return {k: v for k, v in sorted(items.items()) if v is not _SKIP}
    if isinstance(value, list | tuple):
        return [v for v in (_plain(x, depth + 1, loose) for x in value) if v is not _SKIP]
    if isinstance(value, set | frozenset):
        kept = [v for v in (_plain(x, depth + 1, loose) for x in value) if v is not _SKIP]
        return sorted(kept, key=lambda v: json.dumps(v, sort_keys=True, default=str))
    if _is_part(value):  # a gate, a committee's member: its own settings
        return [type(value).__qualname__, _settings(value, depth + 1)] if depth < 4 else _SKIP
    if loose:
        text = repr(value)
        if " at 0x" not in text:
            return [type(value).__qualname__, text]
    return _SKIP


@dataclasses.dataclass(frozen=True)
class ShardedInput:
    """A Ray run's input, as its run record keeps it and a resume checks it.

    Ray keys each record on its shard's name and line, not on the input's path: a resume is right
    only while the shards the output was graded from are still there, under the same names,
    holding the same rows. Without this a resume from another file mixed two inputs in one
    output (``x.json`` after ``x.jsonl``: both default to ``x.graded.parquet``) or skipped
    another file's records as done (``b/data.jsonl`` after ``a/data.jsonl``). The names are
    listed anyway; rows are read from the first shard only, since opening thousands of shards
    on an object store before every run would cost minutes.

    Attributes:
        uri: the input as given (a path, a directory, a glob), for messages.
        names: every shard's name (its records' key prefix), in the order they are read.
        rows: the rows of the first shard so named, each as bytes, in order.
    """

    uri: str
    names: Sequence[str]
    rows: Callable[[str], Iterable[bytes]]

    def recorded(self) -> dict[str, Any]:
        """What the run record keeps: the names, and the head of the first shard."""
        names = list(dict.fromkeys(self.names))  # a saved dataset's shards share one name
        first = names[0] if names else None
        head = _digests(self.rows(first)) if first is not None else []
        return {"uri": self.uri, "shards": names, "first": first, "head": head}

    def check(self, was: Any, out: Path | str) -> None:
        """Refuse to resume ``out``, graded from ``was`` (a run record's ``sharded``), from
        this input: a shard it was graded from is gone, or the first one's rows changed."""
        if not isinstance(was, dict) or not isinstance(was.get("shards"), list):
            return  # a record from before Ray inputs were kept: the reward alone is checked
        here = set(self.names)
        gone = [n for n in was["shards"] if n not in here]
        source = f"{out} was graded from {was.get('uri')}; this input, {self.uri},"
        advice = "Pass -o to write another output, or --overwrite to replace this one"
        if gone:
            more = f" (nor {len(gone) - 1} other shard(s) it was graded from)" if gone[1:] else ""
            raise InputError(
                f"{source} has no {gone[0]}{more}: resuming would mix two inputs' records in "
                f"one output, or skip records as done by another file's positions. {advice}"
            )
        first, head = was.get("first"), was.get("head")
        if first not in here or not isinstance(head, list):
            return
        if _first_change(head, _digests(self.rows(first)), None) is not None:
            raise InputError(
                f"{source} holds other records in {first}: the input changed, and "
                f"resuming by position would skip or mislabel records. {advice}"
            )


def _digests(items: Iterable[bytes]) -> list[str]:
    """A short digest of each of the first :data:`_HEAD_LINES` items."""
    return [hashlib.sha256(i).hexdigest()[:12] for i in itertools.islice(items, _HEAD_LINES)]


def _first_change(was: list[str], now: list[str], done: LineSet | None) -> int | None:
    """The first 1-based line whose digest differs (``done``: among those lines only), a line
    since removed included; ``None`` when the head still holds."""
    now = now + [""] * (len(was) - len(now))  # lines since removed
    for line, (a, b) in enumerate(zip(was, now[: len(was)], strict=True), start=1):
        if (done is None or line in done) and a != b:
            return line
    return None


def _input_head(src: Path) -> list[str] | None:
    """A short digest of each of the first :data:`_HEAD_LINES` lines of a JSONL file (rows of
    a Parquet file or a saved dataset), or ``None`` for an input that cannot be read twice (a
    pipe)."""
    fmt = detect_format(src)
    if fmt != "jsonl":  # rows, as the run reads them: a row inserted at the top moved them all
        return _digests(
            json.dumps(rec, sort_keys=True, ensure_ascii=True, default=str).encode()
            for _, rec in iter_records(src, fmt)
        )
    if not src.is_file():
        return None
    with io_error("read", src), src.open("rb") as f:
        return _digests(raw.rstrip(b"\r\n") for raw in f)


def check_run_record(
    path: Path,
    src: Path | None,
    out: Path | str,
    fingerprint: str,
    done: LineSet,
    *,
    legacy: str = "",
    sharded: ShardedInput | None = None,
) -> bool:
    """Refuse to resume ``out`` from another reward, or from an input whose graded lines are
    not those it was graded from; ``False`` when there is no run record to check (an output
    from before they were kept), ``True`` when it matched.

    Resume keys on line numbers: an input with a line added at the top had every later record
    skipped or labelled with its neighbour's number, and a changed config mixed two rewards in
    one file, without a word. ``legacy`` is the fingerprint as records without grader
    settings (``"fingerprint": 1``, or none) computed it: such a record is held to that.
    ``sharded``: a Ray run's input, checked against the one the record keeps
    (:meth:`ShardedInput.check`); ``src`` is then ``None``.
    """
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        reward, head = record["reward"], record.get("input")
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path} is not a readable run record ({exc}); move it aside to resume {out} "
            "without the check"
        ) from None
    if record.get("fingerprint", 1) == 1 and legacy:
        fingerprint = legacy
    if reward != fingerprint:
        raise InputError(
            f"{out} was graded with another reward (its graders, their settings, mappers or "
            "aggregators differ from this config's); resuming would mix two rewards in one "
            "file. Pass --overwrite to grade it all again with this one, or write to another "
            "output"
        )
    if sharded is not None:
        sharded.check(record.get("sharded"), out)
    if src is None or not isinstance(head, list):
        return True
    now = _input_head(src)
    line = _first_change(head, now, done) if now is not None else None
    if line is not None:
        what = row_label(src, detect_format(src))
        raise InputError(
            f"{what} {line} of {src} is not the {what} {out} graded there: the input "
            "changed, and resuming by line number would skip or mislabel records. "
            "Pass --overwrite to grade it again, or write to another output"
        )
    return True


def write_run_record(
    path: Path, src: Path | None, fingerprint: str, *, sharded: ShardedInput | None = None
) -> None:
    """Write the run record; ``src`` ``None``: no input digest (the Ray engine's shards, kept
    as ``sharded`` instead: :class:`ShardedInput`)."""
    head = _input_head(src) if src is not None else None
    record: dict[str, Any] = {"reward": fingerprint, "fingerprint": 2, "input": head}
    if sharded is not None:
        record["sharded"] = sharded.recorded()
    # Replaced, not written over: a resume rewrites it, and one cut short by a crash made the
    # next resume refuse an output it could have continued.
    with io_error("write", path), replacing(path) as f:
        f.write((json.dumps(record) + "\n").encode("utf-8"))
