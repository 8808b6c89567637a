"""Listings from the catalog: tapes (inventory) and jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from pytp.tapeio.changer import is_cleaning_barcode
from pytp.tapeio.errors import TapeIOError

from .config import Config
from .devices import open_changer
from .errors import ConfigError, NotFound
from .health_log import newest_per_volume, reading_dict
from .levels import DELETED
from .models import Entry, HealthReading, Job, TapeFile, TapeFileStatus, Volume, VolumeStatus, row_id
from .volumes import newest_snapshot_volume, retention_end, shown_status

#: where a tape is that no configured library holds and no vault records (``pytp vault``)
OUTSIDE = "outside"
#: the status of a cartridge in a library that the catalog does not know
BLANK = "blank"


@dataclass(frozen=True)
class Location:
    library: str
    slot: int | None = None
    drive: str | None = None

    def __str__(self) -> str:
        if self.drive is not None:
            return f"{self.library}:drive {self.drive}"
        return f"{self.library}:slot {self.slot}"


def locate_barcodes(config: Config) -> dict[str, Location]:
    """Where each barcode is, from the status of every configured library."""
    return {barcode: where for barcode, (where, _) in _library_contents(config).items()}


def _library_contents(config: Config) -> dict[str, tuple[Location, bool]]:
    """Each barcode in a configured library: where it is, and whether it is a cleaning cartridge.

    A library that does not answer is left out: its tapes then show as outside.
    """
    where: dict[str, tuple[Location, bool]] = {}
    for library in config.libraries:
        try:
            status = open_changer(library).status()
        except TapeIOError:
            continue
        for drive in status.drives:
            if drive.full and drive.barcode:
                name = library.drives[drive.index] if drive.index < len(library.drives) else str(drive.index)
                where[drive.barcode] = (Location(library.name, drive=name), is_cleaning_barcode(drive.barcode))
        for slot in status.slots:
            if slot.full and slot.barcode:
                where[slot.barcode] = (Location(library.name, slot=slot.number), slot.is_cleaning)
    return where


def _retention_text(end: datetime | None) -> str | None:
    if end is None:
        return None
    return "forever" if end.year == 9999 else _iso(end)


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 with its zone: SQLite hands back naive datetimes, which pytp stores in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat(timespec="seconds")


#: the fields of every ``pytp tapes`` row, in every format (blank cartridges fill what they can)
TAPE_FIELDS = (
    "label",
    "barcode",
    "location",
    "library",
    "slot",
    "drive",
    "pool",
    "status",
    "status_reason",
    "expired_at",
    "retention_end",
    "jobs",
    "files",
    "tape_files",
    "bytes_written",
    "capacity",
    "free",
    "used_pct",
    "free_pct",
    "last_written",
    "last_verified",
    "last_verify_result",
    "errors",
    "read_errors",
    "write_errors",
    "tapealert",
    "note",
)


def _space(used: int, capacity: int | None) -> dict[str, Any]:
    if not capacity:
        return {"free": None, "used_pct": None, "free_pct": None}
    free = max(capacity - used, 0)
    return {"free": free, "used_pct": round(100 * used / capacity, 1), "free_pct": round(100 * free / capacity, 1)}


def tape_rows(session: Session, config: Config, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per known tape, then one per blank cartridge in a library (``TAPE_FIELDS``).

    Blank cartridges come from the changers' inventories (barcodes the catalog
    does not know); none is loaded to look.  Cleaning cartridges are left out.
    """
    contents = _library_contents(config)
    jobs = dict(
        session.exec(
            select(TapeFile.volume_id, func.count(func.distinct(TapeFile.job_id)))
            .where(col(TapeFile.status) != TapeFileStatus.OVERWRITTEN)
            .group_by(TapeFile.volume_id)
        ).all()
    )
    files = dict(
        session.exec(
            select(TapeFile.volume_id, func.count(Entry.id))
            .join(Entry, col(Entry.tape_file_id) == TapeFile.id)
            .where(col(TapeFile.status) != TapeFileStatus.OVERWRITTEN, Entry.kind != DELETED)
            .group_by(TapeFile.volume_id)
        ).all()
    )
    snapshot = newest_snapshot_volume(session)
    # The error counts and flags of each tape's newest health reading (health_log, issue 11).
    readings = newest_per_volume(session)
    rows = []
    known: set[str] = set()
    volumes = session.exec(select(Volume).order_by(col(Volume.label))).all()
    labels = {v.id: v.label for v in volumes}
    for volume in volumes:
        if volume.barcode:
            known.add(volume.barcode)
        location = contents.get(volume.barcode or "", (None, False))[0]
        status = shown_status(session, config, volume, now)
        end = retention_end(session, config, volume)
        rows.append(
            {
                "label": volume.label,
                "barcode": volume.barcode,
                # An exported tape no library holds is in its vault (``pytp vault export``).
                "location": str(location) if location else (f"vault {volume.vault}" if volume.vault else OUTSIDE),
                "library": location.library if location else None,
                "slot": location.slot if location else None,
                "drive": location.drive if location else None,
                "pool": volume.pool,
                "status": status,
                "status_reason": volume.status_reason if volume.status == VolumeStatus.ERROR else None,
                "expired_at": _iso(end) if status == VolumeStatus.EXPIRED else None,
                "retention_end": _retention_text(end),
                "jobs": jobs.get(volume.id, 0),
                "files": files.get(volume.id, 0),
                "tape_files": volume.file_count,
                "bytes_written": volume.bytes_written,
                "capacity": volume.capacity,
                **_space(volume.bytes_written, volume.capacity),
                "last_written": _iso(volume.last_written_at),
                "last_verified": _iso(volume.last_verified_at),
                "last_verify_result": volume.last_verify_result,
                **_health_fields(readings.get(row_id(volume))),
                # A copy tape (``pytp copy``) holds its original's jobs; its own rows name no job.
                "note": _note(volume, snapshot)
                or (f"copy of {labels.get(volume.copy_of_id, '?')}" if volume.copy_of_id is not None else None),
            }
        )
    for barcode, (location, cleaning) in sorted(contents.items(), key=lambda item: str(item[1][0])):
        if barcode in known or cleaning:
            continue
        row: dict[str, Any] = dict.fromkeys(TAPE_FIELDS)
        row.update(
            barcode=barcode,
            location=str(location),
            library=location.library,
            slot=location.slot,
            drive=location.drive,
            status=BLANK,
            jobs=0,
            files=0,
            tape_files=0,
            bytes_written=0,
            note="not labelled: a backup labels it when it needs a tape",
        )
        rows.append(row)
    return rows


def _health_fields(reading: HealthReading | None) -> dict[str, Any]:
    """``errors`` (read + write), ``read_errors``, ``write_errors`` and ``tapealert`` of a tape's newest reading.

    The counts are the drive's corrected + uncorrected errors as the reading
    found them; None when no drive has reported on the tape yet.
    """
    if reading is None:
        return {"errors": None, "read_errors": None, "write_errors": None, "tapealert": None}
    shown = reading_dict(reading)
    counts = [n for n in (reading.read_errors, reading.write_errors) if n is not None]
    return {
        "errors": sum(counts) if counts else None,
        "read_errors": reading.read_errors,
        "write_errors": reading.write_errors,
        "tapealert": shown["tapealert"],
    }


def tape_detail(session: Session, config: Config, label: str) -> dict[str, Any]:
    """``pytp tapes TAPE``: the tape's inventory row, its jobs and its tape files.

    :raises NotFound: no tape has that label (or barcode).
    """
    volume = session.exec(select(Volume).where((col(Volume.label) == label) | (col(Volume.barcode) == label))).first()
    if volume is None:
        raise NotFound(f"No tape labelled '{label}' in the catalog (see `pytp tapes`).")
    row = next(r for r in tape_rows(session, config) if r["label"] == volume.label)
    tape_files = session.exec(
        select(TapeFile, Job)
        .join(Job, col(Job.id) == TapeFile.job_id, isouter=True)
        .where(TapeFile.volume_id == volume.id)
        .order_by(col(TapeFile.file_number))
    ).all()
    files_rows = [
        {
            "file_number": tf.file_number,
            "kind": tf.kind,
            "job": tf.job_id,
            "source": tf.source_root.decode("utf-8", "surrogateescape") if tf.source_root else None,
            "blocks": tf.blocks,
            "bytes": tf.total_bytes,
            "status": tf.status,
        }
        for tf, _ in tape_files
    ]
    seen: dict[int, Job] = {}
    for _, job in tape_files:
        if job is not None:
            seen.setdefault(row_id(job), job)
    jobs = [
        {
            "id": row_id(job),
            "name": job.name,
            "level": job.level,
            "status": job.status,
            "start": _iso(job.started_at),
            "end": _iso(job.ended_at),
            "files": job.files,
            "bytes": job.total_bytes,
        }
        for job in sorted(seen.values(), key=lambda j: row_id(j))
    ]
    return {**row, "job_list": jobs, "tape_file_list": files_rows}


def _note(volume: Volume, snapshot: int | None) -> str | None:
    """Why a tape is in error or retired, or that it holds what a disaster recovery needs."""
    if volume.status == VolumeStatus.ERROR:
        return volume.status_reason or "set aside"
    if volume.status == VolumeStatus.RETIRED:
        return "retired: never written or recycled, still read for restores"
    if volume.id == snapshot:
        return "holds the newest catalog snapshot"
    return None


def job_rows(session: Session, limit: int | None = None, host: str | None = None) -> list[dict[str, Any]]:
    """One row per job, newest first; with ``host``, only that host's jobs."""
    tapes: dict[int, set[str]] = {}
    for job_id, label in session.exec(
        select(TapeFile.job_id, Volume.label).join(Volume, col(Volume.id) == TapeFile.volume_id).distinct()
    ).all():
        tapes.setdefault(job_id, set()).add(label)
    # By start time, not id: a rebuilt catalog numbers jobs in the order it read the tapes.
    query = select(Job).order_by(col(Job.started_at).desc(), col(Job.id).desc())
    if host is not None:
        query = query.where((Job.host == host) | col(Job.host).is_(None))
    if limit:
        query = query.limit(limit)
    rows = []
    for job in session.exec(query).all():
        duration = (job.ended_at - job.started_at).total_seconds() if job.ended_at else None
        rows.append(
            {
                "id": job.id,
                "name": job.name,
                "label": job.label,
                "level": job.level,
                "status": job.status,
                "host": job.host,
                "pool": job.pool,
                "start": _iso(job.started_at),
                "duration": round(duration, 1) if duration is not None else None,
                "files": job.files,
                "bytes": job.total_bytes,
                "problems": job.problems,
                "tapes": sorted(tapes.get(row_id(job), set())),
                "message": job.message,
            }
        )
    return rows


#: the fields of every ``pytp pools`` row, in every format
POOL_FIELDS = (
    "pool",
    "retention_days",
    "label_prefix",
    "tapes",
    "blank",
    "appendable",
    "full",
    "error",
    "retired",
    "expired",
    "bytes_written",
    "capacity",
    "free",
)


def pool_rows(session: Session, config: Config) -> list[dict[str, Any]]:
    """One row per configured pool (and per pool the catalog has tapes of): tapes by status, used, free.

    Free space counts appendable tapes only: it is what a backup can still write
    without recycling.  ``blank`` counts the library's unlabelled cartridges the
    pool would take (``pool_accepts``), so one blank may count for several pools.
    """
    from .volumes import pool_accepts

    tapes = tape_rows(session, config)
    names = [p.name for p in config.pools]
    names += sorted({r["pool"] for r in tapes if r["pool"] and r["pool"] not in names})
    rows = []
    for name in names:
        mine = [r for r in tapes if r["pool"] == name]
        try:
            settings = config.pool(name)
            retention, prefix = settings.retention_days, settings.label_prefix
            blanks = sum(1 for r in tapes if r["status"] == BLANK and pool_accepts(config, name, r["barcode"]))
        except ConfigError:  # tapes of a pool since removed from the configuration
            retention, prefix, blanks = None, None, 0
        row: dict[str, Any] = {"pool": name, "retention_days": retention, "label_prefix": prefix}
        row["tapes"] = len(mine)
        row["blank"] = blanks
        for status in ("appendable", "full", "error", "retired", "expired"):
            row[status] = sum(1 for r in mine if r["status"] == status)
        row["bytes_written"] = sum(r["bytes_written"] or 0 for r in mine)
        row["capacity"] = sum(r["capacity"] or 0 for r in mine)
        row["free"] = sum(r["free"] or 0 for r in mine if r["status"] == VolumeStatus.APPENDABLE)
        rows.append(row)
    return rows
