"""Records from the input formats a grading run accepts besides JSONL: Parquet files and
Hugging Face ``datasets`` saved with ``save_to_disk``.

Why these readers look the way they do:

* **Flat memory.** Parquet is read a record batch at a time (``iter_batches``), a saved dataset
  through its memory-mapped Arrow shards, so a file of any size grades in the memory of one
  batch, as JSONL does.
* **A position, not an index.** Every record comes with its 1-based row number in the input
  (across a saved dataset's shards, in the order ``load_from_disk`` reads them). Offline output
  lines carry it as ``line`` ("position in input", as for JSONL), resume keys on it, and errors
  name it as ``"in.parquet row 17"``.
* **Lazy heavy imports.** pyarrow and ``datasets`` are imported when a reader runs, so the JSONL
  path (and ``import rm_service``) never pays for them.
* **One reader for every engine.** The Ray engine reads each file with these same functions
  inside its read tasks (given an open file from any filesystem pyarrow knows), so both engines
  number rows and name errors alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

from rm_service._exceptions import InputError

__all__ = [
    "InputFormat",
    "count_records",
    "detect_format",
    "iter_arrow_stream",
    "iter_parquet",
    "iter_records",
    "iter_saved_dataset",
    "row_label",
    "saved_dataset_files",
]

InputFormat = Literal["jsonl", "parquet", "datasets"]

_PARQUET_SUFFIXES = (".parquet", ".pq")
_BATCH_ROWS = 1024


def detect_format(path: str | Path) -> InputFormat:
    """The format of a local input path: a directory saved by ``datasets.save_to_disk`` (it holds
    ``state.json`` and ``dataset_info.json``), a ``.parquet``/``.pq`` file, else JSONL."""
    p = Path(path)
    if p.is_dir():
        if (p / "state.json").is_file() and (p / "dataset_info.json").is_file():
            return "datasets"
        if (p / "dataset_dict.json").is_file():  # a DatasetDict, saved with save_to_disk
            raise InputError(_several_splits(p, _split_names(p)))
        raise InputError(
            f"{p} is a directory but not a dataset saved with datasets' save_to_disk (no "
            "state.json); the local engine reads one file: pass the file, or use --engine ray "
            "for a directory or glob of shards"
        )
    suffix = p.suffix.lower()
    if suffix in _NOT_READ:
        raise InputError(
            f"{p}: {_NOT_READ[suffix]} files are not read; give JSONL (one JSON object per line), "
            "Parquet (.parquet/.pq) or a directory saved with datasets' save_to_disk; pandas "
            "converts one: df.to_json('in.jsonl', orient='records', lines=True)"
        )
    if suffix in _PARQUET_SUFFIXES:
        return "parquet"
    if p.is_file():  # never a pipe: peeking would consume what the run reads
        try:
            with p.open("rb") as f:
                head = f.read(6)
        except OSError:
            head = b""  # the reader names the file and the error
        for magic, (kind, cat) in _COMPRESSED.items():
            if head.startswith(magic):
                raise InputError(
                    f"{p}: a {kind}-compressed file is not read; decompress it first, or pipe "
                    f"it in: {cat} {p} | rm-service grade /dev/stdin -o OUT.jsonl"
                )
    return "jsonl"


_NOT_READ = {".csv": "CSV", ".tsv": "TSV", ".xlsx": "Excel", ".xls": "Excel"}
"""Table formats a user may try first: named, rather than read as JSONL (whose first error,
"Expecting value at character 1", did not say the format was the problem)."""

_COMPRESSED = {
    b"\x1f\x8b": ("gzip", "gunzip -c"),
    b"BZh": ("bzip2", "bzcat"),
    b"\xfd7zXZ\x00": ("xz", "xzcat"),
    b"\x28\xb5\x2f\xfd": ("zstd", "zstdcat"),
    b"PK\x03\x04": ("zip", "unzip -p"),
}
"""Compressed files by their magic bytes: read as JSONL, a gzip file's first error was
"'utf-8' codec can't decode byte 0x8b in position 1", which did not say it was compressed."""


def row_label(path: str | Path, fmt: InputFormat) -> str:
    """How errors name a position in this input: ``line`` for JSONL, ``row`` otherwise."""
    return "line" if fmt == "jsonl" else "row"


def _jsonable(value: Any) -> Any:
    """Arrow values JSON cannot hold as they are (bytes, dates, decimals) as text, so a record
    read from Parquet is the record a JSONL line would be."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _need_pyarrow(source: Any) -> None:
    """pyarrow is not a dependency of the JSONL path: say how to get it, not a traceback."""
    try:
        import pyarrow  # type: ignore[import-untyped]  # noqa: F401
    except ModuleNotFoundError:
        raise InputError(
            f"{source}: reading Parquet or a saved dataset needs pyarrow (pip install pyarrow; "
            "the ray extra and datasets bring it too)"
        ) from None


def iter_parquet(
    source: str | Path | IO[bytes] | Any, *, label: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row, record)`` for every row of a Parquet file (a path or an open binary file, e.g. a
    ``pyarrow`` input stream from any filesystem), ``row`` 1-based, one batch in memory at a time.

    Raises:
        InputError: the file is missing or not Parquet, naming it.
    """
    _need_pyarrow(source)
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    label = label or str(source)
    try:
        pf = pq.ParquetFile(source)
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a non-Parquet file
        raise InputError(f"{label}: not a readable Parquet file ({exc})") from None
    row = 0
    for batch in pf.iter_batches(batch_size=_BATCH_ROWS):
        for rec in _rows(batch, label, row):
            row += 1
            yield row, _jsonable(rec)


def _rows(batch: Any, label: str, before: int) -> list[dict[str, Any]]:
    """A record batch's rows as dicts (maps as dicts), or an ``InputError`` naming the row that
    cannot be one: a map with a duplicate key is valid Arrow and Parquet, but no JSON object
    holds it (pyarrow raised a bare ``KeyError``, and every row of the batch was lost)."""
    try:
        return batch.to_pylist(maps_as_pydicts="strict")
    except KeyError:
        for i in range(batch.num_rows):
            try:
                batch.slice(i, 1).to_pylist(maps_as_pydicts="strict")
            except KeyError as exc:
                raise InputError(
                    f"{label} row {before + i + 1}: a map column holds a key twice ({exc}); a "
                    "record's maps must have distinct keys"
                ) from None
        raise


def iter_arrow_stream(
    source: str | Path | Any, start: int = 0, *, label: str | None = None
) -> Iterator[tuple[int, Any]]:
    """``(row, record)`` for an Arrow IPC stream file (a saved dataset's shard), rows numbered
    from ``start + 1``; a local path is memory-mapped, so only the current batch is read."""
    _need_pyarrow(source)
    import pyarrow as pa

    label = label or str(source)
    if isinstance(source, str | Path):
        try:
            source = pa.memory_map(str(source))
        except FileNotFoundError:
            raise InputError(f"{source}: no such file") from None
    try:
        reader = pa.ipc.open_stream(source)
    except Exception as exc:  # ArrowInvalid: not an Arrow stream
        raise InputError(
            f"{getattr(source, 'path', source)}: not an Arrow stream ({exc})"
        ) from None
    row = start
    for batch in reader:
        for rec in _rows(batch, label, row):
            row += 1
            yield row, _jsonable(rec)


def saved_dataset_files(path: str | Path) -> list[Path]:
    """The Arrow shards of a dataset saved with ``save_to_disk``, in the order it reads them
    (``state.json``'s ``_data_files``)."""
    p = Path(path)
    try:
        state = json.loads((p / "state.json").read_text(encoding="utf-8"))
        return [p / f["filename"] for f in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{p}: not a dataset saved with save_to_disk ({exc})") from None


def iter_saved_dataset(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row, record)`` for a dataset saved with ``datasets``' ``save_to_disk``, through
    ``datasets.load_from_disk`` (memory-mapped, so flat memory), rows 1-based.

    Raises:
        InputError: not a saved dataset (or a ``DatasetDict``, which holds several splits).
    """
    try:
        import datasets
    except ModuleNotFoundError:
        raise InputError(
            f"{path}: reading a saved dataset needs the datasets package (pip install datasets)"
        ) from None
    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: not a dataset saved with save_to_disk ({exc})") from None
    if isinstance(ds, datasets.DatasetDict):
        raise InputError(_several_splits(Path(path), list(ds)))
    row = 0
    for batch in ds.with_format("arrow").iter(batch_size=_BATCH_ROWS):
        for rec in _rows(batch, str(path), row):
            row += 1
            yield row, _jsonable(rec)


def _split_names(path: Path) -> list[str]:
    try:
        names = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
        return [str(n) for n in names] or ["train"]
    except (OSError, ValueError, KeyError, TypeError):
        return ["train"]


def _several_splits(path: Path, names: list[str]) -> str:
    return (
        f"{path} holds several splits ({', '.join(names)}); pass one split's directory, "
        f"e.g. {path / names[0]}"
    )


def iter_records(path: str | Path, fmt: InputFormat) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row, record)`` for a Parquet file or a saved dataset (JSONL has its own reader in
    the offline engine: its lines can be invalid one by one, these rows cannot)."""
    if fmt == "parquet":
        return iter_parquet(path)
    if fmt == "datasets":
        return iter_saved_dataset(path)
    raise ValueError(f"iter_records reads parquet or datasets, not {fmt}")


def count_records(path: str | Path, fmt: InputFormat) -> int:
    """Rows in a Parquet file (from its footer) or a saved dataset, for a progress bar."""
    _need_pyarrow(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(str(path)).metadata.num_rows)
        except Exception as exc:
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    total = 0
    for shard in saved_dataset_files(path):
        import pyarrow as pa

        with pa.memory_map(str(shard)) as f:
            total += pa.ipc.open_stream(f).read_all().num_rows
    return total
