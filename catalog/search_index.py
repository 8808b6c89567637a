"""The index that finds a substring among millions of paths (issue 9).

A btree on ``entry.path_text`` serves neither ``LIKE '%x%'`` nor a regular
expression, so search walked every entry.  A trigram index does: on SQLite an
FTS5 ``trigram`` table over ``entry.path_text`` (external content, so the
paths are not stored twice; ``detail=none``, since only ``LIKE`` is asked of
it, which FTS5 checks against the content itself; no column sizes), kept by triggers so the
backup's insert path needs no change; on PostgreSQL a ``pg_trgm`` GIN index,
which the planner uses for ``LIKE`` and ``~`` by itself.

Measured at 1M entries (``bench/search_scale.py``, docs/performance.md): the
index costs less than the btree it replaces.

Note for later migrations: an SQLite ``batch_alter_table`` on ``entry``
recreates the table and drops its triggers; call :func:`install` again after it.
"""

from __future__ import annotations

import logging
import warnings

from sqlalchemy import text
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

#: the SQLite FTS5 table; its rowid is ``entry.id``
FTS_TABLE = "entry_trigram"
#: the PostgreSQL GIN index
PG_INDEX = "ix_entry_path_trgm"

_SQLITE = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
    "path_text, content='entry', content_rowid='id', tokenize='trigram', detail='none', columnsize=0)",
    f"CREATE TRIGGER IF NOT EXISTS entry_trigram_insert AFTER INSERT ON entry BEGIN "
    f"INSERT INTO {FTS_TABLE}(rowid, path_text) VALUES (new.id, new.path_text); END",
    f"CREATE TRIGGER IF NOT EXISTS entry_trigram_delete AFTER DELETE ON entry BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, path_text) VALUES ('delete', old.id, old.path_text); END",
    f"CREATE TRIGGER IF NOT EXISTS entry_trigram_update AFTER UPDATE OF path_text ON entry BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, path_text) VALUES ('delete', old.id, old.path_text); "
    f"INSERT INTO {FTS_TABLE}(rowid, path_text) VALUES (new.id, new.path_text); END",
]
_SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS entry_trigram_insert",
    "DROP TRIGGER IF EXISTS entry_trigram_delete",
    "DROP TRIGGER IF EXISTS entry_trigram_update",
    f"DROP TABLE IF EXISTS {FTS_TABLE}",
]


def not_in_models(_object: object, name: str | None, type_: str, reflected: bool, _compare_to: object) -> bool:
    """Alembic's ``include_object``: the index is made by :func:`install`, not
    described in the models, so comparing the two must not see it as extra."""
    if reflected and type_ == "table" and name is not None and name.startswith(FTS_TABLE):
        return False
    return not (reflected and type_ == "index" and name == PG_INDEX)


def install(connection: Connection, fill: bool = False) -> None:
    """Create the trigram index on ``entry`` (``fill``: index the rows already there)."""
    if connection.dialect.name == "sqlite":
        for statement in _SQLITE:
            connection.execute(text(statement))
        if fill:
            connection.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')"))
    elif connection.dialect.name == "postgresql":
        _install_pg_trgm(connection)


def drop(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        for statement in _SQLITE_DROP:
            connection.execute(text(statement))
    elif connection.dialect.name == "postgresql":
        connection.execute(text(f"DROP INDEX IF EXISTS {PG_INDEX}"))


def _install_pg_trgm(connection: Connection) -> None:
    """``pg_trgm`` ships with postgresql-contrib and is a trusted extension
    (PostgreSQL 13+): the catalog's owner may create it.  Without it search
    still works, by a scan, and a warning says why."""
    savepoint = connection.begin_nested()
    try:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except Exception as err:  # noqa: BLE001 - any refusal means "no trigram index", never a failed catalog
        savepoint.rollback()
        message = (
            "PostgreSQL extension pg_trgm is not available (install postgresql-contrib, or have an "
            f"administrator run CREATE EXTENSION pg_trgm): substring search scans every entry. {err.__class__.__name__}"
        )
        warnings.warn(message, stacklevel=2)
        log.warning(message)
        return
    savepoint.commit()
    connection.execute(text(f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON entry USING gin (path_text gin_trgm_ops)"))
