"""job log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:10:00

Each job keeps its log in the catalog: the summary, problems, notes, tape
moves and later verifies, bounded in size (issue 11, part 4; ``joblog``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("log", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("log")
