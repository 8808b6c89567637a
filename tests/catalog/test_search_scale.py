"""Search at scale (issue 9): ``search_rows`` (what ``pytp search`` streams)
gives exactly what ``find`` gives, hosts, deletions and versions included; and
the trigram index is asked for the rare trigrams of a pattern (a MATCH of a
few), never all of them, with the same results as a plain scan, whatever the
pattern: rare, common, several literal runs, quotes, a trigram no path has,
another case.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import event, insert
from sqlmodel import Session, select

from pytp.catalog import search_query
from pytp.catalog.database import make_engine, upgrade
from pytp.catalog.light_sql import CoreReader
from pytp.catalog.models import Entry, Job, TapeFile, Volume, path_text
from pytp.catalog.search import find, glob_to_regex, resolve_as_of, search_rows
from pytp.catalog.search_index import FTS_TABLE
from pytp.cli.main import cli
from tests.conftest import write_library_config


@pytest.fixture
def two_hosts(tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Host a: full, then an incremental after a change and a deletion; host b: a full of the same paths."""
    config = write_library_config(tmp_path / "site", catalog_url, drives=1)
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    for name in ("report.txt", "notes.md", "gone.txt", "keep.txt"):
        (src / "docs" / name).write_text(f"{name}\n")

    def run(host: str, *args: str) -> None:
        monkeypatch.setenv("PYTP_HOSTNAME", host)
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    run("a", "backup", str(src), "--job", "home")
    run("b", "backup", str(src), "--job", "home")
    (src / "docs" / "report.txt").write_text("second draft\n")
    (src / "docs" / "gone.txt").unlink()
    run("a", "backup", str(src), "--job", "home", "--incremental")
    return make_engine(catalog_url)


@pytest.mark.parametrize("all_versions", [False, True])
@pytest.mark.parametrize("include_deleted", [False, True])
def test_search_rows_gives_what_find_gives(two_hosts, all_versions: bool, include_deleted: bool) -> None:  # type: ignore[no-untyped-def]
    with Session(two_hosts) as session:
        for patterns in (["docs"], ["report"], ["gone"], ["*/docs/*.txt"], None):
            for host in (None, "a", "b"):
                options = dict(all_versions=all_versions, include_deleted=include_deleted, host=host)
                expected = [
                    (f.entry.path, f.job.id, f.job.host, f.deleted_by.id if f.deleted_by else None)
                    for f in find(session, patterns, **options)  # type: ignore[arg-type]
                ]
                got = [
                    (h.path_bytes, h.job, h.host, h.deleted_by)
                    for h in search_rows(session, patterns, **options)  # type: ignore[arg-type]
                ]
                assert got == expected, (patterns, host)
        # and with the other selections: one job, one tape, a point in time, a directory
        tape = session.exec(select(Volume.label)).first()
        for options in (
            {"job_id": 1},
            {"job_id": 3, "include_deleted": True},
            {"tape": tape},
            {"as_of": resolve_as_of(session, "1")},
            {"under": b"/", "all_versions": all_versions},
        ):
            expected = [
                (f.entry.path, f.job.id, f.deleted_by.id if f.deleted_by else None)
                for f in find(session, ["docs"], **options)
            ]  # type: ignore[arg-type]
            got = [(h.path_bytes, h.job, h.deleted_by) for h in search_rows(session, ["docs"], **options)]  # type: ignore[arg-type]
            assert got == expected and got, options
        # a directory or one path and no pattern: what `ls-catalog` and `versions` ask
        report = next(search_rows(session, ["report.txt"])).path_bytes
        for under in (report, report.rsplit(b"/", 1)[0], b"/"):
            for host in (None, "a"):
                options = dict(under=under, all_versions=all_versions, include_deleted=include_deleted, host=host)
                expected = [
                    (f.entry.path, f.job.id, f.deleted_by.id if f.deleted_by else None)
                    for f in find(session, None, **options)  # type: ignore[arg-type]
                ]
                got = [(h.path_bytes, h.job, h.deleted_by) for h in search_rows(session, None, **options)]  # type: ignore[arg-type]
                assert got == expected and got, options
        # the cases that matter, spelled out: each host's newest version, the deletion on a only
        newest = [(h.host, h.job, h.deleted_by) for h in search_rows(session, ["gone"], include_deleted=True)]
        assert newest == [("b", 2, None), ("a", 1, 3)]
        assert [(h.host, h.job) for h in search_rows(session, ["report"])] == [("a", 3), ("b", 2)]


# --- the rare trigrams ---------------------------------------------------------------------

WORDS = "alpha bravo delta echo golf hotel kilo lima oscar papa".split()
EXTENSIONS = ("txt", "pdf", "c", "log")


def _path(i: int) -> str:
    return f"/srv/home/user{i % 97:02d}/project-{WORDS[i // 7 % 10]}/{WORDS[i * 3 % 10]}-{i:06d}.{EXTENSIONS[i % 4]}"


COUNT = 12_000
ODD = ['/srv/odd/say "hi".txt', "/srv/odd/Report-UPPER.txt", "/srv/odd/report-lower.txt"]


@pytest.fixture
def many(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A catalog of 12,000 entries in one good job (inserted as a backup inserts them)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    upgrade(engine)
    with Session(engine) as session:
        volume = Volume(label="MNY001L9", uuid="many", pool="default", block_size=512 << 10)
        job = Job(level="full", strategy="direct", status="running", sources="[]", host="h")
        session.add_all([volume, job])
        session.flush()
        tape_file = TapeFile(
            job_id=job.id, volume_id=volume.id, file_number=1, kind="data", block_size=512 << 10, status="complete"
        )
        session.add(tape_file)
        session.flush()
        names = [_path(i) for i in range(COUNT)] + ODD
        rows = [
            dict(
                job_id=job.id, tape_file_id=tape_file.id, path=n.encode(), path_text=path_text(n.encode()), kind="file"
            )
            for n in names
        ]
        session.execute(insert(Entry), rows)
        job.status = "ok"  # the job's end indexes its entries
        session.commit()
    return engine


def _scan(engine, pattern: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The paths a plain scan matches: substring, or the glob's regular expression."""
    with Session(engine) as session:
        paths = session.exec(select(Entry.path_text)).all()
    if set("*?[") & set(pattern):
        return sorted(p for p in paths if re.search(glob_to_regex(pattern), p))
    return sorted(p for p in paths if pattern in p)


def _searched(engine, pattern: str) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    """The paths ``search_rows`` finds, and the statements it ran."""
    statements: list[str] = []

    def remember(_conn, _cursor, statement, _parameters, _context, _many):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", remember)
    try:
        with Session(engine) as session:
            found = [h.path for h in search_rows(session, [pattern])]
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    return found, statements


PATTERNS = [
    "004321.",  # rare: one path
    "/user42/",  # medium: one user's paths
    "*/project-delta/*.pdf",  # two literal runs
    ".txt",  # common: every trigram is in a quarter of the paths
    '"hi"',  # quotes, which a MATCH must escape
    "report-",  # the index folds case; the answer does not
    "zzzqqq",  # trigrams no path has
]


@pytest.mark.parametrize("rare", [search_query._RARE, 10])  # 10: every trigram counts as common, shares decide
def test_rare_trigrams_are_matched_and_the_results_are_a_scans(many, monkeypatch, rare: int) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(search_query, "_RARE", rare)
    for pattern in PATTERNS:
        found, statements = _searched(many, pattern)
        assert found == _scan(many, pattern), pattern
        query = statements[-1]
        assert f"{FTS_TABLE} MATCH" in query and f"{FTS_TABLE}.path_text LIKE" not in query, (pattern, query)
    assert _searched(many, "report-")[0] == ["/srv/odd/report-lower.txt"]


def test_a_pattern_longer_than_any_path_is_searched_like_any_other(many) -> None:  # type: ignore[no-untyped-def]
    """Thousands of trigrams: a few are counted (a statement takes 2,000 columns at most)."""
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    pick = random.Random(9)  # the same pattern every run
    long = "/srv/home/" + "".join(pick.choice(letters) for _ in range(6000))
    assert len({long[i : i + 3] for i in range(len(long) - 2)}) > 2000
    assert _searched(many, long)[0] == []
    assert _searched(many, "*" + long[5:] + "*")[0] == []
    with Session(many) as session:
        assert len(search_query.rare_trigrams(CoreReader(session), [long])) <= search_query._MOST_TRIGRAMS


def test_a_pattern_in_most_paths_is_found_by_a_scan(many, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Walking the lists of trigrams every path has, then reading every row, costs more than reading the table."""
    monkeypatch.setattr(search_query, "_RARE", 10)
    found, statements = _searched(many, "/srv/home/user")
    assert found == _scan(many, "/srv/home/user") and len(found) == COUNT
    assert FTS_TABLE not in statements[-1]


def test_the_rarest_trigrams_of_each_run_are_chosen(many, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with Session(many) as session:
        # A trigram under the exact count: the rarest are taken as counted.
        assert set(search_query.rare_trigrams(CoreReader(session), ["004321."])) <= {"004", "043", "432", "321", "21."}
        # No path has "qqq" (nor the others): one trigram says so, at once.
        assert len(search_query.rare_trigrams(CoreReader(session), ["zzzqqq"])) == 1
        monkeypatch.setattr(search_query, "_RARE", 10)
        # Shares on a sample: each run's rarest first, so both runs narrow.
        chosen = search_query.rare_trigrams(CoreReader(session), ["/project-delta/", ".pdf"])
        assert any(t in "/project-delta/" for t in chosen) and any(t in ".pdf" for t in chosen)
        assert len(chosen) <= search_query._MOST_TRIGRAMS
        # A run in every path narrows nothing: not asked for.
        assert search_query.rare_trigrams(CoreReader(session), ["/srv/home/"]) == []


NAMES = [
    "/a/b.txt",
    "/a/B.TXT",
    "/srv/x[1].log",
    "/srv/star*name",
    "/srv/q?mark",
    "/srv/back\\slash",
    "/srv/café-é.txt",
    "/srv/dash-a",
    "/srv/caf\\xe9/na\\xefve",
    "/deep/a/b/c/d.pdf",
]
GLOBS = [
    "*.txt",
    "/a/?.txt",
    "*[0-9]*",
    "*/x[[]1]*",
    "/srv/x[!a-z]*",
    "/srv/[^s]*",
    "*caf?-?.txt",
    "*\\*",
    "*[*]*",
    "/srv/star*",
    "*/[a-c]/*",
    "/deep/*/d.pdf",
    "*[-a]",
    "*caf\\\\xe9*",
    "/srv/x[1",
]


def test_sqlites_glob_reads_a_pattern_as_the_regular_expression_does(tmp_path: Path) -> None:
    """Where ``sqlite_glob`` translates a glob, GLOB (in C) and the regex (a Python call a row) agree."""
    import sqlite3

    from pytp.catalog.search import sqlite_glob

    db = sqlite3.connect(tmp_path / "glob.db")
    translated = 0
    for pattern in GLOBS:
        native = sqlite_glob(pattern)
        if native is None:
            continue
        translated += 1
        for name in NAMES:
            by_regex = re.search(glob_to_regex(pattern), name) is not None
            by_glob = bool(db.execute("SELECT ? GLOB ?", (name, native)).fetchone()[0])
            assert by_glob == by_regex, (pattern, native, name)
    assert translated >= len(GLOBS) - 3
