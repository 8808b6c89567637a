"""Opening the catalog: the engine factory and the migration check.

Every command that touches the catalog goes through ``open_catalog``: a new,
empty database is created at the current schema and stamped; an existing one
must already be at the migration head, or the command stops and asks for
``pytp db upgrade`` (several hosts may share a PostgreSQL catalog, so a pytp
must not upgrade it behind the others' backs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlmodel import SQLModel, create_engine

from . import models  # noqa: F401 - registers the tables on SQLModel.metadata
from .errors import CatalogUnavailable, StaleCatalog

SCRIPT_LOCATION = "pytp.catalog:migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets search run while a backup writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # LIKE must be case-sensitive, as on PostgreSQL and as file names are.
    cursor.execute("PRAGMA case_sensitive_like=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Build an engine for ``url``; SQLite files get WAL and their folder created.

    :raises CatalogUnavailable: the URL is malformed or its driver is missing.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise CatalogUnavailable(f"Catalog URL '{url}' is not valid: {err}.") from err
    kwargs: dict[str, object] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    try:
        engine = create_engine(url, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as err:
        hint = " Install it with: pip install 'pytp[postgres]'." if parsed.get_backend_name() == "postgresql" else ""
        raise CatalogUnavailable(f"No database driver for '{parsed.drivername}'.{hint}") from err
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(connection=None) -> AlembicConfig:  # type: ignore[no-untyped-def]
    """An alembic configuration for the packaged migrations, sharing ``connection``."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _is_empty(engine: Engine) -> bool:
    return not inspect(engine).get_table_names()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Run the migrations up to ``revision``; return (before, after)."""
    before = current_revision(engine)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)
    return before, current_revision(engine) or ""


def open_catalog(url: str, on_reconciled: Callable[[object], None] | None = None) -> Engine:
    """Open the catalog at ``url``, creating it if new, refusing it if stale.

    Jobs left ``running`` by a process of this host that is gone are marked
    failed on the way (``reconcile.reconcile_jobs``); ``on_reconciled`` hears of each.

    :raises CatalogUnavailable: the database cannot be reached.
    :raises StaleCatalog: the schema is not at this pytp's migration head.
    """
    engine = make_engine(url)
    try:
        if _is_empty(engine):
            # A fresh catalog: build the current schema at once and stamp it,
            # rather than replaying every migration (alembic cookbook).
            SQLModel.metadata.create_all(engine)
            with engine.begin() as connection:
                command.stamp(alembic_config(connection), "head")
            return engine
        current = current_revision(engine)
    except OperationalError as err:
        raise CatalogUnavailable(f"Cannot open the catalog {_safe(url)}: {err.orig}.") from err
    except SQLAlchemyError as err:
        raise CatalogUnavailable(f"Cannot open the catalog {_safe(url)}: {err}.") from err
    head = head_revision()
    if current != head:
        if current is None:
            raise StaleCatalog(
                f"The database {_safe(url)} has tables but no pytp schema version; "
                "it is not a pytp catalog. Point catalog.url at a pytp catalog or an empty database."
            )
        raise StaleCatalog(
            f"The catalog is at schema {current}, this pytp needs {head}. "
            "Run `pytp db upgrade` (back up the catalog first)."
        )
    _reconcile(engine, on_reconciled)
    return engine


def _reconcile(engine: Engine, on_reconciled: Callable[[object], None] | None) -> None:
    from .reconcile import reconcile_jobs

    try:
        closed = reconcile_jobs(engine)
    except SQLAlchemyError:
        # Best effort: a command must not fail because it cannot close a dead
        # job (a full or read-only catalog); the next command tries again.
        return
    for job in closed:
        if on_reconciled is not None:
            on_reconciled(job)


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(invalid URL)"
