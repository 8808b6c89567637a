"""The retention rules of tapes and pools, as plain functions and SQL (issue 9).

A tape's data is in retention until ``retention_days`` after the newest good
job on it ended; a tape holding the newest catalog snapshot is kept too.
These rules are read by the listings without the ORM (``light_sql``) and by
``volumes`` for the jobs that label and recycle tapes, so both ask the
catalog with the same SQL and decide with the same functions.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .config import Config, PoolConfig
from .light_sql import Reader, as_datetime
from .statuses import JobStatus, TapeFileStatus, VolumeStatus

#: what ``end_of_retention`` returns for data kept forever
FOREVER = datetime.max.replace(tzinfo=timezone.utc)


def _claims(pool: PoolConfig, barcode: str | None) -> bool:
    if not barcode:
        return False
    return barcode in pool.barcodes or bool(pool.label_prefix and barcode.startswith(pool.label_prefix))


def pool_accepts(config: Config, pool: str, barcode: str | None) -> bool:
    """Whether a blank cartridge with ``barcode`` may be labelled into ``pool``.

    A pool with a ``label_prefix`` or a ``barcodes`` list takes only the
    cartridges they name; a pool without either takes any cartridge that no
    other pool claims.
    """
    wanted = config.pool(pool)
    if wanted.label_prefix or wanted.barcodes:
        return _claims(wanted, barcode)
    return not any(_claims(other, barcode) for other in config.pools if other.name != pool)


def pool_retention_days(config: Config, pool: str, recorded: int | None) -> int | None:
    """The pool's retention as configured now, else ``recorded`` (what the tape's labelling recorded)."""
    try:
        days = config.pool(pool).retention_days
    except Exception:  # noqa: BLE001 - a pool removed from the config
        days = None
    return days if days is not None else recorded


def end_of_retention(newest: datetime | None, days: int | None) -> datetime | None:
    """When data whose newest good job ended at ``newest`` leaves retention (None: no good data).

    ``days`` None keeps it forever (:data:`FOREVER`).
    """
    if newest is None:
        return None
    if days is None:
        return FOREVER
    if newest.tzinfo is None:  # SQLite hands back naive datetimes of UTC
        newest = newest.replace(tzinfo=timezone.utc)
    return newest + timedelta(days=days)


def status_shown(status: str, end: datetime | None, holds_snapshot: bool, now: datetime) -> str:
    """The status to show: the stored one, or ``expired`` once the tape's good data left retention.

    Only a tape that held good jobs expires (``end``), and not while it holds
    the newest catalog snapshot; a tape in ``error`` or ``retired`` shows that.
    """
    if status in (VolumeStatus.ERROR, VolumeStatus.RETIRED):
        return status
    if end is not None and end <= now and not holds_snapshot:
        return VolumeStatus.EXPIRED
    return status


#: when the newest good job on each tape ended.  A copy tape (``pytp copy``)
#: holds its original's jobs through its rows' ``copy_of_id``: it is kept as
#: long as they are, by its own pool's retention.
_GOOD_ENDS = """
SELECT tf.volume_id AS volume_id, MAX(j.ended_at) AS newest
FROM tape_file tf
JOIN volume v ON v.id = tf.volume_id
LEFT JOIN tape_file src ON src.id = tf.copy_of_id
JOIN job j ON j.id = CASE WHEN v.copy_of_id IS NULL THEN tf.job_id ELSE src.job_id END
WHERE tf.status != :overwritten AND j.status IN (:ok, :partial) {volume}
GROUP BY tf.volume_id
"""
GOOD_ENDS = _GOOD_ENDS.format(volume="")
GOOD_END_OF_VOLUME = _GOOD_ENDS.format(volume="AND tf.volume_id = :volume_id")


def newest_good_ends(reader: Reader, volume_id: int | None = None) -> dict[int, datetime]:
    """By volume id, when the newest good job on the tape ended (tapes without one are left out).

    :param volume_id: only this tape.
    """
    ok, partial = JobStatus.GOOD
    rows = reader.rows(
        GOOD_ENDS if volume_id is None else GOOD_END_OF_VOLUME,
        overwritten=TapeFileStatus.OVERWRITTEN,
        ok=ok,
        partial=partial,
        volume_id=volume_id,
    )
    return {row["volume_id"]: as_datetime(row["newest"]) for row in rows if row["newest"] is not None}


#: the tape of the newest complete catalog snapshot
NEWEST_SNAPSHOT = """
SELECT volume_id FROM tape_file WHERE kind = :catalog AND status = :complete ORDER BY id DESC LIMIT 1
"""


def newest_snapshot_volume(reader: Reader) -> int | None:
    """The volume id of the newest complete catalog snapshot on tape (None: there is none).

    It is what a disaster recovery starts from (``pytp catalog restore``), so
    its tape is protected like data in retention.
    """
    rows = reader.rows(NEWEST_SNAPSHOT, catalog="catalog", complete=TapeFileStatus.COMPLETE)
    return rows[0]["volume_id"] if rows else None
