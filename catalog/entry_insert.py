"""``entry`` rows as the catalog stores them, inserted with the DB-API's executemany.

A Core insert compiles the statement, runs a bind processor per value and
builds a parameter dict per row, which cost twice SQLite's own work (issue 9,
backup profile).  The backup's ``EntrySink`` and the rebuild's ``EntryRows``
both build plain tuples here instead, in :data:`INSERT_COLUMNS` order, with
the stored forms ``entry_types.RawPath`` and ``HexDigest`` would give, and
send them with one SQL string per batch (``COPY`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError

from pytp.tapeio.tarwriter import MemberRecord

from .models import path_text

#: the member's values in the order of ``MemberRecord`` (what backup and rebuild both have)
MEMBER_FIELDS = MemberRecord._fields
#: the columns an ``entry`` row is inserted with (``id`` is the database's): the job, the
#: tape file, the stored forms of ``path`` and ``xxh3``, then the member's other fields
INSERT_COLUMNS = (
    "job_id",
    "tape_file_id",
    "path",
    "path_text",
    "xxh3",
    *(name for name in MEMBER_FIELDS if name not in ("path", "xxh3")),
)
#: where ``xxh3`` sits in a member's values (``path`` is first; the rest are copied as they are)
_XXH3 = MEMBER_FIELDS.index("xxh3")
assert MEMBER_FIELDS[0] == "path"
#: placeholders of the DB-API paramstyles pytp's drivers use (sqlite3: qmark; psycopg: pyformat)
_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def stored_row(job_id: int, tape_file_id: int, member: Sequence[Any]) -> tuple[object, ...]:
    """The row's values in :data:`INSERT_COLUMNS` order, as the database stores them.

    :param member: the member's values in :data:`MEMBER_FIELDS` order (a ``MemberRecord``).

    What ``RawPath`` and ``HexDigest`` would do per value, done here once: the
    path is NULL when ``path_text`` is its UTF-8, the digest is its 16 bytes
    (an upper-case or malformed one stays text, as ``HexDigest`` keeps it).
    """
    path = member[0]
    try:
        text, stored = path.decode(), None
    except UnicodeDecodeError:
        text, stored = path_text(path), path
    digest = member[_XXH3]
    if digest is not None:
        try:
            raw = bytes.fromhex(digest)
        except (TypeError, ValueError):
            raw = None
        if raw is not None and raw.hex() == digest:
            digest = raw
    return (job_id, tape_file_id, stored, text, digest, *member[1:_XXH3], *member[_XXH3 + 1 :])


def member_values(fields: dict[str, Any]) -> tuple[Any, ...]:
    """A member's values in :data:`MEMBER_FIELDS` order from its entry columns (``manifest.entry_fields``)."""
    return tuple(fields[name] for name in MEMBER_FIELDS)


def entry_insert_sql(dialect: Dialect) -> str:
    """The plain ``INSERT INTO entry`` of :data:`INSERT_COLUMNS`, in ``dialect``'s quoting and paramstyle."""
    placeholder = _PLACEHOLDER.get(dialect.paramstyle)
    if placeholder is None:
        raise ValueError(f"No entry insert for the {dialect.paramstyle!r} paramstyle of {dialect.name}")
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in INSERT_COLUMNS)
    return f"INSERT INTO entry ({columns}) VALUES ({', '.join(placeholder for _ in INSERT_COLUMNS)})"


def insert_rows(connection: Connection, rows: list[tuple[object, ...]]) -> None:
    """``rows`` (from :func:`stored_row`) into ``entry``, in ``connection``'s transaction.

    SQLite: one executemany (``exec_driver_sql`` keeps the engine's events and
    its exception types).  PostgreSQL: one ``COPY``, which costs the client a
    sixth of psycopg's executemany (3 against 17 µs a row, measured on 100,000
    rows) and the server less too; its errors are raised as SQLAlchemy's, as
    an executemany's would be.
    """
    if connection.dialect.name != "postgresql":
        connection.exec_driver_sql(entry_insert_sql(connection.dialect), rows)
        return
    dbapi = connection.dialect.loaded_dbapi
    quote = connection.dialect.identifier_preparer.quote
    statement = f"COPY entry ({', '.join(quote(name) for name in INSERT_COLUMNS)}) FROM STDIN"
    raw: Any = connection.connection.dbapi_connection
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except dbapi.Error as err:
        raise DBAPIError.instance(statement, None, err, dbapi.Error, dialect=connection.dialect) from err
