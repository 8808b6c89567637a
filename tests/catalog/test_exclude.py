"""``--exclude``, ``--exclude-from``, ``--one-file-system`` and skipped sockets (issue 11, part 4).

Real backups on the virtual library at 512 KiB blocks; what went to tape is
listed with GNU tar.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, col, select

from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.config import read_config
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select as select_drive
from pytp.catalog.levels import DELETED
from pytp.catalog.models import Entry, JobProblem
from pytp.cli.main import cli
from pytp.tapeio.exclude import Exclusions, read_patterns
from pytp.tapeio.virtual_drive import loaded_tape
from tests.conftest import small_filesystem, write_library_config

BLOCK = 512 << 10


@pytest.fixture
def config(tmp_path: Path, catalog_url: str):  # type: ignore[no-untyped-def]
    return read_config(write_library_config(tmp_path / "site", catalog_url, block_size=BLOCK), "--config")


def _tree(root: Path) -> Path:
    (root / "keep" / "cache").mkdir(parents=True)
    (root / "keep" / "a.txt").write_text("a\n")
    (root / "keep" / "b.tmp").write_text("temporary\n")
    (root / "keep" / "cache" / "blob").write_bytes(b"x" * 1000)
    (root / "cache").mkdir()
    (root / "cache" / "top").write_text("cached\n")
    (root / "logs").mkdir()
    (root / "logs" / "app.log").write_text("log\n")
    return root


def _backup(config, sources, **kw):  # type: ignore[no-untyped-def]
    engine = open_catalog(config.catalog_url)
    return engine, run_backup(
        engine, config, select_drive(config), BackupOptions(sources=[str(s) for s in sources], **kw)
    )


def _tar_names(config, file_number: int) -> set[str]:  # type: ignore[no-untyped-def]
    tape = loaded_tape(config.drive("d0").device_path)
    assert tape is not None
    out = subprocess.run(
        ["tar", "-b", str(BLOCK // 512), "-tf", str(tape / f"file-{file_number:05d}")],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return {line.rstrip("/") for line in out.splitlines()}


def test_patterns_match_relative_path_and_base_name() -> None:
    ex = Exclusions.build(["cache", "*.tmp", "logs/*.log", "/abs/dir"])
    assert ex.excluded(b"/src/keep/cache", b"keep/cache")  # a base name, at any depth
    assert ex.excluded(b"/src/keep/b.tmp", b"keep/b.tmp")
    assert ex.excluded(b"/src/logs/app.log", b"logs/app.log")  # the path below the root
    assert not ex.excluded(b"/src/keep/logs/app.log", b"keep/logs/app.log")  # relative globs are anchored at the root
    assert ex.excluded(b"/abs/dir", b"dir") and not ex.excluded(b"/src/abs/dir", b"abs/dir")
    assert not ex.excluded(b"/src/cacheX", b"cacheX")
    assert not ex.excluded(b"/src/cache", b"")  # the source root itself is never excluded
    assert read_patterns(b"*.o\r\n\nbuild/\n") == [b"*.o", b"build/"]
    assert not Exclusions() and Exclusions(one_file_system=True)


def test_excluded_paths_are_not_on_tape_nor_in_the_catalog(config, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    engine, result = _backup(config, [src], exclude=Exclusions.build(["cache", "*.tmp"]))
    assert result.status == "ok"
    with Session(engine) as session:
        paths = {os.fsdecode(e.path) for e in session.exec(select(Entry)).all()}
    base = str(src)
    assert paths == {base, f"{base}/keep", f"{base}/keep/a.txt", f"{base}/logs", f"{base}/logs/app.log"}
    assert _tar_names(config, 1) == {p.lstrip("/") for p in paths}


def test_incremental_does_not_take_excluded_paths_for_deleted(config, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    engine, full = _backup(config, [src], job_name="n")
    assert full.status == "ok"
    # Now the cache and temporary files are excluded, and one file really is deleted.
    (src / "logs" / "app.log").unlink()
    (src / "keep" / "a.txt").write_text("changed, longer\n")
    _, incr = _backup(config, [src], job_name="n", level="incremental", exclude=Exclusions.build(["cache", "*.tmp"]))
    assert incr.status == "ok" and incr.level == "incremental"
    with Session(engine) as session:
        rows = session.exec(select(Entry).where(Entry.job_id == incr.job_id)).all()
    deleted = sorted(os.fsdecode(e.path) for e in rows if e.kind == DELETED)
    stored = sorted(os.fsdecode(e.path) for e in rows if e.kind != DELETED)
    assert deleted == [f"{src}/logs/app.log"]  # not the excluded cache/ and *.tmp paths
    assert incr.deleted == 1
    assert f"{src}/keep/a.txt" in stored
    assert not any("cache" in p or p.endswith(".tmp") for p in stored)


def test_socket_is_a_note_and_the_job_stays_ok(config, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "daemon.sock"))
    try:
        engine, result = _backup(config, [src])
    finally:
        sock.close()
    assert result.status == "ok"
    assert result.problems == []
    assert any("daemon.sock" in n and "socket" in n for n in result.notes)
    with Session(engine) as session:
        assert session.exec(select(JobProblem)).all() == []


def test_one_file_system_stores_the_mount_point_but_not_what_is_on_it(config, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    with small_filesystem(src / "keep" / "mnt") as mounted:
        (mounted / "other-fs.txt").write_text("on another file system\n")
        engine, full = _backup(config, [src], job_name="m")
        _, fs_only = _backup(config, [src], job_name="m", level="incremental", exclude=Exclusions(one_file_system=True))
    assert fs_only.status == "ok"
    assert any("keep/mnt" in n and "--one-file-system" in n for n in fs_only.notes)
    with Session(engine) as session:
        full_paths = {os.fsdecode(e.path) for e in session.exec(select(Entry).where(Entry.job_id == full.job_id))}
        rows = session.exec(select(Entry).where(Entry.job_id == fs_only.job_id, col(Entry.kind) == DELETED)).all()
    assert f"{mounted}/other-fs.txt" in full_paths  # without the option the mount is crossed
    assert rows == []  # what is on the mount was not looked at: not deleted


def test_cli_exclude_and_exclude_from(tmp_path: Path, sqlite_url: str) -> None:
    site = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    src = _tree(tmp_path / "src")
    patterns = tmp_path / "patterns"
    patterns.write_text("cache\n\nlogs\n")
    r = CliRunner().invoke(
        cli,
        ["--config", str(site), "backup", str(src), "--exclude", "*.tmp", "--exclude-from", str(patterns)],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["--config", str(site), "search", "*", "--format", "json"])
    found = {row["path"] for row in json.loads(r.stdout)}
    assert found == {str(src), f"{src}/keep", f"{src}/keep/a.txt"}
    missing = CliRunner().invoke(cli, ["--config", str(site), "backup", str(src), "--exclude-from", "nope"])
    assert missing.exit_code == 2 and "nope" in missing.output
