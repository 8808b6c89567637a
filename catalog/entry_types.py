"""How an entry's path and checksum are stored: compactly, read back whole (issue 9).

A catalog holds millions of entries, so each byte of a row counts ten
million times.  Two columns were stored twice as large as they need be:

- ``entry.path``, the exact bytes of the name, repeated ``path_text`` (its
  display and search form) byte for byte whenever the name is UTF-8, as
  nearly every name is.  :class:`RawPath` stores NULL then; a name that is
  not UTF-8 keeps its exact bytes.  Reading the column (ORM objects, Core
  selects, comparisons in a WHERE) gives the bytes either way:
  ``coalesce(path, utf8(path_text))``.
- ``entry.xxh3``, an xxh3-128 digest, as 32 hex characters.
  :class:`HexDigest` stores its 16 bytes and gives back the hex string
  (made by the database as it is selected).

Both read any older or foreign form too (a full path, a hex string), so a
row written by plain SQL, bypassing these types, still reads right; it only
takes more room.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import LargeBinary, String, TypeDecorator, func, literal
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement, Label
from sqlalchemy.sql.functions import GenericFunction

#: the column the full path is rebuilt from when ``path`` holds NULL
TEXT_COLUMN = "path_text"


class utf8_bytes(GenericFunction[bytes]):  # noqa: N801 - a SQL function's name
    """The UTF-8 bytes of a text value: ``CAST(x AS BLOB)`` / ``convert_to(x, 'UTF8')``."""

    type = LargeBinary()
    inherit_cache = True
    name = "utf8_bytes"


@compiles(utf8_bytes, "sqlite")
def _utf8_sqlite(element: utf8_bytes, compiler: Any, **kw: Any) -> str:
    # SQLite stores text as UTF-8 (the catalog's encoding), and a cast to BLOB keeps its bytes.
    return f"CAST({compiler.process(element.clauses, **kw)} AS BLOB)"


@compiles(utf8_bytes, "postgresql")
def _utf8_postgresql(element: utf8_bytes, compiler: Any, **kw: Any) -> str:
    return f"convert_to({compiler.process(element.clauses, **kw)}, 'UTF8')"


def is_plain(path: bytes) -> bool:
    """Whether ``path`` is exactly the UTF-8 of its ``path_text`` (then stored as NULL)."""
    try:
        path.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def full_path(column: Any) -> ColumnElement[bytes]:
    """The SQL expression of the whole path for a ``path`` column of ``entry`` (or an alias)."""
    text = getattr(column.table.c, TEXT_COLUMN, None)
    if text is None:
        # A subquery that selected path without path_text: the NULLs could not be
        # filled in, and returning them would lose names. Select path_text with it.
        raise TypeError(f"{column.table} selects {column.key} without {TEXT_COLUMN}, which it is rebuilt from")
    return func.coalesce(column, utf8_bytes(text), type_=LargeBinary)


class RawPath(TypeDecorator[bytes]):
    """``entry.path``: NULL when the name is UTF-8 (``path_text`` holds it), else its bytes.

    Only valid beside a ``path_text`` column holding ``path_text(path)``, as
    every insert of an entry writes it.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        return None if value is None or is_plain(value) else value

    def column_expression(self, colexpr: Any) -> Any:
        if isinstance(colexpr, Label):  # select(Entry.path.label("x"))
            return full_path(colexpr.element).label(colexpr.name)
        return full_path(colexpr)

    class comparator_factory(LargeBinary.Comparator[bytes]):  # noqa: N801 - SQLAlchemy's name
        """``Entry.path == b'/x'`` compares the whole path, not the stored NULL."""

        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            values = [literal(o, LargeBinary) if isinstance(o, bytes) else o for o in other]
            return op(full_path(self.expr), *values, **kwargs)


class digest_hex(GenericFunction[str]):  # noqa: N801 - a SQL function's name
    """A stored digest as lower-case hex, in SQL: one C call a row instead of a Python one."""

    type = String()
    inherit_cache = True
    name = "digest_hex"


@compiles(digest_hex, "sqlite")
def _digest_hex_sqlite(element: digest_hex, compiler: Any, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    # a text value is a digest stored before 0007 or by plain SQL: already hex
    return f"CASE WHEN typeof({value}) = 'blob' THEN lower(hex({value})) ELSE {value} END"


@compiles(digest_hex, "postgresql")
def _digest_hex_postgresql(element: digest_hex, compiler: Any, **kw: Any) -> str:
    return f"encode({compiler.process(element.clauses, **kw)}, 'hex')"


class HexDigest(TypeDecorator[str]):
    """``entry.xxh3``: a hex digest kept as its bytes (16 instead of 32).

    The database turns it back into hex as it is selected (``column_expression``),
    so reading millions of rows costs no Python call per value.
    """

    impl = LargeBinary
    cache_ok = True

    def column_expression(self, colexpr: Any) -> Any:
        if isinstance(colexpr, Label):
            return digest_hex(colexpr.element).label(colexpr.name)
        return digest_hex(colexpr)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        return None  # column_expression gave text already

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | str | None:
        if value is None:
            return None
        try:
            raw = bytes.fromhex(value)
        except (TypeError, ValueError):
            return value  # not a hex digest: kept as it is (SQLite), refused by a bytea column (PostgreSQL)
        return raw if raw.hex() == value else value  # upper case stays text, to read back unchanged

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        # Not called while result_processor gives none; kept for TypeDecorator's contract.
        return value if value is None or isinstance(value, str) else bytes(value).hex()
