"""What an incremental or differential backup compares with, on disk (issue 9).

The newest version of each path of the chain, and which of those paths the
walk did not see (deleted since), were a dict and a set of every path of the
source, made from an ORM object per entry: ~1.3 KiB per file (192 MiB peak
for an incremental of 50,000 unchanged files, 126 MiB for their full backup),
so an incremental of a few million files outgrew any memory bound.

Here the state lives in a private temporary SQLite database (``connect("")``:
on disk beyond SQLite's small page cache, gone when closed or when the process
ends), keyed by ``(parent, name)``.  The walk (``tarwriter.walk``) is depth
first, so the directories it is in form one chain of ancestors: each is read
from the database once, when the walk enters it, as a dict of its known
children, and what is left of that dict when the walk has left the directory
was not seen: those children are deleted, with everything the chain had below
them (one range query each), and go to a table of their own.  Memory holds
the known children of the directories on the current path, no more than the
walk itself holds (it sorts each directory's names).

Excluded paths, mount points not entered and what the walk could not look
at (a directory it may not list, a name it may not ``lstat``, the root
itself) are not deleted (``prune``), nor is anything below them: a ``partial``
job counts only for what it stored and saw.

A differential backup compares each file with the chain's full job, not with
its newest version (:meth:`ChainState.load_reference`), and records as deleted
every path of the full job *or* of the newest state that it did not find: a
file that only an incremental since the full stored, and that is gone now, is
deleted too (or a restore of the newest state, and ``--as-of`` the
differential, would bring it back), and a deletion an incremental recorded is
recorded again, so that the full job and the differential alone still give
the tree.

``verify --against-disk`` compares a directory with the newest versions the
catalog has of it in the same way (it held them in a dict as well).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .spool_file import sqlite_room_for
from .statuses import DELETED

#: what is kept, for the message of a full temporary directory (an incremental's, by default)
WHAT = "the state of the backup chain an incremental compares with"
#: rows written or read at a time
BATCH = 2000
#: the state's columns after ``(parent, name)``, in ``Known``'s order
KNOWN_COLUMNS = (
    "kind",
    "size",
    "mtime_ns",
    "ctime_ns",
    "inode",
    "mode",
    "uid",
    "gid",
    "link_target",
    "xxh3",
    "sparse_map",
)


@dataclass(frozen=True)
class Known:
    """What the catalog knows of a path's newest version in the chain."""

    kind: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    mode: int
    uid: int
    gid: int
    link_target: bytes | None
    xxh3: str | None
    #: a file stored sparse: the map its xxh3 was computed with
    sparse_map: str | None = None


def split(path: bytes) -> tuple[bytes, bytes]:
    """``(parent key, name)``: ``/a/b`` → ``(/a, b)``, ``/a`` → ``("", a)``, ``/`` → ``("", "")``."""
    parent, _, name = path.rpartition(b"/")
    return parent, name


def directory_key(path: bytes) -> bytes:
    """The parent key of ``path``'s children (``/`` → ``""``)."""
    return path.rstrip(b"/")


def _below(key: bytes, ancestor: bytes) -> bool:
    """Whether the directory ``key`` is ``ancestor`` or below it."""
    return key == ancestor or key.startswith(ancestor + b"/") or ancestor == b""


class ChainState:
    """The newest state of each path under ``root`` in a chain of jobs, and what a walk saw of it.

    Fill it with :meth:`load`; then either walk with it (``add``, ``prune``:
    ``tarwriter.SeenPaths``; :meth:`get` answers for the path just added) and
    read :meth:`missing` once the walk is done, or ask :meth:`get` alone (a
    dry run).  One walk per state.  Usable from one thread at a time, not
    necessarily the one that made it (a staging thread walks, the job's thread
    reads what is missing).
    """

    def __init__(self, root: bytes, what: str = WHAT) -> None:
        """:param what: what the state is, for the message of a full temporary directory."""
        self.root = root
        self.what = what
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        columns = ", ".join(KNOWN_COLUMNS)
        self._db.execute(_create_sql("state"))
        self._db.execute("CREATE TABLE missing (path BLOB PRIMARY KEY) WITHOUT ROWID")
        self._db.execute("BEGIN")
        self._upsert = _upsert_sql("state")
        self._select = f"SELECT {columns} FROM state WHERE parent = ? AND name = ?"
        self._select_reference = f"SELECT {columns} FROM reference WHERE parent = ? AND name = ?"
        self.children_sql = f"SELECT name, {columns} FROM state WHERE parent = ?"
        self._reference_children_sql = self.children_sql.replace("FROM state", "FROM reference")
        #: a differential's: :meth:`get` answers with the full job's row, and its paths may be missing too
        self._has_reference = False
        #: the directories the walk is in, outermost first: key and the known children not seen yet
        self._open: list[tuple[bytes, dict[bytes, tuple[Any, ...]]]] = []
        #: the path :meth:`add` took last, and its known state
        self._last: tuple[bytes, tuple[Any, ...] | None] | None = None
        self._finished = False
        self._root_pruned = False
        #: the most known children held in memory at once (tests: the bound)
        self.peak_held = 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ChainState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- filling ---------------------------------------------------------------

    def load(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """Rows ``(path, *KNOWN_COLUMNS)`` of the chain's entries, oldest first:
        each replaces the path's state, a deletion marker removes it.  Returns
        how many rows there were."""
        batch: list[tuple[Any, ...]] = []
        count = 0
        with sqlite_room_for(self.what):
            for path, kind, *rest in rows:
                count += 1
                parent, name = split(path)
                if kind == DELETED:
                    if batch:
                        self._db.executemany(self._upsert, batch)
                        batch = []
                    self._db.execute("DELETE FROM state WHERE parent = ? AND name = ?", (parent, name))
                    continue
                batch.append((parent, name, kind, *rest))
                if len(batch) >= BATCH:
                    self._db.executemany(self._upsert, batch)
                    batch = []
            if batch:
                self._db.executemany(self._upsert, batch)
        return count

    def load_reference(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """A differential's: rows ``(path, *KNOWN_COLUMNS)`` of the full job it compares with.

        :meth:`load` still gets the newest state of the chain since that job.
        :meth:`get` then answers with the full job's row (None: new since), and
        a path of either that the walk does not find is missing.
        """
        self._db.execute(_create_sql("reference"))
        self._has_reference = True
        insert = _upsert_sql("reference")
        count = 0
        rows = iter(rows)
        with sqlite_room_for(self.what):
            while batch := list(itertools.islice(rows, BATCH)):
                count += len(batch)
                self._db.executemany(insert, ((*split(path), *rest) for path, *rest in batch if rest[0] != DELETED))
        return count

    # -- asking ----------------------------------------------------------------

    def get(self, path: bytes) -> Known | None:
        """What ``path`` is compared with: its newest version in the chain (a differential's:
        its version in the full job), or None."""
        if self._has_reference:
            row = self._db.execute(self._select_reference, split(path)).fetchone()
        elif self._last is not None and self._last[0] == path:
            row = self._last[1]
        else:
            row = self._db.execute(self._select, split(path)).fetchone()
        return Known(*row) if row is not None else None

    # -- walking (tarwriter.SeenPaths) -----------------------------------------

    def add(self, path: bytes, is_dir: bool) -> None:
        """The walk found ``path`` (a directory when ``is_dir``)."""
        parent, name = split(path)
        self._leave_all_but(parent)
        if not self._open or self._open[-1][0] != parent:
            self._enter(parent)  # the root's parent: the walk starts
        known = self._open[-1][1].pop(name, None)
        self._last = (path, known)
        if is_dir:
            key = directory_key(path)
            if key != self._open[-1][0]:  # (the root "/" shares its key with its parent's)
                self._enter(key)
        elif known is not None and known[0] == "dir":
            # A directory that is something else now: what the chain had below it is gone.
            with sqlite_room_for(self.what):
                self._record_below(directory_key(path))

    def prune(self, path: bytes) -> None:
        """``path`` and what is below it were left out (excluded, a mount point not entered)
        or could not be looked at: not deleted."""
        if not self._open and self._last is None:
            self._root_pruned = True  # the root itself (it could not be read)
            return
        key = directory_key(path)
        if self._open and self._open[-1][0] == key and key != split(path)[0]:
            self._open[-1] = (key, {})  # a directory just found, not entered
            return
        parent, name = split(path)
        for open_key, children in reversed(self._open):
            if open_key == parent:
                children.pop(name, None)
                return

    def missing(self) -> Iterator[bytes]:
        """The known paths the walk did not see and did not leave out (deleted since), in byte order.

        Ends the walk: a root the walk never found is missing, with all below it.
        """
        if not self._finished:
            self._finished = True
            root_parent = split(self.root.rstrip(b"/") or b"/")[0]
            if not self._open and self._last is None and not self._root_pruned:
                self._enter(root_parent)  # the root itself was never seen
            self._leave_all_but(None)
        cursor = self._db.execute("SELECT path FROM missing ORDER BY path")
        while rows := cursor.fetchmany(BATCH):
            yield from (row[0] for row in rows)

    def _enter(self, key: bytes) -> None:
        children = {row[0]: row[1:] for row in self._db.execute(self.children_sql, (key,))}
        if self._has_reference:
            for name, *row in self._db.execute(self._reference_children_sql, (key,)):
                newest = children.get(name)
                if newest is None or (row[0] == "dir" and newest[0] != "dir"):
                    # a directory in the full job: what it had below is gone with it
                    children[name] = tuple(row)
        self._open.append((key, children))
        held = sum(len(c) for _, c in self._open)
        if held > self.peak_held:
            self.peak_held = held

    def _leave_all_but(self, key: bytes | None) -> None:
        """Close the open directories that ``key`` is not in (all, for None): their unseen children are missing."""
        while self._open and (key is None or not _below(key, self._open[-1][0])):
            parent, children = self._open.pop()
            if children:
                self._record_missing(parent, children)

    def _record_missing(self, parent: bytes, children: dict[bytes, tuple[Any, ...]]) -> None:
        prefix = parent + b"/"
        with sqlite_room_for(self.what):
            self._db.executemany(_INSERT_MISSING, ((prefix + name,) for name in children))
            for name, row in children.items():
                if row[0] == "dir":
                    # Everything the chain had below a directory that is gone: not walked, so not seen.
                    self._record_below(directory_key(prefix + name))

    def _record_below(self, key: bytes) -> None:
        """Every known path below the directory ``key`` is missing."""
        for table in ("state", "reference") if self._has_reference else ("state",):
            sql = BELOW_SQL.replace("FROM state", f"FROM {table}")
            cursor = self._db.execute(sql, (key, key + b"/", key + b"0"))  # "0" follows "/"
            while rows := cursor.fetchmany(BATCH):
                self._db.executemany(_INSERT_MISSING, ((p + b"/" + n,) for p, n in rows))


def _create_sql(table: str) -> str:
    """A table of known paths: ``(parent, name)`` and :data:`KNOWN_COLUMNS`."""
    return (
        f"CREATE TABLE {table} (parent BLOB, name BLOB, {', '.join(KNOWN_COLUMNS)}, "
        "PRIMARY KEY (parent, name)) WITHOUT ROWID"
    )


def _upsert_sql(table: str) -> str:
    return f"INSERT OR REPLACE INTO {table} VALUES (?, ?, {', '.join('?' for _ in KNOWN_COLUMNS)})"


_INSERT_MISSING = "INSERT OR IGNORE INTO missing VALUES (?)"
#: the known paths below a directory: its own children, and those of every directory below it
BELOW_SQL = "SELECT parent, name FROM state WHERE parent = ? OR (parent >= ? AND parent < ?)"
