"""Offline grading of JSONL files: streaming, resumable, and honest about bad lines.

* **Streaming.** Input lines are read one at a time as the runner asks for records; results are
  appended and written as each record completes (in completion order, each line carrying the
  input's ``line`` number and ``id``). Memory does not grow with the file.
* **Resumable.** With ``resume=True``, lines already present in the output (or in the errors
  file) are skipped, and a torn last line left by a killed process is cut off first, so a run
  killed with SIGKILL and restarted ends with every input line exactly once. Output lines for
  an input line already seen (left by an older, unlocked run) are counted once and reported.
  ``OUT.run.json`` records what the output was graded from (the reward's fingerprint and a
  digest of the input's first lines), and a resume from another reward or a moved input is
  refused.
* **One run per output.** A run holds an exclusive ``flock`` on ``OUT.lock`` from start to end;
  a second run on the same output fails at once, naming the first (pid, host, start time).
  The kernel drops the lock when a process dies, so a killed run never blocks its resume.
* **Nothing is destroyed by mistake.** An output, errors file or report that is the input (or
  one another) is refused before any file is touched. The output is opened (and, with
  ``overwrite``, truncated) only once the first record has passed its check.
* **Any valid JSON round-trips.** A row whose strings UTF-8 cannot hold (a lone surrogate such
  as ``"\\ud800"``, valid JSON) is written ASCII-escaped, which reads back to the same string.
* **Bad input.** A line that is not a JSON object stops the run with an :class:`InputError` that
  names the line, after the records already in flight are finished and saved. With
  ``skip_invalid=True`` it goes to the errors file instead and the run continues.
* **Fail before spending.** The first record is checked against every grader's mapper and
  required fields before any grader runs.
* **I/O errors are errors, not bugs.** A full disk or an unwritable path raises
  :class:`RMServiceError` naming the path (what is saved stays saved; resume later). A report
  that cannot be written after a complete output is a warning in ``GradeFileResult.warnings``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rm_service._exceptions import InputError, MappingError, RMServiceError
from rm_service._io import io_error, replacing
from rm_service._readers import count_records, detect_format, iter_records
from rm_service._run_files import RunLock, Sink, refuse_collisions, side_paths
from rm_service._run_record import check_run_record, reward_fingerprint, write_run_record
from rm_service._runner import GradingRunner
from rm_service._summary import LineSet, RunSummary, summarize_jsonl
from rm_service._wire import record_json

__all__ = ["GradeFileResult", "agrade_file", "grade_file"]


@dataclass
class GradeFileResult:
    """What a run did: counts for this run, and the summary of the whole output file.

    ``report`` is None when the report could not be written; ``warnings`` says why, and names
    anything else worth a look (duplicate lines in the output, an input with no records).
    """

    graded: int
    skipped_done: int
    invalid: int
    summary: RunSummary
    output: Path
    report: Path | None
    errors: Path | None
    warnings: list[str] = field(default_factory=list)
    still_invalid: int = 0
    """Lines an earlier run listed in the errors file that are still invalid (counted in
    ``skipped_done`` too): not graded, so a run where they are all there is stays a failure."""


# --- reading ------------------------------------------------------------------------------


def _scan_done(path: Path, done: LineSet) -> None:
    """Collect the ``line`` numbers in an existing output, cutting off a torn last line.
    Duplicates are left in place (the summary counts each line once and says so)."""
    if not path.exists():
        return
    if not path.is_file():
        raise InputError(f"{path} is not a regular file; --resume needs the output as a file")
    good_end = 0
    with io_error("resume from", path), path.open("rb+") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break  # torn write from a killed run: drop it, the record is redone
            try:
                done.add(_line_of(raw))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(
                    f"{path} line {n}: not an rm-service output line ({exc}); cannot resume. "
                    "Fix or delete that line, or move the file aside"
                ) from None
            good_end += len(raw)
        f.truncate(good_end)


def _line_of(raw: bytes) -> int:
    """The input line one output line records.

    Raises:
        ValueError, KeyError, TypeError: it is no rm-service output line.
    """
    line = json.loads(raw)["line"]
    if type(line) is not int or line < 1:
        raise ValueError(f"'line' is {line!r}, not a line number")
    return line


def _graded_lines(path: Path) -> LineSet | None:
    """The lines an existing output holds, read only, or ``None`` when it is not all output
    lines (a torn last line is left out, as a resume drops it).

    For the advice a run without ``--resume`` gives, which must change nothing: read with
    :func:`_scan_done`, a torn last line was cut off the file, and an output that is not
    rm-service's (a file named by mistake) was "cannot resume. Fix or delete that line"
    rather than "exists"."""
    graded = LineSet()
    with io_error("read", path), path.open("rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                graded.add(_line_of(raw))
            except (ValueError, KeyError, TypeError):
                return None
    return graded


def _count_records(path: Path) -> int:
    """Non-blank lines of the input: the progress bar's total."""
    with io_error("read", path), path.open("rb") as f:
        return sum(1 for raw in f if not blank_line(raw))


class _Reader:
    """Yields records from a JSONL file (or the rows of a Parquet file or saved dataset, from
    ``rm_service._readers``), remembering each record's line (row) number by index."""

    def __init__(
        self,
        path: Path,
        f: IO[bytes] | None,
        done: LineSet,
        errors_out: Sink | None,
        rows: Iterator[tuple[int, dict[str, Any]]] | None = None,
        listed: LineSet | None = None,
    ) -> None:
        self.path = path
        self.listed = listed if listed is not None else LineSet()  # already in the errors file
        self.f = f
        self.rows = rows  # (row, record) of a Parquet file or saved dataset, instead of lines
        self.unit = "line" if rows is None else "row"
        self.done = done
        self.errors_out = errors_out
        self.lines: dict[int, int] = {}  # runner index -> input line, only while in flight
        self.index = 0
        self.invalid = 0
        self.skipped = 0
        self.still_invalid = 0  # listed by an earlier run and still bad (in ``skipped`` too)
        self.fixed = LineSet()  # listed by an earlier run and now a record: no longer an error
        self.on_invalid: Callable[[], None] | None = None

    def __iter__(self) -> Iterator[Any]:
        with io_error("read", self.path):  # only reading the input raises OSError here
            yield from self._records()

    def _records(self) -> Iterator[Any]:
        if self.rows is not None:
            for row, record in self.rows:
                if row in self.done:
                    self.skipped += 1
                    continue
                self.lines[self.index] = row
                self.index += 1
                yield record
            return
        assert self.f is not None
        for lineno, raw in enumerate(self.f, start=1):
            if blank_line(raw):
                continue
            if lineno in self.done:
                self.skipped += 1
                continue
            try:
                record = parse_record(raw)
            except ValueError as exc:
                if self.errors_out is None:
                    raise InputError(f"invalid record: {exc}", line=lineno) from None
                if lineno in self.listed:  # still bad, and listed by an earlier run
                    self.skipped += 1
                    self.still_invalid += 1
                    continue
                self.invalid += 1
                text = raw[:200].decode("utf-8", "replace")
                self.errors_out.write({"line": lineno, "error": str(exc), "text": text})
                if self.on_invalid is not None:
                    self.on_invalid()
                continue
            if lineno in self.listed:
                self.fixed.add(lineno)
            self.lines[self.index] = lineno
            self.index += 1
            yield record


def _drop_fixed(path: Path, done: LineSet, fixed: LineSet) -> None:
    """Rewrite the errors file without the lines that are records now (graded by this run or
    an earlier one): a line fixed since it was listed is no longer an error. Written beside the
    file it really is and moved over it, so a crash leaves the old list whole."""
    with io_error("rewrite", path):
        with path.open("rb") as f:
            if not any(_graded(raw, done, fixed) for raw in f):
                return  # nothing to drop: the list stays as it is
        with path.open("rb") as f, replacing(path) as new:
            new.writelines(raw for raw in f if not _graded(raw, done, fixed))


def _graded(raw: bytes, done: LineSet, fixed: LineSet) -> bool:
    """Whether an errors-file line names a line that is a record now."""
    try:
        line = json.loads(raw)["line"]
    except (ValueError, KeyError, TypeError):
        return False  # not ours to judge: kept as it is
    return type(line) is int and (line in done or line in fixed)


_BOM = b"\xef\xbb\xbf"


def blank_line(raw: bytes) -> bool:
    """Whether an input line holds no record: whitespace alone, or a UTF-8 byte order mark
    and whitespace (a file saved by Windows tools with an empty first line, or files
    concatenated, each with its mark). The JSON parser reads past a mark before a record; a
    mark alone was an "invalid record" that stopped the run."""
    return not raw.removeprefix(_BOM).strip()


def parse_record(raw: bytes) -> dict[str, Any]:
    """One JSONL line as a record: a JSON object, or ``ValueError`` saying what it is instead
    (``UnicodeDecodeError``, bad UTF-8, is a ``ValueError`` too). A JSON error gives its place
    within the line, not the parser's "line 2 column 1" (the line's own newline)."""
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        body = exc.doc.rstrip() if isinstance(exc.doc, str) else ""
        where = "at the end of the line" if exc.pos >= len(body) else f"at character {exc.pos + 1}"
        raise ValueError(f"{exc.msg} {where}{_array_hint(raw)}") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}{_array_hint(raw)}")
    return record


def _array_hint(raw: bytes) -> str:
    """What to do about a line that opens a JSON array: a whole file may be one (``[{...},
    {...}]``, or pretty-printed over many lines), which JSONL is not."""
    if not raw.removeprefix(_BOM).lstrip().startswith(b"["):
        return ""
    return (
        "; JSONL needs one JSON object per line, and a JSON array is not read "
        "(jq -c '.[]' IN.json > IN.jsonl converts one)"
    )


def check_record(
    runner: GradingRunner,
    record: Any,
    src: Path,
    line: int,
    unit: str = "line",
    *,
    nulls_ok: bool = False,
) -> None:
    """``runner.check`` for the record on ``line`` of ``src``, its error naming the file and the
    1-based line (``unit`` "row" for Parquet) instead of the runner's 0-based record index.
    ``nulls_ok``: a null field is the record's data, not the config's fault (see
    :meth:`GradingRunner.check`)."""
    try:
        runner.check(record, 0, nulls_ok=nulls_ok)
    except MappingError as exc:
        err = MappingError(
            f"{src} {unit} {line}: {exc.detail}", index=None, path=exc.path, field=exc.field
        )
        err.index = exc.index
        raise err from None


# --- the run ------------------------------------------------------------------------------


async def agrade_file(
    runner: GradingRunner,
    input_path: str | Path,
    output_path: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    skip_invalid: bool = False,
    errors_path: str | Path | None = None,
    report_path: str | Path | None = None,
    progress: bool = True,
) -> GradeFileResult:
    """Grade every record of ``input_path`` into ``output_path``; see the module docstring.

    Raises:
        InputError: a malformed line (without ``skip_invalid``), an output that exists
            without ``resume``/``overwrite``, or run files that are one file (the input, the
            output, the errors file, the report). Records graded before the error stay saved.
        MappingError: the first record does not fit the graders' mappers or required fields.
        RMServiceError: the output is in use by another run, or cannot be written.
    """
    src, out = Path(input_path), Path(output_path)
    err_path, report = side_paths(out, errors_path, report_path)
    # The lock sits beside the file the output really is: two runs writing one file through a
    # symbolic link and its target must meet at one lock.
    real = Path(os.path.realpath(out))
    lock_path = real.with_name(real.name + ".lock")
    run_path = real.with_name(real.name + ".run.json")  # beside the lock: one per real file
    if not src.exists():
        raise InputError(f"{src}: no such file")
    detect_format(src)  # a directory that is not a saved dataset fails here
    if str(output_path) == "-" or (out.exists() and not out.is_file()):
        # The output is read back for the summary and resume: a pipe or terminal cannot be
        # (writing to /dev/stdout hung, reading its own pipe), and "-" would be a file named "-".
        raise InputError(
            f"the output {out} must be a regular file (it is read back for the summary and "
            "--resume); write to a file and read that"
        )
    refuse_collisions(
        {
            "input": src,
            "output": out,
            "errors file": err_path,
            "report": report,
            "lock": lock_path,
            "run record": run_path,
        }
    )
    with io_error("write", out):
        for parent in {out.parent, err_path.parent}:
            if parent.exists() and not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{parent} is not a directory")
            parent.mkdir(parents=True, exist_ok=True)
        lock = RunLock(lock_path, out)
    try:
        return await _locked_run(
            runner, src, out, err_path, report, run_path, resume, overwrite, skip_invalid, progress
        )
    finally:
        lock.release()


async def _locked_run(
    runner: GradingRunner,
    src: Path,
    out: Path,
    err_path: Path,
    report: Path,
    run_path: Path,
    resume: bool,
    overwrite: bool,
    skip_invalid: bool,
    progress: bool,
) -> GradeFileResult:
    # An empty output holds nothing to lose (an interrupted start, an empty input): no flag needed.
    # The errors file follows the same rule: a stale one would be appended to (every bad line
    # listed twice) and, on a later resume, its lines taken as done.
    kept = ((out, ""), (err_path if skip_invalid else None, " (the errors file of an earlier run)"))
    fingerprint = reward_fingerprint(runner)
    legacy = reward_fingerprint(runner, settings=False)
    for path, what in kept:
        if path and path.is_file() and path.stat().st_size and not (resume or overwrite):
            # --resume is advised only where a resume would be accepted. An output without a
            # run record (from before them) is not read: it has nothing to check it against.
            lines = _graded_lines(out) if path == out and run_path.is_file() else None
            if lines is not None:
                check_run_record(run_path, src, out, fingerprint, lines, legacy=legacy)
            raise InputError(
                f"{path} exists; pass --resume to continue it or --overwrite to replace it{what}"
            )
    done = LineSet()
    if resume:
        _scan_done(out, done)
    # Checked against the graded lines only: a line in the errors file may have been fixed.
    recorded = resume and out.is_file() and out.stat().st_size > 0
    recorded = recorded and check_run_record(run_path, src, out, fingerprint, done, legacy=legacy)
    # Lines an earlier run sent to the errors file are read again: one fixed since is graded (it
    # was taken as done and never graded), one still bad is not listed twice.
    # Without --skip-invalid the list only tells which of its lines are records now (and are
    # dropped from it): an errors file this run does not use never stops it.
    listed = LineSet()
    if resume and skip_invalid:
        _scan_done(err_path, listed)
    elif resume and err_path.is_file():
        with contextlib.suppress(RMServiceError):
            _scan_done(err_path, listed)
    fmt = detect_format(src)
    if fmt != "jsonl":
        total: int | None = count_records(src, fmt)
    elif progress and src.is_file():
        total = _count_records(src)
    else:
        total = None  # a pipe is read once, and counting it would consume it
    overwrite = overwrite and not resume  # both: resume wins, nothing graded is dropped
    sink = Sink(out, truncate=overwrite)
    err_sink = Sink(err_path, truncate=overwrite) if skip_invalid else None

    def commit() -> None:
        """The first record passed its check (or there is none): now the output may change."""
        sink.open()
        # What the output is from: a new output's input, or, on a resume that passed its check,
        # the input as it is now, whose lines this run grades (a malformed line fixed since the
        # record was written must not make the next resume refuse). A pipe, read once, has no
        # head to record: the old record stays.
        if not recorded or fmt != "jsonl" or src.is_file():
            write_run_record(run_path, src, fingerprint)
        if overwrite and not (err_sink and err_sink.opened):
            with io_error("remove", err_path):
                err_path.unlink(missing_ok=True)  # stale: from the run being replaced

    try:
        with (
            io_error("read", src),
            src.open("rb") if fmt == "jsonl" else contextlib.nullcontext() as f_in,
        ):
            rows = None if fmt == "jsonl" else iter_records(src, fmt)
            reader = _Reader(src, f_in, done, err_sink, rows, listed)
            graded, not_ready = await _pump(
                runner, reader, sink, src, commit, total, done.count, progress
            )
    finally:
        sink.close()
        if err_sink is not None:
            err_sink.close()
    stale = ""
    if listed.count and err_path.is_file():  # lines an earlier run listed, graded since
        try:
            _drop_fixed(err_path, done, reader.fixed)
        except RMServiceError as exc:  # the output is complete: the list is a side note
            stale = f"{exc}; lines of {err_path} graded since are still listed there"
    with io_error("read", out), out.open(encoding="utf-8") as f:
        summary = summarize_jsonl(f, runner.reward_name)
    warnings = [
        f"grader {name!r} could not start ({error}); its components are unscored"
        for name, error in not_ready.items()
    ]
    if stale:
        warnings.append(stale)
    if summary.duplicates:
        warnings.append(
            f"{summary.duplicates} duplicate line(s) in {out} ignored (an input line graded "
            "more than once by an earlier run; the summary counts the first)"
        )
    if not (graded or reader.skipped or reader.invalid):
        warnings.append(f"no records in {src} (no non-blank lines); wrote an empty {out}")
    written: Path | None = report
    try:
        summary.write_html(report, title=f"rm-service: {src.name}")
    except OSError as exc:
        written = None
        warnings.append(
            f"could not write the report {report} ({exc.strerror or exc}); {out} is complete"
        )
    return GradeFileResult(
        graded=graded,
        skipped_done=reader.skipped,
        invalid=reader.invalid,
        summary=summary,
        output=out,
        report=written,
        errors=err_path if skip_invalid else None,
        warnings=warnings,
        still_invalid=reader.still_invalid,
    )


async def _pump(
    runner: GradingRunner,
    reader: _Reader,
    sink: Sink,
    src: Path,
    commit: Callable[[], None],
    total: int | None,
    done: int,
    progress: bool,
) -> tuple[int, dict[str, str]]:
    """Grade the reader's records into the sink: the records graded, and ``{grader: error}``
    of graders that could not start."""
    records = iter(reader)
    try:
        first = next(records)
    except StopIteration:
        commit()
        return 0, {}
    # A null field in the first record is that record's data: it grades as unscored, as it
    # would on any later line, rather than stop a run whose config is fine.
    check_record(runner, first, src, reader.lines[0], reader.unit, nulls_ok=True)
    commit()
    # Warm before the clock starts: the math worker pool and local models start here, not in
    # the first records' latency and the progress bar's rate.
    not_ready = await runner.aload()

    def chained() -> Iterator[Any]:
        yield first
        yield from records

    bar = None
    if progress:
        from tqdm.auto import tqdm

        # The whole input, starting at what earlier runs did: the rate and ETA are this run's.
        bar = tqdm(
            total=total,
            initial=done + reader.invalid if total is None else min(done + reader.invalid, total),
            unit="rec",
            desc="grading",
            file=sys.stderr,
            smoothing=0.1,
        )
        reader.on_invalid = lambda: bar.update(1)
    graded = unscored = 0
    try:
        async with contextlib.aclosing(runner.astream(chained())) as results:
            async for rec in results:
                line = reader.lines.pop(rec.index)
                row = record_json(rec, line=line)
                # The record's position in the input, as ``line`` (the runner numbers from 0 on
                # each run, so after a resume its index meant nothing).
                row["index"] = line - 1
                sink.write(row)
                graded += 1
                unscored += row["status"] != "ok"
                if bar is not None:
                    bar.update(1)
                    if graded % 64 == 0:
                        bar.set_postfix(unscored=unscored, refresh=False)
    finally:
        if bar is not None:
            bar.set_postfix(unscored=unscored)
            bar.close()
    return graded, not_ready


def grade_file(
    runner: GradingRunner, input_path: str | Path, output_path: str | Path, **kwargs: Any
) -> GradeFileResult:
    """Synchronous :func:`agrade_file`."""
    import asyncio

    return asyncio.run(agrade_file(runner, input_path, output_path, **kwargs))
