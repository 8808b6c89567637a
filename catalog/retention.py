"""The retention rules of tapes and pools, as plain functions and SQL (issue 9).

A tape's data is in retention until ``retention_days`` after the newest good
job on it ended, and while later jobs of the same chain that need those jobs
are (``retention_ends``); a tape holding the newest catalog snapshot is kept too.
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


#: the good jobs on each tape, and when each ended.  A copy tape (``pytp copy``)
#: holds its original's jobs through its rows' ``copy_of_id``: it is kept as
#: long as they are, by its own pool's retention.
_JOBS_ON_TAPES = """
SELECT DISTINCT tf.volume_id AS volume_id, j.id AS job_id, j.ended_at AS ended_at
FROM tape_file tf
LEFT JOIN tape_file src ON src.id = tf.copy_of_id
JOIN job j ON j.id = COALESCE(src.job_id, tf.job_id)
WHERE tf.status != :overwritten AND j.status IN (:ok, :partial)
"""

#: the good jobs that stored data, by chain (``levels.chain_jobs``: name, label, host, source)
_CHAINS = """
SELECT DISTINCT j.id AS job_id, j.name AS name, j.label AS label, j.host AS host, j.level AS level,
       j.started_at AS started_at, tf.source_root AS root
FROM job j JOIN tape_file tf ON tf.job_id = j.id
WHERE j.status IN (:ok, :partial) AND tf.kind = 'data' AND tf.status != :overwritten
"""

_VOLUMES = "SELECT id, pool, retention_days, copy_of_id FROM volume"


def retention_ends(reader: Reader, config: Config, volume_id: int | None = None) -> dict[int, datetime]:
    """By volume id, when the good data on the tape leaves retention (tapes without any are left out).

    A tape's own jobs keep it ``retention_days`` (its pool's) after the newest
    of them ended.  A job also stays as long as the later jobs of its chain
    segment do (the incrementals and differentials after the same full, with
    their own tapes' retention): they are restored, and ``--as-of`` reads
    them, together with it, so a full must not be recycled while an
    incremental that needs it is kept.  Originals and copies are counted
    apart: an incremental's offsite copy keeps the full's offsite copy, not
    its original.

    :param volume_id: only this tape's end (the chains are read whole all the same).
    """
    ok, partial = JobStatus.GOOD
    status = {"overwritten": TapeFileStatus.OVERWRITTEN, "ok": ok, "partial": partial}
    volumes = {row["id"]: row for row in reader.rows(_VOLUMES)}
    on_tapes = reader.rows(_JOBS_ON_TAPES, **status)
    own: dict[tuple[int, bool], datetime] = {}  # (job, on a copy tape): its own latest end
    for row in on_tapes:
        volume = volumes[row["volume_id"]]
        end = end_of_retention(
            as_datetime(row["ended_at"]), pool_retention_days(config, volume["pool"], volume["retention_days"])
        )
        key = (row["job_id"], volume["copy_of_id"] is not None)
        if end is not None and (key not in own or end > own[key]):
            own[key] = end
    kept = _kept_by_chains(reader.rows(_CHAINS, **status), own)
    ends: dict[int, datetime] = {}
    for row in on_tapes:
        if volume_id is not None and row["volume_id"] != volume_id:
            continue
        key = (row["job_id"], volumes[row["volume_id"]]["copy_of_id"] is not None)
        end = max((e for e in (own.get(key), kept.get(key)) if e is not None), default=None)
        if end is not None and (row["volume_id"] not in ends or end > ends[row["volume_id"]]):
            ends[row["volume_id"]] = end
    return ends


def _kept_by_chains(rows: list[dict], own: dict[tuple[int, bool], datetime]) -> dict[tuple[int, bool], datetime]:
    """For each job (and kind of tape), the latest own end of the jobs after it in its chain segment."""
    chains: dict[tuple, list[dict]] = {}
    for row in rows:
        chains.setdefault((row["name"], row["label"], row["host"], row["root"]), []).append(row)
    kept: dict[tuple[int, bool], datetime] = {}
    for jobs in chains.values():
        jobs.sort(key=lambda r: (as_datetime(r["started_at"]) or datetime.min, r["job_id"]))
        for copy in (False, True):
            latest: datetime | None = None  # walking back: the latest end from here to the segment's end
            for row in reversed(jobs):
                end = own.get((row["job_id"], copy))
                if end is not None and (latest is None or end > latest):
                    latest = end
                if latest is not None:
                    key = (row["job_id"], copy)
                    kept[key] = max(kept.get(key, latest), latest)
                if row["level"] == "full":
                    latest = None  # what came before this full does not serve what comes after it
    return kept


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
