"""``pytp backup --dry-run``: what would be stored and on which tape, with nothing written (issue 11, part 4).

Real SQLite catalog files and the virtual library at 512 KiB blocks.  "Nothing
written" is checked on the bytes: the catalog file and every file of the
virtual library (tapes, drives, changer state) hash the same before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import pytest
from sqlalchemy import text

from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.config import read_config
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select as select_drive
from pytp.catalog.dry_run import dry_run_backup
from pytp.tapeio.exclude import Exclusions
from pytp.tapeio.exitcodes import EXIT_ERROR
from tests.cli.runner import invoke
from tests.conftest import write_library_config

BLOCK = 512 << 10


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Path:
    return write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)


def _tree(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_bytes(b"a" * 1000)
    (root / "docs" / "b.tmp").write_bytes(b"b" * 5000)
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_bytes(os.urandom(700_000))
    os.symlink("docs/a.txt", root / "link")
    return root


def _fingerprint(*roots: Path) -> dict[str, str]:
    """Every file under ``roots`` with the hash of its bytes (the catalog, the virtual library)."""
    found = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _counts(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {t: conn.execute(text(f"select count(*) from {t}")).scalar_one() for t in ("job", "entry", "volume")}


def test_dry_run_counts_names_the_blank_and_writes_nothing(site: Path, tmp_path: Path) -> None:
    config = read_config(site, "--config")
    src = _tree(tmp_path / "src")
    engine = open_catalog(config.catalog_url)
    db = Path(config.catalog_url.removeprefix("sqlite:///"))
    engine.dispose()
    before = _fingerprint(db, site.parent / "lib")
    report = dry_run_backup(
        open_catalog(config.catalog_url),
        config,
        select_drive(config),
        BackupOptions(sources=[str(src)], exclude=Exclusions.build(["*.tmp"])),
        list_paths=True,
    )
    assert before == _fingerprint(db, site.parent / "lib"), "a dry run changed the catalog or a tape"
    (plan,) = report.sources
    assert (plan.files, plan.directories, plan.other) == (2, 3, 1)  # a.txt, big.bin; src, docs, data; link
    assert plan.bytes == 701_000
    assert plan.archive_bytes >= plan.bytes + 6 * 512
    assert not any(p.endswith("b.tmp") for p in plan.paths)
    assert str(src / "data" / "big.bin") in plan.paths
    # An empty catalog: the first blank cartridge of the library would be labelled.
    assert report.tape.action == "label" and report.tape.slot is not None and report.tape.barcode
    # The real backup then stores exactly that, on that cartridge.
    engine = open_catalog(config.catalog_url)
    result = run_backup(
        engine,
        config,
        select_drive(config),
        BackupOptions(sources=[str(src)], exclude=Exclusions.build(["*.tmp"])),
    )
    assert result.files == plan.files + plan.directories + plan.other
    assert result.bytes == plan.bytes
    assert result.tapes == [report.tape.barcode]


def test_dry_run_incremental_sees_only_changes_and_the_appendable_tape(site: Path, tmp_path: Path) -> None:
    config = read_config(site, "--config")
    src = _tree(tmp_path / "src")
    engine = open_catalog(config.catalog_url)
    first = run_backup(engine, config, select_drive(config), BackupOptions(sources=[str(src)], job_name="n"))
    (src / "docs" / "new.txt").write_bytes(b"n" * 300)
    counts = _counts(engine)
    report = dry_run_backup(
        engine, config, select_drive(config), BackupOptions(sources=[str(src)], job_name="n", level="incremental")
    )
    assert _counts(engine) == counts
    assert report.level == "incremental"
    (plan,) = report.sources
    assert (plan.files, plan.bytes) == (1, 300)
    assert report.tape.action == "append" and report.tape.label == first.tapes[0]
    # Another chain has no full yet: it would be a full backup, and says so.
    other = dry_run_backup(
        engine, config, select_drive(config), BackupOptions(sources=[str(src)], job_name="x", level="incremental")
    )
    assert other.level == "full" and other.sources[0].files == 4
    assert any("no full backup" in n for n in other.notes)


def test_dry_run_socket_is_a_note(site: Path, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(src / "daemon.sock"))
        config = read_config(site, "--config")
        engine = open_catalog(config.catalog_url)
        report = dry_run_backup(engine, config, select_drive(config), BackupOptions([str(src)]))
    finally:
        sock.close()
    assert not report.problems
    assert any("daemon.sock" in n and "socket" in n for n in report.notes)


def test_dry_run_without_a_usable_tape_says_the_backup_would_fail(tmp_path: Path, sqlite_url: str) -> None:
    site = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK, tapes=0)
    config = read_config(site, "--config")
    src = _tree(tmp_path / "src")
    report = dry_run_backup(open_catalog(config.catalog_url), config, select_drive(config), BackupOptions([str(src)]))
    assert report.tape.action == "none" and "would fail" in report.tape.message


def test_cli_dry_run_table_and_json(site: Path, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    before = _fingerprint(site.parent / "lib")
    out = invoke(site, "backup", str(src), "--dry-run", "--verbose").output
    assert "Dry run: nothing was written" in out
    assert str(src / "data" / "big.bin") in out
    assert "label the blank cartridge" in out
    data = json.loads(invoke(site, "backup", str(src), "--dry-run", "--format", "json").output)
    assert data["dry_run"] is True and data["files"] == 7 and data["bytes"] == 706_000
    assert data["tape"]["action"] == "label"
    assert "paths" not in data["sources"][0]
    assert before == _fingerprint(site.parent / "lib")
    jobs = json.loads(invoke(site, "jobs", "--format", "json").output)
    assert jobs == []


def test_cli_dry_run_missing_source_is_an_error(site: Path, tmp_path: Path) -> None:
    result = invoke(site, "backup", str(tmp_path / "nope"), "--dry-run", expect=EXIT_ERROR)
    assert "Error: Source not found" in result.output + result.stderr


def test_dry_run_says_when_the_data_would_not_fit_on_the_tape(tmp_path: Path, sqlite_url: str) -> None:
    site = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK, tape_size=8 << 20)
    config = read_config(site, "--config")
    engine = open_catalog(config.catalog_url)
    small = _tree(tmp_path / "small")
    first = run_backup(engine, config, select_drive(config), BackupOptions(sources=[str(small)], keep_loaded=False))
    big = tmp_path / "big"
    big.mkdir()
    (big / "blob").write_bytes(os.urandom(10 << 20))
    report = dry_run_backup(engine, config, select_drive(config), BackupOptions(sources=[str(big)]))
    assert report.tape.action == "append" and report.tape.label == first.tapes[0]
    assert report.tape.free is not None and 0 < report.tape.free < 8 << 20
    assert any("would continue on another tape" in n for n in report.notes)
    fits = dry_run_backup(engine, config, select_drive(config), BackupOptions(sources=[str(small)]))
    assert not any("another tape" in n for n in fits.notes)
