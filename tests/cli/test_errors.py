"""No tracebacks, right exit codes (issue 8, defect 11).

Each case below printed a Python traceback (and exited 1, the code of a
partial job) before.  Through the real command line, each now ends with one
`Error: …` line and its documented exit code; the traceback appears only with
`--debug` or `PYTP_DEBUG=1`.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result

from pytp.catalog.database import alembic_config, head_revision, make_engine, upgrade
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from tests.conftest import write_library_config


def assert_error(result: Result, code: int, *fragments: str) -> None:
    """Exit ``code`` with an `Error: …` line holding ``fragments``, handled (no traceback)."""
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # not an escaped exception
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def assert_subprocess_error(proc: subprocess.CompletedProcess[str], codes: tuple[int, ...]) -> str:
    assert proc.returncode in codes, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Path:
    return write_library_config(tmp_path / "site", sqlite_url)


def run(config: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], env=env)


def backed_up(site: Path, tmp_path: Path) -> Path:
    """A small tree, backed up once (job 1), its tape left in drive d0."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in (1, 2, 3):
        (src / "d" / f"f{i}.txt").write_text(f"file {i}\n")
    result = run(site, "backup", str(src), "--keep-loaded")  # the raw commands below read the tape in d0
    assert result.exit_code == 0, result.output
    return src


def pytp_subprocess(*args: str, fsize_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    """pytp as its own process (the environment is the test's clean one)."""

    def limit() -> None:
        if fsize_limit is not None:
            # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG,
            # the way a full disk fails one with ENOSPC.
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))

    return subprocess.run(
        [sys.executable, "-m", "pytp.cli.main", *args],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
        check=False,
    )


def config_with_catalog(site: Path, url: str) -> Path:
    data = json.loads(site.read_text())
    data["catalog"] = {"url": url}
    site.write_text(json.dumps(data))
    return site


# ---------------------------------------------------------------- bad input


def test_a_bad_regex_is_a_usage_error(site: Path, tmp_path: Path) -> None:
    backed_up(site, tmp_path)
    assert_error(run(site, "search", "--regex", "["), exitcodes.EXIT_USAGE, "'[' is not a valid regular expression")
    result = run(site, "restore", str(tmp_path / "out"), "--regex", "--match", "(unclosed")
    assert_error(result, exitcodes.EXIT_USAGE, "'(unclosed' is not a valid regular expression")


def test_a_pattern_that_is_not_utf8_finds_its_file(site: Path, tmp_path: Path) -> None:
    src = tmp_path / "latin1"
    src.mkdir()
    with open(os.fsencode(src) + b"/caf\xe9.txt", "wb") as f:
        f.write(b"x\n")
    assert run(site, "backup", str(src)).exit_code == 0
    result = run(site, "search", os.fsdecode(b"caf\xe9"), "--format", "json")  # what the shell passes
    assert result.exit_code == 0, result.output
    assert [row["path"] for row in json.loads(result.stdout)] == [f"{src}/caf\\xe9.txt"]


def test_a_restore_target_below_a_regular_file(site: Path, tmp_path: Path) -> None:
    backed_up(site, tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    result = run(site, "restore", str(blocker / "out"), "--match", "f1.txt")
    # a target that cannot be a directory is a bad argument (as a target that is a file), not a refusal
    assert_error(result, exitcodes.EXIT_USAGE, "Cannot create the restore target", str(blocker))


@pytest.mark.parametrize("command", [("search", "f1"), ("ls-catalog", "/"), ("restore", "OUT", "--match", "f1")])
def test_an_as_of_that_is_neither_a_job_nor_a_date_is_a_usage_error(site: Path, tmp_path: Path, command) -> None:  # type: ignore[no-untyped-def]
    backed_up(site, tmp_path)
    args = [str(tmp_path / "out") if arg == "OUT" else arg for arg in command]
    assert_error(run(site, *args, "--as-of", "banana"), exitcodes.EXIT_USAGE, "neither a job id nor a date")


def test_raw_restore_below_a_regular_file_and_the_traceback_only_under_debug(site: Path, tmp_path: Path) -> None:
    backed_up(site, tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    assert run(site, "rewind", "-d", "d0").exit_code == 0
    assert run(site, "ff", "1", "-d", "d0").exit_code == 0
    args = ("restore", str(blocker / "out"), "-d", "d0")
    expected = "Error: Cannot create the restore target"
    assert_error(run(site, *args), exitcodes.EXIT_USAGE, expected[7:], str(blocker))
    with_flag = CliRunner().invoke(cli, ["--debug", "--config", str(site), *args])
    for debug in (with_flag, run(site, *args, env={"PYTP_DEBUG": "1"})):
        assert debug.exit_code == exitcodes.EXIT_USAGE
        assert "Traceback (most recent call last)" in debug.stderr
        assert debug.stderr.rstrip().splitlines()[-1].startswith(expected)


def test_an_unexpected_error_exits_3_never_1(site: Path) -> None:
    # A virtual library whose state file lost its keys: nothing maps this
    # failure, so it is what a bug looks like to the user.
    library = site.parent / "lib" / "library.json"
    library.write_text(json.dumps({"name": "lib"}))
    result = run(site, "list")
    assert_error(result, exitcodes.EXIT_ERROR)
    assert "--debug" in result.stderr  # says how to see more
    debug = CliRunner().invoke(cli, ["--debug", "--config", str(site), "list"])
    assert debug.exit_code == exitcodes.EXIT_ERROR and "Traceback (most recent call last)" in debug.stderr


# ---------------------------------------------------------------- the catalog


def test_an_uncreatable_catalog_directory(site: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config_with_catalog(site, f"sqlite:///{blocker / 'pytp' / 'catalog.db'}")
    assert_error(run(site, "jobs"), exitcodes.EXIT_CATALOG, "Cannot create the folder of the catalog", str(blocker))


def test_a_catalog_file_that_cannot_be_created(site: Path) -> None:
    # /proc takes no new files, not even from root (for whom permission bits do not count)
    config_with_catalog(site, "sqlite:////proc/pytp-catalog.db")
    assert_error(run(site, "jobs"), exitcodes.EXIT_CATALOG, "Cannot open the catalog /proc/pytp-catalog.db")


def test_a_zero_byte_catalog_file_is_an_error_not_a_new_catalog(site: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    config_with_catalog(site, f"sqlite:///{empty}")
    for args in (["jobs"], ["db", "upgrade"], ["db", "current"]):
        assert_error(run(site, *args), exitcodes.EXIT_CATALOG, f"The catalog file {empty} is empty (0 bytes)")
    assert empty.stat().st_size == 0  # left as found, for the administrator to look at


def test_a_new_catalog_appears_whole_and_db_current_creates_nothing(site: Path, tmp_path: Path) -> None:
    path = tmp_path / "new" / "catalog.db"
    config_with_catalog(site, f"sqlite:///{path}")
    assert run(site, "db", "current").exit_code == 0
    assert not path.exists()  # a zero-byte file here would read as damage next time
    assert run(site, "jobs").exit_code == 0
    assert not [p.name for p in path.parent.iterdir() if ".new" in p.name]  # no temporary file left


def corrupt_table(db: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with garbage, as a bad sector would."""
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    connection.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)


def test_corrupt_catalog_pages(site: Path, tmp_path: Path, sqlite_url: str) -> None:
    backed_up(site, tmp_path)
    corrupt_table(Path(sqlite_url.removeprefix("sqlite:///")), "entry")
    assert_error(run(site, "search", "f1.txt"), exitcodes.EXIT_CATALOG, "is damaged", "pytp catalog rebuild")


def test_a_file_that_is_not_a_database(site: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(8192))
    config_with_catalog(site, f"sqlite:///{garbage}")
    assert_error(run(site, "tapes"), exitcodes.EXIT_CATALOG, "is damaged (file is not a database)")


def newer_catalog(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_from_the_future'")


def test_a_catalog_from_a_newer_pytp_is_not_sent_to_db_upgrade(site: Path, sqlite_url: str) -> None:
    newer_catalog(sqlite_url)
    for args in (["jobs"], ["db", "upgrade"]):
        result = run(site, *args)
        assert_error(result, exitcodes.EXIT_CATALOG, "9999_from_the_future", "newer than this pytp knows")
        assert "do not run `pytp db upgrade`" in result.stderr
    current = run(site, "db", "current")
    assert current.exit_code == 0 and "newer than this pytp" in current.stdout


def test_an_unreachable_postgresql_server_names_the_url_without_its_password(site: Path) -> None:
    config_with_catalog(site, "postgresql+psycopg://pytp:s3cret@127.0.0.1:1/catalog")
    for args in (["jobs"], ["db", "upgrade"], ["db", "current"]):
        result = run(site, *args)
        assert_error(
            result, exitcodes.EXIT_CATALOG, "Cannot reach the catalog postgresql+psycopg://pytp:***@127.0.0.1:1/catalog"
        )
        assert "s3cret" not in result.output


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("UPDATE entry SET \"offset\" = -1024 WHERE path_text LIKE '%/f2.txt'", "f2.txt (offset -1024 is negative)"),
        (
            'UPDATE entry SET "offset" = (SELECT "offset" FROM entry WHERE path_text LIKE \'%/f1.txt\') '
            "WHERE path_text LIKE '%/f2.txt'",
            "f2.txt (offset",
        ),
    ],
    ids=["negative", "duplicate"],
)
def test_catalog_rows_with_impossible_offsets_are_refused_by_name(
    site: Path, tmp_path: Path, sqlite_url: str, sql: str, fragment: str
) -> None:
    backed_up(site, tmp_path)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as connection:
        connection.execute(sql)
    connection.close()
    for args in (["restore", str(tmp_path / "out"), "--match", "/d/"], ["verify"]):
        assert_error(run(site, *args), exitcodes.EXIT_CATALOG, "are inconsistent", fragment)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.txt"))


# ---------------------------------------------------------------- disk full


def many_roots(tmp_path: Path, roots: int, files: int) -> list[str]:
    paths = []
    for r in range(roots):
        root = tmp_path / "many" / f"r{r}"
        root.mkdir(parents=True)
        for i in range(files):
            (root / f"f{i}").write_text(f"{r} {i}\n")
        paths.append(str(root))
    return paths


@pytest.mark.parametrize(
    ("roots", "files", "limit"),
    [
        # one big tape file at the default 512 KiB blocks: the tape write fails first
        (1, 2000, 1_000_000),
        # many small tape files, many catalog rows: the catalog write fails first
        (20, 200, 600_000),
    ],
    ids=["tape-file-write", "catalog-write"],
)
def test_disk_full_during_a_backup(tmp_path: Path, roots: int, files: int, limit: int) -> None:
    # The embedded default (512 KiB blocks, the default virtual library) under
    # a file size limit: whichever write passes it fails as on a full disk.
    assert pytp_subprocess("tapes").returncode == 0  # creates the default before the limit applies
    proc = pytp_subprocess("backup", *many_roots(tmp_path, roots, files), fsize_limit=limit)
    message = assert_subprocess_error(proc, (exitcodes.EXIT_ERROR, exitcodes.EXIT_CATALOG))
    assert "File too large" in message or "could not be written" in message, message
    jobs = pytp_subprocess("jobs", "--format", "json")
    assert jobs.returncode == 0, jobs.stderr
    assert [job["status"] for job in json.loads(jobs.stdout)] == ["failed"]


# ---------------------------------------------------------------- schema changes at once


def _older_catalog(url: str) -> str:
    """A catalog at the oldest migration, for `db upgrade` to bring to the head."""
    oldest = ScriptDirectory.from_config(alembic_config()).get_base()
    upgrade(make_engine(url), oldest)
    return oldest


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_db_upgrades_at_once(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    if _older_catalog(url) == head_revision():
        pytest.skip("one migration only")
    config = write_library_config(tmp_path / "site", url)
    args = [sys.executable, "-m", "pytp.cli.main", "--config", str(config), "db", "upgrade"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert sum("upgraded from" in out for out, _ in outputs) == 1, outputs
    assert run(config, "db", "current").stdout.startswith(f"catalog: {head_revision()}")


def test_concurrent_first_use_of_a_new_catalog(tmp_path: Path, catalog_url: str) -> None:
    # Creation is one transaction under the schema lock (PostgreSQL) or one
    # rename into place (SQLite): nobody sees half a catalog, nobody fails.
    config = write_library_config(tmp_path / "site", catalog_url)
    args = [sys.executable, "-m", "pytp.cli.main", "--config", str(config), "jobs"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs


# ---------------------------------------------------------------- the table


def test_the_exit_code_table_says_1_only_means_a_partial_job() -> None:
    result = CliRunner().invoke(cli, ["exit-codes"])
    assert result.exit_code == 0
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("1 "))
    assert "only" in line and "partial" in line, line
    assert "3" in result.stdout and "unexpected" in result.stdout


def test_exit_code_table_is_documented() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for code, name, _ in exitcodes.TABLE:
        assert f"| {code} | {name} |" in readme, f"exit code {code} ({name}) missing from README"


def test_a_new_catalog_on_a_nearly_full_disk_is_not_left_damaged(tmp_path: Path) -> None:
    """The schema went into the WAL; the checkpoint at close failed silently on the full
    disk, the half-written file was linked into place and the WAL deleted: 'damaged' for good."""
    from tests.conftest import small_filesystem, write_library_config

    with small_filesystem(tmp_path / "small", "2m") as small:
        with open(small / "filler", "wb", buffering=0) as filler:
            filler.write(b"\0" * (1500 << 10))  # leaves ~0.5 MiB: the WAL fits, the file then does not
        catalog = small / "catalog.db"
        site = write_library_config(tmp_path / "site", f"sqlite:///{catalog}")
        failed = run(site, "jobs")
        assert failed.exit_code == exitcodes.EXIT_CATALOG, failed.output
        assert "damaged" not in failed.stderr and "full" in failed.stderr, failed.stderr
        assert not catalog.exists() and [p.name for p in small.iterdir()] == ["filler"]
        (small / "filler").unlink()
        assert run(site, "jobs").exit_code == 0  # room again: the catalog is made whole


def test_nothing_found_in_a_job_says_when_the_job_is_why(site: Path, tmp_path: Path, sqlite_url: str) -> None:
    """`search --job 999` and a restore of a failed job said only 'No backed-up file matches'."""
    import sqlite3

    backed_up(site, tmp_path)
    for args in (("search", "f1", "--job", "999"), ("restore", str(tmp_path / "out"), "--job", "999")):
        assert_error(run(site, *args), exitcodes.EXIT_NOT_FOUND, "No job 999 in the catalog")
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE job SET status = 'failed' WHERE id = 1")
    for args in (("search", "f1", "--job", "1"), ("restore", str(tmp_path / "out"), "--job", "1")):
        assert_error(run(site, *args), exitcodes.EXIT_NOT_FOUND, "Job 1 is failed", "`pytp jobs 1`")
