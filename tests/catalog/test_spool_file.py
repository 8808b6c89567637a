"""A full temporary directory under pytp's spools (catalog/spool_file.py).

Backup, restore and rebuild spool to anonymous files in ``$TMPDIR`` (issue 9:
bounded memory); a full disk there used to surface as "No space left on
device" naming no file, and a rebuild reported it as a problem of the tape it
was reading (exit 10, "check those tapes").  Now the error names the
directory and what was spooled, a rebuild stops at once (every later tape
would fail alike), and running the command again once there is room does
the whole job.

The disk is made full for real: writes to ``/dev/full`` get ENOSPC from the
kernel, a private SQLite database gets SQLITE_FULL at its ``max_page_count``,
and a process under ``RLIMIT_FSIZE`` gets EFBIG (``ulimit -f``), which is how
the commands are run here end to end on the embedded default site.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pytp.catalog import spool_file
from pytp.catalog.key_set import KeySet
from pytp.catalog.manifest_writer import Spool
from pytp.catalog.record_spool import RecordSpool
from pytp.catalog.spool_file import SpoolFile, TempSpaceFull
from pytp.tapeio.exitcodes import EXIT_ERROR


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every spool opened from now on writes to /dev/full."""
    monkeypatch.setattr(spool_file, "open_temporary", lambda prefix: open("/dev/full", "w+b"))  # noqa: SIM115


def test_a_spool_on_a_full_disk_names_the_directory_and_what_it_held(full_disk: None) -> None:
    spool = SpoolFile("the restore's selection")
    spool.write(b"x" * 100)  # buffered: the disk is asked at the flush
    with pytest.raises(TempSpaceFull) as caught:
        spool.flush()
    message = str(caught.value)
    assert f"temporary directory {tempfile.gettempdir()} for the restore's selection" in message
    assert "No space left on device" in message and "TMPDIR" in message
    assert caught.value.exit_code == EXIT_ERROR
    with pytest.raises(TempSpaceFull):
        spool.write(b"y" * (1 << 20))  # larger than the buffer: written at once
    with pytest.raises(TempSpaceFull):
        spool.close()


def test_errors_that_name_a_file_or_are_not_about_room_pass_unchanged() -> None:
    with pytest.raises(FileNotFoundError):
        with spool_file.room_for("x"):
            open("/nonexistent/spool", "rb")  # noqa: SIM115
    with pytest.raises(OSError) as caught:
        with spool_file.room_for("x"):
            raise OSError(errno.ENOSPC, "No space left on device", "/var/lib/pytp/catalog.db")
    assert not isinstance(caught.value, TempSpaceFull)  # a named file: its own message says where
    with pytest.raises(OSError) as caught:
        with spool_file.room_for("x"):
            raise OSError(errno.EIO, "Input/output error")
    assert not isinstance(caught.value, TempSpaceFull)


def test_a_file_size_limit_is_told_apart_from_a_full_disk() -> None:
    err = TempSpaceFull("the job's manifest", OSError(errno.EFBIG, "File too large"))
    assert str(err).startswith("The job's manifest outgrew this process's file size limit (`ulimit -f`)")


def test_each_spool_says_what_it_held(full_disk: None) -> None:
    with pytest.raises(TempSpaceFull, match="for the job's manifest"):
        Spool(iter([b"line\n"] * 200_000))  # a backup's manifest
    records = RecordSpool()
    with pytest.raises(TempSpaceFull, match="for what a catalog rebuild read of a tape"):
        for i in range(100_000):
            records.append({"path": f"/srv/file-{i:06d}", "size": i})


def test_the_rebuilds_key_set_on_a_full_disk() -> None:
    keys = KeySet()
    keys._db.execute("PRAGMA max_page_count = 8")  # SQLite's own "database or disk is full"
    with pytest.raises(TempSpaceFull, match="for the keys a catalog rebuild has seen"):
        keys.update((1, offset, b"/srv/a-long-enough-name-%d" % offset) for offset in range(100_000))
    keys.close()


# --- end to end, on the embedded default site ----------------------------------------------------

#: a limit on any file the command writes: the spools pass it, the catalog and the tapes do not grow
LIMIT = 512 << 10
FILES = 4000


def _pytp(env: dict[str, str], *args: str, limit: int | None = None) -> subprocess.CompletedProcess[str]:
    def limited() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "pytp.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited,  # noqa: PLW1509 - only setrlimit, before exec
    )


def _locations(env: dict[str, str]) -> dict[str, str]:
    tapes = json.loads(_pytp(env, "tapes", "--format", "json").stdout)
    return {row["label"]: row["location"] for row in tapes if row["label"]}


def test_restore_and_rebuild_stop_with_the_reason_and_succeed_once_there_is_room(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTP_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"), HOME=str(tmp_path))
    src = tmp_path / "src"
    for d in range(4):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(FILES // 4):
            (src / f"d{d}" / f"a-file-with-a-longer-name-{i:05d}.txt").write_text(f"{d}/{i}\n")
    backup = _pytp(env, "backup", str(src), "-q")
    assert backup.returncode == 0, backup.stderr
    before = _locations(env)

    out = tmp_path / "out"
    out.mkdir()
    refused = _pytp(env, "restore", str(out), "--job", "1", "-q", limit=LIMIT)
    assert refused.returncode == EXIT_ERROR, refused.stderr
    assert "Error: The restore's selection outgrew this process's file size limit (`ulimit -f`)" in refused.stderr
    assert list(out.iterdir()) == []  # nothing half restored
    assert _locations(env) == before  # the tape is where it was
    restored = _pytp(env, "restore", str(out), "--job", "1", "-q")
    assert restored.returncode == 0, restored.stderr
    assert sum(1 for p in out.rglob("*.txt")) == FILES

    catalog = tmp_path / "data" / "pytp" / "catalog.db"
    for path in catalog.parent.glob("catalog.db*"):
        path.unlink()
    assert _pytp(env, "tapes").returncode == 0  # a new, empty catalog, created without a limit
    stopped = _pytp(env, "catalog", "rebuild", "--all", "-q", limit=LIMIT)
    assert stopped.returncode == EXIT_ERROR, stopped.stderr
    assert "What a catalog rebuild read of a tape outgrew this process's file size limit" in stopped.stderr
    assert "problem" not in stopped.stderr  # not blamed on the tape
    assert json.loads(_pytp(env, "jobs", "--format", "json", "--host", "all").stdout) == []
    rebuilt = _pytp(env, "catalog", "rebuild", "--all", "-q")
    assert rebuilt.returncode == 0, rebuilt.stderr
    (job,) = json.loads(_pytp(env, "jobs", "--format", "json", "--host", "all").stdout)
    assert job["status"] == "ok" and job["files"] >= FILES


_SPILLING_QUERY = """
import sys
from sqlalchemy import text
from pytp.catalog.database import catalog_error, make_engine

engine = make_engine(sys.argv[1])
with engine.connect() as connection:
    connection.exec_driver_sql("PRAGMA cache_size = -64")  # 64 KiB: the sort spills to a temporary file
    try:
        connection.execute(text("SELECT x FROM t ORDER BY x")).fetchall()
    except Exception as err:
        mapped = catalog_error(err)
        print(mapped)
        sys.exit(mapped.exit_code)
"""


def test_a_catalog_query_whose_sort_fills_the_temporary_directory_names_it_not_the_catalog(tmp_path: Path) -> None:
    """A read fills no catalog disk: SQLite's sort spilled into a small $TMPDIR, and pytp said
    "The catalog could not be written … its disk is full" (exit 5), naming /tmp besides."""
    import sqlite3

    from tests.conftest import small_filesystem

    catalog = tmp_path / "catalog.db"
    with sqlite3.connect(catalog) as db:
        db.execute("CREATE TABLE t (x TEXT)")
        db.executemany("INSERT INTO t VALUES (?)", ((f"{i:09d}" + "x" * 200,) for i in range(50_000, 0, -1)))
    with small_filesystem(tmp_path / "tiny", "64k") as tiny:
        env = {**os.environ, "TMPDIR": str(tiny)}
        env.pop("SQLITE_TMPDIR", None)
        done = subprocess.run(
            [sys.executable, "-c", _SPILLING_QUERY, f"sqlite:///{catalog}"], env=env, capture_output=True, text=True
        )
    assert done.returncode == EXIT_ERROR, done.stdout + done.stderr
    assert f"No room in the temporary directory {tiny} for a sort or temporary result of a catalog query" in done.stdout


_FILLED_STATE = """
import sys
from pytp.catalog.chain_state import ChainState
from pytp.catalog.spool_file import TempSpaceFull

try:
    with ChainState(b"/s") as state:
        state.load((b"/s/f%07d" % i, "file", 1, 2, 3, 4, 5, 6, 7, None, "ab" * 16, None) for i in range(100_000))
except TempSpaceFull as err:
    print(err)
    sys.exit(err.exit_code)
"""


def test_a_full_temporary_directory_is_named_even_when_python_would_fall_back_to_another(tmp_path: Path) -> None:
    """Python's gettempdir(), first asked once $TMPDIR was full, tried a file there, found
    no room and answered /tmp, which had plenty: the message sent the administrator there."""
    from tests.conftest import small_filesystem

    with small_filesystem(tmp_path / "tiny", "256k") as tiny:
        with open(tiny / "filler", "wb", buffering=0) as filler:  # the directory is full before pytp starts
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError:
                pass
        env = {**os.environ, "TMPDIR": str(tiny)}
        env.pop("SQLITE_TMPDIR", None)
        done = subprocess.run([sys.executable, "-c", _FILLED_STATE], env=env, capture_output=True, text=True)
    assert done.returncode == EXIT_ERROR, done.stdout + done.stderr
    assert f"temporary directory {tiny} " in done.stdout, done.stdout
