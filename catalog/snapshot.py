"""Catalog snapshots on tape: ``pytp catalog backup`` and ``pytp catalog restore``.

A snapshot is every catalog row as one JSON line (binary columns in base64),
gzip-compressed, in a one-member tar archive (``PYTP-CATALOG.jsonl.gz``)
appended to a tape of the pool like a job.  It is read in one transaction, so
it is consistent; and it is in JSON, so a SQLite catalog can come back as a
PostgreSQL one and the other way round.  Disaster recovery: restore the newest
snapshot, then ``pytp catalog rebuild`` the tapes written after it.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import LargeBinary, func, insert, text
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlalchemy.types import DateTime
from sqlmodel import Session, SQLModel, select

from pytp.tapeio.drive import ensure_block_size
from pytp.tapeio.errors import BlankTape
from pytp.tapeio.smallarchive import peek_member_name, read_small_archive, write_small_archive

from .config import Config
from .database import head_revision
from .devices import Selection
from .errors import CatalogError, NotFound
from .manifest import SNAPSHOT_MEMBER
from .media import open_media, position_at_end_of_data
from .models import TapeFile, TapeFileStatus, Volume, utcnow

SNAPSHOT_VERSION = 1
#: parents before children, so foreign keys hold while importing
TABLES = ("volume", "job", "tape_file", "entry", "entry_part", "job_problem", "health_reading", "cleaning_cartridge")


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def export_catalog(engine: Engine) -> bytes:
    """Every row of every catalog table, as gzip-compressed JSON lines."""
    lines = [
        json.dumps(
            {"pytp_catalog_snapshot": SNAPSHOT_VERSION, "schema": head_revision(), "created": utcnow().isoformat()}
        ).encode()
    ]
    with engine.connect() as connection, connection.begin():
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        for name in TABLES:
            table = SQLModel.metadata.tables[name]
            for row in connection.execute(sql_select(table).order_by(table.c.id)):
                record = {key: _encode(value) for key, value in row._mapping.items()}
                lines.append(json.dumps({"t": name, "r": record}, separators=(",", ":")).encode())
    return gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6)


def import_catalog(engine: Engine, payload: bytes) -> dict[str, int]:
    """Load a snapshot into an empty catalog; return the row count per table.

    :raises CatalogError: the catalog is not empty, or the snapshot is of
        another schema version.
    """
    lines = gzip.decompress(payload).splitlines()
    header = json.loads(lines[0])
    if header.get("pytp_catalog_snapshot") != SNAPSHOT_VERSION:
        raise CatalogError("The tape file is not a pytp catalog snapshot this version can read.")
    if header.get("schema") != head_revision():
        raise CatalogError(
            f"The snapshot has catalog schema {header.get('schema')}, this pytp {head_revision()}: "
            "restore it with the pytp version that wrote it, then `pytp db upgrade`."
        )
    with Session(engine) as session:
        if session.exec(select(func.count()).select_from(Volume)).one():
            raise CatalogError("The catalog is not empty; restore a snapshot into a new catalog only.")
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for line in lines[1:]:
        item = json.loads(line)
        rows[item["t"]].append(item["r"])
    with engine.begin() as connection:
        for name in TABLES:
            table = SQLModel.metadata.tables[name]
            decoded = [
                {key: _decode(table.c[key].type, value) for key, value in record.items()} for record in rows[name]
            ]
            if decoded:
                connection.execute(insert(table), decoded)
            if engine.dialect.name == "postgresql":
                # Explicit ids leave the serial sequence behind: move it past them.
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), COALESCE(MAX(id), 0) + 1, false) "
                        f"FROM {name}"
                    )
                )
    return {name: len(rows[name]) for name in TABLES}


def _decode(column_type: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column_type, LargeBinary) or isinstance(getattr(column_type, "impl_instance", None), LargeBinary):
        # bytes as exported; a type over bytes (entry.path, entry_types) exports what it reads
        return base64.b64decode(value["b64"]) if isinstance(value, dict) else value
    if isinstance(column_type, DateTime):
        return datetime.fromisoformat(value)
    return value


@dataclass(frozen=True)
class SnapshotResult:
    tape: str
    file_number: int
    bytes: int
    rows: int


def backup_catalog(engine: Engine, config: Config, selection: Selection, pool: str | None = None) -> SnapshotResult:
    """Write a snapshot of the catalog to the end of data of a tape of ``pool``."""
    payload = export_catalog(engine)
    rows = gzip.decompress(payload).count(b"\n") - 1
    pool = pool or config.default_pool
    with (
        open_media(config, selection) as media,
        Session(engine, expire_on_commit=False) as session,
    ):
        volume = media.mount_for_append(session, pool)
        ensure_block_size(media.drive, media.block_size)
        number = position_at_end_of_data(session, media.drive, volume)
        tape_file = TapeFile(
            volume_id=volume.id,
            file_number=number,
            kind="catalog",  # type: ignore[arg-type]
            block_size=media.block_size,
        )
        volume.file_count = number + 1
        session.add_all([tape_file, volume])
        session.commit()
        blocks = write_small_archive(media.drive, media.block_size, SNAPSHOT_MEMBER, payload)
        tape_file.blocks = blocks
        tape_file.total_bytes = blocks * media.block_size
        tape_file.status = TapeFileStatus.COMPLETE
        volume.bytes_written += tape_file.total_bytes
        volume.last_written_at = utcnow()
        session.add_all([tape_file, volume])
        session.commit()
        return SnapshotResult(volume.label, number, len(payload), rows)


def restore_catalog(
    engine: Engine, config: Config, selection: Selection, tape: str, progress: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Find the newest snapshot on ``tape`` and load it into the (empty) catalog.

    :raises NotFound: the tape holds no snapshot.
    """
    from .rebuild import load_tape_for_rebuild

    newest: bytes | None = None
    with open_media(config, selection) as media:
        label = load_tape_for_rebuild(media, tape)
        drive = media.drive
        ensure_block_size(drive, label.block_size)
        while True:
            drive.fsf(1)
            try:
                first = drive.read(label.block_size)
            except BlankTape:
                break
            if not first:
                break
            if peek_member_name(first) == SNAPSHOT_MEMBER:
                _, newest = read_small_archive(drive, label.block_size, first_block=first, expect=SNAPSHOT_MEMBER)
                if progress:
                    progress("found a catalog snapshot")
    if newest is None:
        raise NotFound(f"Tape {tape} holds no catalog snapshot (`pytp catalog backup` writes one).")
    return import_catalog(engine, newest)
