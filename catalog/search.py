"""Finding backed-up files in the catalog.

A pattern without ``* ? [`` matches as a substring of the path; with them it
is a glob over the whole path (``*`` also crosses ``/``); ``regex=True`` takes
it as a regular expression.  Only entries of good jobs (``ok``/``partial``) in
complete tape files are offered; by default the newest version of each path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, case, func, literal_column, null, or_, table, union
from sqlalchemy import text as sql_text
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from pytp.tapeio.tarwriter import member_data_size

from . import search_hits, search_index
from .errors import BadPattern, CatalogError, NotFound
from .levels import DELETED
from .models import Entry, Job, JobStatus, TapeFile, TapeFileStatus, Volume, path_text, row_id, table_of
from .newest_version import newest_versions
from .search_hits import Hit

GLOB_CHARS = set("*?[")


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


def pattern_condition(pattern: str, regex: bool = False, *, sqlite: bool = False) -> ColumnElement[bool]:
    """The SQL condition on ``Entry.path_text`` for one pattern.

    :param sqlite: for SQLite, whose REGEXP calls Python once per row: a glob
        is checked by its own ``GLOB`` operator (in C) where it reads the same.
    """
    pattern, kind = _normalise(pattern, regex)
    if kind == "regex":
        return col(Entry.path_text).regexp_match(pattern)
    if kind == "glob":
        native = sqlite_glob(pattern) if sqlite else None
        if native is not None:
            return col(Entry.path_text).op("GLOB")(native)  # type: ignore[no-any-return]
        return col(Entry.path_text).regexp_match(glob_to_regex(pattern))
    return col(Entry.path_text).contains(pattern, autoescape=True)


def sqlite_glob(pattern: str) -> str | None:
    """``pattern`` for SQLite's ``GLOB``, matching what :func:`glob_to_regex` matches; None
    where a bracket expression is unusual enough that the two might read it apart.

    Both anchor the whole path, ``*`` crosses ``/``, ``?`` is one character, and
    both are case-sensitive; a class's ``!`` is GLOB's ``^``; a lone ``[`` is a
    literal (``[[]`` to GLOB).
    """
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            negate = pattern[i + 1 : i + 2] in ("!", "^")
            end = pattern.find("]", i + 2 if negate else i + 1)
            if end == -1:
                out.append("[[]")
            else:
                body = pattern[i + 1 + negate : end]
                if not body or any(ch in body for ch in "[]\\^!"):
                    return None
                out.append("[" + ("^" if negate else "") + body + "]")
                i = end
        else:
            out.append(c)  # * and ? mean the same; anything else is itself (] too, outside a class)
        i += 1
    return "".join(out)


def _normalise(pattern: str, regex: bool) -> tuple[str, str]:
    """The pattern in ``path_text`` form and how it matches: substring, glob or regex."""
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
        return pattern, "regex"
    return pattern, "glob" if GLOB_CHARS & set(pattern) else "substring"


#: the trigram index needs three characters in a row; LIKE's own wildcards break a run
TRIGRAM = 3
_LIKE_WILDCARDS = re.compile(r"[%_]")


def required_literal(pattern: str, regex: bool = False) -> str | None:
    """The longest run of at least three characters every match must contain, if any.

    It feeds the trigram index, which narrows the entries to check; the exact
    pattern is then checked on those alone.  A glob is read through its regular
    expression.  Anything optional (``x?``, ``x*``, ``x{0,}``), inside a group,
    or after an alternation ``|`` gives no literal: a wrong guess here would
    lose matches, a missing one only costs a scan.
    """
    best = max(required_literals(pattern, regex), key=len, default="")
    return best or None


def required_literals(pattern: str, regex: bool = False) -> list[str]:
    """Every run of at least three characters every match must contain (see
    :func:`required_literal`): ``*/project-delta/*.pdf`` gives ``/project-delta/``
    and ``.pdf``, whose trigrams together narrow far more than either's."""
    pattern, kind = _normalise(pattern, regex)
    if kind == "substring":
        runs = _LIKE_WILDCARDS.split(pattern)
    else:
        runs = [
            r
            for run in _regex_literals(glob_to_regex(pattern) if kind == "glob" else pattern)
            for r in _LIKE_WILDCARDS.split(run)
        ]
    return [run for run in runs if len(run) >= TRIGRAM]


def _regex_literals(pattern: str) -> list[str]:
    """Literal runs outside groups that any match of ``pattern`` contains (conservative)."""
    if "|" in pattern or "(?" in pattern:  # alternatives, inline flags (?i): no guarantee
        return []
    runs: list[str] = []
    current: list[str] = []
    depth = 0
    i = 0

    def flush() -> None:
        if current:
            runs.append("".join(current))
            current.clear()

    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            escaped = pattern[i + 1 : i + 2]
            i += 2
            if escaped and not escaped.isalnum():
                if depth == 0:
                    current.append(escaped)  # \. \/ \* and the like are the character itself
                continue
            flush()  # \d \w \b \x41 …: a class or an assertion
        elif c == "(":
            flush()
            depth += 1
            i += 1
        elif c == ")":
            flush()
            depth = max(0, depth - 1)
            i += 1
        elif c == "[":
            flush()
            end = i + 2 if pattern[i + 1 : i + 2] in ("^",) else i + 1
            end += 1 if pattern[end : end + 1] == "]" else 0
            while end < len(pattern) and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            i = end + 1
        elif c in "*?{":
            if current:
                current.pop()  # the character before may be absent
            flush()
            i = pattern.index("}", i) + 1 if c == "{" and "}" in pattern[i:] else i + 1
        elif c in "+":
            flush()
            i += 1
        elif c in ".^$":
            flush()
            i += 1
        else:
            if depth == 0:
                current.append(c)
            i += 1
    flush()
    return runs


#: rows of one trigram counted exactly (a walk of this many costs ~0.1 ms)
_RARE = 5_000
#: paths looked at to rank common trigrams: their shares, to 1/512
_SAMPLE = 512
#: a run's trigram in more than this share of the paths narrows too little for its walk
_TOO_COMMON = 0.5
#: other trigrams of a run are added when in less than this share of the paths
_SELECTIVE = 0.05
#: at most this many trigrams are asked for together: each costs a walk of its rows
_MOST_TRIGRAMS = 3
#: at most this many are counted (SQLite takes 2,000 columns in a statement)
_MOST_PROBED = 64


def _trigram_candidates(session: Session, patterns: list[list[str]]) -> ColumnElement[bool] | None:
    """``entry.id IN`` the rows the SQLite trigram index offers for any of
    ``patterns`` (each: the literal runs one pattern requires); None where
    the index would not narrow (a scan then).

    PostgreSQL needs no such help: its planner takes the ``pg_trgm`` index
    for ``LIKE`` and ``~`` on ``path_text`` by itself.
    """
    if session.get_bind().dialect.name != "sqlite":
        return None
    rowid: Any = literal_column("rowid")
    fts = table(search_index.FTS_TABLE)
    selects = []
    for runs in patterns:
        chosen = _rare_trigrams(session, runs)
        if not chosen:
            # Every trigram is in most paths: so are the matches, and reading the
            # table in order costs less than walking those lists, then every row.
            return None
        match = " AND ".join(_phrase(t) for t in chosen)
        selects.append(select(rowid).select_from(fts).where(literal_column(search_index.FTS_TABLE).op("MATCH")(match)))
    return col(Entry.id).in_(selects[0] if len(selects) == 1 else union(*selects))


def _phrase(trigram: str) -> str:
    return '"' + trigram.replace('"', '""') + '"'


def _rare_trigrams(session: Session, runs: list[str]) -> list[str]:
    """The trigrams of ``runs`` that narrow most, if some are not common.

    Asked ``LIKE '%literal%'``, FTS5 (``detail=none``) walks the whole row
    list of every trigram of it, and ``/us`` or ``.tx`` is in millions of
    paths: at 10M entries ``/user042/`` cost 196 ms that way, against 4 ms for
    its rare trigrams ``042`` and ``r04`` (issue 9, docs/performance.md).
    So: each trigram's rows are counted up to a few thousand (a walk that
    stops there); if some are that rare, the rarest are matched together.
    Otherwise their shares are estimated on a sample of paths, and the
    rarest of each run is matched (runs lie apart in a path, so they narrow
    independently), with the run's other selective ones.  The candidates are
    checked against the pattern after: this chooses how few rows to check,
    never which rows match.
    """
    per_run = [list(dict.fromkeys(run[i : i + TRIGRAM] for i in range(len(run) - TRIGRAM + 1))) for run in runs]
    total = sum(len(run) for run in per_run)
    if total > _MOST_PROBED:  # a long pattern: every k-th trigram still finds rare ones, in one statement
        step = -(-total // _MOST_PROBED)
        per_run = [run[::step] for run in per_run]
    trigrams = sorted({t for run in per_run for t in run})
    counts = _count_rows(session, trigrams, _RARE)
    rare = sorted((n, t) for t, n in counts.items() if n < _RARE)
    if rare:
        if rare[0][0] == 0:
            return [rare[0][1]]  # a trigram no path has: nothing matches, and one says so at once
        return [t for _, t in rare[:_MOST_TRIGRAMS]]
    shares = _sampled_shares(session, trigrams)
    firsts: list[str] = []  # each run's rarest
    extras: list[str] = []  # the runs' other selective ones
    for run in per_run:
        ranked = sorted(run, key=lambda t: shares[t])
        if shares[ranked[0]] <= _TOO_COMMON:
            firsts.append(ranked[0])
            extras.extend(t for t in ranked[1:_MOST_TRIGRAMS] if shares[t] < _SELECTIVE)
    chosen = sorted(set(firsts), key=lambda t: shares[t])
    chosen += sorted(set(extras) - set(chosen), key=lambda t: shares[t])
    return chosen[:_MOST_TRIGRAMS]


def _sampled_shares(session: Session, trigrams: list[str]) -> dict[str, float]:
    """The share of paths holding each trigram (folded to lower case, as the index
    matches), estimated on paths spread evenly over the entry ids."""
    # two subqueries: min() and max() together would scan the table
    bounds = "SELECT (SELECT min(id) FROM entry), (SELECT max(id) FROM entry)"
    low, high = session.connection().execute(sql_text(bounds)).one()
    if low is None:
        return dict.fromkeys(trigrams, 0.0)
    step = max(1, (high - low) // _SAMPLE)
    ids = ",".join(str(i) for i in range(low, high + 1, step))  # integers of our own: safe to inline
    paths = [
        p.lower() for (p,) in session.connection().execute(sql_text(f"SELECT path_text FROM entry WHERE id IN ({ids})"))
    ]
    return {t: sum(t.lower() in p for p in paths) / max(1, len(paths)) for t in trigrams}


def _count_rows(session: Session, trigrams: list[str], cap: int) -> dict[str, int]:
    """Each trigram's rows in the index, counted up to ``cap``, in one statement."""
    table_name = search_index.FTS_TABLE
    counts = ", ".join(
        f"(SELECT count(*) FROM (SELECT 1 FROM {table_name} WHERE {table_name} MATCH :t{i} LIMIT :cap))"
        for i in range(len(trigrams))
    )
    params: dict[str, Any] = {f"t{i}": _phrase(t) for i, t in enumerate(trigrams)}
    row = session.connection().execute(sql_text(f"SELECT {counts}"), {**params, "cap": cap}).one()
    return dict(zip(trigrams, row))


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
    literals: list[list[str]] = []  # for each pattern, the runs it requires
    if patterns:
        sqlite = session.get_bind().dialect.name == "sqlite"
        query = query.where(or_(*(pattern_condition(p, regex, sqlite=sqlite) for p in patterns)))
        found = [required_literals(p, regex) for p in patterns]
        if all(found):  # one pattern without a literal needs a scan anyway
            literals = found
    if job_id is not None:
        query = query.where(Entry.job_id == job_id)
    if host is not None:
        # Before the newest-version window: another host's copy of a path is another path (issue 9).
        # Jobs without a host (recorded before hosts were) belong to every host.
        query = query.where((Job.host == host) | col(Job.host).is_(None))
    if tape is not None:
        query = query.where(Volume.label == tape)
    if under is not None:
        prefix = under.rstrip(b"/")
        text = prefix.decode("utf-8", "backslashreplace")
        query = query.where(
            or_(col(Entry.path_text) == text, and_(col(Entry.path_text).startswith(text + "/", autoescape=True)))
        )
        if not literals:
            run = max(_LIKE_WILDCARDS.split(text), key=len, default="")
            literals = [[run]] if len(run) >= TRIGRAM else []
    candidates = _trigram_candidates(session, literals) if literals else None
    if candidates is not None:
        query = query.where(candidates)
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
    tape file and tape loaded once.

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
    :param host: only jobs of this host (None: every host).
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


def search_rows(
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
    limit: int | None = None,
) -> Iterator[Hit]:
    """What :func:`find` finds, as plain rows streamed from the database
    (:class:`Hit`), in the same order: no objects per hit, so millions of
    hits cost neither time nor memory until they are printed.

    The entries are read without joins, as the driver's tuples, sorted by
    path only; their jobs and tapes come from one small query, and the
    newest version of each path is picked as they stream by
    (:mod:`.search_hits`; issue 9, docs/performance.md).

    :param limit: at most this many hits: the first ones of the whole
        search, found without sorting or making the others.
    """
    found = search_hits.sources(
        session, job_id=job_id, tape=tape, host=host, roots=None if as_of is None else as_of.roots
    )
    where = [found.condition()]
    if all_versions and not include_deleted:
        where.append(col(Entry.kind) != DELETED)
    literals: list[list[str]] = []  # for each pattern, the runs it requires
    if patterns:
        sqlite = session.get_bind().dialect.name == "sqlite"
        where.append(or_(*(pattern_condition(p, regex, sqlite=sqlite) for p in patterns)))
        required = [required_literals(p, regex) for p in patterns]
        if all(required):  # one pattern without a literal needs a scan anyway
            literals = required
    if under is not None:
        text = under.rstrip(b"/").decode("utf-8", "backslashreplace")
        where.append(or_(col(Entry.path_text) == text, col(Entry.path_text).startswith(text + "/", autoescape=True)))
        if not literals:
            run = max(_LIKE_WILDCARDS.split(text), key=len, default="")
            literals = [[run]] if len(run) >= TRIGRAM else []
    candidates = _trigram_candidates(session, literals) if literals else None
    if candidates is not None:
        where.append(candidates)
    yield from search_hits.stream(
        session,
        search_hits.entry_select(where),
        found,
        all_versions=all_versions,
        include_deleted=include_deleted,
        limit=limit,
    )


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
