"""Python values spooled to disk and read back in the order written (issue 9: bounded memory).

A rebuild reads a whole tape before it imports it (one transaction per tape),
and a manifest can list millions of members: what was read is kept here, on
disk, not in lists.  The file is anonymous (``tempfile.TemporaryFile``): the
system removes it when it is closed, and also when the process is killed.

Values are ``marshal``-ed (dicts, lists, text, numbers: what JSON gives),
each behind its length, and read back with ``os.pread``, so a segment can be
read while another is read or written.
"""

from __future__ import annotations

import marshal
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .spool_file import SpoolFile

_LENGTH = struct.Struct("<I")
#: bytes written or read at a time
_CHUNK = 1 << 20


class RecordSpool:
    """An anonymous temporary file of records; :meth:`segment` marks where a run of them starts.

    :param what: what the records are, for the message of a full temporary directory.
    """

    def __init__(self, what: str = "what a catalog rebuild read of a tape") -> None:
        self._file = SpoolFile(what, prefix="pytp-spool-")
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        #: bytes of the file, the pending ones included
        self.size = 0

    def __enter__(self) -> RecordSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def append(self, value: Any) -> None:
        data = marshal.dumps(value)
        self._pending.append(_LENGTH.pack(len(data)))
        self._pending.append(data)
        self._pending_bytes += len(data) + _LENGTH.size
        self.size += len(data) + _LENGTH.size
        if self._pending_bytes >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._file.write(b"".join(self._pending))
            self._file.flush()
            self._pending, self._pending_bytes = [], 0

    def read(self, start: int, end: int) -> Iterator[Any]:
        """The records written between byte ``start`` and byte ``end``, in order."""
        self._flush()
        fd = self._file.fileno()
        position, buffer, at = start, b"", 0
        while True:
            available = len(buffer) - at
            need = _LENGTH.size + (_LENGTH.unpack_from(buffer, at)[0] if available >= _LENGTH.size else 0)
            if available >= need:
                yield marshal.loads(buffer[at + _LENGTH.size : at + need])
                at += need
                continue
            if position >= end:
                if available:
                    raise OSError(f"spool segment {start}..{end} ends inside a record")
                return
            chunk = os.pread(fd, min(max(_CHUNK, need), end - position), position)
            if not chunk:
                raise OSError(f"spool file ends at byte {position}, before byte {end}")
            position += len(chunk)
            buffer, at = buffer[at:] + chunk, 0


@dataclass(frozen=True)
class Segment:
    """A run of records of one spool: iterating reads them from disk again, each time."""

    spool: RecordSpool
    start: int
    end: int
    count: int

    def __iter__(self) -> Iterator[Any]:
        return self.spool.read(self.start, self.end)

    def __len__(self) -> int:
        return self.count


class SegmentWriter:
    """Appends records to ``spool`` and gives back the :class:`Segment` they make."""

    def __init__(self, spool: RecordSpool) -> None:
        self.spool = spool
        self.start = spool.size
        self.count = 0

    def append(self, value: Any) -> None:
        self.spool.append(value)
        self.count += 1

    def finish(self) -> Segment:
        return Segment(self.spool, self.start, self.spool.size, self.count)
