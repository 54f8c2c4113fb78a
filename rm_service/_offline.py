"""Offline grading of JSONL files: streaming, resumable, and honest about bad lines.

* **Streaming.** Input lines are read one at a time as the runner asks for records; results are
  appended and flushed as each record completes (in completion order, each line carrying the
  input's ``line`` number and ``id``). Memory does not grow with the file.
* **Resumable.** With ``resume=True``, lines already present in the output (or in the errors
  file) are skipped, and a torn last line left by a killed process is cut off first, so a run
  killed with SIGKILL and restarted ends with every input line exactly once.
* **Bad input.** A line that is not a JSON object stops the run with an :class:`InputError` that
  names the line, after the records already in flight are finished and saved. With
  ``skip_invalid=True`` it goes to the errors file instead and the run continues.
* **Fail before spending.** The first record is checked against every grader's mapper and
  required fields before any grader runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rm_service._exceptions import InputError
from rm_service._runner import GradingRunner
from rm_service._summary import RunSummary, summarize_jsonl

__all__ = ["GradeFileResult", "agrade_file", "grade_file"]


@dataclass
class GradeFileResult:
    """What a run did: counts for this run, and the summary of the whole output file."""

    graded: int
    skipped_done: int
    invalid: int
    summary: RunSummary
    output: Path
    report: Path | None
    errors: Path | None


class _Done:
    """A bitmap of input line numbers already handled: 1 bit per line, flat in practice."""

    def __init__(self) -> None:
        self.bits = bytearray()
        self.count = 0

    def add(self, line: int) -> None:
        byte, bit = divmod(line, 8)
        if byte >= len(self.bits):
            self.bits.extend(bytes(byte - len(self.bits) + 1))
        if not self.bits[byte] & (1 << bit):
            self.bits[byte] |= 1 << bit
            self.count += 1

    def __contains__(self, line: int) -> bool:
        byte, bit = divmod(line, 8)
        return byte < len(self.bits) and bool(self.bits[byte] & (1 << bit))


def _scan_done(path: Path, done: _Done) -> None:
    """Collect the ``line`` numbers in an existing output, cutting off a torn last line."""
    if not path.exists():
        return
    good_end = 0
    with path.open("rb+") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # torn write from a killed run: drop it, the record is redone
            try:
                line = json.loads(raw)["line"]
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(
                    f"{path}: not an rm-service output line ({exc}); cannot resume"
                ) from None
            done.add(int(line))
            good_end += len(raw)
        f.truncate(good_end)


def _count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


class _Reader:
    """Yields records from a JSONL file, remembering each record's line number by index."""

    def __init__(self, f: IO[bytes], done: _Done, errors_out: IO[str] | None) -> None:
        self.f = f
        self.done = done
        self.errors_out = errors_out
        self.lines: dict[int, int] = {}  # runner index -> input line, only while in flight
        self.index = 0
        self.invalid = 0
        self.skipped = 0

    def __iter__(self) -> Iterator[Any]:
        for lineno, raw in enumerate(self.f, start=1):
            if not raw.strip():
                continue
            if lineno in self.done:
                self.skipped += 1
                continue
            try:
                record = json.loads(raw)
                if not isinstance(record, dict):
                    raise ValueError(f"expected a JSON object, got {type(record).__name__}")
            except (ValueError, UnicodeDecodeError) as exc:
                if self.errors_out is None:
                    raise InputError(f"invalid record: {exc}", line=lineno) from None
                self.invalid += 1
                text = raw[:200].decode("utf-8", "replace")
                self.errors_out.write(
                    json.dumps({"line": lineno, "error": str(exc), "text": text}) + "\n"
                )
                self.errors_out.flush()
                continue
            self.lines[self.index] = lineno
            self.index += 1
            yield record


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
        InputError: a malformed line (without ``skip_invalid``), or an output that exists
            without ``resume``/``overwrite``. Records graded before the error stay saved.
        MappingError: the first record does not fit the graders' mappers or required fields.
    """
    src, out = Path(input_path), Path(output_path)
    if not src.is_file():
        raise InputError(f"{src}: no such file")
    err_path = Path(errors_path) if errors_path else out.with_name(out.name + ".errors.jsonl")
    if out.exists() and not (resume or overwrite):
        raise InputError(f"{out} exists; pass --resume to continue it or --overwrite to replace it")
    done = _Done()
    if resume:
        _scan_done(out, done)
        if skip_invalid:
            _scan_done(err_path, done)
    elif overwrite:
        for p in (out, err_path):
            p.unlink(missing_ok=True)
    total = _count_lines(src)
    out.parent.mkdir(parents=True, exist_ok=True)

    with src.open("rb") as f_in, out.open("a", encoding="utf-8") as f_out:
        f_err = err_path.open("a", encoding="utf-8") if skip_invalid else None
        try:
            reader = _Reader(f_in, done, f_err)
            graded = await _pump(runner, reader, f_out, total - done.count, progress)
        finally:
            if f_err is not None:
                f_err.close()
    with out.open(encoding="utf-8") as f:
        summary = summarize_jsonl(f)
    summary.reward_name = runner.reward_name
    report = Path(report_path) if report_path else out.with_name(out.name + ".report.html")
    summary.write_html(report, title=f"rm-service: {src.name}")
    return GradeFileResult(
        graded=graded,
        skipped_done=reader.skipped,
        invalid=reader.invalid,
        summary=summary,
        output=out,
        report=report,
        errors=err_path if skip_invalid else None,
    )


async def _pump(
    runner: GradingRunner, reader: _Reader, f_out: IO[str], total: int, progress: bool
) -> int:
    records = iter(reader)
    try:
        first = next(records)
    except StopIteration:
        return 0
    runner.check(first, 0)

    def chained() -> Iterator[Any]:
        yield first
        yield from records

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max(total, 0), unit="rec", desc="grading", file=sys.stderr, smoothing=0.1)
    graded = unscored = 0
    try:
        async for rec in runner.astream(chained()):
            line = reader.lines.pop(rec.index)
            row = rec.to_json_dict()
            row["line"] = line
            if row["id"] is None:
                row["id"] = line
            f_out.write(json.dumps(row, ensure_ascii=False) + "\n")
            f_out.flush()
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
    return graded


def grade_file(
    runner: GradingRunner, input_path: str | Path, output_path: str | Path, **kwargs: Any
) -> GradeFileResult:
    """Synchronous :func:`agrade_file`."""
    import asyncio

    return asyncio.run(agrade_file(runner, input_path, output_path, **kwargs))
