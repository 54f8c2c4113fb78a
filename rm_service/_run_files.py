"""A grading run's files: where they go, the lock on them, and the append-only sink.

One idea, shared by the local engine (:mod:`rm_service._offline`), the Ray engine and the CLI:
the output, its errors file, report and run record are found beside each other, checked not to
be one another (or the input) before any is touched, guarded by one lock per output, and written
one whole line per write.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Any

from rm_service._exceptions import InputError, RMServiceError
from rm_service._io import io_error
from rm_service._wire import json_text

__all__ = [
    "RunLock",
    "Sink",
    "encode_line",
    "file_state",
    "refuse_collisions",
    "same_file",
    "side_paths",
    "writable_report",
]


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: the same inode (hard and symbolic links) when both
    exist, else the same resolved path (a file one of them would create)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def side_paths(
    out: Path, errors_path: str | Path | None, report_path: str | Path | None
) -> tuple[Path, Path]:
    """The errors file and the HTML report of output ``out``: as given, else beside it."""
    errors = Path(errors_path) if errors_path else out.with_name(out.name + ".errors.jsonl")
    report = Path(report_path) if report_path else out.with_name(out.name + ".report.html")
    return errors, report


def refuse_collisions(paths: dict[str, Path]) -> None:
    """Raise when two of the run's files are one file, before any of them is touched: with
    ``--overwrite``, an output that is the input used to be unlinked, input and all."""
    items = list(paths.items())
    for i, (name_a, a) in enumerate(items):
        for name_b, b in items[i + 1 :]:
            if same_file(a, b):
                raise InputError(
                    f"the {name_b} {b} is the same file as the {name_a} {a}; "
                    "choose another path (nothing was written)"
                )


class RunLock:
    """An exclusive ``flock`` on ``OUT.lock`` for the whole run, holding who took it.

    A sidecar, not the output itself: ``--overwrite`` truncates the output, and a lock on a
    file that is replaced locks nothing. The lock file is removed on release while still
    locked, and a run that locked a file since removed (it checks the inode) tries again,
    so two runs can never both hold "the" lock.
    """

    def __init__(self, path: Path, output: Path) -> None:
        self.path = path
        self.fd = -1
        while self.fd < 0:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RMServiceError(
                    f"{output} is in use by another run ({holder}); wait for it to finish or "
                    f"stop it, then rerun (lock file: {path})"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                st, now = os.fstat(fd), os.stat(path)
                current = (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)
            except FileNotFoundError:
                current = False
            if current:
                self.fd = fd
            else:  # the previous holder removed it between our open and flock: take a new one
                os.close(fd)
        mine = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        }
        try:
            os.ftruncate(self.fd, 0)
            os.write(self.fd, json.dumps(mine).encode())
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0))
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def encode_line(row: dict[str, Any]) -> bytes:
    """One JSONL line (see :func:`~rm_service._wire.json_text`)."""
    return (json_text(row) + "\n").encode("utf-8")


class Sink:
    """A JSONL file written one whole line per ``write`` call, opened on first use.

    Unbuffered: a failed write (disk full) leaves nothing pending that a later flush or close
    would fail on again, and at most a torn last line, which ``--resume`` cuts off.
    """

    def __init__(self, path: Path, truncate: bool) -> None:
        self.path = path
        self.mode = "wb" if truncate else "ab"
        self.f: IO[bytes] | None = None

    @property
    def opened(self) -> bool:
        return self.f is not None

    def open(self) -> None:
        if self.f is None:
            with io_error("write", self.path):
                self.f = open(self.path, self.mode, buffering=0)  # noqa: SIM115  (closed in close)

    def write(self, row: dict[str, Any]) -> None:
        self.open()
        assert self.f is not None
        view = memoryview(encode_line(row))
        with io_error("write", self.path):
            while view:
                view = view[self.f.write(view) or 0 :]

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


def file_state(path: Path) -> tuple[int, int, int] | None:
    """What tells a file changed (inode, size, modification time), or ``None`` when there is
    no file (or an empty one, which holds no records either)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns) if st.st_size else None


def writable_report(report: Path) -> None:
    """Refuse a report that cannot be written before anything is graded: found after the audit,
    it was a warning, and the report of a run of paid judge calls was lost."""
    folder = report.parent
    if report.is_dir():
        raise InputError(f"the report {report} is a folder; name a file (nothing was graded)")
    if not folder.is_dir():
        raise InputError(
            f"cannot write the report {report}: the folder {folder} does not exist "
            "(nothing was graded)"
        )
    # A report that exists is written over in place (``--report /dev/null``, a file made for it
    # in a shared folder): it needs its own permission, not its folder's.
    if not (
        os.access(report, os.W_OK) if report.exists() else os.access(folder, os.W_OK | os.X_OK)
    ):
        raise InputError(
            f"cannot write the report {report}: permission denied (nothing was graded)"
        )
