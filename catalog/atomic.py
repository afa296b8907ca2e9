"""Writing files the CLI and library produce (exports, plots) safely and atomically.

A target is written through a uniquely named temporary file created exclusively in the target's
own folder (``tempfile.mkstemp``: O_CREAT | O_EXCL, so a symlink planted at any temporary name
is never followed), flushed and fsynced, then renamed over the target with ``os.replace``: a
reader sees the old file or the whole new one, never a part. A target that exists and is not a
regular file (a FIFO, a device, a folder) is refused rather than replaced; a symlink at the
target itself is replaced by the new file, never written through.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from catalog.errors import InvalidInputError


def check_target(path: str | os.PathLike[str]) -> Path:
    """The path to write, or a clear error when it is empty or names something that is not a
    regular file (writing there would block on a FIFO or replace a device or folder)."""
    text = os.fspath(path)
    if not str(text).strip():
        raise InvalidInputError("No output file given; pass -o FILE (or -o - for standard output).")
    p = Path(text)
    try:
        st: os.stat_result | None = os.stat(p)  # follows a symlink: what it points at counts
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise InvalidInputError(f"Cannot write {p}: {exc.strerror or exc}.") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise InvalidInputError(f"{p} is {kind}; give the path of a file to write (or -o - for standard output).")
    if not p.name or p.name in (".", ".."):
        raise InvalidInputError(f"{p} is not a file name; give the path of a file to write.")
    if not p.parent.is_dir():
        raise InvalidInputError(f"Cannot write {p}: the folder {p.parent} does not exist. Create it first.")
    return p


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary handle on a new temporary file beside `path`; on success it is fsynced and renamed
    over `path`; on any error (or interrupt) it is removed and `path` is left as it was."""
    target = check_target(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise InvalidInputError(f"Cannot write {target}: {exc.strerror or exc}.") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; an export gets the usual mode
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        check_target(target)  # re-check: the target may have become a FIFO or folder meanwhile
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
