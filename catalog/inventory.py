"""Listings from the catalog: tapes (inventory) and jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from pytp.tapeio.errors import TapeIOError

from .config import Config
from .devices import open_changer
from .levels import DELETED
from .models import Entry, Job, TapeFile, TapeFileStatus, Volume, VolumeStatus, row_id
from .volumes import newest_snapshot_volume, retention_end, shown_status


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
    """Where each barcode is, from the status of every configured library.

    A library that does not answer is left out: its tapes then show as offline.
    """
    where: dict[str, Location] = {}
    for library in config.libraries:
        try:
            status = open_changer(library).status()
        except TapeIOError:
            continue
        for drive in status.drives:
            if drive.full and drive.barcode:
                name = library.drives[drive.index] if drive.index < len(library.drives) else str(drive.index)
                where[drive.barcode] = Location(library.name, drive=name)
        for slot in status.slots:
            if slot.full and slot.barcode:
                where[slot.barcode] = Location(library.name, slot=slot.number)
    return where


def _retention_text(end: datetime | None) -> str | None:
    if end is None:
        return None
    return "forever" if end.year == 9999 else _iso(end)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def tape_rows(session: Session, config: Config) -> list[dict[str, Any]]:
    """One row per known tape: label, barcode, location, status, pool, jobs, files, bytes, note."""
    where = locate_barcodes(config)
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
    rows = []
    for volume in session.exec(select(Volume).order_by(col(Volume.label))).all():
        location = where.get(volume.barcode or "")
        rows.append(
            {
                "label": volume.label,
                "barcode": volume.barcode,
                "library": location.library if location else None,
                "slot": location.slot if location else None,
                "drive": location.drive if location else None,
                "location": str(location) if location else "offline",
                "status": shown_status(session, config, volume),
                "retention_end": _retention_text(retention_end(session, config, volume)),
                "pool": volume.pool,
                "jobs": jobs.get(volume.id, 0),
                "files": files.get(volume.id, 0),
                "tape_files": volume.file_count,
                "bytes_written": volume.bytes_written,
                "capacity": volume.capacity,
                "last_written": _iso(volume.last_written_at),
                "note": _note(volume, snapshot),
            }
        )
    return rows


def _note(volume: Volume, snapshot: int | None) -> str | None:
    """Why a tape is in error, or that it holds what a disaster recovery needs."""
    if volume.status == VolumeStatus.ERROR:
        return volume.status_reason or "set aside"
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
