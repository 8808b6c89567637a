"""Finding backed-up files in the catalog.

A pattern without ``* ? [`` matches as a substring of the path; with them it
is a glob over the whole path (``*`` also crosses ``/``); ``regex=True`` takes
it as a regular expression.  Only entries of good jobs (``ok``/``partial``) in
complete tape files are offered; by default the newest version of each path.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from .errors import CatalogError
from .models import Entry, Job, JobStatus, TapeFile, TapeFileStatus, Volume

GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Found:
    """An entry with where it is on tape."""

    entry: Entry
    job: Job
    tape_file: TapeFile
    volume: Volume


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
    if regex:
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
) -> list[Found]:
    """Entries matching any of ``patterns`` (all entries when there are none).

    :param job_id: only this job's entries.
    :param tape: only entries on the tape with this label.
    :param all_versions: every version, not only the newest of each path.
    :param under: only paths equal to or below this absolute path.
    """
    query = _good_entries()
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
    query = query.order_by(col(Entry.path_text), col(Entry.job_id).desc(), col(Entry.id).desc())
    results = [Found(e, j, t, v) for e, j, t, v in session.exec(query).all()]
    if all_versions:
        return results
    newest: list[Found] = []
    seen: set[bytes] = set()
    for found in results:
        if found.entry.path not in seen:
            seen.add(found.entry.path)
            newest.append(found)
    return newest
