"""Alembic environment for the pytp catalog.

pytp runs migrations itself (``pytp db upgrade``) with the connection it
already has, passed in ``config.attributes["connection"]`` (alembic cookbook,
"Sharing a Connection"); the ``alembic`` command line, for developers, reads
the URL from alembic.ini or ``$PYTP_CATALOG_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

from pytp.catalog import models, search_index  # noqa: F401 - registers the tables

config = context.config
target_metadata = SQLModel.metadata


def _configure(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=True,
        compare_type=True,
        include_object=search_index.not_in_models,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=os.environ.get("PYTP_CATALOG_URL") or config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            search_index.drop_triggers(connection)  # SQLite batch copies of tables trip over them
            context.run_migrations()
            search_index.restore_triggers(connection)
        return
    section = config.get_section(config.config_ini_section, {})
    if os.environ.get("PYTP_CATALOG_URL"):
        section["sqlalchemy.url"] = os.environ["PYTP_CATALOG_URL"]
    connectable = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            search_index.drop_triggers(connection)  # SQLite batch copies of tables trip over them
            context.run_migrations()
            search_index.restore_triggers(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
