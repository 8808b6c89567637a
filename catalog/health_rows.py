"""Stored health readings as the listings show them, read without the ORM (issue 9).

``pytp tapes`` shows each tape's newest error counts and TapeAlert flags;
``pytp drives`` and the job summaries show readings with the same field names.
Kept apart from ``health_log`` (taking and storing readings around a job), so
a listing imports neither the ORM nor the drive code.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .light_sql import Reader, as_datetime


def flag_dict(number: int) -> dict[str, Any]:
    """One TapeAlert flag as a table row: number, name, severity."""
    from pytp.tapeio.health import tapealert_flag  # its table is needed only when a flag is set

    flag = tapealert_flag(number)
    return {"number": flag.number, "name": flag.name, "severity": flag.severity}


def flags(text: str | None) -> list[dict[str, Any]] | None:
    """``"4,20"`` as the flags' table rows (number, name, severity); None when not available."""
    if text is None:
        return None
    return [flag_dict(int(n)) for n in text.split(",") if n.strip()]


def local_iso(value: datetime | str | None) -> str | None:
    """A reading's time in this host's zone, ISO 8601 (SQLite's naive values are UTC)."""
    value = as_datetime(value)
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone().isoformat()


def reading_dict(row: Any) -> dict[str, Any]:
    """A stored reading (``HealthReading``), JSON-ready, with the field names of ``pytp drives`` and job summaries."""
    return {
        "taken_at": local_iso(row.taken_at),
        "phase": row.phase,
        "job_id": row.job_id,
        "available": row.unavailable is None,
        "unavailable": row.unavailable,
        "tapealert": flags(row.tapealert),
        "read_errors": row.read_errors,
        "write_errors": row.write_errors,
    }


#: each tape's newest reading that the drive answered.  Newest is the last
#: stored (the highest id): a job stores its readings when it ends, the one
#: after the job last.  One row per tape is read, however long the history.
NEWEST_PER_VOLUME = """
SELECT volume_id, tapealert, read_errors, write_errors FROM health_reading
WHERE id IN (
    SELECT MAX(id) FROM health_reading WHERE volume_id IS NOT NULL AND unavailable IS NULL GROUP BY volume_id
)
"""


def newest_per_volume(reader: Reader) -> dict[int, dict[str, Any]]:
    """By volume id, the newest answered reading's ``tapealert``, ``read_errors`` and ``write_errors``."""
    return {row["volume_id"]: row for row in reader.rows(NEWEST_PER_VOLUME)}
