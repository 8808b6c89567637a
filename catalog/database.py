"""Opening the catalog: the engine factory and the migration check.

Every command that touches the catalog goes through ``open_catalog``: a new,
empty database is created at the current schema and stamped; an existing one
must already be at the migration head, or the command stops and asks for
``pytp db upgrade`` (several hosts may share a PostgreSQL catalog, so a pytp
must not upgrade it behind the others' backs).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from .errors import CatalogError, CatalogUnavailable, StaleCatalog
from .light_sql import regexp
from .schema_head import head_revision, known_revision
from .spool_file import TempSpaceFull, sqlite_temp_directory

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

# Opening a catalog that is at the head needs neither alembic nor the models
# (sqlmodel, pydantic): the version is read with one plain query and compared
# with the head read from the migration files (schema_head).  Both are
# imported only to create or upgrade a catalog, so catalog commands start
# quickly (issue 9).

SCRIPT_LOCATION = "pytp.catalog:migrations"
#: the PostgreSQL advisory lock that serialises schema creation and upgrades ("pytp" in ASCII)
SCHEMA_LOCK_KEY = 0x70797470


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets search run while a backup writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # LIKE must be case-sensitive, as on PostgreSQL and as file names are.
    cursor.execute("PRAGMA case_sensitive_like=ON")
    cursor.close()
    # SQLAlchemy's own REGEXP, replaced by the one the light reader uses: Ctrl-C inside it is named
    dbapi_connection.create_function("regexp", 2, regexp, deterministic=True)


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
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise CatalogUnavailable(
                    f"Cannot create the folder of the catalog {database}: {err.strerror}. "
                    "Fix catalog.url in the configuration or the folder's permissions."
                ) from err
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
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The catalog's schema revision (``None`` for an empty database).

    :raises CatalogUnavailable: the database cannot be reached or read, or is an empty file.
    """
    path = _sqlite_file(engine)
    if path is not None and not path.exists():
        return None  # connecting would create a zero-byte file, which later reads as damage
    _refuse_empty_file(engine)
    try:
        with engine.connect() as connection:
            return _stamped_revision(connection)
    except SQLAlchemyError as err:
        raise _unavailable(engine, err) from err


def _stamped_revision(connection: Connection) -> str | None:
    """What alembic's ``get_current_revision`` reads, with one plain query and no alembic.

    :raises StaleCatalog: the version table holds several revisions (branches this pytp never makes).
    """
    if not inspect(connection).has_table("alembic_version"):
        return None
    stamped = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(stamped) > 1:
        raise StaleCatalog(f"The catalog is stamped with several schema revisions ({', '.join(stamped)}).")
    return stamped[0] if stamped else None


def _is_empty(connection: Connection) -> bool:
    return not inspect(connection).get_table_names()


@contextmanager
def _schema_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the catalog's schema lock until it commits.

    Two pytp processes that create or upgrade one catalog at the same time
    (two hosts starting on a new PostgreSQL catalog) must not both run the
    DDL: the second waits, then finds the work done (issue 9).  PostgreSQL:
    a transaction-scoped advisory lock.  SQLite: ``BEGIN IMMEDIATE`` takes the
    write lock before the schema version is read, so the reader cannot act on
    a version that is about to change.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        elif engine.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield connection
        connection.commit()


def _create_schema(connection: Connection) -> None:
    """The current schema, stamped at the head, in the caller's one transaction.

    A fresh catalog is built at once rather than by replaying every migration
    (alembic cookbook); table creation and the stamp commit together, so no
    one ever sees tables without a version ("not a pytp catalog").
    """
    from alembic import command

    from .models import metadata  # the tables, registered on SQLModel's metadata

    metadata.create_all(connection)
    command.stamp(alembic_config(connection), "head")


def _create_sqlite_file(path: Path) -> None:
    """Create a new SQLite catalog at ``path`` atomically.

    The catalog is built in a temporary file beside it and linked into place
    in one step, so a crash or a concurrent first use never leaves a half-made
    or zero-byte catalog at ``path``; a process that loses the race keeps the
    winner's file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    wal = tmp.with_name(tmp.name + "-wal")
    engine = make_engine(f"sqlite:///{tmp}")
    try:
        try:
            with engine.begin() as connection:
                _create_schema(connection)
            # The schema is in the WAL: copy it into the file now, where a full disk is an
            # error. Left to the last close, a failed checkpoint is silent, and the half-written
            # file went into place without the WAL that held the only whole copy (a catalog
            # "damaged" for good, though the disk had only been full).
            with engine.connect() as connection:
                busy, frames, copied = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            if busy or frames != copied:
                raise CatalogUnavailable(f"Cannot create the catalog {path}: its new file could not be completed.")
        finally:
            engine.dispose()
        if wal.exists() and wal.stat().st_size:
            raise CatalogUnavailable(f"Cannot create the catalog {path}: its new file could not be completed.")
        _link_into_place(tmp, path)
    except SQLAlchemyError as err:
        raise catalog_error(err, str(path)) or CatalogUnavailable(f"Cannot create the catalog {path}.") from err
    except OSError as err:
        raise CatalogUnavailable(f"Cannot create the catalog {path}: {err.strerror}.") from err
    finally:
        for leftover in (tmp, wal, tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


def _link_into_place(tmp: Path, path: Path) -> None:
    """``path`` becomes ``tmp`` unless another process put a catalog there first."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process created it first: use theirs
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # a file system without hard links: rename, losing only a race with another first use
        if not path.exists():
            os.replace(tmp, path)


def _sqlite_file(engine: Engine) -> Path | None:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    return Path(database) if database and database != ":memory:" and not database.startswith("file:") else None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Run the migrations up to ``revision`` under the schema lock; return (before, after).

    Safe when two processes run it at once: the second waits for the first and
    finds nothing left to do.

    :raises CatalogUnavailable: the database cannot be reached, or is an empty file.
    :raises StaleCatalog: the catalog is newer than this pytp.
    """
    path = _sqlite_file(engine)
    if path is not None and not path.exists() and revision == "head":
        _create_sqlite_file(path)  # at the head at once, atomically
        return None, head_revision()
    from alembic import command

    _refuse_empty_file(engine)
    try:
        with _schema_lock(engine) as connection:
            before = _stamped_revision(connection)
            _refuse_unknown_revision(engine, before)
            command.upgrade(alembic_config(connection), revision)
            after = _stamped_revision(connection)
    except SQLAlchemyError as err:
        raise _unavailable(engine, err) from err
    return before, after or ""


def _refuse_empty_file(engine: Engine) -> None:
    """A zero-byte catalog file is damage (a truncation, a full disk), not a new catalog."""
    path = _sqlite_file(engine)
    if path is not None and path.is_file() and path.stat().st_size == 0:
        raise CatalogUnavailable(
            f"The catalog file {path} is empty (0 bytes): it was truncated or never written. "
            "Restore it from a catalog snapshot (`pytp catalog restore`), rebuild it from the tapes "
            "(`pytp catalog rebuild`), or delete the file to start a new, empty catalog."
        )


def _refuse_unknown_revision(engine: Engine, current: str | None) -> None:
    """A revision this pytp does not know comes from a newer pytp: upgrading is not the cure."""
    if current is None:
        return
    if not known_revision(current):
        raise StaleCatalog(
            f"The catalog {_safe(str(engine.url))} is at schema {current}, which is newer than this pytp "
            f"knows (its newest is {head_revision()}): a newer pytp has upgraded it. "
            "Install that pytp version on this host; do not run `pytp db upgrade` with this one."
        )


def _unavailable(engine: Engine, err: SQLAlchemyError) -> CatalogError:
    """``err``, seen while opening the catalog, as a message that names it (password hidden)."""
    where = _safe(str(engine.url))
    if engine.dialect.name != "sqlite" and isinstance(err, (OperationalError, InterfaceError)):
        return CatalogUnavailable(
            f"Cannot reach the catalog {where}: {_detail(err)}. "
            "Check that the database server is running and catalog.url in the configuration."
        )
    return catalog_error(err, where) or CatalogUnavailable(f"Cannot open the catalog {where}: {_detail(err)}.")


def catalog_error(err: BaseException, where: str = "") -> CatalogError | None:
    """A catalog error for a database exception no layer wrapped, or ``None`` if ``err`` is not one.

    Damage and a full disk can surface in any query, long after the catalog
    was opened; the CLI asks here before treating an exception as a bug.

    :param where: the catalog's URL (password hidden), if known, for the message.
    """
    if not isinstance(err, SQLAlchemyError):
        return None
    detail = _detail(err)
    lowered = detail.lower()
    name = f"the catalog {where}" if where else "the catalog"
    catalog = "T" + name[1:]
    if "malformed" in lowered or "not a database" in lowered:
        return CatalogUnavailable(
            f"{catalog} is damaged ({detail}). Restore it from a catalog snapshot (`pytp catalog restore`) "
            "or rebuild it from the tapes (`pytp catalog rebuild`); SQLite's `.recover` may save the rest."
        )
    if "database or disk is full" in lowered and _sqlite_read(err):
        # A query that writes nothing fills only SQLite's temporary files (a sort, a
        # large intermediate result) in the temporary directory, not the catalog's disk.
        return TempSpaceFull("a sort or temporary result of a catalog query", err, sqlite_temp_directory())
    if "database or disk is full" in lowered or "no space left" in lowered or "disk i/o error" in lowered:
        # SQLite reports a write refused by a full disk or a file size limit
        # (EFBIG) as "disk I/O error" when it happens in the WAL
        return CatalogUnavailable(
            f"{catalog} could not be written ({detail}): its disk is full or failing. Free space or check the "
            "disk and run the command again; a job that was running is marked failed by the next command."
        )
    if "unable to open database file" in lowered or "readonly database" in lowered:
        return CatalogUnavailable(
            f"Cannot open {name} for writing ({detail}): check that its folder "
            "exists and this user may write there, or fix catalog.url in the configuration."
        )
    if "database is locked" in lowered:
        return CatalogUnavailable(f"{catalog} stayed locked by another pytp process ({detail}); try again.")
    return CatalogUnavailable(f"{catalog} refused an operation: {detail}.")


def _sqlite_read(err: SQLAlchemyError) -> bool:
    """Whether ``err`` is SQLite's, from a statement that only reads."""
    if not isinstance(err, DBAPIError) or not isinstance(err.orig, sqlite3.Error):
        return False
    return (err.statement or "").lstrip().upper().startswith(("SELECT", "WITH"))


def _detail(err: SQLAlchemyError) -> str:
    """The driver's own message, first line only (SQLAlchemy appends the SQL and a link)."""
    return _first_line(err.orig if isinstance(err, DBAPIError) and err.orig is not None else err)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def open_catalog(url: str, on_reconciled: Callable[[object], None] | None = None) -> Engine:
    """Open the catalog at ``url``, creating it if new, refusing it if stale.

    Jobs left ``running`` by a process of this host that is gone are marked
    failed on the way (``reconcile.reconcile_jobs``); ``on_reconciled`` hears of each.

    :raises CatalogUnavailable: the database cannot be reached, is damaged, or is an empty file.
    :raises StaleCatalog: the schema is not at this pytp's migration head.
    """
    engine = make_engine(url)
    path = _sqlite_file(engine)
    if path is not None and not path.exists():
        _create_sqlite_file(path)
    _refuse_empty_file(engine)
    try:
        with engine.connect() as connection:
            current = _stamped_revision(connection)
        if current is None:
            # A new database (a new PostgreSQL catalog), or one that another pytp is
            # creating right now: decided under the schema lock, where the creation
            # is either not begun or committed whole. Unlocked, "no version" then
            # "has tables" could both be read around the other's commit: a new
            # catalog refused as "not a pytp catalog" (two hosts' first start, issue 9).
            with _schema_lock(engine) as connection:
                if _is_empty(connection):
                    _create_schema(connection)
                current = _stamped_revision(connection)
    except SQLAlchemyError as err:
        raise _unavailable(engine, err) from err
    head = head_revision()
    if current != head:
        if current is None:
            raise StaleCatalog(
                f"The database {_safe(url)} has tables but no pytp schema version; "
                "it is not a pytp catalog. Point catalog.url at a pytp catalog or an empty database."
            )
        _refuse_unknown_revision(engine, current)
        raise StaleCatalog(
            f"The catalog is at schema {current}, this pytp needs {head}. "
            "Run `pytp db upgrade` (back up the catalog first)."
        )
    _reconcile(engine, on_reconciled)
    return engine


def _reconcile(engine: Engine, on_reconciled: Callable[[object], None] | None) -> None:
    from .light_sql import CoreReader, left_running

    try:
        # One cheap query first: closing jobs needs the ORM, which costs more
        # than a listing itself, and there is nothing to close nearly always.
        with engine.connect() as connection:
            if not left_running(CoreReader(connection)):
                return
        from .reconcile import reconcile_jobs

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
