"""Rebuilding the catalog from tapes alone gives back the same files, checksums
and positions, reading one block of each data file."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pytp.cli.main import cli
from pytp.tapeio.virtual_drive import read_counters
from tests.conftest import write_library_config


def _comparable_jobs(rows: list[dict]) -> list[dict]:
    keep = ("name", "label", "level", "status", "pool", "files", "bytes", "tapes", "start")
    return sorted(({k: r[k] for k in keep} for r in rows), key=lambda r: (r["start"], r["name"]))


def _comparable_search(rows: list[dict]) -> list[tuple]:
    return sorted((r["path"], r["size"], r["mtime"], r["xxh3"], r["tape"], r["tape_file"], r["offset"]) for r in rows)


def test_rebuild_all_from_an_empty_catalog_and_merge_without_duplicates(
    tmp_path: Path, sqlite_url: str, source_tree: Path
) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url, tapes=3)

    def run(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    run("backup", str(source_tree), "--job", "one")
    run("backup", str(source_tree / "docs"), "--job", "two", "--pool", "offsite")
    run("backup", str(source_tree / "docs" / "deep"), str(source_tree / "empty.txt"), "--job", "three")
    before_search = _comparable_search(json.loads(run("search", "/", "--all-versions", "--format", "json").stdout))
    before_jobs = _comparable_jobs(json.loads(run("jobs", "--format", "json").stdout))

    database = Path(sqlite_url.removeprefix("sqlite:///"))
    for leftover in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        leftover.unlink(missing_ok=True)
    counters_before = {d: read_counters(tmp_path / "site" / "lib" / "drives" / d) for d in ("0", "1")}
    out = run("catalog", "rebuild", "--all", "-d", "d0").stdout
    assert "3 job(s) added" in out and "4 data file(s) skipped by filemark" in out

    after_search = _comparable_search(json.loads(run("search", "/", "--all-versions", "--format", "json").stdout))
    after_jobs = _comparable_jobs(json.loads(run("jobs", "--format", "json").stdout))
    assert after_search == before_search
    assert after_jobs == before_jobs

    # Two tapes: their label blocks, the first block of each of the 4 data files, 3 one-block manifests.
    after = read_counters(tmp_path / "site" / "lib" / "drives" / "0")
    manifest_blocks = 3  # one block each with 64 KiB blocks and small manifests
    assert after.blocks_read - counters_before["0"].blocks_read == 2 + 4 + manifest_blocks

    # Merging into the catalog that already has the jobs adds nothing.
    again = run("catalog", "rebuild", "--all", "-d", "d0").stdout
    assert "0 job(s) added, 3 already known" in again
    assert len(json.loads(run("jobs", "--format", "json").stdout)) == 3

    # The rebuilt catalog restores and verifies.
    run("restore", str(tmp_path / "out"), "--match", "notes.md", "--job", "1")
    assert "0 problem(s)" in run("verify", "--job", "1").stdout


def test_catalog_snapshot_then_rebuild_of_newer_tapes(tmp_path: Path, catalog_url: str, source_tree: Path) -> None:
    """The usual disaster recovery: newest snapshot first, then the tapes written after it."""
    config = write_library_config(tmp_path / "site", catalog_url, tapes=3)
    fresh = write_library_config(tmp_path / "site2", catalog_url, tapes=0)

    def run(*args: str, expect: int = 0, cfg: Path = config):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(cfg), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    run("backup", str(source_tree / "docs"), "--job", "before")
    assert "written to tape PYT001L9 file 3" in run("catalog", "backup").stdout
    run("backup", str(source_tree), "--job", "after", "--pool", "offsite")
    before_search = _comparable_search(json.loads(run("search", "/", "--all-versions", "--format", "json").stdout))

    # A new catalog (a new database) on the same library: restore, then rebuild the newer tape.
    data = json.loads(fresh.read_text())
    data["tape_drives"] = json.loads(config.read_text())["tape_drives"]
    data["tape_libraries"] = json.loads(config.read_text())["tape_libraries"]
    data["catalog"]["url"] = _new_catalog(tmp_path, catalog_url)
    fresh.write_text(json.dumps(data))
    assert "1 job" in run("catalog", "restore", "--tape", "PYT001L9", cfg=fresh).stdout
    assert [j["name"] for j in json.loads(run("jobs", "--format", "json", cfg=fresh).stdout)] == ["before"]
    out = run("catalog", "rebuild", "--tape", "PYT002L9", cfg=fresh).stdout
    assert "1 job(s) added" in out
    after_search = _comparable_search(
        json.loads(run("search", "/", "--all-versions", "--format", "json", cfg=fresh).stdout)
    )
    assert after_search == before_search
    # A snapshot restore refuses a catalog that is not empty.
    r = run("catalog", "restore", "--tape", "PYT001L9", cfg=fresh, expect=3)
    assert "not empty" in r.stderr


def _new_catalog(tmp_path: Path, url: str) -> str:
    if url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'rebuilt.db'}"
    import psycopg

    base, _, name = url.rpartition("/")
    host = base.split("@", 1)[1]
    address, port = host.split(":")
    with psycopg.connect(f"host={address} port={port} user=pytp dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}_rebuilt"')
    return f"{base}/{name}_rebuilt"
