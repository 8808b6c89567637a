"""Finding backed-up files in the catalog.

A pattern without ``* ? [`` matches as a substring of the path; with them it
is a glob over the whole path (``*`` also crosses ``/``); ``regex=True`` takes
it as a regular expression.  Only entries of good jobs (``ok``/``partial``) in
complete tape files are offered; by default the newest version of each path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from .errors import BadPattern, CatalogError, NotFound
from .levels import DELETED
from .models import Entry, Job, JobStatus, TapeFile, TapeFileStatus, Volume, path_text

GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Found:
    """An entry with where it is on tape."""

    entry: Entry
    job: Job
    tape_file: TapeFile
    volume: Volume
    #: the job that recorded this path as deleted after this version (newest-version lookups)
    deleted_by: Job | None = None


def glob_to_regex(pattern: str) -> str:
    """Translate a shell glob into an anchored regular expression.

    The result uses only syntax that Python's ``re`` (SQLite REGEXP) and
    PostgreSQL's ``~`` read alike: ``.``, ``.*``, bracket classes, escapes.
    """
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 2 if i + 1 < len(pattern) and pattern[i + 1] in "!^" else i + 1)
            if end == -1:
                out.append(r"\[")
            else:
                body = pattern[i + 1 : end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                body = body.replace("\\", "\\\\")
                out.append("[" + ("^" if negate else "") + body + "]")
                i = end
        elif c.isalnum() or c in "/_- ":
            out.append(c)
        else:
            out.append("\\" + c)
        i += 1
    out.append("$")
    return "".join(out)


def pattern_condition(pattern: str, regex: bool = False) -> ColumnElement[bool]:
    """The SQL condition on ``Entry.path_text`` for one pattern."""
    if not pattern:
        raise CatalogError("An empty pattern matches nothing; give part of a file name.")
    # A name that is not UTF-8 arrives with surrogate escapes, which no database
    # takes; path_text shows those bytes as \xNN, and so must the pattern.
    pattern = path_text(os.fsencode(pattern))
    if regex:
        try:
            re.compile(pattern)  # SQLite runs Python's re; a bad pattern would fail inside the query
        except re.error as err:
            raise BadPattern(f"'{pattern}' is not a valid regular expression: {err}.") from err
        return col(Entry.path_text).regexp_match(pattern)
    if GLOB_CHARS & set(pattern):
        return col(Entry.path_text).regexp_match(glob_to_regex(pattern))
    return col(Entry.path_text).contains(pattern, autoescape=True)


def _good_entries():  # type: ignore[no-untyped-def]
    return (
        select(Entry, Job, TapeFile, Volume)
        .join(Job, col(Job.id) == Entry.job_id)
        .join(TapeFile, col(TapeFile.id) == Entry.tape_file_id)
        .join(Volume, col(Volume.id) == TapeFile.volume_id)
        .where(col(Job.status).in_(JobStatus.GOOD), TapeFile.status == TapeFileStatus.COMPLETE)
    )


def find_exact(session: Session, job_id: int, path: bytes) -> Found | None:
    """The entry for exactly ``path`` in job ``job_id``, if it is good."""
    row = session.exec(_good_entries().where(Entry.job_id == job_id, Entry.path == path)).first()
    return Found(*row) if row else None


def find(
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
) -> list[Found]:
    """Entries matching any of ``patterns`` (all entries when there are none).

    :param job_id: only this job's entries.
    :param tape: only entries on the tape with this label.
    :param all_versions: every version, not only the newest of each path.
    :param under: only paths equal to or below this absolute path.
    :param include_deleted: with ``all_versions``, also the markers of paths
        deleted since an earlier backup; otherwise, also paths whose newest
        record is a deletion, as their last version with ``deleted_by`` set.
        Without it, a path a later backup recorded as deleted is left out
        (issue 8, defect 10: deleted files must not come back).
    :param as_of: the tree as a point in time left it (``resolve_as_of``):
        newest versions at or before it, without the paths deleted by then.
    """
    query = _good_entries()
    if as_of is not None:
        query = query.where(as_of.condition())
    elif all_versions and not include_deleted:
        query = query.where(Entry.kind != DELETED)
    if patterns:
        query = query.where(or_(*(pattern_condition(p, regex) for p in patterns)))
    if job_id is not None:
        query = query.where(Entry.job_id == job_id)
    if tape is not None:
        query = query.where(Volume.label == tape)
    if under is not None:
        prefix = under.rstrip(b"/")
        text = prefix.decode("utf-8", "backslashreplace")
        query = query.where(
            or_(Entry.path_text == text, and_(col(Entry.path_text).startswith(text + "/", autoescape=True)))
        )
    query = query.order_by(
        col(Entry.path_text), col(Job.started_at).desc(), col(Entry.job_id).desc(), col(Entry.id).desc()
    )
    results = [Found(e, j, t, v) for e, j, t, v in session.exec(query).all()]
    if all_versions:
        return results if include_deleted or as_of is None else [f for f in results if f.entry.kind != DELETED]
    return _newest(results, include_deleted)


def _newest(results: list[Found], include_deleted: bool) -> list[Found]:
    """The newest version of each path (``results`` are by path, newest first).

    A path whose newest record is a deletion is left out, or with
    ``include_deleted`` given as its last stored version, marked with the job
    that recorded the deletion.
    """
    newest: list[Found] = []
    deleted_by: dict[bytes, Job] = {}
    seen: set[bytes] = set()
    for found in results:
        path = found.entry.path
        if path in seen:
            continue
        if found.entry.kind == DELETED:
            deleted_by.setdefault(path, found.job)
            continue
        seen.add(path)
        if path in deleted_by:
            if not include_deleted:
                continue
            found = Found(found.entry, found.job, found.tape_file, found.volume, deleted_by[path])
        newest.append(found)
    return newest


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
            *(and_(TapeFile.source_root == root, col(Entry.job_id).in_(ids)) for root, ids in self.roots.items())
        )


def resolve_as_of(session: Session, spec: str) -> AsOf:
    """``JOB_ID`` (that job's chain up to it) or a date/time (every chain up to it).

    A date without a zone is local time.  For each source root, the view starts
    at its last full backup at or before the point, so files deleted before
    that full backup stay deleted.

    :raises NotFound: the job does not exist or did not finish.
    :raises CatalogError: the text is neither a job id nor a date.
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
            raise CatalogError(
                f"'{spec}' is neither a job id nor a date like 2026-11-26 or 2026-11-26T18:00."
            ) from None
        if when.tzinfo is None:
            when = when.astimezone()  # local time, as people type it
        jobs = session.exec(good.where(col(Job.started_at) <= when)).all()
        description = when.isoformat(timespec="seconds")
    order = {job.id: (job.started_at.replace(tzinfo=None), job.id) for job in jobs}
    roots: dict[bytes, list[tuple[tuple[object, int], int, str]]] = {}
    for tape_file in session.exec(
        select(TapeFile).where(
            col(TapeFile.job_id).in_(list(order)), TapeFile.kind == "data", TapeFile.status == TapeFileStatus.COMPLETE
        )
    ).all():
        job = next(j for j in jobs if j.id == tape_file.job_id)
        roots.setdefault(tape_file.source_root or b"", []).append((order[job.id], job.id, job.level))  # type: ignore[index,arg-type]
    view: dict[bytes, tuple[int, ...]] = {}
    for root, members in roots.items():
        members = sorted(set(members))
        fulls = [i for i, (_, _, level) in enumerate(members) if level == "full"]
        start = fulls[-1] if fulls else 0
        view[root] = tuple(job_id for _, job_id, _ in members[start:])
    return AsOf(description, view)
