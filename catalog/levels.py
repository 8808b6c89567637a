"""Full, incremental and differential backups, decided from the catalog.

A backup chain is the jobs with the same name (``--job``) and label
(``--label``) that backed up the same source root.  An incremental backup
stores what changed since the state left by the chain's good jobs since its
last full one; a differential one what changed since that full one.  The state
is built per path from the entries the jobs really stored, so a ``partial``
job never hides a file it did not store, and ``failed`` jobs do not count.
Change is: a new path, or a different type, size, mtime, ctime, inode, mode,
owner or link target; with ``checksum`` also a different xxh3 when all of
that agrees.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from sqlmodel import Session, col, select

from pytp.tapeio.hashing import hash_file

from .models import Entry, Job, JobStatus, TapeFile, TapeFileStatus, row_id
from .statuses import DELETED  # noqa: F401 - re-exported: listings read it without the ORM


@dataclass(frozen=True)
class Known:
    """What the catalog knows of a path's newest version in the chain."""

    kind: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    mode: int
    uid: int
    gid: int
    link_target: bytes | None
    xxh3: str | None
    #: a file stored sparse: the map its xxh3 was computed with
    sparse_map: str | None = None


@dataclass
class Reference:
    """The state an incremental or differential backup compares against.

    :param base_job: the full job the comparison goes back to.
    """

    base_job: int
    state: dict[bytes, Known]


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
    used = [row_id(base)] if level == "differential" else [row_id(job) for job in jobs[jobs.index(base) :]]
    return Reference(row_id(base), newest_state(session, used, root))


def newest_state(session: Session, job_ids: list[int], root: bytes) -> dict[bytes, Known]:
    """For each path under ``root``, its newest entry in ``job_ids`` (deleted paths left out)."""
    rows = session.exec(
        select(Entry)
        .join(TapeFile, col(TapeFile.id) == Entry.tape_file_id)
        .join(Job, col(Job.id) == Entry.job_id)
        .where(col(Entry.job_id).in_(job_ids), TapeFile.source_root == root)
        .order_by(col(Job.started_at), col(Entry.job_id), col(Entry.id))
    )
    state: dict[bytes, Known] = {}
    for entry in rows:
        if entry.kind == DELETED:
            state.pop(entry.path, None)
            continue
        state[entry.path] = Known(
            entry.kind,
            entry.size,
            entry.mtime_ns,
            entry.ctime_ns,
            entry.inode,
            entry.mode,
            entry.uid,
            entry.gid,
            entry.link_target,
            entry.xxh3,
            entry.sparse_map,
        )
    return state


def has_changed(known: Known | None, path: bytes, st: os.stat_result, checksum: bool) -> bool:
    """Whether ``path`` (with lstat ``st``) differs from what the catalog knows."""
    if known is None:
        return True
    kind = "symlink" if stat.S_ISLNK(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
    known_kind = "file" if known.kind == "hardlink" else known.kind
    if kind != known_kind and not (kind == "other" and known_kind not in ("file", "symlink")):
        return True
    if (known.mtime_ns, known.ctime_ns, known.inode) != (st.st_mtime_ns, st.st_ctime_ns, st.st_ino):
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
