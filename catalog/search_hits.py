"""The rows of ``pytp search``: hits streamed as plain tuples (issue 9).

At ten million entries a glob with 28,572 hits spent more time in Python
than in SQLite: SQLAlchemy's rows (~1.5 µs each), the joins of every entry
to its job, tape file and tape (the same few rows each time), and the
newest-version loop.  So (docs/performance.md, "Search at 10M entries"):

- the good tape files and jobs, with the columns a hit shows and the other
  selections (a job, a tape, a host, a point in time), are read first in
  two small queries (:class:`Sources`); the entries are then filtered on
  their ids, and the hit's job and tape columns are added in Python;
- the entries come from the DBAPI cursor as the driver's tuples (the
  statement compiled once), in ``path_text`` order only: the rows of one
  path (a few versions, hosts) are put newest first here, by the jobs'
  order the small query gave (``started_at``, then id, as the database
  orders them), and the newest version of each path is picked as they go;
- with a ``limit`` the database keeps only the first rows by path
  (``ORDER BY … LIMIT``, a bounded sort instead of a sort of every hit) and
  the search stops there: ``pytp search`` on a terminal shows 1,000 hits,
  and a pattern with a million of them costs the reading of its candidates
  only, not the making of a million hits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from .light_sql import Condition, Reader
from .newest_version import newest_versions
from .statuses import DELETED, JobStatus, TapeFileStatus


class Hit(NamedTuple):
    """One search result, plain values (what ``search_rows`` yields)."""

    path: str
    path_bytes: bytes
    type: str
    size: int
    mode: int
    mtime_ns: int
    xxh3: str | None
    job: int
    level: str
    host: str | None
    tape: str
    tape_file: int
    offset: int
    #: the job that recorded the path as deleted after this version, if any
    deleted_by: int | None


class _Job(NamedTuple):
    level: str
    host: str | None
    #: 0 for the newest job: the order of ``started_at DESC, id DESC`` in the database
    rank: int


#: never true: a search with no job or tape file to offer (``false()`` reads so in SQLite and PostgreSQL)
NOTHING = Condition("1 = 0", {})


@dataclass
class Sources:
    """The good jobs and complete tape files an entry may come from, with what a hit shows of them."""

    jobs: dict[int, _Job]
    #: tape file id → (tape label, file number, source root)
    tape_files: dict[int, tuple[str, int, bytes | None]]
    #: with a point in time: source root → the jobs whose entries make up its tree
    roots: dict[bytes, tuple[int, ...]] | None = None

    def condition(self) -> Condition:
        """The entries of these jobs and tape files (what joining them selected).

        The ids are written into the statement (integers of our own): a few
        hundred ids are no burden, and no bound-parameter limit applies.  A
        unary ``+`` keeps SQLite from walking an entry index for them: the
        trigram index is the narrow way in, and an id list looks selective.
        """
        if not self.jobs or not self.tape_files:
            return NOTHING
        jobs = _in("+entry.job_id", self.jobs)
        if self.roots is None:
            return Condition(f"{jobs} AND {_in('+entry.tape_file_id', self.tape_files)}", {})
        # as of a point in time: per source root, its tape files and that tree's jobs
        terms = []
        for root, job_ids in self.roots.items():
            files = [i for i, (_, _, source) in self.tape_files.items() if source == root]
            if files and job_ids:
                terms.append(f"({_in('+entry.tape_file_id', files)} AND {_in('+entry.job_id', job_ids)})")
        return Condition(f"{jobs} AND ({' OR '.join(terms)})", {}) if terms else NOTHING


def _in(column: str, ids: Any) -> str:
    return f"{column} IN ({','.join(str(int(i)) for i in ids)})"


def sources(
    reader: Reader,
    *,
    job_id: int | None,
    tape: str | None,
    host: str | None,
    roots: dict[bytes, tuple[int, ...]] | None,
) -> Sources:
    """The good jobs (of ``host``, or the one job) and complete tape files (on ``tape``)."""
    jobs = "SELECT id, level, host FROM job WHERE status IN (:ok, :partial)"
    params: dict[str, Any] = dict(zip(("ok", "partial"), JobStatus.GOOD))
    if job_id is not None:
        jobs += " AND id = :job_id"
        params["job_id"] = job_id
    if host is not None:
        # Jobs without a host (recorded before hosts were) belong to every host.
        jobs += " AND (host = :host OR host IS NULL)"
        params["host"] = host
    jobs += " ORDER BY started_at DESC, id DESC"
    files = (
        "SELECT tape_file.id, volume.label, tape_file.file_number, tape_file.source_root"
        " FROM tape_file JOIN volume ON volume.id = tape_file.volume_id WHERE tape_file.status = :complete"
    )
    if tape is not None:
        files += " AND volume.label = :tape"
    return Sources(
        {row["id"]: _Job(row["level"], row["host"], rank) for rank, row in enumerate(reader.rows(jobs, **params))},
        {
            row["id"]: (row["label"], row["file_number"], row["source_root"])
            for row in reader.rows(files, complete=TapeFileStatus.COMPLETE, tape=tape)
        },
        roots,
    )


#: what is read of each entry, in this order (the indexes below name them): the path
#: and the digest as stored (NULL when the name is the UTF-8 of path_text, and 16
#: bytes or an older row's hex: entry_types), filled in and hexed here: bytes.hex()
#: costs a fifth of SQLite's lower(hex()) and the text it makes (measured at 10M entries)
ENTRY_COLUMNS = (
    "entry.path_text, entry.path, entry.kind, entry.size, entry.mode, entry.mtime_ns, entry.xxh3,"
    ' entry.job_id, entry."offset", entry.tape_file_id, entry.id'
)
_TEXT, _PATH, _KIND, _XXH3, _JOB, _OFFSET, _TAPE_FILE, _ID = 0, 1, 2, 6, 7, 8, 9, 10
#: PostgreSQL's memory for one search's bitmap and sort, in this transaction only
PG_WORK_MEM = "64MB"
#: a limited search reads twice the hits it needs and this many rows more at first
_SLACK = 16


def entry_query(where: list[Condition], after: str | None = None, limit: int | None = None) -> Condition:
    """The entries that satisfy ``where`` (after the path ``after``), with the columns a
    hit needs, by path (the first ``limit`` rows)."""
    conditions = [c.sql for c in where]
    params = {k: v for c in where for k, v in c.params.items()}
    if after is not None:
        conditions.append("entry.path_text > :after")
        params["after"] = after
    sql = f"SELECT {ENTRY_COLUMNS} FROM entry WHERE {' AND '.join(conditions)} ORDER BY entry.path_text"
    if limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = limit
    return Condition(sql, params)


def stream(
    reader: Reader,
    where: list[Condition],
    found: Sources,
    *,
    all_versions: bool,
    include_deleted: bool,
    limit: int | None = None,
) -> Iterator[Hit]:
    """The hits of the entries that satisfy ``where`` (which limits them to
    ``found``) in ``find``'s order: by path, newest first.

    :param limit: stop after this many hits, and have the database sort no
        more rows than that needs.
    """
    if not found.jobs or not found.tape_files:
        return
    pick = _Picker(found, all_versions, include_deleted)
    # No memory map on SQLite: the candidates are rows spread over the whole table,
    # and a process that maps the file pays a page fault for each page it touches
    # (~4 µs here), which costs more than SQLite's read() of it.  A search is one
    # process; a map pays only when one connection searches twice (issue 9: the glob
    # at 10M entries, 250 against 170 ms in a new process; docs/performance.md).
    if reader.dialect == "postgresql":
        # The pg_trgm index hands over its candidates as a bitmap; in the server's
        # default 4 MB it turns lossy at about a hundred thousand rows, and every row
        # of a lossy page is read and checked again: the glob at 10M entries read
        # 1.3M rows for its 100,000 candidates (2.6 s; 0.97 s with 64 MB).
        reader.run(f"SET LOCAL work_mem = '{PG_WORK_MEM}'")
    if limit is None:
        yield from pick.hits(reader.batches(*entry_query(where)))
        return
    if limit <= 0:
        return
    # Rows, not hits, are limited: a path's versions make one hit.  Most paths
    # have a few versions, so twice the hits is one pass, mostly; a batch's last
    # path may be cut, so it is read again with the next batch, which starts there.
    batch = 2 * limit + _SLACK
    after: str | None = None
    left = limit
    while True:
        rows = [row for chunk in reader.batches(*entry_query(where, after, batch)) for row in chunk]
        complete = len(rows) < batch
        if not complete:
            last = rows[-1][_TEXT]
            cut = len(rows)
            while cut and rows[cut - 1][_TEXT] == last:
                cut -= 1
            if cut == 0:  # one path's versions fill the batch: a larger one
                batch *= 4
                continue
            rows = rows[:cut]
            after = rows[-1][_TEXT]
        for hit in pick.hits([rows]):
            yield hit
            left -= 1
            if left == 0:
                return
        if complete:
            return
        # Every pass reads all the candidates again: when paths gave fewer hits than
        # hoped (many versions, deletions left out), the next pass takes more at once.
        batch *= 2


class _Picker:
    """Hits from entry rows sorted by ``path_text``: each path's rows newest
    first, then (unless ``all_versions``) its newest version.

    The rule of ``search._selection``: the first row that is not a deletion is
    the path's version; a deletion before it names the job that saw the path
    gone (``deleted_by``), and without ``include_deleted`` leaves the path out.
    A path is its bytes and its host: the few paths one ``path_text`` has
    (other hosts, a name that is not UTF-8 beside one that reads the same)
    are told apart, and their hits come newest first, as ``find`` orders them.
    """

    def __init__(self, found: Sources, all_versions: bool, include_deleted: bool) -> None:
        self.jobs = found.jobs
        self.tape_files = found.tape_files
        self.all_versions = all_versions
        self.include_deleted = include_deleted
        #: (job id, tape file id) → the hit's level, host, tape and file number
        self.places: dict[tuple[int, int], tuple[str, str | None, str, int]] = {}

    def hits(self, chunks: Any) -> Iterator[Hit]:
        """The hits of rows in chunks (a million paths with one row each is the
        case to be quick for: that row's hit is made here, without a call)."""
        places, place_of, make = self.places, self._place, tuple.__new__
        lone_deletions = not self.all_versions  # a deletion with no version before it: no hit
        single: tuple[Any, ...] | None = None  # the last row, while its path has no other
        job = tape_file = None  # of the last hit made here, and its place
        place: tuple[str, str | None, str, int] = ("", None, "", 0)
        group: list[tuple[Any, ...]] = []  # the rows of a path with several
        for chunk in chunks:
            for row in chunk:
                if single is not None:
                    if row[0] == single[0]:
                        group = [single, row]
                        single = None
                        continue
                    if not (lone_deletions and single[2] == DELETED):
                        text, digest = single[0], single[6]
                        if single[7] != job or single[9] != tape_file:  # rows of one tape file come together
                            job, tape_file = single[7], single[9]
                            place = places.get((job, tape_file)) or place_of(single)
                        yield make(
                            Hit,
                            (
                                text,
                                single[1] or text.encode(),
                                single[2],
                                single[3],
                                single[4],
                                single[5],
                                digest.hex() if digest.__class__ is bytes else digest,
                                job,
                            )
                            + place
                            + (single[8], None),
                        )
                elif group:
                    if row[0] == group[0][0]:
                        group.append(row)
                        continue
                    yield from self._several(group)
                    group = []
                single = row
        if single is not None:
            group = [single]
        if group:
            yield from self._several(group)

    def _place(self, row: tuple[Any, ...]) -> tuple[str, str | None, str, int]:
        job, tape_file = self.jobs[row[_JOB]], self.tape_files[row[_TAPE_FILE]]
        place = self.places[row[_JOB], row[_TAPE_FILE]] = (job.level, job.host, tape_file[0], tape_file[1])
        return place

    def _hit(self, row: tuple[Any, ...], deleted_by: int | None) -> Hit:
        text, digest = row[_TEXT], row[_XXH3]
        place = self.places.get((row[_JOB], row[_TAPE_FILE])) or self._place(row)
        return Hit(
            text,
            row[_PATH] or text.encode(),
            row[_KIND],
            row[3],
            row[4],
            row[5],
            digest.hex() if isinstance(digest, bytes) else digest,
            row[_JOB],
            *place,
            row[_OFFSET],
            deleted_by,
        )

    def _several(self, rows: list[tuple[Any, ...]]) -> Iterator[Hit]:
        jobs = self.jobs
        if len(rows) > 1:
            rows.sort(key=lambda r: (jobs[r[_JOB]].rank, -r[_ID]))  # newest first
        if self.all_versions:
            yield from (self._hit(row, None) for row in rows)
            return
        picked = newest_versions(
            rows,
            key=lambda row: (jobs[row[_JOB]].host, row[_PATH] or row[_TEXT].encode()),
            deleting_job=lambda row: row[_JOB] if row[_KIND] == DELETED else None,
            include_deleted=self.include_deleted,
        )
        yield from [self._hit(row, deleted_by) for row, deleted_by in picked]
