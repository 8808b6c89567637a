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
    of them ended.  A job is also needed as long as the later jobs of its
    chain segment are kept (the incrementals and differentials after the same
    full, each on its longest-kept tape): they are restored, and ``--as-of``
    reads them, together with it.  So the tape that keeps the job longest
    (an offsite copy, say) is kept that long too; its other tapes go by their
    own retention.

    :param volume_id: only this tape's end (the chains are read whole all the same).
    """
    ok, partial = JobStatus.GOOD
    status = {"overwritten": TapeFileStatus.OVERWRITTEN, "ok": ok, "partial": partial}
    volumes = {row["id"]: row for row in reader.rows(_VOLUMES)}
    own: dict[int, dict[int, datetime]] = {}  # job: {volume: when it leaves retention there}
    for row in reader.rows(_JOBS_ON_TAPES, **status):
        volume = volumes[row["volume_id"]]
        end = end_of_retention(
            as_datetime(row["ended_at"]), pool_retention_days(config, volume["pool"], volume["retention_days"])
        )
        if end is not None:
            held = own.setdefault(row["job_id"], {})
            held[row["volume_id"]] = max(end, held.get(row["volume_id"], end))
    longest = {job: max(held.values()) for job, held in own.items()}
    needed = _needed_by_chains(reader.rows(_CHAINS, **status), longest)
    ends: dict[int, datetime] = {}
    for job, held in own.items():
        keeper = max(held, key=lambda v: (held[v], -v))  # the tape that keeps the job longest
        for volume, end in held.items():
            if volume == keeper and job in needed and needed[job] > end:
                end = needed[job]
            if (volume_id is None or volume == volume_id) and (volume not in ends or end > ends[volume]):
                ends[volume] = end
    return ends


def _needed_by_chains(rows: list[dict], longest: dict[int, datetime]) -> dict[int, datetime]:
    """For each job, the latest end (``longest``) of the jobs from it to the end of its chain segment."""
    chains: dict[tuple, list[dict]] = {}
    for row in rows:
        chains.setdefault((row["name"], row["label"], row["host"], row["root"]), []).append(row)
    needed: dict[int, datetime] = {}
    for jobs in chains.values():
        jobs.sort(key=lambda r: (as_datetime(r["started_at"]), r["job_id"]))
        latest: datetime | None = None  # walking back: the latest end from here to the segment's end
        for row in reversed(jobs):
            end = longest.get(row["job_id"])
            if end is not None and (latest is None or end > latest):
                latest = end
            if latest is not None and (row["job_id"] not in needed or latest > needed[row["job_id"]]):
                needed[row["job_id"]] = latest
            if row["level"] == "full":
                latest = None  # what came before this full does not serve what comes after it
    return needed


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
