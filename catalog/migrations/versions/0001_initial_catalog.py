"""initial catalog

Revision ID: 0001
Revises:
Create Date: 2026-11-26 04:13:53.635904
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("level", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("strategy", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("pool", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("host", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("sources", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("problems", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_uuid"), ["uuid"], unique=True)

    op.create_table(
        "volume",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("barcode", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("uuid", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("pool", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("block_size", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.BigInteger(), nullable=True),
        sa.Column("bytes_written", sa.BigInteger(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("library", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("format_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_written_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volume")),
    )
    with op.batch_alter_table("volume", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_volume_barcode"), ["barcode"], unique=False)
        batch_op.create_index(batch_op.f("ix_volume_label"), ["label"], unique=True)
        batch_op.create_index(batch_op.f("ix_volume_pool"), ["pool"], unique=False)
        batch_op.create_index(batch_op.f("ix_volume_uuid"), ["uuid"], unique=True)

    op.create_table(
        "job_problem",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.LargeBinary(), nullable=False),
        sa.Column("path_text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_job_problem_job_id_job")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_problem")),
    )
    with op.batch_alter_table("job_problem", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_problem_job_id"), ["job_id"], unique=False)

    op.create_table(
        "tape_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("volume_id", sa.Integer(), nullable=False),
        sa.Column("file_number", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source_root", sa.LargeBinary(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("block_size", sa.Integer(), nullable=False),
        sa.Column("blocks", sa.BigInteger(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_tape_file_job_id_job")),
        sa.ForeignKeyConstraint(["volume_id"], ["volume.id"], name=op.f("fk_tape_file_volume_id_volume")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tape_file")),
    )
    with op.batch_alter_table("tape_file", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tape_file_job_id"), ["job_id"], unique=False)
        batch_op.create_index("ix_tape_file_volume_number", ["volume_id", "file_number"], unique=False)

    op.create_table(
        "entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("tape_file_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.LargeBinary(), nullable=False),
        sa.Column("path_text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mode", sa.Integer(), nullable=False),
        sa.Column("uid", sa.Integer(), nullable=False),
        sa.Column("gid", sa.Integer(), nullable=False),
        sa.Column("uname", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("gname", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("ctime_ns", sa.BigInteger(), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("device", sa.BigInteger(), nullable=False),
        sa.Column("link_target", sa.LargeBinary(), nullable=True),
        sa.Column("xxh3", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("header_size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_entry_job_id_job")),
        sa.ForeignKeyConstraint(["tape_file_id"], ["tape_file.id"], name=op.f("fk_entry_tape_file_id_tape_file")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entry")),
    )
    with op.batch_alter_table("entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entry_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_entry_path_text"), ["path_text"], unique=False)
        batch_op.create_index(batch_op.f("ix_entry_tape_file_id"), ["tape_file_id"], unique=False)

    op.create_table(
        "entry_part",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("tape_file_id", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("header_size", sa.Integer(), nullable=False),
        sa.Column("data_start", sa.BigInteger(), nullable=False),
        sa.Column("data_size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["entry.id"], name=op.f("fk_entry_part_entry_id_entry")),
        sa.ForeignKeyConstraint(["tape_file_id"], ["tape_file.id"], name=op.f("fk_entry_part_tape_file_id_tape_file")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entry_part")),
    )
    with op.batch_alter_table("entry_part", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entry_part_entry_id"), ["entry_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("entry_part", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entry_part_entry_id"))
    op.drop_table("entry_part")
    with op.batch_alter_table("entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entry_tape_file_id"))
        batch_op.drop_index(batch_op.f("ix_entry_path_text"))
        batch_op.drop_index(batch_op.f("ix_entry_job_id"))

    op.drop_table("entry")
    with op.batch_alter_table("tape_file", schema=None) as batch_op:
        batch_op.drop_index("ix_tape_file_volume_number")
        batch_op.drop_index(batch_op.f("ix_tape_file_job_id"))

    op.drop_table("tape_file")
    with op.batch_alter_table("job_problem", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_problem_job_id"))

    op.drop_table("job_problem")
    with op.batch_alter_table("volume", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_volume_uuid"))
        batch_op.drop_index(batch_op.f("ix_volume_pool"))
        batch_op.drop_index(batch_op.f("ix_volume_label"))
        batch_op.drop_index(batch_op.f("ix_volume_barcode"))

    op.drop_table("volume")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_uuid"))
        batch_op.drop_index(batch_op.f("ix_job_status"))
        batch_op.drop_index(batch_op.f("ix_job_name"))

    op.drop_table("job")
