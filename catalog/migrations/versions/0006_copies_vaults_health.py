"""copies, vaults, verify dates, health readings, cleaning cartridges

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 15:00:00

Issue 11: a copy tape mirrors a source tape file for file (``copy_of_id`` on
volume and tape_file); a tape exported to a vault says which and since when;
a tape records its last whole-tape verify; drives' TapeAlert flags and error
counters are kept per job and per tape; cleaning cartridges count their uses.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("volume", schema=None) as batch_op:
        batch_op.add_column(sa.Column("copy_of_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("vault", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("vault_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_verified_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_verify_result", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("last_verify_message", sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f("ix_volume_copy_of_id"), ["copy_of_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_volume_copy_of_id_volume"), "volume", ["copy_of_id"], ["id"])
    with op.batch_alter_table("tape_file", schema=None) as batch_op:
        batch_op.add_column(sa.Column("copy_of_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_tape_file_copy_of_id"), ["copy_of_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_tape_file_copy_of_id_tape_file"), "tape_file", ["copy_of_id"], ["id"]
        )
    op.create_table(
        "health_reading",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("drive", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("phase", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("volume_id", sa.Integer(), nullable=True),
        sa.Column("tapealert", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("read_errors", sa.BigInteger(), nullable=True),
        sa.Column("write_errors", sa.BigInteger(), nullable=True),
        sa.Column("unavailable", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_health_reading_job_id_job")),
        sa.ForeignKeyConstraint(["volume_id"], ["volume.id"], name=op.f("fk_health_reading_volume_id_volume")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_reading")),
    )
    op.create_index(op.f("ix_health_reading_job_id"), "health_reading", ["job_id"], unique=False)
    op.create_index(op.f("ix_health_reading_volume_id"), "health_reading", ["volume_id"], unique=False)
    op.create_table(
        "cleaning_cartridge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("barcode", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_drive", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cleaning_cartridge")),
    )
    op.create_index(op.f("ix_cleaning_cartridge_barcode"), "cleaning_cartridge", ["barcode"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_cleaning_cartridge_barcode"), table_name="cleaning_cartridge")
    op.drop_table("cleaning_cartridge")
    op.drop_index(op.f("ix_health_reading_volume_id"), table_name="health_reading")
    op.drop_index(op.f("ix_health_reading_job_id"), table_name="health_reading")
    op.drop_table("health_reading")
    with op.batch_alter_table("tape_file", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tape_file_copy_of_id_tape_file"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_tape_file_copy_of_id"))
        batch_op.drop_column("copy_of_id")
    with op.batch_alter_table("volume", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_volume_copy_of_id_volume"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_volume_copy_of_id"))
        for column in (
            "last_verify_message",
            "last_verify_result",
            "last_verified_at",
            "vault_since",
            "vault",
            "copy_of_id",
        ):
            batch_op.drop_column(column)
