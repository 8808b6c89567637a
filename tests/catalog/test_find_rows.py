"""``find`` on plain rows (issue 9) gives what the ORM query with window functions gave.

``find`` used to build an ORM ``Entry``, ``Job``, ``TapeFile`` and ``Volume`` per
hit and pick the newest version of each path with window functions; it now
streams plain rows sorted by path and picks as they pass.  The old query is
rebuilt here from ``_selection`` (which restore still uses: it keeps the window
rule in SQL to sort by tape position) and compared hit by hit, every column,
on a catalog with several jobs, a changed file, a deletion, two hosts and
points in time.
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlmodel import Session, col, select

from pytp.catalog import search
from pytp.catalog.models import Entry, Job, TapeFile, Volume
from pytp.catalog.search import FoundEntry, find, find_exact, iter_found, resolve_as_of
from tests.catalog import test_search_scale

#: the catalog of test_search_scale: two hosts, three jobs, a changed file, a deletion
two_hosts = test_search_scale.two_hosts

DEFAULTS: dict[str, Any] = dict(
    regex=False,
    job_id=None,
    tape=None,
    all_versions=False,
    under=None,
    include_deleted=False,
    as_of=None,
    host=None,
)


def old_find(session: Session, patterns: list[str] | None, **options: Any) -> list[tuple[Any, ...]]:
    """The ORM query ``find`` ran before: objects per hit, the window rule of ``_selection``."""
    hits = search._selection(session, patterns, **{**DEFAULTS, **options}).subquery("hits")
    query = (
        select(Entry, Job, TapeFile, Volume, hits.c.deleted_by)
        .join(Job, col(Job.id) == Entry.job_id)
        .join(TapeFile, col(TapeFile.id) == Entry.tape_file_id)
        .join(Volume, col(Volume.id) == TapeFile.volume_id)
        .join(hits, hits.c.entry_id == Entry.id)
        .order_by(col(Entry.path_text), col(Job.started_at).desc(), col(Entry.job_id).desc(), col(Entry.id).desc())
    )
    return [
        (tuple(getattr(entry, name) for name in FoundEntry._fields), job.id, tape_file.id, volume.id, deleted_by)
        for entry, job, tape_file, volume, deleted_by in session.exec(query).all()  # type: ignore[call-overload]
    ]


def new_find(session: Session, patterns: list[str] | None, **options: Any) -> list[tuple[Any, ...]]:
    return [
        (
            tuple(f.entry),
            f.job.id,
            f.tape_file.id,
            f.volume.id,
            f.deleted_by.id if f.deleted_by is not None else None,
        )
        for f in find(session, patterns, **options)
    ]


def test_find_gives_what_the_orm_query_gave(two_hosts) -> None:  # type: ignore[no-untyped-def]
    with Session(two_hosts) as session:
        tape = session.exec(select(Volume.label)).first()
        views = [None, resolve_as_of(session, "1"), resolve_as_of(session, "3")]
        compared = 0
        for all_versions, include_deleted, patterns in itertools.product(
            (False, True), (False, True), (["docs"], ["report"], ["gone"], ["*/docs/*.txt"], None)
        ):
            for host in (None, "a"):
                for as_of in views:
                    for extra in ({}, {"job_id": 3}, {"tape": tape, "under": b"/"}):
                        options = dict(
                            all_versions=all_versions, include_deleted=include_deleted, host=host, as_of=as_of, **extra
                        )
                        expected = old_find(session, patterns, **options)
                        assert new_find(session, patterns, **options) == expected, (patterns, options)
                        compared += len(expected)
        assert compared > 200  # the catalog is not empty, the comparisons are not vacuous
        # the cases that matter: each host's newest version, the deletion (by job 3) on host a only
        gone = [
            (f.job.host, f.job.id, f.deleted_by.id if f.deleted_by else None)
            for f in find(session, ["gone"], include_deleted=True)
        ]
        assert gone == [("b", 2, None), ("a", 1, 3)]


def test_found_rows_share_their_job_tape_file_and_tape(two_hosts) -> None:  # type: ignore[no-untyped-def]
    """One object per job, tape file and tape, not one per hit."""
    with Session(two_hosts) as session:
        found = list(iter_found(session, None, all_versions=True, include_deleted=True))
        assert len(found) > 10
        assert len({id(f.job) for f in found}) == len({f.job.id for f in found})
        assert len({id(f.tape_file) for f in found}) == len({f.tape_file.id for f in found})
        assert len({id(f.volume) for f in found}) == len({f.volume.id for f in found})
        first = found[0]
        exact = find_exact(session, first.job.id, first.entry.path)
        assert exact is not None and exact.entry == first.entry and exact.volume.id == first.volume.id
        assert find_exact(session, first.job.id, b"/no/such/path") is None
        orm = session.get(Entry, first.entry.id)
        assert orm is not None and first.entry.data_size == orm.data_size
