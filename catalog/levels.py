"""Full, incremental and differential backups, decided from the catalog.

A backup chain is the jobs with the same name (``--job``) and label
(``--label``) that backed up the same source root.  An incremental backup
stores what changed since the state left by the chain's good jobs since its
last full one; a differential one what changed since that full one (and, as
an incremental, records as deleted every path of the full job or of the
chain's newest state that is gone, one an incremental since the full stored
included).  The state
is built per path from the entries the jobs really stored, so a ``partial``
job never hides a file it did not store, and ``failed`` jobs do not count.
Change is: a new path, or a different type, size, mtime, ctime, inode, mode,
owner or link target; with ``checksum`` also a different xxh3 when all of
that agrees.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from pytp.tapeio.hashing import hash_file
from pytp.tapeio.tarwriter import catalog_inode, catalog_ns

from .chain_state import KNOWN_COLUMNS, ChainState, Known
from .models import Entry, Job, JobStatus, TapeFile, TapeFileStatus, row_id, table_of
from .statuses import DELETED  # noqa: F401 - re-exported: listings read it without the ORM

#: rows read from the catalog at a time
FETCH_ROWS = 2000


@dataclass
class Reference:
    """The state an incremental or differential backup compares against.

    :param base_job: the full job the comparison goes back to.
    """

    base_job: int
    state: ChainState

    def close(self) -> None:
        """Remove the state's temporary database."""
        self.state.close()


def chain_jobs(
    session: Session, name: str | None, label: str | None, root: bytes, host: str | None = None
) -> list[Job]:
    """Good jobs of the chain that stored data of ``root``, oldest first.

    :param host: only this host's jobs (and jobs from before hosts were recorded):
        another host's ``/etc`` is not the base of this one's (issue 9).
    """
    query = (
        select(Job)
        .join(TapeFile, col(TapeFile.job_id) == Job.id)
        .where(
            col(Job.status).in_(JobStatus.GOOD),
            TapeFile.kind == "data",
            TapeFile.source_root == root,
            TapeFile.status == TapeFileStatus.COMPLETE,
        )
        .distinct()
        .order_by(col(Job.started_at), col(Job.id))
    )
    query = query.where(Job.name == name if name is not None else col(Job.name).is_(None))
    query = query.where(Job.label == label if label is not None else col(Job.label).is_(None))
    if host is not None:
        query = query.where((Job.host == host) | col(Job.host).is_(None))
    return list(session.exec(query).all())


def reference_for(
    session: Session, name: str | None, label: str | None, root: bytes, level: str, host: str | None = None
) -> Reference | None:
    """The state to compare with, or None when the chain (of ``host``) has no full backup of ``root`` yet."""
    jobs = chain_jobs(session, name, label, root, host)
    fulls = [job for job in jobs if job.level == "full"]
    if not fulls:
        return None
    base = fulls[-1]
    since_base = [row_id(job) for job in jobs[jobs.index(base) :]]
    # A differential compares with the full job, but what is gone is every path of it or
    # of the newest state, an incremental's files since the full included (the
    # newest-version rule of search and restore reads them).
    reference = [row_id(base)] if level == "differential" else None
    return Reference(row_id(base), newest_state(session, since_base, root, reference))


def newest_state(session: Session, job_ids: list[int], root: bytes, reference: list[int] | None = None) -> ChainState:
    """For each path under ``root``, its newest entry in ``job_ids`` (deleted paths left out),
    on disk (:class:`.ChainState`): rows streamed from the catalog, no object per entry.

    :param reference: the jobs whose entries a differential compares with, if not the newest.
    """
    state = ChainState(root)
    try:
        state.load(_rows(session, job_ids, root))
        if reference is not None:
            state.load_reference(_rows(session, reference, root))
    except BaseException:
        state.close()
        raise
    return state


def _rows(session: Session, job_ids: list[int], root: bytes) -> Iterator[tuple[object, ...]]:
    """``ChainState``'s rows of ``job_ids`` under ``root``, oldest first."""
    entry = table_of(Entry)
    statement = (
        sa_select(entry.c.path, *(entry.c[name] for name in KNOWN_COLUMNS))
        .join(table_of(TapeFile), col(TapeFile.id) == entry.c.tape_file_id)
        .join(table_of(Job), col(Job.id) == entry.c.job_id)
        .where(entry.c.job_id.in_(job_ids), TapeFile.source_root == root)
        .order_by(col(Job.started_at), entry.c.job_id, entry.c.id)
    )
    # a server-side cursor on PostgreSQL: the chain's rows are not all in memory at once
    rows = session.connection().execution_options(yield_per=FETCH_ROWS).execute(statement)
    return (tuple(row) for row in rows)


def has_changed(known: Known | None, path: bytes, st: os.stat_result, checksum: bool) -> bool:
    """Whether ``path`` (with lstat ``st``) differs from what the catalog knows."""
    if known is None:
        return True
    kind = "symlink" if stat.S_ISLNK(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
    known_kind = "file" if known.kind == "hardlink" else known.kind
    if kind != known_kind and not (kind == "other" and known_kind not in ("file", "symlink")):
        return True
    if (known.mtime_ns, known.ctime_ns, known.inode) != (
        catalog_ns(st.st_mtime_ns),
        catalog_ns(st.st_ctime_ns),
        catalog_inode(st.st_ino),
    ):
        return True
    if (known.mode, known.uid, known.gid) != (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid):
        return True
    if kind == "symlink":
        try:
            return os.readlink(path) != known.link_target
        except OSError:
            return True
    if kind == "file":
        if known.kind == "file" and st.st_size != known.size:
            return True
        if checksum and known.kind == "file":
            try:
                return hash_file(path, known.sparse_map) != known.xxh3
            except OSError:
                return True
    return False
