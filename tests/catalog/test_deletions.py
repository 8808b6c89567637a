"""Files deleted in a later backup stay deleted (issue 8, defect 10): restore
of a directory, ls-catalog and verify --against-disk give the newest state;
--include-deleted brings them back; search finds them, marked with the job
that recorded the deletion; a restore naming one deleted file says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from tests.conftest import write_library_config


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
    """Job 1 (full) stores keep.txt and gone.txt; job 2 (incremental) records gone.txt as deleted."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "keep.txt").write_text("keep\n")
    (src / "gone.txt").write_text("gone\n")
    run("backup", str(src), "--job", "home")
    (src / "gone.txt").unlink()
    run("backup", str(src), "--job", "home", "--incremental")
    return src


def names(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()} if root.exists() else set()


def test_restore_of_a_directory_leaves_deleted_files_out(run, history: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    run("restore", str(out), "--match", str(history))
    assert names(out / str(history).lstrip("/")) == {"keep.txt"}
    everything = tmp_path / "everything"
    run("restore", str(everything), "--match", str(history), "--include-deleted")
    assert names(everything / str(history).lstrip("/")) == {"keep.txt", "gone.txt"}


def test_ls_catalog_and_verify_against_disk_see_the_newest_state(run, history: Path) -> None:  # type: ignore[no-untyped-def]
    listed = json.loads(run("ls-catalog", str(history), "--format", "json").stdout)
    assert {Path(r["path"]).name for r in listed} == {"keep.txt"}
    with_deleted = json.loads(run("ls-catalog", str(history), "--include-deleted", "--format", "json").stdout)
    assert {Path(r["path"]).name: r["deleted_by"] for r in with_deleted} == {"keep.txt": None, "gone.txt": 2}
    run("verify", "--against-disk", str(history))


def test_search_finds_deleted_files_marked_with_the_deleting_job(run, history: Path) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(run("search", "gone.txt", "--format", "json").stdout)
    assert [(r["job"], r["deleted_by"]) for r in rows] == [(1, 2)]
    csv = run("search", ".txt", "--format", "csv").stdout.splitlines()
    assert "deleted_by" in csv[0].split(",")
    assert "deleted_by" in run("search", "gone.txt").stdout


def test_restoring_one_deleted_file_by_name_restores_its_last_version(  # type: ignore[no-untyped-def]
    run, history: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run("restore", str(out), "--match", "gone.txt")
    assert "was deleted" in result.output and "job 2" in result.output
    assert (out / str(history).lstrip("/") / "gone.txt").read_text() == "gone\n"


def test_a_pattern_matching_several_deleted_files_points_at_include_deleted(  # type: ignore[no-untyped-def]
    run, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("old-a.log", "old-b.log", "new.txt"):
        (src / name).write_text(name)
    run("backup", str(src))
    (src / "old-a.log").unlink()
    (src / "old-b.log").unlink()
    run("backup", str(src), "--incremental")
    result = run("restore", str(tmp_path / "out"), "--match", "*.log", expect=exitcodes.EXIT_NOT_FOUND)
    assert "--include-deleted" in result.stderr
