"""entry sparse map

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 05:20:00

A file stored sparse (GNU pax sparse 1.0) keeps its map of data regions in
the catalog: the bytes it has on tape follow from it, and a restored copy is
checked against it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sparse_map", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("entry", schema=None) as batch_op:
        batch_op.drop_column("sparse_map")
