"""The direct, tar and dd strategies write the same archives and catalog, and
the staged ones leave nothing in tar_dir after success, failure or interrupt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from pytp.tapeio.virtual_tape import configure_tape
from tests.conftest import make_tree, small_filesystem, write_library_config


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    config = write_library_config(tmp_path / "site", sqlite_url, tapes=4)

    def run(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    run.config = config  # type: ignore[attr-defined]
    run.tar_dir = tmp_path / "site" / "tars"  # type: ignore[attr-defined]
    run.library = tmp_path / "site" / "lib"  # type: ignore[attr-defined]
    return run


def staged_leftovers(site) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(p.name for p in site.tar_dir.rglob("*")) if site.tar_dir.exists() else []


@pytest.mark.parametrize("strategy", ["direct", "tar", "dd"])
def test_each_strategy_writes_what_gnu_tar_extracts_identically(site, tmp_path: Path, strategy: str) -> None:  # type: ignore[no-untyped-def]
    src = make_tree(tmp_path / "src", big_file=3 << 20)
    second = tmp_path / "second"
    second.mkdir()
    (second / "x.txt").write_text("second source\n")
    out = site("backup", str(src), str(second), "--strategy", strategy, "-m", "2").stdout
    assert "Job 1 ok" in out
    assert staged_leftovers(site) == []
    tape = site.library / "tapes" / "PYT001L9"
    for number, source in ((1, src), (2, second)):
        target = tmp_path / f"{strategy}-{number}"
        target.mkdir()
        subprocess.run(["tar", "-xf", str(tape / f"file-0000{number}"), "-C", str(target)], check=True)
        assert (
            subprocess.run(
                ["diff", "-r", "--no-dereference", str(source), str(target / str(source).lstrip("/"))]
            ).returncode
            == 0
        )
    rows = json.loads(site("search", "/", "--format", "json").stdout)
    assert {r["tape_file"] for r in rows} == {1, 2}
    assert "0 problem(s)" in site("verify").stdout


def test_strategies_give_the_same_archive_bytes(tmp_path: Path, sqlite_url: str) -> None:
    src = make_tree(tmp_path / "src", big_file=1 << 20)
    digests = {}
    for strategy in ("direct", "tar", "dd"):
        config = write_library_config(tmp_path / strategy, f"sqlite:///{tmp_path / strategy / 'c.db'}", tapes=1)
        result = CliRunner().invoke(cli, ["--config", str(config), "backup", str(src), "--strategy", strategy])
        assert result.exit_code == 0, result.output
        digests[strategy] = (tmp_path / strategy / "lib" / "tapes" / "PYT001L9" / "file-00001").read_bytes()
    assert digests["direct"] == digests["tar"] == digests["dd"]


def test_staged_files_are_removed_after_a_failure(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = make_tree(tmp_path / "src", big_file=1 << 20)
    site("label", "--slot", "1")
    configure_tape(site.library / "tapes" / "PYT001L9", write_errors=[(1, 2)])
    site("load", "1", "-d", "d0")
    site("backup", str(src), "--strategy", "tar", "-d", "d0", expect=exitcodes.EXIT_DRIVE)
    assert staged_leftovers(site) == []


def test_staged_files_are_removed_after_an_interrupt(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "huge.bin", "wb") as f:
        # Allocated but unwritten (not sparse, which would be stored in a
        # moment): staging 3 GiB of it takes a while.
        os.posix_fallocate(f.fileno(), 0, 3 << 30)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytp.cli.main", "--config", str(site.config), "backup", str(src), "--strategy", "dd"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.suffix == ".tar" for p in site.tar_dir.rglob("*.tar")):
        time.sleep(0.1)
    assert any(site.tar_dir.rglob("*.tar")), "staging never started"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exitcodes.EXIT_INTERRUPTED, stderr
    assert staged_leftovers(site) == []


def test_staging_space_is_checked_before_starting(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir()
    # A file with holes is staged sparse now (issue 8, defect 12), so a big
    # one no longer needs the room; the disk reports less room than 8 MiB of data.
    (src / "enormous.bin").write_bytes(os.urandom(8 << 20))
    with small_filesystem(site.tar_dir, "2m"):  # a real disk with less room than 8 MiB of data
        r = site("backup", str(src), "--strategy", "tar", expect=exitcodes.EXIT_CONFIG)
        assert "Staging needs up to" in r.stderr and "nothing was written" in r.stderr
        assert staged_leftovers(site) == []
    assert not (site.library / "tapes" / "PYT001L9" / "file-00001").exists()
