"""``rm-service grade IN --engine ray``: a file, a directory or a glob of shards graded on a
Ray cluster (or a local Ray started for the run), resumable, summarised like the local CLI.

* **Output.** A directory of part files: Parquet (:data:`~rm_service.integrations.ray.
  RESULT_SCHEMA`, plus ``source`` and ``key``) by default, or JSONL parts whose lines are the
  local CLI's lines when OUT ends in ``.jsonl`` (with a ``source`` field when the input has
  more than one file, as ``line`` alone would be ambiguous). Part files, not one file: every
  writer on every node writes its own, none waits on another.
* **Exactly once, across kills.** Every run writes with Ray Data checkpointing keyed on
  ``key`` (``source:line``, see :mod:`~rm_service.integrations._ray_io`) into
  ``OUT.checkpoint``. Ray writes a block's pending checkpoint before its part file and commits
  it after, and on restart deletes the part files of uncommitted checkpoints, so ``--resume``
  after a SIGKILL grades each remaining record once and keeps each finished one once. The
  checkpoint is kept after success, so ``--resume`` on a finished output grades nothing.
  Checkpoint and output must be on storage every node sees (a shared mount or object storage).
* **One run per output** on a local filesystem: the same ``OUT.lock`` ``flock`` as the local
  CLI.
* **Fail before spending.** The config is loaded, and the first record is read and checked
  against every grader, in this process before Ray starts; a later bad record is an ``error``
  row, never a failed job.
* **A local Ray** (no ``--address``) declares two CPUs more than the machine has: the read
  tasks and the checkpoint filter mostly wait on I/O, and with only the real cores declared the
  grading actors can leave them none and the job waits forever.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.fs as pafs  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import ray
import ray.data
import yaml

from rm_service._config import load_runner
from rm_service._exceptions import InputError, RMServiceError
from rm_service._offline import check_record
from rm_service._run_files import RunLock
from rm_service._run_record import (
    ShardedInput,
    check_run_record,
    reward_fingerprint,
    write_run_record,
)
from rm_service._summary import LineSet, RunSummary
from rm_service.integrations._ray_io import (
    JsonLinesSink,
    RecordsDatasource,
    Shard,
    lines,
    list_shards,
    read_shard,
    resolve,
)
from rm_service.integrations.ray import (
    GradeBatch,
    cpus_per_actor,
    rows_from_table,
    share_limits,
)

__all__ = ["RayGradeResult", "grade_with_ray"]


@dataclass
class RayGradeResult:
    """What a Ray run did: rows written this run and the summary of the whole output."""

    graded: int
    skipped_done: int
    summary: RunSummary
    output: str
    report: Path | None
    seconds: float
    startup_s: float
    warnings: list[str] = field(default_factory=list)


def default_output(uri: str) -> str:
    """``IN.graded.parquet`` next to a single input; a glob must name its output."""
    if any(c in uri for c in "*?["):
        raise InputError(f"{uri} is a glob: pass -o OUT (a directory for the graded parts)")
    base = uri.rstrip("/")
    stem, ext = posixpath.splitext(base)
    return (stem if ext in {".jsonl", ".json", ".parquet", ".pq"} else base) + ".graded.parquet"


def grade_with_ray(
    config: str | dict[str, Any],
    input_uri: str,
    output_uri: str | None = None,
    *,
    address: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    num_cpus: float | None = None,
    max_concurrency: int | None = None,
    batch_size: int = 64,
    report_path: str | Path | None = None,
    progress: bool = True,
) -> RayGradeResult:
    """Grade ``input_uri`` into ``output_uri`` on Ray; see the module docstring.

    Raises:
        InputError: a missing or unreadable input, an output that exists without
            ``resume``/``overwrite``, a bad ``address``.
        MappingError: the first record does not fit the graders.
        ConfigError: the config is invalid.
    """
    overrides = {"max_concurrency": max_concurrency} if max_concurrency else {}
    runner = load_runner(config, **overrides)
    # Local paths made absolute here: Ray's checkpointing refuses a relative path, and its
    # workers need not share the driver's working directory.
    input_uri = _absolute(input_uri)
    out = _absolute(output_uri or default_output(input_uri))
    jsonl = out.endswith(".jsonl")
    out_fs, out_path = resolve(out)
    ckpt = out.rstrip("/") + ".checkpoint"
    ckpt_fs, ckpt_path = resolve(ckpt)
    shards = _not_ours(list_shards(input_uri), input_uri, out_fs, out_path)
    _first_record_check(runner, resolve(input_uri)[0], shards)
    cpus = num_cpus if num_cpus is not None else cpus_per_actor(runner)

    local = isinstance(out_fs, pafs.LocalFileSystem)
    lock = None
    if local:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        lock = RunLock(Path(out_path + ".lock"), Path(out_path))
    try:
        existing = _count_rows(out_fs, out_path, jsonl)
        run_path = Path(out_path + ".run.json") if local else None
        fingerprint = reward_fingerprint(runner)
        sharded = _sharded_input(input_uri, shards)
        kept = existing and (resume or not overwrite)  # both flags: resume wins
        if run_path is not None and kept:
            # The local engine's check, before any advice: an output graded from another input
            # or reward is never resumed (it mixed two in one output), so --resume is not
            # suggested for it. Two inputs meet there by default: x.jsonl and x.json both
            # write x.graded.parquet.
            check_run_record(
                run_path, None, out, fingerprint, LineSet(),
                legacy=reward_fingerprint(runner, settings=False), sharded=sharded,
            )  # fmt: skip
        if kept and ckpt_fs.get_file_info(ckpt_path).type == pafs.FileType.NotFound:
            raise InputError(
                f"{out} has {existing} row(s) but its checkpoint {ckpt} is gone, so which "
                "records are done is unknown and resuming would grade some twice; pass "
                "--overwrite to start again, or -o to write another output (nothing was changed)"
            )
        if existing and not (resume or overwrite):
            raise InputError(
                f"{out} exists; pass --resume to continue it or --overwrite to replace it"
            )
        if overwrite and not resume:
            for fs, path in ((out_fs, out_path), (ckpt_fs, ckpt_path)):
                if fs.get_file_info(path).type != pafs.FileType.NotFound:
                    fs.delete_dir(path)
            existing = 0
        if run_path is not None:
            write_run_record(run_path, None, fingerprint, sharded=sharded)
        stale = []
        if not existing and ckpt_fs.get_file_info(ckpt_path).type != pafs.FileType.NotFound:
            # The output holds no row, so a checkpoint left by an earlier run (its output since
            # removed) lists records that are nowhere: Ray would skip every one of them, and
            # the run wrote nothing and exited 0.
            ckpt_fs.delete_dir(ckpt_path)
            stale.append(f"removed {ckpt}, a checkpoint without an output: every record is graded")
        started = time.perf_counter()
        _start_ray(address)
        startup = time.perf_counter() - started
        _quiet_ray_data_logs()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        ctx.checkpoint_config = ray.data.checkpoint.CheckpointConfig(
            id_column="key", checkpoint_path=ckpt, delete_checkpoint_on_success=False
        )
        actors = workers or _default_workers(cpus)
        plain = _plain_config(config, cpus, actors)
        multi = len({s.name for s in shards}) > 1
        ds = ray.data.read_datasource(RecordsDatasource(input_uri, shards))
        graded_ds = ds.map_batches(
            GradeBatch,
            fn_constructor_kwargs={
                "config": plain,
                "record_column": "record",
                "error_column": "error",
                "line_column": "line",
                "keep_columns": ("key", "source"),
                "output": "jsonl" if jsonl else "arrow",
                "source_field": "source" if (jsonl and multi) else None,
                **overrides,
            },
            batch_format="pyarrow",
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
            num_cpus=cpus,
        )
        try:
            if jsonl:
                graded_ds.write_datasink(JsonLinesSink(out))
            else:
                graded_ds.write_parquet(out)
        except Exception as exc:
            raise _clean(exc) from None
        finally:
            ctx.checkpoint_config = None
        seconds = time.perf_counter() - started
        summary = RunSummary.of(runner.names, runner.reward_name)
        for row in _read_back(out_fs, out_path, jsonl):
            summary.add(row)
    finally:
        if lock is not None:
            lock.release()
    warnings = stale
    report = Path(report_path) if report_path else _default_report(out, local)
    written: Path | None = report
    try:
        summary.write_html(report, title=f"rm-service: {input_uri}")
    except OSError as exc:
        written = None
        warnings.append(f"could not write the report {report} ({exc.strerror or exc})")
    return RayGradeResult(
        graded=summary.records - existing,
        skipped_done=existing,
        summary=summary,
        output=out,
        report=written,
        seconds=seconds,
        startup_s=startup,
        warnings=warnings,
    )


def _not_ours(shards: list[Shard], uri: str, out_fs: Any, out_path: str) -> list[Shard]:
    """``shards`` less this run's own files: an output inside the input directory (``-o
    data/graded.jsonl`` for ``data/``) holds part files, a checkpoint and a run record that
    read as JSONL and Parquet, so ``--resume`` graded the previous run's rows as records."""
    if type(out_fs) is not type(resolve(uri)[0]):
        return shards
    out = out_path.rstrip("/")
    mine = (out + "/", out + ".checkpoint/")
    kept = [s for s in shards if not (s.path.startswith(mine) or s.path == out + ".run.json")]
    if not kept:
        raise InputError(f"{uri}: no input files besides this run's own output {out}")
    return kept


def _sharded_input(uri: str, shards: list[Shard]) -> ShardedInput:
    """``shards`` as the run record keeps them: each row as its line and text (or the reason
    it is no record), which is what its key and its graded row stand for."""
    fs = resolve(uri)[0]

    def rows(name: str) -> Iterator[bytes]:
        shard = next(s for s in shards if s.name == name)
        for line, record, error in read_shard(fs, shard):
            yield f"{line}\t{record if error is None else error}".encode()

    return ShardedInput(uri, [s.name for s in shards], rows)


def _plain_config(config: str | dict[str, Any], cpus: float, actors: int = 1) -> dict[str, Any]:
    """The config as a dict every actor can load, with each math grader's worker pool sized to
    the actor's CPUs (its default, up to four processes, is per process: per actor here), and
    each endpoint's rpm/tpm split between the ``actors`` (:func:`share_limits`)."""
    if isinstance(config, dict):
        data = json.loads(json.dumps(config))
    else:
        data = yaml.safe_load(Path(config).read_text())
    for spec in (data.get("graders") or {}).values():
        if isinstance(spec, dict) and spec.get("type") == "math":
            spec.setdefault("workers", max(1, int(cpus)))
    return share_limits(dict(data), actors)


def _first_record_check(runner: Any, fs: Any, shards: list[Shard]) -> None:
    """Check the first record against every grader (a :class:`MappingError` naming the shard
    and line), before Ray starts: a config that fits no record fails in seconds."""
    for shard in shards:
        for line, record, error in read_shard(fs, shard):
            if error is None and record is not None:
                check_record(runner, json.loads(record), Path(shard.path), line, nulls_ok=True)
            return


def _reachable(address: str) -> None:
    """Fail in seconds on a cluster address nothing answers at: Ray itself waits minutes for
    a GCS that is not there (``auto`` is Ray's own lookup, which fails at once)."""
    hostport = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise InputError(
            f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT (the cluster's "
            "GCS address, or its Ray Client server, port 10001 by default)"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise InputError(
            f"--address {address}: cannot connect to a Ray cluster at {host}:{port} "
            f"({exc.strerror or exc})"
        ) from None


def _start_ray(address: str | None) -> None:
    if ray.is_initialized():
        return
    if address and address != "auto":
        _reachable(address)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if not address:  # "local": a new instance, not a `ray start` cluster found on this box
        kwargs["num_cpus"] = (os.cpu_count() or 1) + 2
    try:
        ray.init(address=address or "local", **kwargs)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"--address {address}: cannot connect to a Ray cluster ({first}); a cluster with "
            "token authentication also needs RAY_AUTH_MODE=token and its token (see ray "
            "get-auth-token)"
        ) from None


def _default_workers(cpus: float) -> int:
    total = float(ray.cluster_resources().get("CPU", 1.0))
    if cpus >= 1:
        return max(1, int(total // cpus) - 2)
    return max(1, min(8, int(total)))


_TASK_ERROR = re.compile(r"rm_service\._exceptions\.\w+: (.+)")


def _clean(exc: BaseException) -> BaseException:
    """An :class:`RMServiceError` raised in a Ray task (an unreadable shard), as the one line
    it was: Ray re-raises it wrapped in its traceback and retry advice. Else ``exc``."""
    if not isinstance(exc, RMServiceError) and not isinstance(
        getattr(exc, "cause", None), RMServiceError
    ):
        return exc
    found = _TASK_ERROR.findall(str(exc))
    return InputError(found[-1].strip() if found else str(getattr(exc, "cause", exc)))


def _quiet_ray_data_logs() -> None:
    """Ray Data's console handler: warnings yes, its INFO chatter and its error tracebacks no
    (the CLI says what failed in one line; the full log stays in Ray's session log files)."""
    for handler in logging.getLogger("ray.data").handlers:
        if type(handler).__name__ != "SessionFileHandler":
            handler.setLevel(logging.WARNING)
            handler.addFilter(lambda record: record.levelno < logging.ERROR)


def _count_rows(fs: Any, path: str, jsonl: bool) -> int:
    """Rows already in an output (Parquet footers, or JSONL lines); 0 when there is none."""
    return sum(1 for _ in _read_back(fs, path, jsonl, count_only=True))


def _parts(fs: Any, path: str, suffix: str) -> list[str]:
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return []
    if info.type == pafs.FileType.File:
        raise InputError(f"{path} is a file; --engine ray writes a directory of parts there")
    sel = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(i.path for i in sel if i.type == pafs.FileType.File and i.path.endswith(suffix))


def _read_back(
    fs: Any, path: str, jsonl: bool, count_only: bool = False
) -> Iterator[dict[str, Any]]:
    """The output's rows in the wire shape, one part and one batch at a time."""
    if jsonl:
        for part in _parts(fs, path, ".jsonl"):
            with fs.open_input_stream(part) as f:
                for raw in lines(f):
                    if raw.strip():
                        yield {} if count_only else json.loads(raw)
        return
    for part in _parts(fs, path, ".parquet"):
        with fs.open_input_file(part) as f:
            pf = pq.ParquetFile(f)
            if count_only:
                yield from ({} for _ in range(pf.metadata.num_rows))
                continue
            for batch in pf.iter_batches(batch_size=1024):
                yield from rows_from_table(pa.Table.from_batches([batch]))


def _default_report(out: str, local: bool) -> Path:
    name = posixpath.basename(out.rstrip("/")) + ".report.html"
    return Path(out.rstrip("/") + ".report.html") if local else Path(name)


def _absolute(uri: str) -> str:
    """``uri`` as is when it names a filesystem (``s3://...``); a local path made absolute."""
    return uri if "://" in uri else os.path.abspath(uri)
