"""The catalog's tables: volumes, jobs, tape files, entries, job problems.

Paths are bytes on Linux, so ``path`` columns are binary and hold the exact
name; ``path_text`` is a display and search form (UTF-8, with undecodable
bytes shown as ``\\xNN``).  Sizes, offsets and nanosecond times are 64-bit.
"""

from __future__ import annotations

import uuid as uuidlib
from datetime import datetime, timezone
from typing import Protocol

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, LargeBinary, MetaData, Table, Text, event
from sqlmodel import Field, SQLModel

from pytp.tapeio.tarwriter import member_data_size

from . import search_index
from .entry_types import HexDigest, RawPath
from .statuses import JobStatus, TapeFileStatus, VolumeStatus  # noqa: F401 - re-exported: defined without the ORM

# Named constraints, so SQLite batch migrations can drop and recreate them
# (alembic docs/build/batch.rst, "Dropping Unnamed or Named Foreign Key Constraints").
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Row(Protocol):
    id: int | None


def row_id(row: _Row) -> int:
    """The primary key of a row that is in the database.

    SQLModel types ``id`` as ``int | None`` because it is None until the
    INSERT; a row read back or flushed always has one.  This says so once,
    instead of a ``type: ignore`` at every use.

    :raises ValueError: the row was never flushed (a bug in the caller).
    """
    if row.id is None:
        raise ValueError(f"{type(row).__name__} row has no id yet: flush it before using its id")
    return row.id


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a table model, for plain-SQL statements.

    SQLModel sets ``__table__`` on every ``table=True`` class without
    declaring it, so type checkers do not see it: this says so once.
    """
    return model.__table__  # type: ignore[attr-defined]


def _ts(nullable: bool = True) -> Column:  # type: ignore[type-arg]
    return Column(DateTime(timezone=True), nullable=nullable)


class Volume(SQLModel, table=True):
    """A labelled tape."""

    id: int | None = Field(default=None, primary_key=True)
    label: str = Field(unique=True, index=True)
    barcode: str | None = Field(default=None, index=True)
    uuid: str = Field(unique=True, index=True)
    pool: str = Field(index=True)
    status: str = VolumeStatus.APPENDABLE
    block_size: int
    capacity: int | None = Field(default=None, sa_type=BigInteger)
    bytes_written: int = Field(default=0, sa_type=BigInteger)
    #: tape files the tape holds according to the catalog, label included:
    #: the file number at end of data, checked before every append.
    file_count: int = 1
    #: the library the tape was labelled in; where it is now comes from the changer
    library: str | None = None
    retention_days: int | None = None
    #: why the tape is in ``error`` status (shown by ``pytp tapes``)
    status_reason: str | None = Field(default=None, sa_type=Text)
    format_version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(False))
    last_written_at: datetime | None = Field(default=None, sa_column=_ts())
    #: a copy tape (``pytp copy``) mirrors this tape: its tape file N is the
    #: source's tape file N, byte for byte, so every catalog position holds on it
    copy_of_id: int | None = Field(default=None, sa_column=Column(ForeignKey("volume.id"), nullable=True, index=True))
    #: the named vault the tape was exported to (``pytp vault export``); None
    #: while it is in a library (where exactly comes from the changer)
    vault: str | None = None
    vault_since: datetime | None = Field(default=None, sa_column=_ts())
    #: the last verify of the whole tape (``pytp scrub``, or ``verify`` of every job on it)
    last_verified_at: datetime | None = Field(default=None, sa_column=_ts())
    #: "ok" or "failed"; details in ``last_verify_message``
    last_verify_result: str | None = None
    last_verify_message: str | None = Field(default=None, sa_type=Text)


class Job(SQLModel, table=True):
    """One run of backup: ``running`` until data and manifest are on tape."""

    id: int | None = Field(default=None, primary_key=True)
    #: identity across catalogs: a rebuild from tape merges jobs by it
    uuid: str = Field(default_factory=lambda: str(uuidlib.uuid4()), unique=True, index=True)
    name: str | None = Field(default=None, index=True)
    label: str | None = None
    level: str = "full"
    strategy: str = "direct"
    status: str = Field(default=JobStatus.RUNNING, index=True)
    pool: str | None = None
    host: str | None = None
    #: the process running the job on ``host``, and its start time
    #: (``procinfo.process_identity``): a pid alone may be reused, so both say
    #: whether the job's process is still alive (``reconcile``).
    pid: int | None = None
    process_start: str | None = None
    sources: str = Field(default="[]", sa_type=Text)
    started_at: datetime = Field(default_factory=utcnow, sa_column=_ts(False))
    ended_at: datetime | None = Field(default=None, sa_column=_ts())
    files: int = 0
    total_bytes: int = Field(default=0, sa_type=BigInteger)
    problems: int = 0
    message: str | None = Field(default=None, sa_type=Text)
    #: the job log (summary, problems, notes, tape moves, later verifies), bounded by ``joblog.MAX_LOG_CHARS``
    log: str | None = Field(default=None, sa_type=Text)


class TapeFile(SQLModel, table=True):
    """One tape file (between two filemarks) written by a job."""

    __tablename__ = "tape_file"
    __table_args__ = (Index("ix_tape_file_volume_number", "volume_id", "file_number"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int | None = Field(default=None, sa_column=Column(ForeignKey("job.id"), index=True))
    volume_id: int = Field(sa_column=Column(ForeignKey("volume.id"), nullable=False))
    file_number: int
    kind: str  # "data" or "manifest"
    source_root: bytes | None = Field(default=None, sa_type=LargeBinary)
    status: str = TapeFileStatus.WRITING
    block_size: int
    blocks: int = Field(default=0, sa_type=BigInteger)
    total_bytes: int = Field(default=0, sa_type=BigInteger)
    #: on a copy tape: the tape file this one is a block-exact copy of (same
    #: file number on the source tape); its entries stay on the original row
    copy_of_id: int | None = Field(
        default=None, sa_column=Column(ForeignKey("tape_file.id"), nullable=True, index=True)
    )


class Entry(SQLModel, table=True):
    """One backed-up version of one path."""

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=Column(ForeignKey("job.id"), nullable=False, index=True))
    tape_file_id: int = Field(sa_column=Column(ForeignKey("tape_file.id"), nullable=False, index=True))
    #: the exact name; stored as NULL when it is the UTF-8 of ``path_text`` (``entry_types``)
    path: bytes = Field(sa_column=Column("path", RawPath, nullable=True))
    #: searched through the trigram index of ``search_index``, not a btree
    path_text: str
    kind: str
    size: int = Field(default=0, sa_type=BigInteger)
    mode: int = 0
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    mtime_ns: int = Field(default=0, sa_type=BigInteger)
    ctime_ns: int = Field(default=0, sa_type=BigInteger)
    inode: int = Field(default=0, sa_type=BigInteger)
    device: int = Field(default=0, sa_type=BigInteger)
    link_target: bytes | None = Field(default=None, sa_type=LargeBinary)
    #: hex on the Python side, 16 bytes in the database (``entry_types``)
    xxh3: str | None = Field(default=None, sa_type=HexDigest)
    offset: int = Field(default=0, sa_type=BigInteger)
    header_size: int = 0
    #: a file stored sparse: its map of data regions (``tapeio.sparse``); the
    #: archive then holds the map and the regions, not ``size`` bytes
    sparse_map: str | None = Field(default=None, sa_type=Text)

    @property
    def data_size(self) -> int:
        """Data bytes the member has on tape, after its headers."""
        return member_data_size(self.kind, self.size, self.sparse_map)


# A new catalog gets the trigram index with its tables (migration 0004 adds it to old ones).
event.listen(table_of(Entry), "after_create", lambda _table, connection, **_kw: search_index.install(connection))


class EntryPart(SQLModel, table=True):
    """One piece of a member whose data was cut across tapes (part 1 included).

    A member that is whole in one tape file has no parts: its ``Entry`` says it all.
    """

    __tablename__ = "entry_part"

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(sa_column=Column(ForeignKey("entry.id"), nullable=False, index=True))
    part: int
    tape_file_id: int = Field(sa_column=Column(ForeignKey("tape_file.id"), nullable=False))
    #: byte offset of this part's headers in its tape file
    offset: int = Field(default=0, sa_type=BigInteger)
    header_size: int = 0
    #: where this part's bytes sit in the member's data
    data_start: int = Field(default=0, sa_type=BigInteger)
    data_size: int = Field(default=0, sa_type=BigInteger)


class HealthReading(SQLModel, table=True):
    """What a drive reported (TapeAlert flags, error counters) at one moment.

    Taken before and after each job and by ``pytp drives``/``scrub``; tied to
    the job and the tape in the drive, so trends per tape and per drive can be
    read back (``scrub`` prefers tapes whose error counts grow).
    """

    __tablename__ = "health_reading"

    id: int | None = Field(default=None, primary_key=True)
    taken_at: datetime = Field(default_factory=utcnow, sa_column=_ts(False))
    drive: str
    #: "before" / "after" a job, "scrub", "drives" (a manual look) ...
    phase: str
    job_id: int | None = Field(default=None, sa_column=Column(ForeignKey("job.id"), nullable=True, index=True))
    volume_id: int | None = Field(default=None, sa_column=Column(ForeignKey("volume.id"), nullable=True, index=True))
    #: comma-separated TapeAlert flag numbers set, "" for none; None: not available
    tapealert: str | None = None
    read_errors: int | None = Field(default=None, sa_type=BigInteger)
    write_errors: int | None = Field(default=None, sa_type=BigInteger)
    #: why no reading could be taken (e.g. the drive rejects LOG SENSE)
    unavailable: str | None = Field(default=None, sa_type=Text)


class CleaningCartridge(SQLModel, table=True):
    """A cleaning cartridge (barcode ``CLN…``): never labelled, its uses counted."""

    __tablename__ = "cleaning_cartridge"

    id: int | None = Field(default=None, primary_key=True)
    barcode: str = Field(unique=True, index=True)
    uses: int = 0
    #: uses the cartridge is good for (LTO universal cleaning cartridges: 50)
    max_uses: int = 50
    last_used_at: datetime | None = Field(default=None, sa_column=_ts())
    last_drive: str | None = None


class JobProblem(SQLModel, table=True):
    """A path a job skipped or could not store intact."""

    __tablename__ = "job_problem"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=Column(ForeignKey("job.id"), nullable=False, index=True))
    path: bytes = Field(sa_type=LargeBinary)
    path_text: str
    message: str = Field(sa_type=Text)


def path_text(path: bytes) -> str:
    """Display and search form of a raw path."""
    return path.decode("utf-8", "backslashreplace")
