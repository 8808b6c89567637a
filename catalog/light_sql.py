"""Listings read with plain SQL, through stdlib ``sqlite3`` when that is safe (issue 9).

``pytp tapes``, ``jobs`` and ``pools`` only read the catalog.  Opening it the
full way (``database.open_catalog``) costs SQLAlchemy, and closing jobs left
running costs the ORM (sqlmodel, pydantic): several times the listing itself.
So a listing first tries :func:`open_sqlite`: the catalog file opened
read-only with ``sqlite3``, its schema version read with one query and
compared with the head of the migration files, and one more query to see that
no job of this host was left running by a process that is gone.  Whenever it
cannot decide alone it gives way to the full open, which behaves exactly as
before: a catalog that does not exist yet is created, one that is not at the
head is refused with the upgrade message, a job whose process is gone is
closed (``reconcile``), and damage is reported as damage.  A catalog that is
not a plain SQLite file (PostgreSQL) always takes the full open; it reads
with the same SQL through SQLAlchemy Core (:class:`CoreReader`).

Every query is one SQL text with ``:name`` parameters, run unchanged by
either reader.  The rows are dicts of what the driver returned: no types are
applied, so datetimes stored by SQLite come back as text (:func:`as_datetime`).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from pytp.tapeio.procinfo import host_name, process_identity

from .schema_head import head_revision
from .statuses import JobStatus

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: one result row: column name (or label) → the driver's value
Row = dict[str, Any]
#: rows fetched from a cursor at a time by :meth:`Reader.batches`
FETCH = 2000


class Condition(NamedTuple):
    """A piece of a WHERE clause and its ``:name`` parameters."""

    sql: str
    params: dict[str, Any]


class Reader(Protocol):
    """Runs SQL texts with named parameters."""

    #: the database's dialect, as SQLAlchemy names it: ``sqlite`` or ``postgresql``
    dialect: str

    def rows(self, sql: str, **params: object) -> list[Row]:
        """The rows of one query, as dicts."""
        ...

    def batches(self, sql: str, params: dict[str, Any]) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of one query as the driver's tuples, a few thousand at a time: no
        object per row (SQLAlchemy's rows cost ~1.5 µs each; issue 9)."""
        ...

    def run(self, sql: str) -> None:
        """A statement without rows (a ``PRAGMA`` or ``SET``)."""
        ...


#: Ctrl-C came while SQLite was calling :func:`regexp`: SQLite reports any exception of a
#: function as "user-defined function raised exception", which is not the catalog's fault
_interrupted_in_regexp = False


def regexp(pattern: str, value: str | None) -> bool | None:
    """SQLite's ``value REGEXP pattern``, as SQLAlchemy's SQLite dialect defines it, on
    every connection pytp opens (``light_sql`` and ``database``)."""
    global _interrupted_in_regexp
    try:
        return None if value is None else re.search(pattern, value) is not None
    except KeyboardInterrupt:
        _interrupted_in_regexp = True  # a long pattern over many rows: the user gave up
        raise


def interrupted_in_regexp() -> bool:
    """Whether a query failed because Ctrl-C came while it was matching a pattern (exit 130)."""
    return _interrupted_in_regexp


class SqliteReader:
    """Queries through a stdlib ``sqlite3`` connection.

    :param raw: let ``sqlite3.Error`` through as it is (the checks of :func:`open_sqlite`).
    """

    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection, raw: bool = False) -> None:
        self.connection = connection
        self.raw = raw
        # What the full open sets on every connection (``database``) that decides a query's answer.
        connection.create_function("regexp", 2, regexp, deterministic=True)
        connection.execute("PRAGMA case_sensitive_like=ON")

    def rows(self, sql: str, **params: object) -> list[Row]:
        with self._errors(sql, params):
            cursor = self.connection.execute(sql, params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def batches(self, sql: str, params: dict[str, Any]) -> Iterator[list[tuple[Any, ...]]]:
        with self._errors(sql, params):
            cursor = self.connection.execute(sql, params)
            try:
                while chunk := cursor.fetchmany(FETCH):
                    yield chunk
            finally:
                cursor.close()

    def run(self, sql: str) -> None:
        with self._errors(sql, {}):
            self.connection.execute(sql).close()

    @contextmanager
    def _errors(self, sql: str, params: object) -> Iterator[None]:
        """``sqlite3.Error`` as SQLAlchemy's (:func:`_as_sqlalchemy`), unless ``raw``."""
        try:
            yield
        except sqlite3.Error as err:
            if self.raw:
                raise
            raise _as_sqlalchemy(err, sql, params) from err


def _as_sqlalchemy(err: sqlite3.Error, sql: str, params: object) -> Exception:
    """Damage or a lock found mid-listing, as SQLAlchemy's error for the driver's: the
    CLI already turns that into the message and exit code of the full path
    (``database.catalog_error``)."""
    from sqlalchemy.exc import DBAPIError

    return DBAPIError.instance(sql, params, err, sqlite3.Error)  # type: ignore[arg-type]


class CoreReader:
    """The same queries through SQLAlchemy Core: a ``Connection``, or an ORM ``Session`` (which flushes first)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._session = hasattr(connection, "get_bind")
        self.dialect: str = (connection.get_bind() if self._session else connection).dialect.name

    def rows(self, sql: str, **params: object) -> list[Row]:
        from sqlalchemy import text

        return [dict(row._mapping) for row in self.connection.execute(text(sql), params)]

    def batches(self, sql: str, params: dict[str, Any]) -> Iterator[list[tuple[Any, ...]]]:
        from sqlalchemy import text

        # Executed through SQLAlchemy (its events and logging as for any statement),
        # the rows taken from the DBAPI cursor.
        result = self._core().execute(text(sql), params)
        try:
            while chunk := result.cursor.fetchmany(FETCH):
                yield chunk
        finally:
            result.close()

    def run(self, sql: str) -> None:
        self._core().exec_driver_sql(sql)

    def _core(self) -> Any:
        """The Core ``Connection`` (a ``Session``'s, in its transaction)."""
        return self.connection.connection() if self._session else self.connection


def as_datetime(value: datetime | str | None) -> datetime | None:
    """A timestamp column's value as a ``datetime``: SQLite hands back SQLAlchemy's stored text.

    That text is ``YYYY-MM-DD HH:MM:SS.ffffff``, naive, in UTC as pytp stores
    it; PostgreSQL's driver already gives datetimes.
    """
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


# --- is the cheap path safe? -------------------------------------------------------------

#: the schema version, as alembic stamps it
STAMPED_REVISION = "SELECT version_num FROM alembic_version"
#: this host's jobs marked running; ``reconcile`` closes those whose process is gone
RUNNING_HERE = "SELECT pid, process_start FROM job WHERE status = :running AND host = :host"


def process_gone(host: str | None, pid: int | None, process_start: str | None) -> bool:
    """True if a job's process (``host``, ``pid``, ``process_start``) was of this host and no longer exists.

    A job without a recorded process (written by an older pytp) or of another
    host is never judged gone: this host cannot see other hosts' processes.
    """
    if host != host_name() or pid is None or process_start is None:
        return False
    return process_identity(pid) != process_start


def left_running(reader: Reader) -> bool:
    """Whether a running job of this host has lost its process (``reconcile.reconcile_jobs`` would close it)."""
    host = host_name()
    return any(
        process_gone(host, row["pid"], row["process_start"])
        for row in reader.rows(RUNNING_HERE, running=JobStatus.RUNNING, host=host)
    )


def sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL; None for anything else (a server, memory, options, quoting)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or any(c in url for c in "?%#"):
        return None
    database = url[len(prefix) :]
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def open_sqlite(url: str) -> sqlite3.Connection | None:
    """The SQLite catalog at ``url`` opened read-only in one read transaction, or None to take the full open.

    None when the URL is not a plain SQLite file, the file is missing or empty,
    the schema is not exactly the head, a job of this host was left running by
    a process that is gone, or SQLite reports anything at all.
    """
    path = sqlite_file(url)
    try:
        if path is None or path.stat().st_size == 0:
            return None
        # mode=ro: a listing never writes, and never creates a missing file.
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30, isolation_level=None)
    except (OSError, sqlite3.Error):
        return None
    try:
        connection.execute("BEGIN")  # one snapshot for every query of the listing
        reader = SqliteReader(connection, raw=True)
        stamped = [row["version_num"] for row in reader.rows(STAMPED_REVISION)]
        if stamped == [head_revision()] and not left_running(reader):
            return connection
    except sqlite3.Error:
        pass  # no version table, damage, a lock: the full open decides, and says why
    connection.close()
    return None


@contextmanager
def listing_reader(url: str, full_open: Callable[[], Engine]) -> Iterator[Reader]:
    """A reader for the catalog at ``url``: ``sqlite3`` when :func:`open_sqlite` allows, else ``full_open()``'s engine.

    :param full_open: opens the catalog the full way (``App.engine``: create,
        check the schema, close jobs left running); called only when needed.
    """
    connection = open_sqlite(url)
    if connection is not None:
        try:
            yield SqliteReader(connection)
        finally:
            connection.close()
        return
    with full_open().connect() as core:
        yield CoreReader(core)
