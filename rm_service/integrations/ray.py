"""Grade a Ray Dataset: ``grade_dataset(ds, "reward.yaml")`` returns a Dataset of graded rows.

For users who already hold a :class:`ray.data.Dataset` (``ray.data.read_parquet("s3://...")``).
``rm-service grade IN --engine ray`` is built on the same pieces (see
:mod:`rm_service.integrations._ray_cli`). Importing this module imports Ray; ``import
rm_service`` does not (Ray is the optional extra ``ray``).

How the work is laid out, and why:

* **One runner per actor.** :class:`GradeBatch` is a class-based UDF run by an actor pool: each
  actor builds its runner once, from the *plain config* (a path or a dict), not from a pickled
  runner, so each actor gets its own judge connection pool, math worker pool and cache. Its
  ``__call__`` is async, so a judge-bound actor keeps ``max_concurrency`` calls in flight across
  the batches Ray hands it.
* **CPUs from the reward.** Math verification (``graders._math``) is CPU-bound: an actor gets a
  whole CPU. Rule and judge graders mostly wait on the network or take microseconds: an actor
  gets a fraction (:data:`JUDGE_CPUS`), so actors never starve the read and write tasks of
  CPUs (two one-CPU actors on a two-CPU node left the readers nothing and the job hung).
  ``num_cpus=`` overrides.
* **A record that fails is a row, never an exception.** Ray does not retry a UDF that raises,
  and a raise fails the whole job: a bad record (not an object, invalid JSON from the reader, a
  missing field) becomes an ``error`` row naming the field, a grader that throws becomes
  ``internal``, and the batch goes on. Nothing is dropped.
* **Rows in the wire shape.** Every row has the fields of the local CLI's JSONL lines
  (``rm_service._wire.record_json``): ``id index reward status scores reasons errors usage
  metadata line``.

The Arrow schema (:data:`RESULT_SCHEMA`) is fixed, whatever the reward and whatever fails:

* ``scores``, ``reasons``, ``errors`` and ``metadata`` are JSON text columns. Their keys are
  the reward's component names, and which of them are present changes from row to row (a
  reason only where scored, an error only where unscored, metadata whatever a grader adds, of
  any depth). Struct columns inferred per block would give blocks different schemas, which
  Parquet cannot append to one dataset, and a resumed run with different failures would not
  match the parts already written. Text keeps every block, every part and every resumed run on
  one schema, and any engine decodes it with one ``json.loads`` (DuckDB, Spark and pandas all
  do).
* ``reward`` (float, null when unscored) and ``status`` (text) are typed top-level columns:
  what people filter and average on.
* ``usage`` is a struct of four int64 counts: its keys never change.
* ``id`` is text: ids may be an int in one record and a string in another, and a Parquet
  column has one type. ``line`` is int64 (null for a Dataset with no line column).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa  # type: ignore[import-untyped]
import ray
import ray.data
import yaml

from graders._math import MathGrader
from rm_service._config import load_runner
from rm_service._result import RecordResult, unscored_record
from rm_service._runner import GradingRunner
from rm_service._wire import USAGE_KEYS, json_text, record_json, reindexed
from rm_service.models._body import scrub_surrogates

__all__ = [
    "JUDGE_CPUS",
    "RESULT_SCHEMA",
    "GradeBatch",
    "cpus_per_actor",
    "grade_dataset",
    "rows_from_table",
    "share_limits",
]

JUDGE_CPUS = 0.25
"""CPUs reserved per actor for a reward without math graders (judge- or rule-bound)."""

ConfigSource = str | Path | Mapping[str, Any]

_JSON_COLUMNS = ("scores", "reasons", "errors", "metadata")

RESULT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("index", pa.int64()),
        ("reward", pa.float64()),
        ("status", pa.string()),
        ("scores", pa.string()),
        ("reasons", pa.string()),
        ("errors", pa.string()),
        ("usage", pa.struct([(k, pa.int64()) for k in USAGE_KEYS])),
        ("metadata", pa.string()),
        ("line", pa.int64()),
    ]
)
"""The columns of a graded row (see the module docstring for why each has its type)."""

Output = Literal["arrow", "jsonl"]


def _plain(config: ConfigSource) -> str | dict[str, Any]:
    """The config as something every actor can load: a path as text, a mapping as a dict."""
    return dict(config) if isinstance(config, Mapping) else str(config)


def share_limits(config: dict[str, Any], actors: int) -> dict[str, Any]:
    """``config`` with each endpoint's ``rpm``/``tpm`` split between ``actors``.

    Every actor builds its own runner, so its own limiter: at the configured rate each, N actors
    sent N times an endpoint's limit. A judge with ``rate_limit_redis`` shares one budget
    through Redis already and is left as it is. ``config`` is changed in place and returned.
    """
    if actors <= 1:
        return config

    def split(spec: Any) -> None:
        if not isinstance(spec, dict) or spec.get("rate_limit_redis"):
            return
        for key in ("rpm", "tpm"):
            value = _rate(spec.get(key))
            if value is not None:
                spec[key] = value / actors

    split(config.get("judge"))
    for spec in (config.get("graders") or {}).values():
        if isinstance(spec, dict):
            split(spec)  # an endpoint grader's own limits (remote_reward_model)
            split(spec.get("judge"))
    return config


def _rate(value: Any) -> float | None:
    """A positive finite rate as the config reads it: YAML writes ``1e3`` as a string, which the
    config's float field reads as 1000 (and left undivided, each actor took the whole rate)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        rate = float(value)
    except ValueError:
        return None
    return rate if math.isfinite(rate) and rate > 0 else None


def cpus_per_actor(runner: GradingRunner) -> float:
    """A whole CPU when the reward verifies math (CPU-bound), else :data:`JUDGE_CPUS`."""
    math_bound = any(isinstance(c.grader, MathGrader) for c in runner.grader_configs.values())
    return 1.0 if math_bound else JUDGE_CPUS


def _arrow_row(row: dict[str, Any]) -> dict[str, Any]:
    rid = row.get("id")
    if rid is not None and not (isinstance(rid, str) and scrub_surrogates(rid) is rid):
        # Not text, or text UTF-8 cannot hold (a lone surrogate, valid in JSON): its JSON text,
        # escaped; Arrow refused the raw string and the whole job failed.
        rid = json_text(rid)
    out = {
        "id": rid,
        "index": row["index"],
        "reward": row["reward"],
        "status": row["status"],
        "usage": row.get("usage") or dict.fromkeys(USAGE_KEYS, 0),
        "line": row.get("line"),
    }
    for col in _JSON_COLUMNS:
        out[col] = json_text(row[col]) if col in row else None
    return out


def rows_from_table(table: Any) -> list[dict[str, Any]]:
    """Rows of a table in :data:`RESULT_SCHEMA` back in the wire shape (JSON columns decoded),
    e.g. to fold a Parquet output into a :class:`~rm_service._summary.RunSummary`."""
    rows = []
    for r in table.to_pylist():
        for col in _JSON_COLUMNS:
            text = r.get(col)
            if text is None:
                r.pop(col, None)
            else:
                r[col] = json.loads(text)
        rows.append(r)
    return rows


class GradeBatch:
    """The map_batches UDF: grades a batch of rows with this actor's runner.

    Args:
        config: the reward config (a YAML path or a dict), loaded once per actor.
        record_column: the column holding each record as JSON text (the CLI's reader writes
            one); ``None``: each row's columns are the record's fields.
        error_column: a column whose non-null value says why the row is not a record (an
            invalid JSONL line); the row becomes an ``error`` row with that text.
        line_column: the column holding the record's 1-based position in its input, passed to
            the wire shape as ``line`` (it also stands in for a missing ``id``).
        keep_columns: input columns copied to the output as they are (a resume key, a source).
        output: ``"arrow"``: the :data:`RESULT_SCHEMA` columns; ``"jsonl"``: one ``json``
            column holding the exact JSONL line the local CLI would write.
        source_field: a column added to each ``jsonl`` line as ``"source"`` (the input file,
            when ``line`` alone is ambiguous: several files).
        overrides: passed to the runner (``max_concurrency``).
    """

    def __init__(
        self,
        config: str | dict[str, Any],
        *,
        record_column: str | None = None,
        error_column: str | None = None,
        line_column: str | None = None,
        keep_columns: Sequence[str] = (),
        output: Output = "arrow",
        source_field: str | None = None,
        **overrides: Any,
    ) -> None:
        self.runner = load_runner(config, **overrides)
        self.record_column = record_column
        self.error_column = error_column
        self.line_column = line_column
        self.keep = tuple(keep_columns)
        self.output = output
        self.source_field = source_field

    async def __call__(self, batch: Any) -> Any:
        rows = batch.to_pylist() if hasattr(batch, "to_pylist") else _pandas_rows(batch)
        shaped = await self._grade(rows)
        if self.output == "jsonl":
            if self.source_field is not None:
                for r, row in zip(shaped, rows, strict=True):
                    r["source"] = row.get(self.source_field)
            cols: dict[str, Any] = {"json": [json_text(r) for r in shaped]}
        else:
            arrow = [_arrow_row(r) for r in shaped]
            cols = {f.name: pa.array([r[f.name] for r in arrow], f.type) for f in RESULT_SCHEMA}
        for name in self.keep:
            cols[name] = batch[name] if hasattr(batch, "column") else list(batch[name])
        return pa.table(cols)

    async def _grade(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every row's wire dict, in input order; never raises for a record's fault."""
        lines = [self._line(r) for r in rows]
        records: list[Any] = []
        bad: dict[int, str] = {}
        for i, row in enumerate(rows):
            reason = row.get(self.error_column) if self.error_column else None
            record: Any = row
            if reason is None and self.record_column is not None:
                try:
                    record = json.loads(row[self.record_column])
                except (TypeError, ValueError) as exc:
                    reason = f"invalid record: {exc}"
            elif self.record_column is None and (self.keep or self.line_column):
                hidden = {*self.keep, self.line_column, self.error_column}
                record = {k: v for k, v in row.items() if k not in hidden}
            if reason is None and not isinstance(record, dict):
                reason = f"invalid record: expected a JSON object, got {type(record).__name__}"
            if reason is not None:
                bad[i] = reason
            records.append(record)
        good = [i for i in range(len(rows)) if i not in bad]
        try:
            graded = await self.runner.agrade([records[i] for i in good])
        except Exception as exc:  # a bug: every record of the batch is unscored, none lost
            graded = [
                self._unscored(n, f"grading failed: {type(exc).__name__}: {exc}", "internal")
                for n in range(len(good))
            ]
        # A record's index is its place in the input (its line, counted from 0) where the
        # line is known, as the local engine writes it; the batch position otherwise. It was
        # the batch position always, so indexes repeated across a run's batches.
        index = [i if line is None else line - 1 for i, line in enumerate(lines)]
        results: dict[int, RecordResult] = {}
        for i, rec in zip(good, graded, strict=True):
            results[i] = reindexed(rec, index[i])
        for i, reason in bad.items():
            results[i] = self._unscored(index[i], reason, "invalid_input")
        return [record_json(results[i], line=lines[i]) for i in range(len(rows))]

    def _line(self, row: dict[str, Any]) -> int | None:
        if self.line_column is None:
            return None
        value = row.get(self.line_column)
        return int(value) if value is not None else None

    def _unscored(self, index: int, reason: str, kind: Any) -> RecordResult:
        """A record no grader could score: every component unscored with ``kind``."""
        return unscored_record(index, self.runner.names, self.runner.reward_name, reason, kind)


def _pandas_rows(df: Any) -> list[dict[str, Any]]:
    """A pandas batch's rows as dicts, NaN (pandas' missing value) as None."""
    rows: list[dict[str, Any]] = df.to_dict("records")
    for row in rows:
        for k, v in row.items():
            if isinstance(v, float) and math.isnan(v):
                row[k] = None
    return rows


def grade_dataset(
    ds: ray.data.Dataset,
    config: ConfigSource,
    *,
    num_cpus: float | None = None,
    workers: int | None = None,
    min_workers: int = 1,
    batch_size: int = 64,
    line_column: str | None = None,
    keep_columns: Sequence[str] = (),
    max_concurrency: int | None = None,
) -> ray.data.Dataset:
    """Grade every row of ``ds`` (each row is a record: its columns are the record's fields)
    with the reward ``config`` (a YAML path or a dict); rows in :data:`RESULT_SCHEMA`.

    The config is loaded here first, so a bad config fails now, in the driver, not in every
    actor. Lazy, as Ray Datasets are: nothing runs until the result is consumed or written.

    Args:
        num_cpus: CPUs per actor; default :func:`cpus_per_actor` (1 for math, else
            :data:`JUDGE_CPUS`).
        workers: the most actors; default: as many as the cluster's CPUs allow at
            ``num_cpus`` each (at most 8 for judge-bound rewards: each holds
            ``max_concurrency`` judge calls in flight).
        min_workers: actors started up front (the pool grows from there to ``workers``).
        batch_size: rows per UDF call.
        line_column: a column holding each record's position in its input (written as
            ``line``); it is not part of the record.
        keep_columns: columns copied to the output unchanged (not part of the record).
        max_concurrency: grader calls in flight per actor (default: the config's).

    Raises:
        ConfigError: the config is invalid.
    """
    plain = _plain(config)
    overrides = {"max_concurrency": max_concurrency} if max_concurrency else {}
    runner = load_runner(plain, **overrides)
    cpus = num_cpus if num_cpus is not None else cpus_per_actor(runner)
    actors = max(min_workers, workers or _max_actors(cpus))
    if actors > 1:  # each actor's limiter gets its share of the endpoints' rpm/tpm
        data = plain if isinstance(plain, dict) else yaml.safe_load(Path(plain).read_text())
        plain = share_limits(json.loads(json.dumps(data)), actors)
    return ds.map_batches(
        GradeBatch,
        fn_constructor_kwargs={
            "config": plain,
            "line_column": line_column,
            "keep_columns": tuple(keep_columns),
            **overrides,
        },
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(min_size=min_workers, max_size=actors),
        num_cpus=cpus,
    )


def _max_actors(cpus: float) -> int:
    total = float(ray.cluster_resources().get("CPU", 1.0)) if ray.is_initialized() else 1.0
    n = max(1, int(total // cpus) - 1) if cpus >= 1 else max(1, min(8, int(total)))
    return n
