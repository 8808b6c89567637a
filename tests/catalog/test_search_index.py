"""Search through the trigram index (issue 9): the index is what the query
uses for substrings and for the literal parts of globs and regexes (EXPLAIN
shows it), short patterns still work by a scan, the results are those of the
former implementation (a plain Python model of it here), the index follows
inserts and deletes and is filled by the migration, and --limit cuts and says so.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from pytp.catalog.database import alembic_config, make_engine, upgrade
from pytp.catalog.levels import DELETED
from pytp.catalog.models import Entry, Job, JobStatus, TapeFile, TapeFileStatus, Volume
from pytp.catalog.search import find, glob_to_regex, required_literal, resolve_as_of
from pytp.catalog.search_index import FTS_TABLE, PG_INDEX
from pytp.catalog.search_query import pattern_sql
from pytp.cli.main import cli
from tests.conftest import make_tree, write_library_config


@pytest.fixture
def run(tmp_path: Path, catalog_url: str):  # type: ignore[no-untyped-def]
    config = write_library_config(tmp_path / "site", catalog_url, drives=1)

    def invoke(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, (result.output, result.stderr)
        return result

    return invoke


@pytest.fixture
def history(run, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Job 1 (full) of the every-kind tree; job 2 (incremental) after a change and a deletion."""
    src = make_tree(tmp_path / "src", big_file=4096)
    run("backup", str(src), "--job", "home")
    (src / "docs" / "report.txt").write_text("quarterly report, second draft\n")
    (src / "empty.txt").unlink()
    run("backup", str(src), "--job", "home", "--incremental")
    return src


# --- the literal the index is asked for -------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "regex", "literal"),
    [
        ("report", False, "report"),
        ("ab", False, None),  # too short for a trigram: a scan
        ("100%_done", False, "done"),  # LIKE's wildcards are not literal to the index
        ("*/project-delta/*.pdf", False, "/project-delta/"),
        ("/home/?/x[abc]yz*", False, "/home/"),
        ("*.c", False, None),
        (r"report\.txt$", True, "report.txt"),
        ("colou?r-scheme", True, "r-scheme"),  # the u is optional, so "colou" is not required
        ("ab+cdef", True, "bcdef"[1:]),
        ("(abcdef)?xy", True, None),  # inside a group: not required
        ("abc|defgh", True, None),  # alternatives: nothing is required
        ("(?i)REPORT", True, None),  # inline flags change what matches
        (r"[a-z]+\d{2,}quarter.*", True, "quarter"),
    ],
)
def test_required_literal(pattern: str, regex: bool, literal: str | None) -> None:
    assert required_literal(pattern, regex) == literal


def test_a_required_literal_is_in_every_match() -> None:
    names = ["/a/colour-scheme", "/a/color-scheme", "/x/report.txt", "/b/ab-cdef", "/b/abbbcdef", "/q/zz99quarterly"]
    for pattern in ["colou?r-scheme", r"report\.txt$", "ab+cdef", r"[a-z]+\d{2,}quarter.*"]:
        literal = required_literal(pattern, regex=True)
        assert literal
        for name in names:
            if re.search(pattern, name):
                assert literal in name, (pattern, name)


# --- results: those of the former implementation ----------------------------------------


def model(session: Session, pattern: str, regex: bool, all_versions: bool, include_deleted: bool, as_of=None):  # type: ignore[no-untyped-def]
    """The former implementation, in Python: every good entry, matched here, the
    newest version of each path chosen in a loop (deletions mark the version before)."""
    query = (
        select(Entry, Job)
        .join(Job, col(Job.id) == Entry.job_id)
        .join(TapeFile, col(TapeFile.id) == Entry.tape_file_id)
        .join(Volume, col(Volume.id) == TapeFile.volume_id)
        .where(col(Job.status).in_(JobStatus.GOOD), TapeFile.status == TapeFileStatus.COMPLETE)
    )
    if as_of is not None:
        query = query.where(as_of.condition())
    pattern = os.fsencode(pattern).decode("utf-8", "backslashreplace")
    if regex:
        matches = re.compile(pattern).search
    elif set("*?[") & set(pattern):
        matches = re.compile(glob_to_regex(pattern)).search
    else:  # LIKE, case-sensitive as file names are (PRAGMA case_sensitive_like)
        matches = lambda t: pattern in t  # noqa: E731
    rows = [(e, j) for e, j in session.exec(query).all() if matches(e.path_text)]
    rows.sort(key=lambda r: (r[0].path_text, -r[1].started_at.timestamp(), -r[0].job_id, -r[0].id))  # type: ignore[operator]
    if all_versions:
        return [(e.id, None) for e, _ in rows if include_deleted or e.kind != DELETED]
    out, seen, deleted_by = [], set(), {}
    for e, j in rows:
        if e.path in seen:
            continue
        if e.kind == DELETED:
            deleted_by.setdefault(e.path, j.id)
            continue
        seen.add(e.path)
        if e.path in deleted_by and not include_deleted:
            continue
        out.append((e.id, deleted_by.get(e.path)))
    return out


PATTERNS = [
    ("report", False),
    ("REPORT", False),
    ("empty", False),
    ("t", False),  # short: the scan
    ("na\\xefve", False),  # a name that is not UTF-8, as search shows it
    (os.fsdecode(b"na\xefve"), False),  # the same typed as raw bytes
    ("*/docs/*.txt", False),
    ("*.t?t", False),
    ("*caf\\\\xe9*", False),
    (r"deep/er/.*\.md$", True),
    (r"re(po)?rt", True),
    (r"f{90}\.txt", True),
    ("*/docs/[]r]eport.txt", False),  # a ] first in a class is a member (exit 5 before: a broken regex)
    ("*/[!]a]mpty.txt", False),
    (r"\u0072eport", True),  # an escape's digits are not literal text (it found nothing before)
]


@pytest.mark.parametrize("all_versions", [False, True])
@pytest.mark.parametrize("include_deleted", [False, True])
def test_results_are_those_of_the_former_implementation(
    history: Path, catalog_url: str, all_versions: bool, include_deleted: bool
) -> None:
    engine = make_engine(catalog_url)
    with Session(engine) as session:
        for as_of in (None, resolve_as_of(session, "1")):
            for pattern, regex in PATTERNS:
                expected = model(session, pattern, regex, all_versions, include_deleted, as_of)
                found = find(
                    session,
                    [pattern],
                    regex=regex,
                    all_versions=all_versions,
                    include_deleted=include_deleted,
                    as_of=as_of,
                )
                got = [(f.entry.id, f.deleted_by.id if f.deleted_by else None) for f in found]
                assert got == expected, (pattern, regex, as_of)
        # the cases that matter, spelled out
        gone = find(session, ["empty.txt"], include_deleted=True)
        assert [(f.entry.kind, f.deleted_by.id if f.deleted_by else None) for f in gone] == [("file", 2)]
        assert find(session, ["empty.txt"]) == []
        assert [f.job.id for f in find(session, ["docs/report.txt"])] == [2]
        assert len(find(session, ["na\\xefve"])) == 1


# --- the index is used ------------------------------------------------------------------


def executed(engine: Engine, action) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    statements: list[tuple[str, object]] = []

    def remember(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    return statements


def plan(engine: Engine, pattern: str, regex: bool = False) -> str:
    """The database's plan for ``pattern``: on SQLite of the very statement ``find`` runs;
    on PostgreSQL of the pattern's condition on ``entry`` (with a handful of rows its
    planner rightly prefers to go through the job index, so the question asked is
    whether the trigram index can serve the condition, with sequential scans off)."""
    if engine.dialect.name == "sqlite":
        with Session(engine) as session:
            statements = [
                s for s in executed(engine, lambda: find(session, [pattern], regex=regex)) if "FROM entry" in s[0]
            ]
        statement, parameters = statements[0]
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            return "\n".join(str(r[-1]) for r in rows)
    condition = pattern_sql(pattern, regex, engine.dialect.name)
    with engine.connect() as connection:
        connection.exec_driver_sql("SET enable_seqscan = off")
        query = text("EXPLAIN SELECT entry.id FROM entry WHERE " + condition.sql)
        explained = connection.execute(query, condition.params)
        return "\n".join(r[0] for r in explained.all())


@pytest.mark.parametrize(
    ("pattern", "regex"),
    [("report", False), ("*/docs/*.txt", False), (r"deep/er/.*\.md$", True), ("na\\xefve", False)],
)
def test_the_trigram_index_serves_substrings_and_literal_parts(history: Path, catalog_url: str, pattern, regex) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(catalog_url)
    shown = plan(engine, pattern, regex)
    if engine.dialect.name == "sqlite":
        assert f"SCAN {FTS_TABLE} VIRTUAL TABLE" in shown, shown
        assert not re.search(r"SCAN entry\b(?!_)", shown), shown
    else:
        assert PG_INDEX in shown, shown


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)  # SQLite's own index and planner
def test_a_short_pattern_is_found_by_a_scan(history: Path, sqlite_url: str, catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    assert engine.dialect.name == "sqlite"
    shown = plan(engine, "er")
    assert FTS_TABLE not in shown and "entry" in shown
    with Session(engine) as session:
        assert {Path(f.entry.path_text).name for f in find(session, ["er"])} >= {"er", "notes.md"}


# --- the index follows the table ----------------------------------------------------------


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)  # SQLite's own index and planner
def test_the_index_follows_deletes_and_survives_integrity_check(history: Path, catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    assert engine.dialect.name == "sqlite"
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('integrity-check')"))
        connection.execute(text("DELETE FROM entry WHERE path_text LIKE '%notes.md'"))
        connection.execute(text("UPDATE entry SET path_text = path_text || '.renamed' WHERE path_text LIKE '%big.bin'"))
        connection.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('integrity-check')"))
    with Session(engine) as session:
        assert find(session, ["notes.md"]) == []
        assert [Path(f.entry.path_text).name for f in find(session, ["big.bin.renamed"])] == ["big.bin.renamed"]


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)  # SQLite's own index and planner
def test_entries_are_indexed_when_their_job_becomes_good(history: Path, catalog_url: str) -> None:
    """The backup's inserts pay nothing: a running job's entries join the index in
    one statement when the job ends good, and leave it if the job stops being good."""
    engine = make_engine(catalog_url)
    assert engine.dialect.name == "sqlite"

    def indexed() -> list[int]:
        with engine.connect() as connection:
            query = f"SELECT rowid FROM {FTS_TABLE} WHERE path_text LIKE '%/brand-new.txt'"
            return [r[0] for r in connection.exec_driver_sql(query).all()]

    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO job (uuid, level, strategy, status, sources, started_at, files, total_bytes, problems) "
            "VALUES ('new-job', 'full', 'direct', 'running', '[]', '2030-01-01 00:00:00', 0, 0, 0)"
        )
        job = connection.exec_driver_sql("SELECT id FROM job WHERE uuid = 'new-job'").scalar_one()
        connection.exec_driver_sql(
            "INSERT INTO entry (job_id, tape_file_id, path, path_text, kind, size, mode, uid, gid, uname, gname, "
            "mtime_ns, ctime_ns, inode, device, offset, header_size) "
            "SELECT ?, tape_file_id, X'2F7372632F6272616E642D6E65772E747874', '/src/brand-new.txt', 'file', "
            "0, 0, 0, 0, '', '', 0, 0, 0, 0, 0, 512 FROM entry LIMIT 1",
            (job,),
        )
    assert indexed() == []
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE job SET status = 'ok' WHERE id = ?", (job,))
    assert len(indexed()) == 1
    with Session(engine) as session:
        assert [f.job.id for f in find(session, ["brand-new"])] == [job]
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE job SET status = 'failed' WHERE id = ?", (job,))
        connection.exec_driver_sql(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('integrity-check')")
    assert indexed() == []


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)  # SQLite's own index and planner
def test_the_migration_indexes_the_entries_already_there(history: Path, sqlite_url: str, catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    assert engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        # SQLite batch migrations copy tables; with foreign keys enforced, dropping
        # the old job table (referenced by entry) fails, as alembic's batch docs warn.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        command.downgrade(alembic_config(connection), "0003")
        connection.commit()
        assert not connection.execute(text(f"SELECT name FROM sqlite_master WHERE name = '{FTS_TABLE}'")).all()
    upgrade(engine)
    with engine.connect() as connection:
        # later migrations that copy entry or job (SQLite batch mode) must not lose the triggers
        triggers = connection.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").scalar()
        assert triggers == 6
    with Session(engine) as session:
        found = find(session, ["report"], all_versions=True)
        assert len(found) >= 3 and [f.entry.id for f in found] == [
            i for i, _ in model(session, "report", False, True, False)
        ]
        assert FTS_TABLE in plan(engine, "report")


# --- the command --------------------------------------------------------------------------


def test_limit_cuts_and_says_there_are_more(run, history: Path) -> None:  # type: ignore[no-untyped-def]
    """The first N of the whole search, and a note that more were left out (not how many:
    counting them costs what showing them costs)."""
    every = list(csv.DictReader(io.StringIO(run("search", "--format", "csv", str(history)).stdout)))
    assert len(every) > 3
    for n in range(1, len(every) + 1):
        result = run("search", "--format", "csv", "--limit", str(n), str(history))
        cut = list(csv.DictReader(io.StringIO(result.stdout)))
        assert cut == every[:n]
        assert ("More matches not shown" in result.stderr) == (n < len(every)), n
    table = run("search", "--limit", "1", "report")
    assert "More matches not shown (these are the first 1 by path); use --limit" in table.stderr
    assert "report" in table.stdout
    everything = run("search", "--limit", "0", "report")
    assert "more match" not in everything.stderr.lower()
    assert "Error:" in run("search", "--limit", "-1", "report", expect=2).stderr


@pytest.mark.postgres
def test_without_pg_trgm_the_catalog_is_made_with_a_warning_and_search_scans(postgres_server) -> None:  # type: ignore[no-untyped-def]
    """A role that may not create extensions (no CREATE on the database) still gets a catalog."""
    import psycopg

    from pytp.catalog.database import open_catalog

    admin = f"host=127.0.0.1 port={postgres_server.port} user=pytp"
    with psycopg.connect(admin + " dbname=postgres", autocommit=True) as conn:
        conn.execute("CREATE ROLE plain LOGIN")
        conn.execute("CREATE DATABASE no_trgm")
        conn.execute("REVOKE CREATE ON DATABASE no_trgm FROM PUBLIC")
    with psycopg.connect(admin + " dbname=no_trgm", autocommit=True) as conn:
        conn.execute("GRANT ALL ON SCHEMA public TO plain")
    url = postgres_server.url("no_trgm").replace("pytp@", "plain@")
    with pytest.warns(UserWarning, match="pg_trgm is not available"):
        engine = open_catalog(url)
    with engine.connect() as connection:
        assert not connection.exec_driver_sql(f"SELECT 1 FROM pg_indexes WHERE indexname = '{PG_INDEX}'").all()
    with Session(engine) as session:
        assert find(session, ["report"]) == []  # an empty catalog, but the query runs
