"""The ``rm-service`` command line: a thin layer over the library.

It catches only :class:`RMServiceError` (one line on stderr, exit 1); anything else is a bug and
shows its traceback. ``RM_SERVICE_CONFIG`` and ``RM_SERVICE_MAX_CONCURRENCY`` (environment or a
``.env`` file) supply defaults for ``--config`` and ``--max-concurrency``.

Each subcommand imports what it runs inside its function, not for a cycle (the layering has none)
but so that ``--help`` and ``version`` answer without loading the engine, ``grade`` never imports
FastAPI, and only ``train`` imports torch.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rm_service._exceptions import InputError, RMServiceError
from rm_service._gc import freeze_startup_heap

if TYPE_CHECKING:
    from rm_service._runner import GradingRunner

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rm-service",
        description="Reward signals for LLM post-training: grade JSONL files offline, check a "
        "reward config, serve the HTTP API, or GRPO-train a model on a reward.",
    )
    p.add_argument("--version", action="version", version=f"rm-service {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade a JSONL or Parquet file with a reward config")
    g.add_argument(
        "input",
        help="input: JSONL (one JSON object per line), Parquet, or a dataset saved with "
        "datasets' save_to_disk; with --engine ray also a directory or glob of shards, on any "
        "filesystem Ray reads (s3://, gs://, ...)",
    )
    g.add_argument(
        "-c",
        "--config",
        default=os.environ.get("RM_SERVICE_CONFIG"),
        help="reward config YAML (env RM_SERVICE_CONFIG; default: the embedded default reward)",
    )
    g.add_argument(
        "-o",
        "--output",
        help="output JSONL (default: INPUT with .graded.jsonl); with --engine ray a directory "
        "of Parquet parts (default: INPUT with .graded.parquet), JSONL parts if it ends in .jsonl",
    )
    existing = g.add_mutually_exclusive_group()
    existing.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run: skip lines already in OUTPUT",
    )
    existing.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    g.add_argument(
        "--skip-invalid",
        action="store_true",
        help="send malformed lines to the errors file and go on",
    )
    g.add_argument("--errors", type=Path, help="errors file (default: OUTPUT.errors.jsonl)")
    g.add_argument("--report", type=Path, help="HTML report (default: OUTPUT.report.html)")
    g.add_argument(
        "--max-concurrency",
        type=int,
        help="grader calls in flight (env RM_SERVICE_MAX_CONCURRENCY; default: the config's)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: Ray Data, on a cluster or a local Ray "
        "(needs the ray extra)",
    )
    g.add_argument(
        "--address", help="--engine ray: the cluster (auto, ray://HOST:10001; default: start one)"
    )
    g.add_argument(
        "--workers", type=int, help="--engine ray: the most grading actors (default: from CPUs)"
    )
    g.add_argument(
        "--num-cpus",
        type=float,
        help="--engine ray: CPUs per actor (default: 1 for math graders, else 0.25)",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        help="--engine ray: records per batch, and per checkpoint (default: 64)",
    )

    c = sub.add_parser("check", help="validate a reward config (and a file's first record)")
    c.add_argument("-c", "--config", help="reward config YAML (env RM_SERVICE_CONFIG)")
    c.add_argument(
        "input",
        nargs="*",
        help="[CONFIG.yaml] [DATA]: the data file (any input `grade` reads) whose first record "
        "is checked; a .yaml/.yml first is the config",
    )

    a = sub.add_parser(
        "audit",
        help="measure how much a reward pays known exploits (echo, master keys, injections...) "
        "before spending GPU hours on it",
    )
    a.add_argument("input", type=Path, help="JSONL of records with honest responses")
    a.add_argument(
        "-c",
        "--config",
        default=os.environ.get("RM_SERVICE_CONFIG"),
        help="reward config YAML (env RM_SERVICE_CONFIG; default: the embedded default reward)",
    )
    a.add_argument(
        "--exploits",
        help="comma-separated exploits to run (default: all; package.module:function adds "
        "your own)",
    )
    a.add_argument("--limit", type=int, help="audit only the first N records (default: all)")
    a.add_argument(
        "--min-honest",
        type=float,
        default=0.5,
        help="compare only records whose honest reward is at least this, and above 0 (default 0.5)",
    )
    a.add_argument("--report", type=Path, help="HTML report (default: INPUT with .audit.html)")
    a.add_argument(
        "--fail-on-exploit",
        action="store_true",
        help=f"exit {_EXIT_EXPLOITABLE} when any exploit is EXPLOITABLE",
    )
    a.add_argument(
        "--max-concurrency",
        type=int,
        help="grader calls in flight (env RM_SERVICE_MAX_CONCURRENCY; default: the config's)",
    )
    a.add_argument("--no-progress", action="store_true", help="no progress bar")

    sub.add_parser("graders", help="list the registered grader and aggregator types")

    from rm_service._calibrate import add_arguments as add_calibrate_arguments

    add_calibrate_arguments(
        sub.add_parser("calibrate", help="fit a reward model grader's score map on reference data")
    )

    t = sub.add_parser("train", help="GRPO-train a model on a reward (needs the train extra)")
    t.add_argument("-c", "--config", type=Path, required=True, help="training config YAML")
    t.add_argument("--max-steps", type=int, help="override grpo.max_steps")
    t.add_argument("--output-dir", type=Path, help="override output_dir")
    t.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run's outputs in output_dir"
    )

    from rm_service._serve import add_arguments as add_serve_arguments

    add_serve_arguments(sub.add_parser("serve", help="serve the HTTP API under uvicorn"))
    return p


def _max_concurrency(args: argparse.Namespace) -> int | None:
    """``--max-concurrency``, else ``RM_SERVICE_MAX_CONCURRENCY``, checked and named: the
    variable was parsed while the parser was built, so ``abc`` was a traceback for every
    command, and a bad value was blamed on the flag or on the config file."""
    from rm_service._runner import MAX_CONCURRENCY

    limit, source = getattr(args, "max_concurrency", None), "--max-concurrency"
    env = os.environ.get("RM_SERVICE_MAX_CONCURRENCY")
    if limit is None and env:
        source = "RM_SERVICE_MAX_CONCURRENCY"
        try:
            limit = int(env)
        except ValueError:
            raise InputError(f"{source} must be an integer, got {env!r}") from None
    if limit is not None and not 1 <= limit <= MAX_CONCURRENCY:
        raise InputError(f"{source} must be from 1 to {MAX_CONCURRENCY}, got {limit}")
    return limit


def _version() -> str:
    """The installed distribution's version (what pip knows), else the package's own."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rm-service")
    except PackageNotFoundError:
        from rm_service import __version__

        return __version__


def console() -> int:
    """The ``rm-service`` console script: :func:`main` as the process itself, so ``grade`` and
    ``serve`` freeze their start-up heap once loaded (see :mod:`rm_service._gc`)."""
    return main(freeze_heap=True)


def main(argv: list[str] | None = None, *, freeze_heap: bool = False) -> int:
    """Run a command; returns the exit code.

    ``freeze_heap``: this call is the whole process (:func:`console`), so ``grade`` and
    ``serve`` may freeze what start-up built out of the garbage collector's reach; a program
    that calls ``main`` itself keeps its heap as it is."""
    from dotenv import find_dotenv, load_dotenv

    load_dotenv(find_dotenv(usecwd=True), override=False)  # the user's .env, not ours
    args = _parser().parse_args(argv)
    args.freeze_heap = freeze_heap
    if args.command != "serve":
        # Any valid JSON round-trips: an integer of more than 4,300 digits is valid JSON, and
        # Python's default limit on int/str conversion would reject the line it sits on. Not for
        # the service: reading and writing such a number takes time growing with the square of
        # its length, so one request of a few megabytes of digits would hold every other for
        # a minute; the limit answers it with a 400 at once.
        sys.set_int_max_str_digits(0)
    try:
        if args.command == "grade":
            return _grade(args)
        if args.command == "check":
            return _check(args)
        if args.command == "audit":
            return _audit(args)
        if args.command == "train":
            return _train(args)
        if args.command == "calibrate":
            from rm_service._calibrate import calibrate_args

            if args.label_field is not None and not args.label_field.strip():
                # An empty name read as "no labels": a quantile fit, or an error blaming the
                # map, after grading the whole reference.
                raise InputError(
                    f"--label-field must name a record field, got {args.label_field!r}"
                )

            return calibrate_args(args)
        if args.command == "serve":
            from rm_service._serve import serve_args

            return serve_args(args)
        return _list()
    except RMServiceError as exc:
        print(f"rm-service: error: {exc}", file=sys.stderr)
        return 1


def _runner_from(args: argparse.Namespace) -> GradingRunner:
    from rm_service._config import load_runner

    config = args.config
    if not config:
        from rm_service._default import DEFAULT_CONFIG, DEFAULT_NOTICE

        print(f"rm-service: {DEFAULT_NOTICE}", file=sys.stderr)
        config = DEFAULT_CONFIG
    overrides = {}
    limit = _max_concurrency(args)
    if limit is not None:
        overrides["max_concurrency"] = limit
    return load_runner(config, **overrides)


def _grade(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        if args.config and args.report:  # the HTML report written over the reward config
            from rm_service._run_files import refuse_collisions

            refuse_collisions({"config": Path(args.config), "report": Path(args.report)})
        return _grade_ray(args)
    for flag in ("address", "workers", "num_cpus", "batch_size"):
        if getattr(args, flag) is not None:
            raise InputError(f"--{flag.replace('_', '-')} needs --engine ray")
    from rm_service._offline import agrade_file
    from rm_service._run_files import file_state

    args.input = Path(args.input)
    args.output = Path(args.output) if args.output else None
    output = args.output or args.input.with_name(args.input.stem + ".graded.jsonl")
    if args.config:  # the output or the HTML report written over the reward config
        from rm_service._run_files import refuse_collisions, side_paths

        errors, report = side_paths(output, args.errors, args.report)
        refuse_collisions(
            {"config": Path(args.config), "output": output, "report": report, "errors file": errors}
        )
    runner = _runner_from(args)
    if args.freeze_heap:
        freeze_startup_heap()
    before = file_state(output)
    try:
        result = asyncio.run(
            agrade_file(
                runner,
                args.input,
                output,
                resume=args.resume,
                overwrite=args.overwrite,
                skip_invalid=args.skip_invalid,
                errors_path=args.errors,
                report_path=args.report,
                progress=not args.no_progress,
            )
        )
    except InputError as exc:
        if exc.line is not None:
            after = file_state(output)
            if after is None or (after == before and not args.resume):
                # Nothing of this run's in it: an --overwrite run keeps the earlier output until
                # it writes (so "saved in o.jsonl ... --resume" named another run's records, and
                # that resume was refused as a different input).
                kept = "" if after is None else f"; {output} still holds the earlier output"
                again = " with --overwrite" if after is not None and args.overwrite else ""
                saved = f"Nothing was graded{kept or ' and no output was written'}; fix the line "
                saved += f"and rerun{again}"
            else:
                saved = f"Records graded so far are saved in {output}; fix the line and rerun "
                saved += "with --resume"
            raise InputError(f"{args.input} {exc}. {saved}, or pass --skip-invalid") from None
        raise
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; finished records are in {output}; rerun with --resume", file=sys.stderr
        )
        return 130
    invalid = ""
    if result.still_invalid:  # counted as done: listed by an earlier run, and still bad
        invalid = f" ({result.still_invalid} of them still invalid, listed in {result.errors})"
    if result.invalid:
        invalid += f", {result.invalid} invalid line(s) -> {result.errors}"
    return _print_result(result, invalid)


def _print_result(result: Any, more: str = "") -> int:
    """What a ``grade`` run prints, on either engine: its warnings, the summary table, what
    this run graded (``more`` adds to that line) and where the output and report are."""
    for warning in result.warnings:
        print(f"rm-service: warning: {warning}", file=sys.stderr)
    if result.summary.records:
        print(result.summary.table() + "\n")
    print(f"graded {result.graded} record(s) this run", end="")
    if result.skipped_done:
        print(f", {result.skipped_done} already done", end="")
    print(f"{more}\noutput: {result.output}\nreport: {result.report or '(not written)'}")
    summary = result.summary
    invalid = getattr(result, "invalid", 0) + getattr(result, "still_invalid", 0)
    if summary.ok == 0 and (summary.records or invalid):
        # Every record unscored (a judge down, a field missing everywhere) or every line
        # invalid: the output is complete, but it holds no reward, and `grade && train` must
        # stop rather than go on as if it did.
        kinds = ", ".join(f"{n} {k}" for k, n in summary.unscored_records.most_common())
        why = f"every record is unscored ({kinds})" if summary.records else "every line is invalid"
        print(f"rm-service: error: no record got a reward: {why}", file=sys.stderr)
        return NOTHING_SCORED
    return 0


NOTHING_SCORED = 4
"""The exit status of a ``grade`` run whose output holds no reward at all, and of an ``audit``
that compared no exploit with an honest response (no verdict)."""


_RAY_EXTRA = "pip install -e '.[ray]'"


def _grade_ray(args: argparse.Namespace) -> int:
    """Imported here: Ray (seconds, and an optional extra) is needed by no other path."""
    for flag in ("skip_invalid", "errors"):
        if getattr(args, flag):
            raise InputError(
                f"--{flag.replace('_', '-')} is for the local engine; with --engine ray an "
                "invalid record is an error row in the output"
            )
    for flag, value in (("workers", args.workers), ("batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise InputError(f"--{flag} must be at least 1, got {value}")
    if args.num_cpus is not None and not args.num_cpus > 0:
        raise InputError(f"--num-cpus must be more than 0, got {args.num_cpus}")
    try:
        from rm_service.integrations._ray_cli import grade_with_ray
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in {"rm_service", "graders"}:
            raise
        raise RMServiceError(
            f"--engine ray needs the ray extra ({exc.name} is missing): {_RAY_EXTRA}"
        ) from None
    config = args.config
    if not config:
        from rm_service._default import DEFAULT_CONFIG, DEFAULT_NOTICE

        print(f"rm-service: {DEFAULT_NOTICE}", file=sys.stderr)
        config = DEFAULT_CONFIG
    try:
        result = grade_with_ray(
            config,
            args.input,
            args.output,
            address=args.address,
            resume=args.resume,
            overwrite=args.overwrite,
            workers=args.workers,
            num_cpus=args.num_cpus,
            batch_size=64 if args.batch_size is None else args.batch_size,
            max_concurrency=_max_concurrency(args),
            report_path=args.report,
            progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        print("\ninterrupted; finished records are saved; rerun with --resume", file=sys.stderr)
        return 130
    return _print_result(result)


def _check(args: argparse.Namespace) -> int:
    from rm_service._exceptions import MappingError
    from rm_service._offline import check_record

    given = [Path(p) for p in args.input]
    if args.config is None and given and given[0].suffix in {".yaml", ".yml"}:
        args.config = str(given.pop(0))  # `rm-service check reward.yaml [data.jsonl]`
    if len(given) > 1:
        raise InputError(f"check takes one data file, got {len(given)}: {given}")
    data = given[0] if given else None
    args.config = args.config or os.environ.get("RM_SERVICE_CONFIG")
    runner = _runner_from(args)
    print(
        f"config ok: graders {list(runner.grader_configs)}, "
        f"aggregators {[a.name for a in runner.aggregators]}, reward = {runner.reward_name!r}"
    )
    if data is not None:
        if not data.exists():
            raise InputError(f"{data}: no such file")
        first = _first_record(data)  # JSONL, Parquet or a saved dataset: as `grade` reads
        if first is None:
            print(f"warning: {data} holds no record to check", file=sys.stderr)
        else:
            where, number, record = first
            try:
                check_record(runner, record, data, number, where)
            except MappingError as exc:
                # A null field is that record's data, as `grade` takes it (an unscored row), not
                # a config that cannot work: say so, and refuse only what `grade` refuses.
                check_record(runner, record, data, number, where, nulls_ok=True)
                print(
                    f"warning: {exc.detail}; `grade` scores that record as unscored "
                    "(invalid_input)",
                    file=sys.stderr,
                )
            print(f"first record ({where} {number}) fits every grader")
    return 0


def _first_record(path: Path) -> tuple[str, int, dict[str, Any]] | None:
    """``(line or row, its number, record)`` of the first record of any input ``grade``
    reads, or ``None`` for an input with none."""
    from rm_service._audit import read_records
    from rm_service._readers import detect_format, iter_records

    fmt = detect_format(path)
    if fmt != "jsonl":
        for row, record in iter_records(path, fmt):
            return "row", row, record
        return None
    first = read_records(path, limit=1, what=None)  # as audit and calibrate read JSONL
    return ("line", *first[0]) if first else None


_EXIT_EXPLOITABLE = 3
"""``audit --fail-on-exploit`` found an exploitable reward: distinct from 1 (an error)."""


def _audit(args: argparse.Namespace) -> int:
    """Imported here: the exploit battery and its report are needed by no other command."""
    from rm_service._audit import audit_file
    from rm_service._exploits import get_exploits
    from rm_service._run_files import refuse_collisions, writable_report

    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    if not 0.0 <= args.min_honest <= 1.0:
        raise InputError(f"--min-honest must be in [0, 1], got {args.min_honest}")
    if not args.input.is_file():
        raise InputError(f"{args.input}: no such file")
    exploits = get_exploits(args.exploits.split(",") if args.exploits else None)
    report = args.report or args.input.with_name(args.input.stem + ".audit.html")
    refuse_collisions({"input": args.input, "report": report})
    if args.config:  # the HTML report written over the reward config
        refuse_collisions({"config": Path(args.config), "report": report})
    writable_report(report)
    runner = _runner_from(args)
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="grading", desc="auditing", file=sys.stderr)
        if total != bar.total:  # no exploit graded: the bar ends at done, not at 3/33
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    try:
        result = asyncio.run(
            audit_file(
                runner,
                args.input,
                exploits=exploits,
                limit=args.limit,
                min_honest=args.min_honest,
                progress=None if args.no_progress else progress,
            )
        )
    except KeyboardInterrupt:
        print("\ninterrupted; nothing was written", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    for note in result.notes:
        print(f"rm-service: note: {note}", file=sys.stderr)
    print(result.table())
    title = f"rm-service audit: {args.config or 'default reward'} on {args.input}"
    try:
        result.write_html(report, title=title)
    except OSError as exc:
        print(
            f"rm-service: warning: cannot write the report {report}: {exc.strerror or exc}",
            file=sys.stderr,
        )
    else:
        print(f"report: {report}")
    if not result.measured:
        # As `grade` with no reward: the report is written, but `audit && train` must stop.
        print(
            "rm-service: error: no exploit was compared with an honest response, so the audit "
            "has no verdict (see the notes above)",
            file=sys.stderr,
        )
        return NOTHING_SCORED
    if args.fail_on_exploit and result.exploitable:
        return _EXIT_EXPLOITABLE
    return 0


_TRAIN_EXTRA = "pip install -e '.[train]'"


def _train(args: argparse.Namespace) -> int:
    """Imported here, not at the top: the trainer pulls in torch and TRL (seconds, and an
    optional extra), which no other command needs."""
    try:
        from trainer import load_train_config, train
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in {"trainer", "rm_service"}:
            raise  # our own bug, not a missing extra
        raise RMServiceError(
            f"`rm-service train` needs the train extra ({exc.name} is missing): {_TRAIN_EXTRA}"
        ) from None
    if args.max_steps is not None and args.max_steps < 1:
        raise RMServiceError(f"--max-steps must be at least 1, got {args.max_steps}")
    train(
        load_train_config(args.config),
        max_steps=args.max_steps,
        output_dir=args.output_dir,
        overwrite=args.overwrite,
    )
    return 0


def _list() -> int:
    from aggregators import list_aggregators
    from graders import list_graders

    print("graders:     " + ", ".join(list_graders()))
    print("aggregators: " + ", ".join(list_aggregators()))
    return 0


if __name__ == "__main__":
    sys.exit(console())
