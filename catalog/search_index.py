"""The index that finds a substring among millions of paths (issue 9).

A btree on ``entry.path_text`` serves neither ``LIKE '%x%'`` nor a regular
expression, so search walked every entry.  A trigram index does: on SQLite an
FTS5 ``trigram`` table over ``entry.path_text`` (external content, so the
paths are not stored twice; ``detail=none``, since only ``LIKE`` is asked of
it, which FTS5 checks against the content itself; no column sizes), kept by triggers so the
backup's insert path needs no change (see ``_TRIGGERS``); on PostgreSQL a ``pg_trgm`` GIN index,
which the planner uses for ``LIKE`` and ``~`` by itself.

Measured at 1M entries (``bench/search_scale.py``, docs/performance.md): the
index costs less than the btree it replaces.  ``search`` asks it for the
rarest few trigrams of a pattern (``MATCH '"042" AND "r04"'``), not ``LIKE``,
which walks every trigram's rows (``search_query.rare_trigrams``).

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

#: a job's entries are offered by search only once it is good (``JobStatus.GOOD``)
_GOOD = "('ok', 'partial')"
_JOB_GOOD = f"(SELECT status FROM job WHERE id = {{row}}.job_id) IN {_GOOD}"
_ADD = f"INSERT INTO {FTS_TABLE}(rowid, path_text)"
_REMOVE = f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, path_text)"

# Only entries of good jobs are indexed, and they are indexed in one
# INSERT … SELECT when their job becomes good: FTS5 takes rows that way about
# eight times faster than one by one from an insert trigger (18 against 140 µs
# a row, measured), so a backup's inserts pay nothing.  An entry added to a
# job that is already good (``catalog rebuild``) is indexed as it comes.
# FTS5 must be told exactly what it holds when a row leaves, hence the
# conditions on the deletes too.
_TRIGGERS = {
    "entry_trigram_insert": f"AFTER INSERT ON entry WHEN {_JOB_GOOD.format(row='new')} "
    f"BEGIN {_ADD} VALUES (new.id, new.path_text); END",
    "entry_trigram_delete": f"AFTER DELETE ON entry WHEN {_JOB_GOOD.format(row='old')} "
    f"BEGIN {_REMOVE} VALUES ('delete', old.id, old.path_text); END",
    "entry_trigram_update": "AFTER UPDATE OF path_text, job_id ON entry BEGIN "
    f"{_REMOVE} SELECT 'delete', old.id, old.path_text WHERE {_JOB_GOOD.format(row='old')}; "
    f"{_ADD} SELECT new.id, new.path_text WHERE {_JOB_GOOD.format(row='new')}; END",
    "job_trigram_good": f"AFTER UPDATE OF status ON job WHEN new.status IN {_GOOD} AND old.status NOT IN {_GOOD} "
    f"BEGIN {_ADD} SELECT id, path_text FROM entry WHERE job_id = new.id; END",
    "job_trigram_bad": f"AFTER UPDATE OF status ON job WHEN old.status IN {_GOOD} AND new.status NOT IN {_GOOD} "
    f"BEGIN {_REMOVE} SELECT 'delete', id, path_text FROM entry WHERE job_id = old.id; END",
    "job_trigram_gone": f"AFTER DELETE ON job WHEN old.status IN {_GOOD} "
    f"BEGIN {_REMOVE} SELECT 'delete', id, path_text FROM entry WHERE job_id = old.id; END",
}
_CREATE_TABLE = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
    "path_text, content='entry', content_rowid='id', tokenize='trigram', detail='none', columnsize=0)"
)


def not_in_models(_object: object, name: str | None, type_: str, reflected: bool, _compare_to: object) -> bool:
    """Alembic's ``include_object``: the index is made by :func:`install`, not
    described in the models, so comparing the two must not see it as extra."""
    if reflected and type_ == "table" and name is not None and name.startswith(FTS_TABLE):
        return False
    return not (reflected and type_ == "index" and name == PG_INDEX)


def install(connection: Connection, fill: bool = False) -> None:
    """Create the trigram index on ``entry`` (``fill``: index the rows already there)."""
    if connection.dialect.name == "sqlite":
        connection.execute(text(_CREATE_TABLE))
        _create_triggers(connection)
        if fill:
            connection.execute(
                text(
                    f"{_ADD} SELECT entry.id, entry.path_text FROM entry JOIN job ON job.id = entry.job_id "
                    f"WHERE job.status IN {_GOOD}"
                )
            )
    elif connection.dialect.name == "postgresql":
        _install_pg_trgm(connection)


def _create_triggers(connection: Connection) -> None:
    for name, body in _TRIGGERS.items():
        connection.execute(text(f"CREATE TRIGGER IF NOT EXISTS {name} {body}"))


def drop_triggers(connection: Connection) -> None:
    """Before migrations: SQLite batch operations copy a table, drop it and
    rename the copy, which fails while a trigger on ``entry`` names ``job``."""
    if connection.dialect.name == "sqlite":
        for name in _TRIGGERS:
            connection.execute(text(f"DROP TRIGGER IF EXISTS {name}"))


def restore_triggers(connection: Connection) -> None:
    """After migrations: put the triggers back if the index exists (a batch
    copy of ``entry`` or ``job`` would have lost them anyway)."""
    if connection.dialect.name != "sqlite":
        return
    if connection.execute(text("SELECT 1 FROM sqlite_master WHERE name = :n"), {"n": FTS_TABLE}).first():
        _create_triggers(connection)


def drop(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        drop_triggers(connection)
        connection.execute(text(f"DROP TABLE IF EXISTS {FTS_TABLE}"))
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
