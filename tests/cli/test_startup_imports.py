"""Fast start-up (issue 9): what each command imports, in a process of its own.

Drive and changer commands must never import the catalog stack (sqlmodel,
sqlalchemy, alembic, pydantic): importing it costs several times the command
itself.  Neither do the listings (``tapes``, ``jobs``, ``pools``, ``search``, ``versions``, ``ls-catalog``) of a SQLite
catalog at the head: they read it with stdlib sqlite3 (``light_sql``), and
take the full open only to create the catalog, refuse a stale one or close a
job whose process is gone.  Nor do ``search``, ``versions`` and ``ls-catalog``
(but with ``--as-of``).  Other catalog commands open a catalog that is
already at the head without alembic: the schema version is read with one
plain query and compared with the head read from the migration files, which
must agree with alembic's own.

Every command imports only the module that defines it (``cli/main.py``'s
table of commands), so a drive command never pays for the catalog commands'
modules, nor they for each other's.

Each command runs in a fresh interpreter (``sys.modules`` of this test process
has everything loaded), on the embedded default virtual library that a new
user gets, through the real ``pytp`` group.  No timing is asserted here: the
figures are ``python -m bench --only startup``'s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytp.catalog.database import alembic_config, head_revision
from pytp.catalog.schema_head import revisions
from pytp.tapeio.exitcodes import EXIT_NOT_FOUND
from pytp.tapeio.procinfo import host_name, process_identity

#: the catalog stack: none of it may be imported by a drive or changer command
CATALOG_STACK = ("sqlmodel", "sqlalchemy", "alembic", "pydantic")

#: runs one command like the ``pytp`` script does, then names the stack modules it imported
PROBE = """
import json, sys
from pytp.cli.main import cli
try:
    cli.main(sys.argv[1:], prog_name="pytp")
except SystemExit as exit:
    code = exit.code
stack = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(%r)))
commands = sorted(m for m in sys.modules if m.startswith("pytp.cli.") and m.endswith("_cmd"))
print("LOADED " + json.dumps({"stack": stack, "command_modules": commands}))
sys.exit(code or 0)
"""


def _site_env(home: Path) -> dict[str, str]:
    """A new user's environment: no $PYTP_*, XDG folders in ``home`` (the default config lands there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTP_")}
    env.update(XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"), HOME=str(home))
    return env


def probe(env: dict[str, str], *args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, list[str]]]:
    """Run ``pytp ARGS`` in a new interpreter; its result and what it imported (PROBE's report)."""
    script = PROBE % json.dumps(CATALOG_STACK)
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )
    output, marker, loaded = proc.stdout.rpartition("LOADED ")
    assert marker, (args, proc.stdout, proc.stderr)
    proc.stdout = output  # the command's own output
    return proc, json.loads(loaded)


def pytp(env: dict[str, str], *args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``pytp ARGS`` in a new interpreter; its result and the catalog-stack packages it imported."""
    proc, loaded = probe(env, *args, cwd=cwd)
    return proc, set(loaded["stack"])


@pytest.fixture
def default_site(tmp_path: Path) -> dict[str, str]:
    """The embedded default library with one backup on its first tape, which stays in drive 0 (--keep-loaded)."""
    env = _site_env(tmp_path / "home")
    src = tmp_path / "src"
    src.mkdir()
    (src / "note.txt").write_text("hello\n")
    proc, _ = pytp(env, "backup", str(src), "--keep-loaded", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return env


# the order matters: each command leaves the drive where the next one expects it
DRIVE_AND_CHANGER_COMMANDS = [
    ["--help"],
    ["exit-codes"],
    ["status"],
    ["status", "--format", "json"],
    ["rewind"],
    ["ff", "1"],
    ["ls"],
    ["bb", "1"],
    ["position"],
    ["goto", "0"],
    ["retension"],
    ["init"],
    ["list"],
    ["drives"],
    ["unload"],
    ["move", "2", "9"],
    ["load", "3"],
    ["load", "1"],  # returns slot 3's cartridge home first
]


def test_drive_and_changer_commands_never_import_the_catalog_stack(
    default_site: dict[str, str], tmp_path: Path
) -> None:
    imported = {}
    for args in DRIVE_AND_CHANGER_COMMANDS:
        proc, stack = pytp(default_site, *args, cwd=tmp_path)
        assert proc.returncode == 0, (args, proc.stderr)
        if stack:
            imported[" ".join(args)] = sorted(stack)
    assert imported == {}
    # the commands really worked on the library: slot 2's cartridge moved to the i/e slot, slot 1's is loaded
    proc, _ = pytp(default_site, "list", "--format", "json", cwd=tmp_path)
    elements = {row["element"]: row for row in json.loads(proc.stdout)}
    assert not elements["slot 2"]["full"] and elements["i/e slot 9"]["full"]
    assert elements["drive 0"]["source_slot"] == 1 and elements["slot 3"]["full"]


#: commands (an alias, help and a mistyped name too) and the only command modules they may import
OWN_MODULE = [
    (["status"], ["pytp.cli.tape_cmd"]),
    (["stat", "--format", "json"], ["pytp.cli.tape_cmd"]),  # the original pytp's alias
    (["tapes"], ["pytp.cli.catalog_cmd"]),
    (["inventory", "--format", "csv"], ["pytp.cli.catalog_cmd"]),
    (["list"], ["pytp.cli.library_cmd"]),
    (["drives"], ["pytp.cli.drives_cmd"]),
    (["pools"], ["pytp.cli.pools_cmd"]),
    (["--help"], []),
    (["catalog", "--help"], ["pytp.cli.catalog_admin_cmd"]),
]


def test_a_command_imports_its_own_module_alone(default_site: dict[str, str], tmp_path: Path) -> None:
    """The command modules are imported on demand (``cli/lazy_commands.py``), not all before any command runs."""
    imported = {}
    for command, modules in OWN_MODULE:
        proc, loaded = probe(default_site, *command, cwd=tmp_path)
        assert proc.returncode == 0, (command, proc.stderr)
        imported[" ".join(command)] = loaded["command_modules"]
    assert imported == {" ".join(command): modules for command, modules in OWN_MODULE}


def test_a_mistyped_command_imports_no_command_module(tmp_path: Path) -> None:
    env = _site_env(tmp_path / "home")
    proc, loaded = probe(env, "statu", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Error: No such command 'statu'. Did you mean 'status'?" in proc.stderr
    assert loaded == {"stack": [], "command_modules": []}


def test_raw_ls_lists_what_the_backup_wrote_without_the_catalog(default_site: dict[str, str], tmp_path: Path) -> None:
    pytp(default_site, "rewind", cwd=tmp_path)
    pytp(default_site, "ff", "1", cwd=tmp_path)
    proc, stack = pytp(default_site, "ls", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "note.txt" in proc.stdout
    assert stack == set()


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["search", "note.txt", "--as-of", "1"], "note.txt"),
        (["ls-catalog", "src", "--as-of", "1"], "note.txt"),
        (["jobs", "1"], "status:     ok"),
    ],
)
def test_catalog_commands_check_the_schema_without_alembic(
    default_site: dict[str, str], tmp_path: Path, command: list[str], shown: str
) -> None:
    proc, stack = pytp(default_site, *command, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "alembic" not in stack
    assert "sqlalchemy" in stack  # it did open the catalog
    assert shown in proc.stdout


def _catalog(env: dict[str, str]) -> Path:
    return Path(env["XDG_DATA_HOME"]) / "pytp" / "catalog.db"


#: the listings, each with what its output must hold after the default site's one backup
LISTINGS = [
    (["tapes"], "appendable"),
    (["tapes", "--format", "json"], '"status": "appendable"'),
    (["tapes", "--format", "csv"], ",appendable,"),
    (["jobs"], " ok "),
    (["jobs", "--format", "json"], '"status": "ok"'),
    (["jobs", "--limit", "1", "--host", "all", "--format", "csv"], ",ok,"),
    (["pools"], "default"),
    (["pools", "--format", "json"], '"appendable": 1'),
    (["search", "note.txt"], "note.txt"),
    (["search", "/*/note.*", "--format", "json"], 'note.txt",'),
    (["search", r"note\.txt$", "--regex", "--format", "csv"], "note.txt,"),
    (["search", "note", "--all-versions", "--job", "1", "--host", "all"], "note.txt"),
    (["versions", "src/note.txt", "--format", "json"], 'note.txt",'),
    (["ls-catalog", "src"], "note.txt"),
    (["ls-catalog", "src", "--include-deleted", "--format", "csv"], "note.txt,"),
]


@pytest.mark.parametrize(("command", "shown"), LISTINGS)
def test_listings_of_a_sqlite_catalog_at_the_head_import_no_catalog_stack(
    default_site: dict[str, str], tmp_path: Path, command: list[str], shown: str
) -> None:
    """``tapes``, ``jobs`` and ``pools`` read SQLite with stdlib sqlite3 (``light_sql``)."""
    proc, stack = pytp(default_site, *command, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert stack == set()
    assert shown in proc.stdout


def test_a_search_that_finds_nothing_says_so_without_the_catalog_stack(
    default_site: dict[str, str], tmp_path: Path
) -> None:
    for pattern, regex in (("no-such-name", []), ("zzz[0-9]+", ["--regex"])):
        proc, stack = pytp(default_site, "search", pattern, *regex, cwd=tmp_path)
        assert proc.returncode == EXIT_NOT_FOUND and f"Error: No backed-up file matches '{pattern}'." in proc.stderr
        assert stack == set()
    proc, stack = pytp(default_site, "search", "x(", "--regex", cwd=tmp_path)
    assert proc.returncode != 0 and "is not a valid regular expression" in proc.stderr
    assert stack == set()


def test_one_tape_in_detail_imports_no_catalog_stack(default_site: dict[str, str], tmp_path: Path) -> None:
    proc, _ = pytp(default_site, "tapes", "--format", "json", cwd=tmp_path)
    label = next(row["label"] for row in json.loads(proc.stdout) if row["label"])
    for fmt in ("table", "json", "csv"):
        proc, stack = pytp(default_site, "tapes", label, "--format", fmt, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert stack == set()
        assert label in proc.stdout and "manifest" in proc.stdout
    proc, stack = pytp(default_site, "tapes", "NOSUCH", cwd=tmp_path)
    assert proc.returncode != 0 and "No tape labelled 'NOSUCH'" in proc.stderr
    assert stack == set()


def test_the_first_listing_creates_the_catalog_the_full_way(tmp_path: Path) -> None:
    """No catalog yet: the listing takes the full open, which creates it; the next one needs none of the stack."""
    env = _site_env(tmp_path / "home")
    proc, stack = pytp(env, "tapes", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "blank" in proc.stdout
    assert "sqlalchemy" in stack and _catalog(env).stat().st_size > 0
    proc, stack = pytp(env, "jobs", cwd=tmp_path)
    assert proc.returncode == 0 and "No jobs yet." in proc.stdout
    assert stack == set()


def _mark_running(catalog: Path, pid: int, process_start: str | None) -> None:
    """Job 1 as if its process, ``pid`` of this host started at ``process_start``, were still writing it."""
    import sqlite3

    with sqlite3.connect(catalog) as db:
        db.execute(
            "UPDATE job SET status = 'running', ended_at = NULL, host = ?, pid = ?, process_start = ? WHERE id = 1",
            (host_name(), pid, process_start),
        )
    db.close()


def test_a_listing_closes_a_job_whose_process_is_gone_the_full_way(
    default_site: dict[str, str], tmp_path: Path
) -> None:
    gone = subprocess.Popen(["true"])  # a pid of this host whose process has ended
    gone.wait()
    _mark_running(_catalog(default_site), gone.pid, f"{process_identity(os.getpid())}-not-this-one")
    proc, stack = pytp(default_site, "jobs", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "job 1 was left running" in proc.stderr
    assert "sqlmodel" in stack  # reconcile closed it, as every catalog command does
    job = json.loads(proc.stdout)[0]
    assert job["status"] == "failed" and job["message"].startswith("interrupted")
    # closed for good: the next listing has nothing to reconcile
    proc, stack = pytp(default_site, "jobs", cwd=tmp_path)
    assert "left running" not in proc.stderr and stack == set()


def test_a_listing_leaves_a_job_whose_process_lives_running(default_site: dict[str, str], tmp_path: Path) -> None:
    _mark_running(_catalog(default_site), os.getpid(), process_identity(os.getpid()))
    proc, stack = pytp(default_site, "jobs", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["status"] == "running" and "left running" not in proc.stderr
    assert stack == set()


def test_a_stale_catalog_is_still_refused_without_alembic(default_site: dict[str, str], tmp_path: Path) -> None:
    """The cheap check still tells an old catalog from a current one."""
    import sqlite3

    catalog = _catalog(default_site)
    older = sorted(revisions())[0] if len(revisions()) > 1 else None
    if older is None:
        pytest.skip("only one migration: no older schema to stamp")
    with sqlite3.connect(catalog) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (older,))
    proc, stack = pytp(default_site, "tapes", cwd=tmp_path)
    assert proc.returncode == 5, proc.stderr
    assert f"at schema {older}, this pytp needs {head_revision()}" in proc.stderr
    assert "pytp db upgrade" in proc.stderr


def test_the_head_read_from_the_migration_files_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    assert head_revision() == script.get_current_head()
    assert set(revisions()) == {rev.revision for rev in script.walk_revisions()}
    for rev in script.walk_revisions():
        assert set(revisions()[rev.revision]) == set(rev._all_down_revisions)


@pytest.mark.postgres
def test_a_postgresql_listing_needs_sqlalchemy_core_alone(tmp_path: Path, postgres_server) -> None:  # type: ignore[no-untyped-def]
    """A server catalog is read with the same SQL through SQLAlchemy Core: no ORM, no pydantic, no alembic."""
    from tests.conftest import write_library_config

    env = _site_env(tmp_path / "home")
    config = write_library_config(tmp_path / "site", postgres_server.new_database())
    proc, _ = pytp(env, "--config", str(config), "tapes", cwd=tmp_path)  # creates the schema
    assert proc.returncode == 0, proc.stderr
    for command in (["tapes"], ["jobs"], ["pools"]):
        proc, stack = pytp(env, "--config", str(config), *command, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert stack == {"sqlalchemy"}, command
