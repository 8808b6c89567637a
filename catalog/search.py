"""Finding backed-up files in the catalog, as entries with their job, tape file and tape.

What restore selects from and what ``versions`` and ``ls-catalog`` list.  The
patterns (substring, glob, regex) and the trigram index's candidates are
:mod:`.search_query`'s, the SQL ``pytp search`` itself runs.  Only entries of
good jobs (``ok``/``partial``) in complete tape files are offered; by default
the newest version of each path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, case, func, null, or_
from sqlalchemy import text as sql_text
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from pytp.tapeio.tarwriter import member_data_size

from . import search_query
from .errors import BadArgument, NotFound
from .levels import DELETED
from .light_sql import Condition, CoreReader
from .models import Entry, Job, JobStatus, TapeFile, TapeFileStatus, Volume, row_id, table_of
from .newest_version import newest_versions
from .search_hits import Hit
from .search_query import glob_to_regex, required_literal, required_literals, sqlite_glob  # noqa: F401 - re-exported


class FoundEntry(NamedTuple):
    """A found entry's columns as plain values: what :func:`find` gives instead of an
    ORM ``Entry`` (issue 9: an object per row with the ORM's bookkeeping cost as much
    as the query, and a restore of a million files held a million of them)."""

    id: int
    job_id: int
    tape_file_id: int
    path: bytes
    path_text: str
    kind: str
    size: int
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int
    link_target: bytes | None
    xxh3: str | None
    offset: int
    header_size: int
    sparse_map: str | None

    @property
    def data_size(self) -> int:
        """Data bytes the member has on tape, after its headers (as ``Entry.data_size``)."""
        return member_data_size(self.kind, self.size, self.sparse_map)


@dataclass(frozen=True, slots=True)
class Found:
    """An entry with where it is on tape."""

    entry: FoundEntry
    job: Job
    tape_file: TapeFile
    volume: Volume
    #: the job that recorded this path as deleted after this version (newest-version lookups)
    deleted_by: Job | None = None


def _core(condition: Condition) -> ColumnElement[bool]:
    """A :class:`.light_sql.Condition` in a Core statement."""
    return sql_text(condition.sql).bindparams(**condition.params)  # type: ignore[return-value]


#: the columns of a found row: the entry's, then where it is (``Found``'s related rows)
_FOUND_FIELDS = len(FoundEntry._fields)


def found_columns() -> list[Any]:
    """The entry's columns in :class:`FoundEntry`'s order, then its tape's id: a Core
    select of them needs ``entry`` joined to ``tape_file`` (``_filtered`` joins it)."""
    entry = table_of(Entry).c
    return [entry[name] for name in FoundEntry._fields] + [col(TapeFile.volume_id)]


class Related:
    """The jobs, tape files and tapes of found entries: few of them for any number of
    entries, each loaded once as an ORM object and shared by every :class:`Found`."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._jobs: dict[int, Job] = {}
        self._tape_files: dict[int, TapeFile] = {}
        self._volumes: dict[int, Volume] = {}

    def job(self, job_id: int) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            job = self._jobs[job_id] = self._get(Job, job_id)
        return job

    def tape_file(self, tape_file_id: int) -> TapeFile:
        tape_file = self._tape_files.get(tape_file_id)
        if tape_file is None:
            tape_file = self._tape_files[tape_file_id] = self._get(TapeFile, tape_file_id)
        return tape_file

    def volume(self, volume_id: int) -> Volume:
        volume = self._volumes.get(volume_id)
        if volume is None:
            volume = self._volumes[volume_id] = self._get(Volume, volume_id)
        return volume

    def found(self, row: Any, deleted_by: int | None = None) -> Found:
        """A :class:`Found` of a row of :func:`found_columns` (more columns may follow)."""
        entry = FoundEntry(*row[:_FOUND_FIELDS])
        return Found(
            entry,
            self.job(entry.job_id),
            self.tape_file(entry.tape_file_id),
            self.volume(row[_FOUND_FIELDS]),
            None if deleted_by is None else self.job(deleted_by),
        )

    def _get(self, model: Any, key: int) -> Any:
        row = self.session.get(model, key)
        if row is None:  # joined in the same query a moment ago: only a concurrent delete gets here
            raise NotFound(f"{model.__name__} {key} is no longer in the catalog.")
        return row


def find_exact(session: Session, job_id: int, path: bytes) -> Found | None:
    """The entry for exactly ``path`` in job ``job_id``, if it is good."""
    query = (
        select(*found_columns())
        .join(Job, col(Job.id) == Entry.job_id)
        .join(TapeFile, col(TapeFile.id) == Entry.tape_file_id)
        .where(col(Job.status).in_(JobStatus.GOOD), TapeFile.status == TapeFileStatus.COMPLETE)
        .where(Entry.job_id == job_id, Entry.path == path)
        .limit(1)
    )
    row = session.connection().execute(query).first()
    return Related(session).found(row) if row is not None else None


def _filtered(
    session: Session,
    query: Any,
    patterns: list[str] | None,
    *,
    regex: bool,
    job_id: int | None,
    tape: str | None,
    all_versions: bool,
    under: bytes | None,
    include_deleted: bool,
    as_of: AsOf | None,
    host: str | None = None,
) -> Any:
    """``query`` (a select of entry columns) joined to its job, tape file and
    tape, and narrowed to the good entries that match: the trigram index
    offers the candidates, the exact condition checks them."""
    query = (
        query.join(Job, col(Job.id) == Entry.job_id)
        .join(TapeFile, col(TapeFile.id) == Entry.tape_file_id)
        .join(Volume, col(Volume.id) == TapeFile.volume_id)
        .where(col(Job.status).in_(JobStatus.GOOD), TapeFile.status == TapeFileStatus.COMPLETE)
    )
    if as_of is not None:
        query = query.where(as_of.condition())
    if all_versions and not include_deleted:
        query = query.where(Entry.kind != DELETED)
    for condition in search_query.matching(CoreReader(session), patterns, regex, under):
        query = query.where(_core(condition))
    if job_id is not None:
        query = query.where(Entry.job_id == job_id)
    if host is not None:
        # Before the newest-version window: another host's copy of a path is another path (issue 9).
        # Jobs without a host (recorded before hosts were) belong to every host.
        query = query.where((Job.host == host) | col(Job.host).is_(None))
    if tape is not None:
        query = query.where(Volume.label == tape)
    return query


def _selection(
    session: Session,
    patterns: list[str] | None,
    *,
    regex: bool,
    job_id: int | None,
    tape: str | None,
    all_versions: bool,
    under: bytes | None,
    include_deleted: bool,
    as_of: AsOf | None,
    host: str | None = None,
) -> Select:  # type: ignore[type-arg]
    """The matching entries' ids with the job that deleted them after (``deleted_by``),
    the newest version of each path resolved in SQL unless ``all_versions``.

    Returns the statement of ``(entry_id, deleted_by)`` rows.
    """
    query = _filtered(
        session,
        select(col(Entry.id).label("entry_id")),
        patterns,
        regex=regex,
        job_id=job_id,
        tape=tape,
        all_versions=all_versions,
        under=under,
        include_deleted=include_deleted,
        as_of=as_of,
        host=host,
    )
    if all_versions:
        return query.add_columns(null().label("deleted_by"))
    # Newest first within each path: the first row that is not a deletion is the
    # path's newest version; a deletion before it (the path's newest record)
    # names the job that saw the path gone.
    newest_first: list[Any] = [col(Job.started_at).desc(), col(Entry.job_id).desc(), col(Entry.id).desc()]
    live = case((col(Entry.kind) != DELETED, 1), else_=0)
    # The host is part of a path's identity: with every host, each host's newest version.
    # A path is its text and, for a name that is not UTF-8, its stored bytes (NULL
    # otherwise, entry_types): two names that differ only there are two paths.
    path = [col(Job.host), col(Entry.path_text), table_of(Entry).c.path]
    ranked = query.add_columns(
        col(Entry.kind).label("kind"),
        func.first_value(Entry.kind).over(partition_by=path, order_by=newest_first).label("first_kind"),
        func.first_value(Entry.job_id).over(partition_by=path, order_by=newest_first).label("first_job"),
        func.sum(live).over(partition_by=path, order_by=newest_first, rows=(None, 0)).label("live_rank"),
    ).subquery("ranked")
    newest = select(
        ranked.c.entry_id,
        case((ranked.c.first_kind == DELETED, ranked.c.first_job), else_=null()).label("deleted_by"),
    ).where(ranked.c.kind != DELETED, ranked.c.live_rank == 1)
    if not include_deleted:
        newest = newest.where(ranked.c.first_kind != DELETED)
    return newest


def find(session: Session, patterns: list[str] | None = None, **options: Any) -> list[Found]:
    """:func:`iter_found`'s entries as a list (same options)."""
    return list(iter_found(session, patterns, **options))


def iter_found(
    session: Session,
    patterns: list[str] | None = None,
    *,
    regex: bool = False,
    job_id: int | None = None,
    tape: str | None = None,
    all_versions: bool = False,
    under: bytes | None = None,
    include_deleted: bool = False,
    as_of: AsOf | None = None,
    host: str | None = None,
) -> Iterator[Found]:
    """Entries matching any of ``patterns`` (all entries when there are none),
    sorted by path, newest first, streamed: one query of plain rows; the newest
    version of each path is picked as they pass (:func:`_newest_found`), each job,
    tape file and tape loaded once.  The options are those of
    :func:`.search_query.search_rows` (what ``pytp search`` streams), but:

    :param as_of: the tree as a point in time left it (``resolve_as_of``):
        newest versions at or before it, without the paths deleted by then.
    """
    query = _filtered(
        session,
        select(*found_columns(), col(Job.host).label("host_key")),
        patterns,
        regex=regex,
        job_id=job_id,
        tape=tape,
        all_versions=all_versions,
        under=under,
        include_deleted=include_deleted,
        as_of=as_of,
        host=host,
    ).order_by(col(Entry.path_text), col(Job.started_at).desc(), col(Entry.job_id).desc(), col(Entry.id).desc())
    rows = session.connection().execute(query, execution_options={"yield_per": 2000})
    related = Related(session)
    if all_versions:
        yield from (related.found(row) for row in rows)
    else:
        yield from (related.found(row, deleted_by) for row, deleted_by in _newest_found(rows, include_deleted))


#: where :func:`iter_found`'s rows hold what the newest-version rule reads
_JOB, _PATH, _TEXT, _KIND = (FoundEntry._fields.index(name) for name in ("job_id", "path", "path_text", "kind"))
_HOST = _FOUND_FIELDS + 1


def _newest_found(rows: Iterator[Any], include_deleted: bool) -> Iterator[tuple[Any, int | None]]:
    """The newest version of each path and the job that deleted it after, from rows
    sorted by path_text, newest first (:func:`.newest_version.newest_versions`'s rule,
    the rule of :func:`_selection`)."""
    for _, group in groupby(rows, key=itemgetter(_TEXT)):
        yield from newest_versions(
            group,
            key=lambda row: (row[_HOST], row[_PATH]),
            deleting_job=lambda row: row[_JOB] if row[_KIND] == DELETED else None,
            include_deleted=include_deleted,
        )


def search_rows(session: Session, patterns: list[str] | None = None, **options: Any) -> Iterator[Hit]:
    """:func:`.search_query.search_rows` in ``session``'s transaction; ``as_of`` (an
    :class:`AsOf`) may stand for its ``roots``."""
    as_of: AsOf | None = options.pop("as_of", None)
    if as_of is not None:
        options["roots"] = as_of.roots
    return search_query.search_rows(CoreReader(session), patterns, **options)


@dataclass(frozen=True)
class AsOf:
    """A point in time: for each source root, the jobs whose entries make up its tree.

    :param roots: source root → the good jobs from its last full backup up to the point.
    """

    description: str
    roots: dict[bytes, tuple[int, ...]]

    def condition(self) -> ColumnElement[bool]:
        if not self.roots:
            return col(Entry.id) < 0  # nothing was backed up by then
        return or_(
            *(and_(col(TapeFile.source_root) == root, col(Entry.job_id).in_(ids)) for root, ids in self.roots.items())
        )


def resolve_as_of(session: Session, spec: str) -> AsOf:
    """``JOB_ID`` (that job's chain up to it) or a date/time (every chain up to it).

    A date without a zone is local time.  For each source root, the view starts
    at its last full backup at or before the point, so files deleted before
    that full backup stay deleted.

    :raises NotFound: the job does not exist or did not finish.
    :raises BadArgument: the text is neither a job id nor a date.
    """
    good = select(Job).where(col(Job.status).in_(JobStatus.GOOD))
    if spec.isdigit():
        job = session.get(Job, int(spec))
        if job is None or job.status not in JobStatus.GOOD:
            raise NotFound(f"Job {spec} does not exist or did not finish; see `pytp jobs`.")
        name = Job.name == job.name if job.name is not None else col(Job.name).is_(None)
        label = Job.label == job.label if job.label is not None else col(Job.label).is_(None)
        jobs = session.exec(good.where(name, label, col(Job.started_at) <= job.started_at)).all()
        description = f"job {job.id}"
    else:
        try:
            when = datetime.fromisoformat(spec)
        except ValueError:
            raise BadArgument(
                f"'{spec}' is neither a job id nor a date like 2026-11-26 or 2026-11-26T18:00."
            ) from None
        if when.tzinfo is None:
            when = when.astimezone()  # local time, as people type it
        jobs = session.exec(good.where(col(Job.started_at) <= when)).all()
        description = when.isoformat(timespec="seconds")
    order = {row_id(job): (job.started_at.replace(tzinfo=None), row_id(job)) for job in jobs}
    roots: dict[bytes, list[tuple[tuple[object, int], int, str]]] = {}
    for tape_file in session.exec(
        select(TapeFile).where(
            col(TapeFile.job_id).in_(list(order)), TapeFile.kind == "data", TapeFile.status == TapeFileStatus.COMPLETE
        )
    ).all():
        job = next(j for j in jobs if j.id == tape_file.job_id)
        roots.setdefault(tape_file.source_root or b"", []).append((order[row_id(job)], row_id(job), job.level))
    view: dict[bytes, tuple[int, ...]] = {}
    for root, members in roots.items():
        members = sorted(set(members))
        fulls = [i for i, (_, _, level) in enumerate(members) if level == "full"]
        start = fulls[-1] if fulls else 0
        view[root] = tuple(job_id for _, job_id, _ in members[start:])
    return AsOf(description, view)
