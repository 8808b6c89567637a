"""Listings from the catalog: tapes (inventory), jobs and pools.

Read with plain SQL through a ``light_sql.Reader``, so a listing needs
neither the ORM nor SQLAlchemy on a SQLite catalog (issue 9); the same SQL
runs through SQLAlchemy Core on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pytp.tapeio.changer import is_cleaning_barcode
from pytp.tapeio.errors import TapeIOError

from .config import Config
from .errors import ConfigError, NotFound
from .health_rows import flags, newest_per_volume
from .light_sql import Reader, Row, as_datetime
from .retention import (
    newest_snapshot_volume,
    pool_accepts,
    retention_ends,
    status_shown,
)
from .statuses import DELETED, TapeFileStatus, VolumeStatus

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
    from .devices import open_changer  # the drive and changer code: only listings of tapes read a changer

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


def _iso(value: datetime | str | None) -> str | None:
    """ISO 8601 with its zone: SQLite hands back naive datetimes, which pytp stores in UTC."""
    value = as_datetime(value)
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


#: a tape file that counts: not overwritten, and a copy only once it is whole (a copy
#: killed part-way, then run again, counted the source's entries twice)
_COUNTED = "tf.status != :overwritten AND (tf.copy_of_id IS NULL OR tf.status = :complete)"
#: by tape, the jobs with data on it; a copy tape's rows name no job of their own (``pytp
#: copy``): they count the jobs of the tape files they mirror
TAPE_JOBS = f"""
SELECT tf.volume_id AS volume_id, COUNT(DISTINCT COALESCE(tf.job_id, source.job_id)) AS jobs
FROM tape_file tf LEFT JOIN tape_file source ON source.id = tf.copy_of_id
WHERE {_COUNTED}
GROUP BY tf.volume_id
"""
#: by tape, the entries it holds (deletions recorded by a job are not on tape); a copy
#: tape holds the entries of the tape files it mirrors
TAPE_ENTRIES = f"""
SELECT tf.volume_id AS volume_id, COUNT(e.id) AS files
FROM tape_file tf JOIN entry e ON e.tape_file_id = COALESCE(tf.copy_of_id, tf.id)
WHERE {_COUNTED} AND e.kind != :deleted
GROUP BY tf.volume_id
"""
#: the columns of every tape that a ``pytp tapes`` row shows or decides with
VOLUMES = """
SELECT id, label, barcode, pool, status, status_reason, retention_days, file_count, bytes_written, capacity,
       last_written_at, last_verified_at, last_verify_result, vault, copy_of_id
FROM volume ORDER BY label
"""


def tape_rows(reader: Reader, config: Config, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per known tape, then one per blank cartridge in a library (``TAPE_FIELDS``).

    Blank cartridges come from the changers' inventories (barcodes the catalog
    does not know); none is loaded to look.  Cleaning cartridges are left out.
    """
    contents = _library_contents(config)
    counted = {"overwritten": TapeFileStatus.OVERWRITTEN, "complete": TapeFileStatus.COMPLETE, "deleted": DELETED}
    jobs = {row["volume_id"]: row["jobs"] for row in reader.rows(TAPE_JOBS, **counted)}
    files = {row["volume_id"]: row["files"] for row in reader.rows(TAPE_ENTRIES, **counted)}
    snapshot = newest_snapshot_volume(reader)
    ends = retention_ends(reader, config)
    # The error counts and flags of each tape's newest health reading (health_log, issue 11).
    readings = newest_per_volume(reader)
    now = now or datetime.now(timezone.utc)
    rows = []
    known: set[str] = set()
    volumes = reader.rows(VOLUMES)
    labels = {v["id"]: v["label"] for v in volumes}
    for volume in volumes:
        if volume["barcode"]:
            known.add(volume["barcode"])
        location = contents.get(volume["barcode"] or "", (None, False))[0]
        end = ends.get(volume["id"])
        status = status_shown(volume["status"], end, volume["id"] == snapshot, now)
        rows.append(
            {
                "label": volume["label"],
                "barcode": volume["barcode"],
                # An exported tape no library holds is in its vault (``pytp vault export``).
                "location": str(location) if location else (f"vault {volume['vault']}" if volume["vault"] else OUTSIDE),
                "library": location.library if location else None,
                "slot": location.slot if location else None,
                "drive": location.drive if location else None,
                "pool": volume["pool"],
                "status": status,
                "status_reason": volume["status_reason"] if volume["status"] == VolumeStatus.ERROR else None,
                "expired_at": _iso(end) if status == VolumeStatus.EXPIRED else None,
                "retention_end": _retention_text(end),
                "jobs": jobs.get(volume["id"], 0),
                "files": files.get(volume["id"], 0),
                "tape_files": volume["file_count"],
                "bytes_written": volume["bytes_written"],
                "capacity": volume["capacity"],
                **_space(volume["bytes_written"], volume["capacity"]),
                "last_written": _iso(volume["last_written_at"]),
                "last_verified": _iso(volume["last_verified_at"]),
                "last_verify_result": volume["last_verify_result"],
                **_health_fields(readings.get(volume["id"])),
                # A copy tape (``pytp copy``) holds its original's jobs; its own rows name no job.
                "note": _note(volume, snapshot)
                or (f"copy of {labels.get(volume['copy_of_id'], '?')}" if volume["copy_of_id"] is not None else None),
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


def _health_fields(reading: Row | None) -> dict[str, Any]:
    """``errors`` (read + write), ``read_errors``, ``write_errors`` and ``tapealert`` of a tape's newest reading.

    The counts are the drive's corrected + uncorrected errors as the reading
    found them; None when no drive has reported on the tape yet.
    """
    if reading is None:
        return {"errors": None, "read_errors": None, "write_errors": None, "tapealert": None}
    counts = [n for n in (reading["read_errors"], reading["write_errors"]) if n is not None]
    return {
        "errors": sum(counts) if counts else None,
        "read_errors": reading["read_errors"],
        "write_errors": reading["write_errors"],
        "tapealert": flags(reading["tapealert"]),
    }


#: the tape ``pytp tapes TAPE`` names, by label or barcode
TAPE_BY_NAME = "SELECT id, label FROM volume WHERE label = :name OR barcode = :name"
#: a tape's tape files in order, each with the job that wrote it (none for a label or catalog
#: file); a copy tape's rows name their job through the source's row (``copy_of_id``)
TAPE_FILES = """
SELECT tf.file_number, tf.kind, j.id AS job_id, tf.source_root, tf.blocks, tf.total_bytes, tf.status,
       j.id AS job_row, j.name AS job_name, j.level AS job_level, j.status AS job_status, j.started_at AS job_start,
       j.ended_at AS job_end, j.files AS job_files, j.total_bytes AS job_bytes
FROM tape_file tf
LEFT JOIN tape_file source ON source.id = tf.copy_of_id
LEFT JOIN job j ON j.id = COALESCE(tf.job_id, source.job_id)
WHERE tf.volume_id = :volume_id
ORDER BY tf.file_number
"""


def tape_detail(reader: Reader, config: Config, label: str) -> dict[str, Any]:
    """``pytp tapes TAPE``: the tape's inventory row, its jobs and its tape files.

    :raises NotFound: no tape has that label (or barcode).
    """
    found = reader.rows(TAPE_BY_NAME, name=label)
    if not found:
        raise NotFound(f"No tape labelled '{label}' in the catalog (see `pytp tapes`).")
    volume = found[0]
    row = next(r for r in tape_rows(reader, config) if r["label"] == volume["label"])
    tape_files = reader.rows(TAPE_FILES, volume_id=volume["id"])
    files_rows = [
        {
            "file_number": tf["file_number"],
            "kind": tf["kind"],
            "job": tf["job_id"],
            "source": bytes(tf["source_root"]).decode("utf-8", "surrogateescape") if tf["source_root"] else None,
            "blocks": tf["blocks"],
            "bytes": tf["total_bytes"],
            "status": tf["status"],
        }
        for tf in tape_files
    ]
    seen: dict[int, Row] = {}
    for tf in tape_files:
        if tf["job_row"] is not None:
            seen.setdefault(tf["job_row"], tf)
    jobs = [
        {
            "id": job_id,
            "name": tf["job_name"],
            "level": tf["job_level"],
            "status": tf["job_status"],
            "start": _iso(tf["job_start"]),
            "end": _iso(tf["job_end"]),
            "files": tf["job_files"],
            "bytes": tf["job_bytes"],
        }
        for job_id, tf in sorted(seen.items())
    ]
    return {**row, "job_list": jobs, "tape_file_list": files_rows}


def _note(volume: Row, snapshot: int | None) -> str | None:
    """Why a tape is in error or retired, or that it holds what a disaster recovery needs."""
    if volume["status"] == VolumeStatus.ERROR:
        return volume["status_reason"] or "set aside"
    if volume["status"] == VolumeStatus.RETIRED:
        return "retired: never written or recycled, still read for restores"
    if volume["id"] == snapshot:
        return "holds the newest catalog snapshot"
    return None


#: the tapes each job has tape files on
JOB_TAPES = """
SELECT DISTINCT tf.job_id AS job_id, v.label AS label FROM tape_file tf JOIN volume v ON v.id = tf.volume_id
"""
#: the jobs, newest first; ``{where}`` and ``{limit}`` are the optional host and count clauses.
#: By start time, not id: a rebuilt catalog numbers jobs in the order it read the tapes.
_JOBS = """
SELECT id, name, label, level, status, host, pool, started_at, ended_at, files, total_bytes, problems, message
FROM job {where}
ORDER BY started_at DESC, id DESC {limit}
"""
#: by (only one host's, only the newest N)
JOBS = {
    (of_host, newest): _JOBS.format(
        where="WHERE host = :host OR host IS NULL" if of_host else "", limit="LIMIT :limit" if newest else ""
    )
    for of_host in (False, True)
    for newest in (False, True)
}


def job_rows(reader: Reader, limit: int | None = None, host: str | None = None) -> list[dict[str, Any]]:
    """One row per job, newest first; with ``host``, only that host's jobs (and those that name none)."""
    tapes: dict[int, set[str]] = {}
    for row in reader.rows(JOB_TAPES):
        tapes.setdefault(row["job_id"], set()).add(row["label"])
    rows = []
    for job in reader.rows(JOBS[host is not None, bool(limit)], host=host, limit=limit):
        started, ended = as_datetime(job["started_at"]), as_datetime(job["ended_at"])
        duration = (ended - started).total_seconds() if ended and started else None
        rows.append(
            {
                "id": job["id"],
                "name": job["name"],
                "label": job["label"],
                "level": job["level"],
                "status": job["status"],
                "host": job["host"],
                "pool": job["pool"],
                "start": _iso(started),
                "duration": round(duration, 1) if duration is not None else None,
                "files": job["files"],
                "bytes": job["total_bytes"],
                "problems": job["problems"],
                "tapes": sorted(tapes.get(job["id"], set())),
                "message": job["message"],
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


def pool_rows(reader: Reader, config: Config) -> list[dict[str, Any]]:
    """One row per configured pool (and per pool the catalog has tapes of): tapes by status, used, free.

    Free space counts appendable tapes only: it is what a backup can still write
    without recycling.  ``blank`` counts the library's unlabelled cartridges the
    pool would take (``pool_accepts``), so one blank may count for several pools.
    """
    tapes = tape_rows(reader, config)
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
