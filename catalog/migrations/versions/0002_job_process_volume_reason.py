"""job process identity, volume status reason

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 05:00:00

A running job records the process that runs it (pid and start time), so the
next command can tell a job whose process is gone; a tape in ``error`` status
says why.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("process_start", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    with op.batch_alter_table("volume", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("volume", schema=None) as batch_op:
        batch_op.drop_column("status_reason")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("process_start")
        batch_op.drop_column("pid")
