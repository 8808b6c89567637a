"""Catalog snapshots on tape: ``pytp catalog backup`` and ``pytp catalog restore``.

A snapshot is every catalog row as one JSON line (binary columns in base64),
gzip-compressed, in a one-member tar archive (``PYTP-CATALOG.jsonl.gz``)
appended to a tape of the pool like a job.  It is read in one transaction, so
it is consistent; and it is in JSON, so a SQLite catalog can come back as a
PostgreSQL one and the other way round.  Disaster recovery: restore the newest
snapshot, then ``pytp catalog rebuild`` the tapes written after it.

A snapshot cut short (its ``catalog backup`` was killed) or damaged on tape
must not stand between the administrator and the good ones beside it: a
restore takes the newest snapshot on the tape that reads back whole, and
names each one it passed over.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import LargeBinary, func, insert, text
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError, StatementError
from sqlalchemy.types import DateTime
from sqlmodel import Session, SQLModel, select

from pytp.tapeio.drive import Drive, ensure_block_size
from pytp.tapeio.errors import MediumError, TapeIOError, TarFormatError
from pytp.tapeio.smallarchive import archive_blocks, peek_member_name, stream_small_archive, write_small_archive
from pytp.tapeio.volume_label import VolumeLabel

from .backup import interrupt_as_exception
from .config import Config
from .database import head_revision
from .devices import Selection
from .errors import CatalogError, NotFound, VerifyFailed
from .manifest import SNAPSHOT_MEMBER
from .media import open_media, position_at_end_of_data
from .models import TapeFile, TapeFileStatus, Volume, utcnow
from .rebuild_scan import first_blocks, goto_file

SNAPSHOT_VERSION = 1
#: the largest snapshot read back (``read_small_archive``'s own limit)
MAX_SNAPSHOT = 1 << 30
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


class _UnusableSnapshot(Exception):
    """A snapshot tape file that cannot be loaded: cut short, unreadable, or damaged."""


def _snapshot_lines(payload: bytes) -> list[bytes]:
    """The JSON lines of a snapshot, its header checked.

    :raises _UnusableSnapshot: not gzip, a failed gzip checksum, or no snapshot header.
    :raises CatalogError: a snapshot of another schema revision (not damage: another pytp reads it).
    """
    try:
        lines = gzip.decompress(payload).splitlines()
        header = json.loads(lines[0]) if lines else None
    except (OSError, EOFError, zlib.error, ValueError) as err:  # gzip's BadGzipFile is an OSError
        raise _UnusableSnapshot(f"damaged: {err}") from err
    if not isinstance(header, dict) or header.get("pytp_catalog_snapshot") != SNAPSHOT_VERSION:
        raise _UnusableSnapshot("not a pytp catalog snapshot this version can read")
    if header.get("schema") != head_revision():
        raise CatalogError(
            f"The snapshot has catalog schema {header.get('schema')}, this pytp {head_revision()}: "
            "restore it with the pytp version that wrote it, then `pytp db upgrade`."
        )
    return lines


def _require_empty(engine: Engine) -> None:
    with Session(engine) as session:
        if session.exec(select(func.count()).select_from(Volume)).one():
            raise CatalogError("The catalog is not empty; restore a snapshot into a new catalog only.")


def _load_lines(engine: Engine, lines: list[bytes]) -> dict[str, int]:
    """Insert a snapshot's rows (``lines`` as :func:`_snapshot_lines` returns them), in one transaction."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for number, line in enumerate(lines[1:], start=2):
        # A snapshot whose gzip checksum holds may still be crafted: a row pytp cannot
        # load is named, and nothing is loaded.
        try:
            item = json.loads(line)
            table = SQLModel.metadata.tables[item["t"]] if item["t"] in TABLES else None
            if table is None or not isinstance(item["r"], dict):
                raise ValueError("not a row of a catalog table")
            rows[item["t"]].append({key: _decode(table.c[key].type, value) for key, value in item["r"].items()})
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, RecursionError) as err:
            raise VerifyFailed(
                f"The catalog snapshot's line {number} is not a row pytp can load ({type(err).__name__}: "
                f"{str(err)[:200]}); nothing was loaded."
            ) from None
    try:
        with engine.begin() as connection:
            for name in TABLES:
                if rows[name]:
                    connection.execute(insert(SQLModel.metadata.tables[name]), rows[name])
                if engine.dialect.name == "postgresql":
                    # Explicit ids leave the serial sequence behind: move it past them.
                    connection.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), COALESCE(MAX(id), 0) + 1, "
                            f"false) FROM {name}"
                        )
                    )
    except (IntegrityError, DataError, StatementError) as err:
        raise VerifyFailed(
            f"The catalog snapshot holds rows the catalog refuses ({str(err.orig or err)[:200]}); nothing was loaded."
        ) from None
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
    """Write a snapshot of the catalog to the end of data of a tape of ``pool``.

    Interrupted (Ctrl-C, SIGTERM) or failing once its tape-file row exists, the
    row is marked incomplete, as an interrupted backup job's tape file is; a
    process killed outright leaves it ``writing``, and the next command that
    appends to the tape marks it incomplete (``media.position_at_end_of_data``).
    """
    pool = pool or config.default_pool
    with (
        open_media(config, selection) as media,
        Session(engine, expire_on_commit=False) as session,
    ):
        volume = media.mount_for_append(session, pool)
        ensure_block_size(media.drive, media.block_size)
        number = position_at_end_of_data(session, media.drive, volume)
        session.commit()
        # Exported after positioning, so that a snapshot row an earlier killed
        # `catalog backup` left `writing` is already settled in this snapshot.
        payload = export_catalog(engine)
        rows = gzip.decompress(payload).count(b"\n") - 1
        tape_file = TapeFile(
            volume_id=volume.id,
            file_number=number,
            kind="catalog",  # type: ignore[arg-type]
            block_size=media.block_size,
        )
        volume.file_count = number + 1
        session.add_all([tape_file, volume])
        session.commit()
        with interrupt_as_exception():
            try:
                blocks = write_small_archive(media.drive, media.block_size, SNAPSHOT_MEMBER, payload)
            except BaseException:
                _mark_incomplete(session, tape_file)
                raise
            tape_file.blocks = blocks
            tape_file.total_bytes = blocks * media.block_size
            tape_file.status = TapeFileStatus.COMPLETE
            volume.bytes_written += tape_file.total_bytes
            volume.last_written_at = utcnow()
            session.add_all([tape_file, volume])
            session.commit()
        return SnapshotResult(volume.label, number, len(payload), rows)


def _mark_incomplete(session: Session, tape_file: TapeFile) -> None:
    """Record that the snapshot being written did not reach tape whole; the original error matters more."""
    try:
        session.rollback()
        tape_file.status = TapeFileStatus.INCOMPLETE
        session.add(tape_file)
        session.commit()
    except Exception:  # noqa: BLE001 - left `writing`, the next append to the tape settles it
        pass


@dataclass(frozen=True)
class RestoreResult:
    """What ``restore_catalog`` loaded: from which tape file, how many rows per table.

    :param notes: one line per snapshot tape file passed over, newest first.
    """

    tape: str
    file_number: int
    counts: dict[str, int]
    notes: list[str]


def restore_catalog(
    engine: Engine, config: Config, selection: Selection, tape: str, progress: Callable[[str], None] | None = None
) -> RestoreResult:
    """Load the newest complete snapshot on ``tape`` into the (empty) catalog.

    The tape alone decides, not the catalog: every tape file after the label
    is looked at by its first block (data files are passed by filemark), then
    the snapshots are read newest first until one reads back whole and its
    gzip checksum holds.  Each one passed over (cut short, unreadable,
    damaged) is named in the result's notes; those older than the one loaded
    are not read.

    :raises NotFound: the tape holds no snapshot.
    :raises VerifyFailed: it holds snapshots, but none can be loaded.
    :raises CatalogError: the catalog is not empty, or the newest good
        snapshot is of another schema revision.
    """
    from .rebuild import load_tape_for_rebuild

    _require_empty(engine)  # before the tape is read, not after
    passed: list[tuple[int, str]] = []
    with open_media(config, selection) as media:
        label = load_tape_for_rebuild(media, tape)
        drive = media.drive
        ensure_block_size(drive, label.block_size)
        snapshots, unreadable, last = _snapshot_files(drive, label.block_size)
        for number in reversed(snapshots):
            try:
                lines, size = _read_snapshot(drive, label.block_size, number)
            except _UnusableSnapshot as err:
                passed.append((number, f"snapshot {err}"))
                continue
            if progress:
                progress(f"loading the catalog snapshot in tape file {number}")
            notes = [f"{label.label} file {n}: {why}; skipped" for n, why in passed]
            break
        else:
            reasons = "; ".join(f"file {n}: {why}" for n, why in sorted(passed + unreadable))
            if not snapshots:
                raise NotFound(
                    f"Tape {tape} holds no catalog snapshot (`pytp catalog backup` writes one)"
                    + (f"; {reasons}" if reasons else "")
                    + "."
                )
            raise VerifyFailed(
                f"Tape {tape} holds no usable catalog snapshot: {reasons}. Restore one from another tape, "
                "or rebuild the catalog from the tapes (`pytp catalog rebuild --all`)."
            )
    counts = _load_lines(engine, lines)
    _record_itself(engine, label, number, size)
    if last > number:
        notes.append(
            f"{label.label} holds tape files after this snapshot (up to file {last}), written after it: "
            f"`pytp catalog rebuild --tape {label.label}` adds them"
        )
    return RestoreResult(label.label, number, counts, notes)


def _record_itself(engine: Engine, label: VolumeLabel, number: int, size: int) -> None:
    """Record the snapshot's own tape file, which the snapshot could not hold.

    Without it the tape's file count stops one short, and the next append to
    the tape (a backup, another snapshot) would refuse it as written by
    someone else.
    """
    blocks = archive_blocks(size, label.block_size)
    with Session(engine) as session:
        volume = session.exec(select(Volume).where(Volume.uuid == label.uuid)).first()
        if volume is None:
            return
        recorded = session.exec(
            select(TapeFile).where(TapeFile.volume_id == volume.id, TapeFile.file_number == number)
        ).first()
        if recorded is None:
            session.add(
                TapeFile(
                    volume_id=volume.id,
                    file_number=number,
                    kind="catalog",  # type: ignore[arg-type]
                    status=TapeFileStatus.COMPLETE,
                    block_size=label.block_size,
                    blocks=blocks,
                    total_bytes=blocks * label.block_size,
                )
            )
        volume.file_count = max(volume.file_count, number + 1)
        session.add(volume)
        session.commit()


def _snapshot_files(drive: Drive, block_size: int) -> tuple[list[int], list[tuple[int, str]], int]:
    """The tape files that start with a snapshot header, those whose first block could not be read, and the last.

    One block of each tape file is read, as a rebuild's scan does.
    """
    snapshots: list[int] = []
    unreadable: list[tuple[int, str]] = []
    last = 0
    for number, first in first_blocks(drive, block_size):
        last = number
        if isinstance(first, MediumError):
            unreadable.append((number, f"first block unreadable ({first})"))
        elif peek_member_name(first) == SNAPSHOT_MEMBER:
            snapshots.append(number)
    return snapshots, unreadable, last


def _read_snapshot(drive: Drive, block_size: int, number: int) -> tuple[list[bytes], int]:
    """Read the snapshot in tape file ``number`` whole and check it: its lines, and its size in bytes.

    :raises _UnusableSnapshot: cut short, unreadable, or damaged.
    """
    try:
        goto_file(drive, number)
        _, pieces = stream_small_archive(drive, block_size, max_size=MAX_SNAPSHOT, expect=SNAPSHOT_MEMBER)
    except TapeIOError as err:
        raise _UnusableSnapshot(f"unreadable ({err})") from err
    try:
        payload = b"".join(pieces)
    except TarFormatError as err:  # its header was read: the tape file ends before the member does
        raise _UnusableSnapshot(f"cut short (the tape file ends before the member does: {err})") from err
    except TapeIOError as err:
        raise _UnusableSnapshot(f"unreadable ({err})") from err
    return _snapshot_lines(payload), len(payload)
