"""Anonymous temporary files for pytp's spools, and the error a full temporary directory gives.

A backup spools its manifest (and, for an incremental, the chain's state),
a restore its selection and the pieces of members cut across tapes, a
rebuild what it read of a tape and the keys it has seen (issue 9: bounded
memory).  They all live in the temporary
directory (``$TMPDIR``, else ``/tmp``), which is often a small disk or a
tmpfs of its own: the catalog rebuild needs about 0.4 GB there per million
members.  When it fills up, the system's "No space left on device" names
no file (the spools are anonymous), and an administrator looks at the
tapes' or the catalog's disk.  :class:`TempSpaceFull` names the directory
and what was being spooled.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO

from pytp.tapeio import exitcodes

from .errors import CatalogError

#: errors that mean "no room": a full disk, a quota, a file size limit
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class TempSpaceFull(CatalogError):
    """The temporary directory has no room for a spool."""

    exit_code = exitcodes.EXIT_ERROR

    def __init__(self, what: str, err: BaseException, where: str | None = None) -> None:
        """:param where: the directory that is full (default: Python's temporary directory)."""
        where = where or tempfile.gettempdir()
        if isinstance(err, OSError) and err.errno == errno.EFBIG:
            message = (
                f"{what[:1].upper()}{what[1:]} outgrew this process's file size limit (`ulimit -f`) in the "
                f"temporary directory {where}: raise the limit and run the command again."
            )
        elif getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_IOERR_WRITE:
            # SQLite says "disk I/O error" for a file size limit (and a quota) where the system said EFBIG.
            message = (
                f"Could not write {what} in the temporary directory {where} (disk I/O error): it is full, over a "
                "quota or over this process's file size limit (`ulimit -f`). Free space there, set TMPDIR to "
                "a directory on a larger disk or raise the limit, and run the command again."
            )
        else:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            message = (
                f"No room in the temporary directory {where} for {what} ({reason}): free space there, "
                "or set TMPDIR to a directory on a larger disk, and run the command again."
            )
        super().__init__(message)


@contextmanager
def room_for(what: str) -> Iterator[None]:
    """Raise :class:`TempSpaceFull` for ``what`` where a spool's write finds no room."""
    try:
        yield
    except OSError as err:
        if err.errno in NO_ROOM and err.filename is None:
            raise TempSpaceFull(what, err) from err
        raise


def sqlite_temp_directory() -> str:
    """Where SQLite puts its temporary files: the first of ``$SQLITE_TMPDIR``, ``$TMPDIR``,
    ``/var/tmp``, ``/usr/tmp``, ``/tmp`` that is a directory this process may write (its
    unix VFS's order), else the current directory.

    Python's ``tempfile.gettempdir()`` is not the same answer: asked only once the
    directory is full, it finds no room to try a file there and says ``/tmp``.
    """
    for candidate in (os.environ.get("SQLITE_TMPDIR"), os.environ.get("TMPDIR"), "/var/tmp", "/usr/tmp", "/tmp"):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    return "."


@contextmanager
def sqlite_room_for(what: str) -> Iterator[None]:
    """Raise :class:`TempSpaceFull` for ``what`` where a private temporary SQLite database
    (``sqlite3.connect("")``, kept in the temporary directory) finds no room: "full", or
    the "disk I/O error" SQLite reports for a file size limit or a quota."""
    try:
        yield
    except sqlite3.OperationalError as err:
        if getattr(err, "sqlite_errorcode", None) in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR_WRITE):
            raise TempSpaceFull(what, err, sqlite_temp_directory()) from err
        raise


def open_temporary(prefix: str) -> IO[bytes]:
    """An anonymous temporary file (removed by the system when closed or when the process ends)."""
    return tempfile.TemporaryFile(prefix=prefix)


class SpoolFile:
    """An anonymous temporary file whose writes report a full temporary directory as such.

    :param what: what is spooled, for the message (``"a restore's selection"``).
    """

    def __init__(self, what: str, prefix: str = "pytp-") -> None:
        self.what = what
        with room_for(what):
            self._file = open_temporary(prefix)

    def write(self, data: bytes) -> int:
        with room_for(self.what):
            return self._file.write(data)

    def writelines(self, lines: Iterable[bytes]) -> None:
        with room_for(self.what):
            self._file.writelines(lines)

    def flush(self) -> None:
        with room_for(self.what):
            self._file.flush()

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # pickle.load reads with it
        return self._file.readinto(buffer)

    def readline(self, size: int = -1) -> bytes:  # and with this
        return self._file.readline(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        with room_for(self.what):  # a seek flushes what is buffered
            return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        with room_for(self.what):  # closing writes what is still buffered
            self._file.close()

    def __enter__(self) -> SpoolFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
