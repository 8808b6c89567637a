"""A set of keys on disk, for the checks a rebuild makes across a whole manifest (issue 9).

A manifest's members must not share an offset, and members already in the
catalog are not added twice: both need every key seen so far, millions for a
large tape.  They are kept in a private temporary SQLite database (``connect("")``:
on disk beyond SQLite's small page cache, removed when closed or when the
process ends), not in a Python set of the whole tape.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .spool_file import sqlite_room_for

#: what the keys are, for the message of a full temporary directory
WHAT = "the keys a catalog rebuild has seen"


class KeySet:
    """Keys ``(group, offset, name)``: a tape file's id, a byte offset, a path.

    Several names may share a group and offset (deleted paths all sit at -1),
    so :meth:`find` tells an exact key from another name at the same place.
    """

    #: :meth:`find`'s answers
    ABSENT, PRESENT, OTHER_NAME = 0, 1, 2

    def __init__(self, by_name: bool = False) -> None:
        """:param by_name: also index the names, for :meth:`place_of`."""
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE k (g INTEGER, o INTEGER, n BLOB, PRIMARY KEY (g, o, n)) WITHOUT ROWID")
        if by_name:
            self._db.execute("CREATE INDEX k_n ON k (n)")
        self._db.execute("BEGIN")

    def __enter__(self) -> KeySet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def add(self, group: int, offset: int, name: bytes = b"") -> None:
        with sqlite_room_for(WHAT):
            self._db.execute("INSERT OR IGNORE INTO k VALUES (?, ?, ?)", (group, offset, name))

    def update(self, keys: Iterable[tuple[int, int, bytes]]) -> None:
        with sqlite_room_for(WHAT):
            self._db.executemany("INSERT OR IGNORE INTO k VALUES (?, ?, ?)", keys)

    def __contains__(self, key: tuple[int, int, bytes]) -> bool:
        return self._db.execute("SELECT 1 FROM k WHERE g = ? AND o = ? AND n = ?", key).fetchone() is not None

    def find(self, group: int, offset: int, name: bytes) -> int:
        """Whether ``(group, offset, name)`` is in the set, or another name is at that group and offset."""
        found = self._db.execute("SELECT max(n = ?) FROM k WHERE g = ? AND o = ?", (name, group, offset)).fetchone()[0]
        return self.ABSENT if found is None else self.PRESENT if found else self.OTHER_NAME

    def place_of(self, name: bytes) -> tuple[int, int] | None:
        """A ``(group, offset)`` where ``name`` is (made with ``by_name``, else a scan), or None."""
        return self._db.execute("SELECT g, o FROM k WHERE n = ? LIMIT 1", (name,)).fetchone()
