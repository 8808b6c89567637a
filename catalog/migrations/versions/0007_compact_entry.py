"""compact entry: path stored once, xxh3 as 16 bytes

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 15:10:00

Issue 9 (≤ 250 bytes per catalog entry): ``entry.path`` becomes NULL where
it is the UTF-8 of ``path_text`` (names that are not UTF-8 keep their exact
bytes), and ``entry.xxh3`` holds the digest's 16 bytes instead of 32 hex
characters. ``catalog.entry_types`` reads both back whole. SQLite gives the
freed pages back on ``VACUUM``.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

from pytp.catalog import search_index

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _unhex(value: object) -> object:
    """SQLite 3.40 has no unhex(); a text (or text cast to blob) digest becomes its bytes."""
    if isinstance(value, bytes) and len(value) == 32:
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            return value
        return raw if raw.hex() == value else value
    return value


def _hex(value: object) -> object:
    return value.hex() if isinstance(value, bytes) else value


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # A batch copy of entry trips over the trigram index's triggers (0004 may
        # have made them earlier in this same run); migrations/env.py puts them back after the run.
        search_index.drop_triggers(bind)
        with op.batch_alter_table("entry", schema=None) as batch_op:
            batch_op.alter_column("path", existing_type=sa.LargeBinary(), nullable=True)
            batch_op.alter_column("xxh3", existing_type=sqlmodel.sql.sqltypes.AutoString(), type_=sa.LargeBinary())
        bind.connection.driver_connection.create_function("pytp_unhex", 1, _unhex, deterministic=True)  # type: ignore[union-attr]
        op.execute("UPDATE entry SET xxh3 = pytp_unhex(xxh3) WHERE xxh3 IS NOT NULL")
        op.execute("UPDATE entry SET path = NULL WHERE path = CAST(path_text AS BLOB)")
    else:
        op.alter_column("entry", "path", existing_type=sa.LargeBinary(), nullable=True)
        op.execute("ALTER TABLE entry ALTER COLUMN xxh3 TYPE bytea USING decode(xxh3, 'hex')")
        op.execute("UPDATE entry SET path = NULL WHERE path = convert_to(path_text, 'UTF8')")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        search_index.drop_triggers(bind)
        bind.connection.driver_connection.create_function("pytp_hex", 1, _hex, deterministic=True)  # type: ignore[union-attr]
        op.execute("UPDATE entry SET path = CAST(path_text AS BLOB) WHERE path IS NULL")
        op.execute("UPDATE entry SET xxh3 = pytp_hex(xxh3) WHERE xxh3 IS NOT NULL")
        with op.batch_alter_table("entry", schema=None) as batch_op:
            batch_op.alter_column("xxh3", existing_type=sa.LargeBinary(), type_=sqlmodel.sql.sqltypes.AutoString())
            batch_op.alter_column("path", existing_type=sa.LargeBinary(), nullable=False)
    else:
        op.execute("UPDATE entry SET path = convert_to(path_text, 'UTF8') WHERE path IS NULL")
        op.execute("ALTER TABLE entry ALTER COLUMN xxh3 TYPE varchar USING encode(xxh3, 'hex')")
        op.alter_column("entry", "path", existing_type=sa.LargeBinary(), nullable=False)
