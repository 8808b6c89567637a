"""``search_rows`` as ``pytp search`` runs it (issue 9, catalog/search_hits.py):
the same hits as the former implementation (deletions, versions, a point in
time, names that are not UTF-8, several hosts), the first N of a limited
search are the first N of the whole one however the versions of a path fall
across the batches it is read in, and the entries are read by id through the
trigram index, never through an index on their job or tape file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from pytp.catalog import search_hits
from pytp.catalog.database import make_engine
from pytp.catalog.models import Entry
from pytp.catalog.search import resolve_as_of, search_rows
from pytp.catalog.search_index import FTS_TABLE
from tests.catalog.test_search_index import PATTERNS, executed, history, model, run  # noqa: F401 - fixtures
from tests.catalog.test_search_scale import many, two_hosts  # noqa: F401 - fixtures


def _expected(session: Session, pattern: str, regex: bool, all_versions: bool, include_deleted: bool, as_of):  # type: ignore[no-untyped-def]
    """The former implementation's hits (``model``) as (path, job, deleted_by)."""
    hits = []
    for entry_id, deleted_by in model(session, pattern, regex, all_versions, include_deleted, as_of):
        entry = session.get(Entry, entry_id)
        assert entry is not None
        hits.append((entry.path, entry.job_id, deleted_by))
    return hits


@pytest.mark.parametrize("all_versions", [False, True])
@pytest.mark.parametrize("include_deleted", [False, True])
def test_hits_are_those_of_the_former_implementation(
    history: Path,  # noqa: F811 - the fixture
    catalog_url: str,
    all_versions: bool,
    include_deleted: bool,
) -> None:
    engine = make_engine(catalog_url)
    with Session(engine) as session:
        for as_of in (None, resolve_as_of(session, "1")):
            for pattern, regex in PATTERNS:
                expected = _expected(session, pattern, regex, all_versions, include_deleted, as_of)
                options = dict(regex=regex, all_versions=all_versions, include_deleted=include_deleted, as_of=as_of)
                got = [(h.path_bytes, h.job, h.deleted_by) for h in search_rows(session, [pattern], **options)]  # type: ignore[arg-type]
                assert got == expected, (pattern, regex, as_of)
        # the name that is not UTF-8 comes back as its bytes, shown with \xNN
        (odd,) = search_rows(session, ["na\\xefve"])
        assert odd.path_bytes.endswith(b"/caf\xe9/na\xefve-\xff.txt") and odd.path.endswith(
            "/caf\\xe9/na\\xefve-\\xff.txt"
        )
        assert odd.xxh3 is not None and len(odd.xxh3) == 32 and int(odd.xxh3, 16) >= 0


def _full_and_limited(session: Session, **options):  # type: ignore[no-untyped-def]
    full = list(search_rows(session, **options))
    for n in range(1, len(full) + 2):
        yield full, n, list(search_rows(session, limit=n, **options))


@pytest.mark.parametrize("slack", [16, 0])  # 0: batches of 2N rows, which cut the versions of a path
def test_a_limited_search_gives_the_first_hits_of_the_whole_one(two_hosts, monkeypatch, slack: int) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    monkeypatch.setattr(search_hits, "_SLACK", slack)
    with Session(two_hosts) as session:
        checked = 0
        for patterns in (["docs"], ["report"], ["gone"], ["*/docs/*.txt"], None):
            for host in (None, "a", "b"):
                for all_versions in (False, True):
                    for include_deleted in (False, True):
                        options = dict(
                            patterns=patterns, host=host, all_versions=all_versions, include_deleted=include_deleted
                        )
                        for full, n, limited in _full_and_limited(session, **options):
                            assert limited == full[:n], (options, n)
                            checked += bool(full)
        assert checked > 100
        # a path whose three rows (two versions on a, one on b) fill a batch of two, then are cut by one
        full = list(search_rows(session, ["report"], all_versions=True))
        assert len(full) == 3 and len({h.path for h in full}) == 1
        assert list(search_rows(session, ["report"], all_versions=True, limit=1)) == full[:1]
        assert list(search_rows(session, ["report"], limit=1)) == list(search_rows(session, ["report"]))[:1]


def test_a_limited_search_asks_the_database_for_the_first_rows_only(two_hosts) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with Session(two_hosts) as session:
        statements = executed(two_hosts, lambda: list(search_rows(session, ["docs"], limit=2)))
    (query,) = [(s, p) for s, p in statements if "FROM entry " in s and "ORDER BY entry.path_text" in s]
    values = list(query[1].values()) if isinstance(query[1], dict) else list(query[1])
    assert "LIMIT" in query[0] and 2 * 2 + search_hits._SLACK in values, query


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)  # SQLite's own index and planner
@pytest.mark.parametrize("pattern", ["report", "*/docs/*.txt", "na\\xefve"])
def test_entries_are_read_by_id_from_the_trigram_index(history: Path, catalog_url: str, pattern: str) -> None:  # noqa: F811
    """The candidates come from the index and each is read by its id; an index on the
    entry's job or tape file (the ids the search keeps, which look selective) is not used."""
    engine = make_engine(catalog_url)
    with Session(engine) as session:
        statements = executed(engine, lambda: list(search_rows(session, [pattern], job_id=1)))
    (statement, parameters) = next((s, p) for s, p in statements if "ORDER BY entry.path_text" in s)
    with engine.connect() as connection:
        shown = [str(r[-1]) for r in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
    assert f"SCAN {FTS_TABLE} VIRTUAL TABLE INDEX 0:M1" in shown, shown
    assert "SEARCH entry USING INTEGER PRIMARY KEY (rowid=?)" in shown, shown
    assert not any("ix_entry" in line or line.startswith("SCAN entry ") for line in shown), shown


@pytest.mark.parametrize("catalog_url", ["postgres"], indirect=True)
def test_on_postgresql_a_search_has_room_for_an_exact_bitmap_in_its_own_transaction(two_hosts) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The server's default work_mem (4 MB) makes pg_trgm's bitmap lossy at ~100,000
    candidates, and every row of a lossy page is checked again (the glob at 10M entries:
    2.6 s instead of 0.97 s); the search raises it for its own transaction only."""
    with Session(two_hosts) as session:
        default = session.connection().exec_driver_sql("SHOW work_mem").scalar_one()
        assert list(search_rows(session, ["docs"]))
        assert session.connection().exec_driver_sql("SHOW work_mem").scalar_one() == search_hits.PG_WORK_MEM
    with Session(two_hosts) as session:
        assert session.connection().exec_driver_sql("SHOW work_mem").scalar_one() == default != search_hits.PG_WORK_MEM


def test_selections_need_good_jobs_and_complete_tape_files(two_hosts) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """A job that failed or a tape file that is not complete offers nothing, as before."""
    with Session(two_hosts) as session:
        before = [h.job for h in search_rows(session, ["docs"], all_versions=True)]
        assert 2 in before
        session.connection().exec_driver_sql("UPDATE job SET status = 'failed' WHERE id = 2")
        assert [h.job for h in search_rows(session, ["docs"], all_versions=True)] == [j for j in before if j != 2]
        session.connection().exec_driver_sql("UPDATE tape_file SET status = 'incomplete' WHERE job_id = 1")
        assert {h.job for h in search_rows(session, ["docs"], all_versions=True)} == {3}
        assert list(search_rows(session, ["docs"], tape="NOSUCH")) == []
        session.rollback()


# --- the command ----------------------------------------------------------------------------


def _emitted(rows) -> str:  # type: ignore[no-untyped-def]
    """What ``emit(rows, "csv")`` prints: the CSV of a list of rows, as search printed it before
    (with ``\n`` line ends, as click's test runner shows them)."""
    import contextlib
    import io

    from pytp.cli.app import emit

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        emit(rows, "csv")
    return out.getvalue().replace("\r\n", "\n")


def test_the_csv_streamed_is_what_a_list_of_rows_printed(run, history: Path, catalog_url: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Deletions (empty cells), a name that is not UTF-8, several versions: byte for byte."""
    from pytp.cli.catalog_cmd import hit_row

    engine = make_engine(catalog_url)
    for pattern, options in (("report", []), ("empty", []), ("na\\xefve", []), ("txt", ["--all-versions"])):
        with Session(engine) as session:
            expected = _emitted(
                [
                    hit_row(h)
                    for h in search_rows(
                        session, [pattern], include_deleted="--all-versions" not in options, **_cli_options(options)
                    )
                ]
            )
        assert run("search", "--format", "csv", *options, pattern).stdout == expected, pattern
    assert "deleted_by" in expected and expected.count("\n") > 3


def _cli_options(options: list[str]) -> dict[str, object]:
    return {"all_versions": True} if "--all-versions" in options else {}


def test_a_csv_of_many_hits_is_printed_in_pieces_and_whole(many, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from click.testing import CliRunner

    from pytp.cli.catalog_cmd import hit_row
    from pytp.cli.main import cli
    from tests.conftest import write_library_config

    config = write_library_config(tmp_path / "site", f"sqlite:///{tmp_path / 'catalog.db'}")
    monkeypatch.setenv("PYTP_HOSTNAME", "h")  # the host of the fixture's job
    with Session(many) as session:
        expected = _emitted([hit_row(h) for h in search_rows(session, ["/srv/"], include_deleted=True)])
    assert expected.count("\n") > 12_000  # more than two pieces of 5,000
    result = CliRunner().invoke(cli, ["--config", str(config), "search", "--format", "csv", "/srv/"])
    assert result.exit_code == 0 and result.stdout == expected


COLUMNS = ["path", "size", "mtime", "host", "job", "tape", "tape_file", "deleted_by"]


def _tabulated(rows) -> str:  # type: ignore[no-untyped-def]
    """The table ``emit(rows, "table", COLUMNS)`` prints (tabulate's "simple")."""
    from tabulate import tabulate

    return tabulate([["" if r.get(c) is None else r.get(c) for c in COLUMNS] for r in rows], COLUMNS, "simple")


def test_the_table_is_tabulates_made_quicker(run, history: Path, catalog_url: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Plain rows are made without tabulate, the same text; "txt" and "/" also find the tree's odd
    names (other scripts, spaces), which are left to tabulate."""
    from pytp.cli.catalog_cmd import hit_row
    from pytp.cli.hit_table import hit_table

    engine = make_engine(catalog_url)
    for pattern in ("report", "empty", "na\\xefve", "txt", "/"):
        with Session(engine) as session:
            rows = [hit_row(h) for h in search_rows(session, [pattern], include_deleted=True)]
        quick = hit_table(rows, COLUMNS)
        assert quick == _tabulated(rows) if pattern not in ("txt", "/") else quick in (None, _tabulated(rows)), pattern
        assert run("search", "--limit", "1000", pattern).stdout == _tabulated(rows) + "\n", pattern


def test_the_quick_table_is_tabulates_or_leaves_it_to_tabulate() -> None:
    import random

    from pytp.cli.hit_table import hit_table

    texts = ["/srv/a", "/x/y z.txt", "/caf\\xe9", "2026-12-02T18:19:49+00:00", "", None, "vm", "BEN001L9", "x:1", "/"]
    odd = ["/café", "123", "1e5", "nan", "0x1f", " lead", "a\nb", "x\ty", "T", "db01"]
    numbers = [0, 1, 5, 123456, 10**12, None]
    pick = random.Random(7)
    quick = 0
    for case in range(3000):
        choices = texts + (odd if case % 2 else [])
        rows = [
            {
                "path": pick.choice(choices),
                "size": pick.choice(numbers),
                "mtime": pick.choice(choices),
                "host": pick.choice(choices),
                "job": pick.choice(numbers[:-1]),
                "tape": pick.choice(choices),
                "tape_file": pick.choice(numbers),
                "deleted_by": pick.choice([None, None, 3, 12]),
            }
            for _ in range(pick.choice([1, 2, 3, 7]))
        ]
        table = hit_table(rows, COLUMNS)
        if table is not None:
            quick += 1
            assert table == _tabulated(rows), rows
        elif case % 2 == 0:
            raise AssertionError(f"plain cells left to tabulate: {rows}")
    assert quick > 1500
    for cell in odd:
        assert hit_table([{"path": "/a", "host": cell}], COLUMNS) is None, cell


# --- the same search through stdlib sqlite3 ------------------------------------------------------


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_sqlite3_finds_what_sqlalchemy_finds(history: Path, catalog_url: str) -> None:  # noqa: F811
    """``pytp search`` reads a SQLite catalog with stdlib sqlite3 (``light_sql.open_sqlite``):
    the same statements as through SQLAlchemy, so the same hits, field for field, for every
    kind of pattern and selection; REGEXP is registered the way SQLAlchemy registers it."""
    from pytp.catalog import search_query
    from pytp.catalog.light_sql import SqliteReader, open_sqlite

    engine = make_engine(catalog_url)
    connection = open_sqlite(catalog_url)
    assert connection is not None
    light = SqliteReader(connection)
    selections: list[dict[str, object]] = [
        {},
        {"all_versions": True},
        {"all_versions": True, "include_deleted": True},
        {"include_deleted": True},
        {"job_id": 1},
        {"tape": "NOSUCH"},
        {"host": "no-such-host"},
        {"limit": 1},
        {"limit": 3, "include_deleted": True},
        {"under": history.as_posix().encode() + b"/docs"},
    ]
    compared = 0
    with Session(engine) as session:
        for pattern, regex in [*PATTERNS, ("/", False), (r"\.txt$", True)]:
            for options in selections:
                expected = list(search_rows(session, [pattern], regex=regex, **options))  # type: ignore[arg-type]
                got = list(search_query.search_rows(light, [pattern], regex=regex, **options))  # type: ignore[arg-type]
                assert got == expected, (pattern, regex, options)
                compared += len(got)
        as_of = resolve_as_of(session, "1").roots
        assert list(search_query.search_rows(light, ["txt"], roots=as_of)) == list(
            search_rows(session, ["txt"], as_of=resolve_as_of(session, "1"))
        )
    connection.close()
    assert compared > 100  # the patterns do find things


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_damage_found_mid_search_is_the_catalogs_error(history: Path, catalog_url: str) -> None:  # noqa: F811
    """An error from sqlite3 while the hits stream is raised as SQLAlchemy's, which the CLI
    turns into the catalog's message and exit code, as on the full path."""
    from sqlalchemy.exc import DBAPIError

    from pytp.catalog import search_query
    from pytp.catalog.light_sql import SqliteReader, open_sqlite

    connection = open_sqlite(catalog_url)
    assert connection is not None
    with pytest.raises(DBAPIError):
        list(SqliteReader(connection).batches("SELECT no_such_column FROM entry", {}))
    connection.close()
    connection = open_sqlite(catalog_url)
    assert connection is not None
    reader = SqliteReader(connection)
    hits = search_query.search_rows(reader, ["txt"])
    next(hits)
    connection.close()  # the catalog goes away under a search
    with pytest.raises(DBAPIError):
        list(hits)


# --- PostgreSQL: the index is asked for the less common trigrams only -----------------------------


@pytest.mark.parametrize("catalog_url", ["postgres"], indirect=True)
def test_on_postgresql_common_trigrams_are_not_asked_of_the_index(two_hosts) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Every path of this catalog is under ``docs/``: ``doc``/``ocs`` would make the pg_trgm
    index walk the list of every entry, so only ``report``'s trigrams are asked for, and the
    pattern itself is checked on an expression the index does not serve."""
    from pytp.catalog import search_query
    from pytp.catalog.light_sql import CoreReader

    with Session(two_hosts) as session:
        reader = CoreReader(session)
        chosen = search_query.pg_candidates(reader, [search_query.required_literals("docs/report")])
        assert chosen is not None
        assert set(chosen.params.values()) <= {"%rep%", "%epo%", "%por%", "%ort%"} and chosen.params
        # a pattern whose every trigram is in every path: the planner's own way
        assert search_query.pg_candidates(reader, [search_query.required_literals("/docs/")]) is None
        statements = executed(two_hosts, lambda: list(search_rows(session, ["docs/report"])))
        statement, parameters = next((s, p) for s, p in statements if "ORDER BY entry.path_text" in s)
        connection = session.connection()
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a handful of rows: a scan is cheaper
        plan = "\n".join(r[0] for r in connection.exec_driver_sql("EXPLAIN " + statement, parameters))
        session.rollback()
    index_conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert index_conditions and all("docs" not in line for line in index_conditions), plan
    assert "'%rep%'" in plan or "'%ort%'" in plan, plan
    assert "|| ''::text) ~~ '%docs" in plan, plan  # the pattern (its / escaped), checked as a filter
    with Session(two_hosts) as session:
        hits = [(h.host, h.job) for h in search_rows(session, ["docs/report"], all_versions=True)]
    assert sorted(hits) == [("a", 1), ("a", 3), ("b", 2)]
