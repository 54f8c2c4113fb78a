"""What ``rm-service grade --engine ray`` reads and writes: input shards on any filesystem
pyarrow knows (local, ``s3://``, ``gs://``, ``hdfs://``...), and the JSONL part files.

Why a datasource of our own rather than ``ray.data.read_json``/``read_parquet``:

* **A stable position for every record.** Resume is keyed on ``key`` = ``source:line`` (the
  shard's path under the input, and the record's 1-based row in it). Ray's readers split and
  merge blocks as they like and number nothing; here one read task reads one shard from its
  first row, so the same record gets the same key on every run, as long as the input files are
  the same (the local CLI's line-keyed resume asks the same). The record's own id is not the
  key: ids need not be unique, and a duplicate id would skip a record on resume.
* **A bad line is a row, not a crash.** Ray's JSON reader fails the job on the first invalid
  line, and infers one schema for records whose fields differ. Here each record travels as its
  JSON text, and an invalid line as an ``error`` the grader turns into an ``error`` row naming
  the line, as the local CLI's ``--skip-invalid`` would.
* **The same readers as the local CLI** (:mod:`rm_service._readers`), so both engines number
  rows and read Parquet and saved datasets alike.
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.fs as pafs  # type: ignore[import-untyped]
from ray.data.block import BlockAccessor, BlockMetadata
from ray.data.datasource import Datasource, ReadTask
from ray.data.datasource.file_datasink import BlockBasedFileDatasink

from rm_service._exceptions import InputError
from rm_service._offline import blank_line, parse_record
from rm_service._readers import InputFormat, iter_arrow_stream, iter_parquet

__all__ = [
    "JsonLinesSink",
    "RecordsDatasource",
    "Shard",
    "lines",
    "list_shards",
    "read_shard",
    "resolve",
]

_BLOCK_ROWS = 256
_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")
"""What Arrow's ``open_input_stream`` decompresses, told by the name: a JSONL file so
compressed is read as JSONL (in a directory or a glob too, where it was skipped without a
word: its records were never graded)."""
_GLOB = set("*?[")

READ_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("source", pa.string()),
        ("line", pa.int64()),
        ("record", pa.string()),
        ("error", pa.string()),
    ]
)


@dataclass(frozen=True)
class Shard:
    """One input file: where it is, how to read it, and how output rows name it."""

    path: str  # on ``filesystem``
    name: str  # relative to the input root: the ``source`` of its rows and their key's prefix
    fmt: InputFormat
    size: int
    first_row: int = 0  # rows before it (a saved dataset's later shards)


_Inode = tuple[int, int]
"""A local file's ``(st_dev, st_ino)``: one file, whatever path reached it."""


def resolve(uri: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path on it)`` for a local path or a URI."""
    if "://" in uri:
        try:
            return pafs.FileSystem.from_uri(uri)
        except Exception as exc:  # ArrowInvalid: an unknown scheme
            raise InputError(f"{uri}: cannot open this filesystem ({exc})") from None
    return pafs.LocalFileSystem(), posixpath.abspath(uri)


def _fmt(path: str) -> InputFormat | None:
    low = path.lower()
    if low.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    stem = low.rpartition(".")[0] if low.endswith(_COMPRESSED_SUFFIXES) else low
    if stem.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    return None


def _hidden(rel: str) -> bool:
    return any(part.startswith((".", "_")) for part in rel.split("/"))


def list_shards(uri: str) -> list[Shard]:
    """The input files of ``uri``: a file, a directory (its JSONL/Parquet files, recursively,
    hidden and ``_``-prefixed ones skipped), a dataset saved by ``save_to_disk``, or a glob.
    Sorted by path, so every run sees the same order.

    Raises:
        InputError: nothing there, or nothing gradable there.
    """
    fs, path = resolve(uri)
    inodes: dict[str, _Inode] = {}  # filled by a local walk, for _once
    if any(c in _GLOB for c in path):
        parts = path.split("/")
        cut = next(i for i, p in enumerate(parts) if any(c in _GLOB for c in p))
        base = "/".join(parts[:cut]) or "/"
        files = [i for i in _walk(fs, base, uri, inodes) if _glob_match(i.path, path)]
        if not files:
            raise InputError(f"{uri}: no file matches")
        return _shards(fs, files, base, uri, inodes=inodes)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"{uri}: no such file or directory")
    if info.type == pafs.FileType.File:
        return _shards(fs, [info], posixpath.dirname(path), uri, single=True)
    state = fs.get_file_info(posixpath.join(path, "state.json"))
    if state.type == pafs.FileType.File:
        return _saved_dataset(fs, path, uri)
    return _shards(fs, _walk(fs, path, uri, inodes), path, uri, inodes=inodes)


def _glob_match(path: str, pattern: str) -> bool:
    """A glob's match, one path segment per pattern segment: ``*`` stops at ``/``, as in a
    shell (``fnmatch`` alone let ``rollouts/*.parquet`` take ``rollouts/old/x.parquet`` too,
    a copy graded twice). A ``**`` segment is any number of directories, none included, as
    with ``glob(recursive=True)``: read as ``*``, ``rollouts/**/*.parquet`` dropped every file
    two levels down, which the plain ``fnmatch`` had read."""
    return _segments_match(path.split("/"), pattern.split("/"))


def _segments_match(parts: list[str], pats: list[str]) -> bool:
    for i, pat in enumerate(pats):
        if pat == "**":
            rest = pats[i + 1 :]
            return any(_segments_match(parts[j:], rest) for j in range(i, len(parts) + 1))
        if i >= len(parts) or not fnmatch.fnmatchcase(parts[i], pat):
            return False
    return len(parts) == len(pats)


def _walk(fs: Any, base: str, uri: str, inodes: dict[str, _Inode]) -> list[Any]:
    """The files under ``base``; a local walk also fills ``inodes`` (each file's path to its
    :data:`_Inode`), so :func:`_once` need not stat them again."""
    if isinstance(fs, pafs.LocalFileSystem):
        return _walk_local(base, uri, inodes)
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    except (FileNotFoundError, OSError) as exc:
        raise InputError(f"{uri}: cannot list {base} ({exc})") from None
    return [i for i in infos if i.type == pafs.FileType.File]


def _walk_local(base: str, uri: str, inodes: dict[str, _Inode]) -> list[Any]:
    """The unhidden files under a local ``base``, following directory links, each directory
    listed once. Arrow's recursive listing followed a link back up (``ln -s . loop``) until
    the kernel's limit, each file graded once per level (41 times), and with two such links it
    never returned; a walk that only refused the directories it was inside still listed a
    directory once per path to it, so links that fan out (each level linking twice to the next)
    made it exponential. The real tree is walked before the links, so a file is found under its
    own path where it has one.

    Hidden and ``_``-prefixed entries are never entered nor stat-ed: :func:`_shards` drops
    every file under one, and a ``.git`` or Spark's ``_temporary`` beside the data holds
    thousands of files whose stats only slowed the listing (on a network disk, minutes)."""
    found: list[Any] = []
    walked: set[str] = set()
    links: list[str] = []

    def visit(path: str, real: str) -> None:
        walked.add(real)
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"{uri}: cannot list {path} ({exc.strerror or exc})") from None
        for entry in entries:
            if _hidden(entry.name):
                continue
            if entry.is_dir(follow_symlinks=False):
                inner = os.path.join(real, entry.name)  # no link: its real path, without a stat
                if inner not in walked:
                    visit(entry.path, inner)
            elif entry.is_dir():
                links.append(entry.path)  # after the real tree
            elif entry.is_file():
                try:
                    st = entry.stat()
                except OSError as exc:
                    raise InputError(f"{entry.path}: cannot read ({exc.strerror or exc})") from None
                inodes[entry.path] = (st.st_dev, st.st_ino)
                found.append(pafs.FileInfo(entry.path, pafs.FileType.File, size=st.st_size))

    visit(base, os.path.realpath(base))
    while links:
        link = links.pop(0)
        real = os.path.realpath(link)
        if real not in walked:
            visit(link, real)
    return found


def _once(fs: Any, infos: list[Any], base: str, inodes: dict[str, _Inode]) -> list[Any]:
    """``infos`` with each local file once, under its own path where the input has it: a file
    reached by several paths (a link beside it, a linked directory, a hard link) was graded
    once per path, as distinct records. Two files with the same records are two inputs, and
    both are kept (``x.jsonl`` and ``x.jsonl.gz``). ``inodes``: what the walk found, so each
    file is stat-ed once; which path is a file's own is resolved only for a file reached by
    several (a ``realpath`` costs a stat per directory above it)."""
    if not isinstance(fs, pafs.LocalFileSystem):
        return infos  # object stores have no links
    paths: dict[_Inode, list[Any]] = {}
    for info in infos:
        inode = inodes.get(info.path)
        if inode is None:
            try:
                st = os.stat(info.path)
            except OSError as exc:
                raise InputError(f"{info.path}: cannot read ({exc.strerror or exc})") from None
            inode = (st.st_dev, st.st_ino)
        paths.setdefault(inode, []).append(info)
    real_base = os.path.realpath(base)

    def rank(info: Any) -> tuple[bool, str]:
        own = os.path.realpath(info.path) == posixpath.join(
            real_base, posixpath.relpath(info.path, base)
        )
        return not own, info.path

    return [same[0] if len(same) == 1 else min(same, key=rank) for same in paths.values()]


def _shards(
    fs: Any,
    infos: list[Any],
    base: str,
    uri: str,
    single: bool = False,
    inodes: dict[str, _Inode] | None = None,
) -> list[Shard]:
    # One named file: JSONL unless it says Parquet; else only gradable, unhidden files.
    if not single:
        infos = [i for i in infos if _fmt(i.path) and not _hidden(posixpath.relpath(i.path, base))]
    out = [
        Shard(i.path, posixpath.relpath(i.path, base), _fmt(i.path) or "jsonl", int(i.size or 0))
        for i in sorted(_once(fs, infos, base, inodes or {}), key=lambda i: i.path)
    ]
    if not out:
        raise InputError(
            f"{uri}: no .jsonl, .json or .parquet files there (nor .jsonl.gz, .bz2, .zst, .lz4)"
        )
    return out


def _saved_dataset(fs: Any, path: str, uri: str) -> list[Shard]:
    """A saved dataset's Arrow shards, numbered on as one input (as ``load_from_disk`` reads
    it): each shard's first row is the number of rows before it."""
    try:
        with fs.open_input_stream(posixpath.join(path, "state.json")) as f:
            files = [d["filename"] for d in json.loads(f.read())["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{uri}: not a dataset saved with save_to_disk ({exc})") from None
    name = posixpath.basename(path.rstrip("/"))
    shards, before = [], 0
    for fname in files:
        full = posixpath.join(path, fname)
        try:
            with fs.open_input_file(full) as f:
                rows = pa.ipc.open_stream(f).read_all().num_rows
                size = f.size()
        except Exception as exc:
            raise InputError(f"{full}: unreadable shard of {uri} ({exc})") from None
        shards.append(Shard(full, name, "datasets", int(size), first_row=before))
        before += rows
    return shards


def read_shard(fs: Any, shard: Shard) -> Iterator[tuple[int, str | None, str | None]]:
    """``(line, record JSON text, error)`` for every record of one shard; exactly one of the
    two texts is set. Blank JSONL lines are skipped (and counted, as the local CLI does).

    Raises:
        InputError: the shard cannot be opened or is not in its format, naming it.
    """
    try:
        if shard.fmt == "jsonl":
            with fs.open_input_stream(shard.path) as f:
                for line, raw in enumerate(lines(f), start=1):
                    if blank_line(raw):
                        continue
                    try:
                        parse_record(raw)
                    except ValueError as exc:
                        text = raw[:200].decode("utf-8", "replace")
                        yield line, None, f"line {line}: invalid record: {exc} ({text!r})"
                        continue
                    # A BOM (opening the file, or a file concatenated in): json.loads reads
                    # bytes past it, the text not.
                    text = raw.decode("utf-8-sig")
                    yield line, text.rstrip("\r\n"), None
            return
        with fs.open_input_file(shard.path) as f:
            rows = (
                iter_parquet(f, label=shard.path)
                if shard.fmt == "parquet"
                else iter_arrow_stream(f, start=shard.first_row, label=shard.path)
            )
            for line, rec in rows:
                yield line, json.dumps(rec, ensure_ascii=False), None
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{shard.path}: unreadable shard ({exc})") from None


def lines(f: Any) -> Iterator[bytes]:
    """Lines of a pyarrow input stream, each with its newline (the last may lack one)."""
    rest = b""
    while chunk := f.read(1 << 20):
        rest += chunk
        *whole, rest = rest.split(b"\n")
        for raw in whole:
            yield raw + b"\n"
    if rest:
        yield rest


def _block(rows: list[tuple[str, str, int, str | None, str | None]]) -> Any:
    cols = list(zip(*rows, strict=True))
    return pa.table(
        {f.name: pa.array(list(c), f.type) for f, c in zip(READ_SCHEMA, cols, strict=True)}
    )


class RecordsDatasource(Datasource):
    """One read task per shard, each yielding blocks of :data:`READ_SCHEMA` rows."""

    def __init__(self, uri: str, shards: list[Shard]) -> None:
        self.uri = uri
        self.shards = shards

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(s.size for s in self.shards) or None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        uri = self.uri

        def make(shard: Shard) -> ReadTask:
            def read() -> Iterable[Any]:
                fs, _ = resolve(uri)
                batch: list[tuple[str, str, int, str | None, str | None]] = []
                for line, record, error in read_shard(fs, shard):
                    batch.append((f"{shard.name}:{line}", shard.name, line, record, error))
                    if len(batch) >= _BLOCK_ROWS:
                        yield _block(batch)
                        batch = []
                if batch:
                    yield _block(batch)

            meta = BlockMetadata(
                num_rows=None, size_bytes=shard.size, exec_stats=None, input_files=(shard.path,)
            )
            return ReadTask(read, meta, schema=READ_SCHEMA)

        return [make(s) for s in self.shards]

    def get_name(self) -> str:
        return "rm_service_records"


class JsonLinesSink(BlockBasedFileDatasink):
    """Part files of JSONL lines: each row's ``json`` column, as the local CLI writes it."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__(path, file_format="jsonl", **kwargs)

    def write_block_to_file(self, block: BlockAccessor, file: Any) -> None:
        text = block.to_arrow().column("json").to_pylist()
        file.write("".join(t + "\n" for t in text).encode("utf-8"))
