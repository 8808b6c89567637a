"""entry trigram index

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:00:00

Search by substring, glob or regex uses a trigram index on entry.path_text
(SQLite: an FTS5 trigram table kept by triggers; PostgreSQL: a pg_trgm GIN
index) instead of the btree, which served none of them and cost more room
(issue 9).
"""

from __future__ import annotations

from alembic import op

from pytp.catalog import search_index

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("entry", schema=None) as batch_op:
        batch_op.drop_index("ix_entry_path_text")
    search_index.install(op.get_bind(), fill=True)


def downgrade() -> None:
    search_index.drop(op.get_bind())
    with op.batch_alter_table("entry", schema=None) as batch_op:
        batch_op.create_index("ix_entry_path_text", ["path_text"], unique=False)
