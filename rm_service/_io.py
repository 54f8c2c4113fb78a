"""File errors of a grading run as one line naming the file: a full disk is not a bug.

One idea, shared by the offline run (:mod:`rm_service._offline`) and its run record
(:mod:`rm_service._run_record`): an ``OSError`` while reading or writing a run's files becomes an
:class:`~rm_service.RMServiceError` that names the path and says what is kept.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rm_service._exceptions import RMServiceError

__all__ = ["RESUME_HINT", "io_error", "replacing"]

RESUME_HINT = "what is already in the output stays saved; fix this and rerun with --resume"


@contextlib.contextmanager
def io_error(action: str, path: Path) -> Iterator[None]:
    """Turn an ``OSError`` (disk full, a path under a file, no permission) into one
    :class:`RMServiceError` line that names ``path``; a full disk is not a bug."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.filename is not None and Path(os.fsdecode(exc.filename)) != path:
            reason += f": {os.fsdecode(exc.filename)}"
        raise RMServiceError(f"cannot {action} {path} ({reason}); {RESUME_HINT}") from exc


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """A new file that takes the place of ``path`` (of the file it links to) when the block
    ends without an error, and is removed otherwise: a crash or a full disk mid-write leaves the
    old file whole, where writing over it left it cut short. Beside the real file, under a name
    of its own, with the old file's permissions; a new file's are what the umask leaves of 0666,
    as for any file created (a fixed 0644 made a run record world-readable under umask 077)."""
    real = Path(os.path.realpath(path))
    while True:
        tmp = real.with_name(f"{real.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "wb") as f:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(f.fileno(), stat.S_IMODE(real.stat().st_mode))
            yield f
        os.replace(tmp, real)
    finally:
        tmp.unlink(missing_ok=True)  # moved into place, or not wanted
