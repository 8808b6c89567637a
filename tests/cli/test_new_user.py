"""The issue's acceptance run, as a new user would do it: nothing configured,
a tree of a few thousand files with every kind of member and a 100 MB file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from click.testing import CliRunner

from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from tests.conftest import make_tree
from tests.crash.victim import Victim, catalog_held, wait_for_size


def _pytp(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def test_new_user_backup_search_restore_verify(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", big_file=100 * 1000 * 1000)
    for i in range(3000):
        d = src / "many" / f"d{i // 200:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"file{i:04d}.dat").write_bytes(b"%d\n" % i * (i % 50))
    backup = _pytp("backup", str(src))
    assert "Job 1 ok" in backup.stdout

    hit = json.loads(_pytp("search", "file1234", "--format", "json").stdout)
    assert [h["path"] for h in hit] == [str(src / "many" / "d06" / "file1234.dat")]

    one = tmp_path / "one"
    _pytp("restore", str(one), "--match", "file1234")
    original = src / "many" / "d06" / "file1234.dat"
    copy = one / str(original).lstrip("/")
    assert copy.read_bytes() == original.read_bytes()
    assert (copy.stat().st_mode, copy.stat().st_mtime_ns) == (original.stat().st_mode, original.stat().st_mtime_ns)

    whole = tmp_path / "whole"
    _pytp("restore", str(whole), "--job", "1")
    diff = subprocess.run(
        ["diff", "-r", "--no-dereference", str(src), str(whole / str(src).lstrip("/"))], capture_output=True
    )
    assert diff.returncode == 0, diff.stdout[:2000]

    assert _pytp("verify").stdout.count("FAILED") == 0

    # GNU tar extracts the data tape file of the virtual tape directly.
    tapes = json.loads(_pytp("tapes", "--format", "json").stdout)
    data_home = Path(os.environ["XDG_DATA_HOME"]) / "pytp" / "libraries" / "vlib" / "tapes" / tapes[0]["barcode"]
    by_tar = tmp_path / "by-tar"
    by_tar.mkdir()
    subprocess.run(["tar", "-xf", str(data_home / "file-00001"), "-C", str(by_tar)], check=True)
    assert (
        subprocess.run(["diff", "-r", "--no-dereference", str(src), str(by_tar / str(src).lstrip("/"))]).returncode == 0
    )

    # Flip one byte inside the 100 MB file on the virtual tape: verify names it.
    entry = json.loads(_pytp("search", "big.bin", "--format", "json").stdout)[0]
    with open(data_home / "file-00001", "r+b") as f:
        f.seek(entry["offset"] + 4096 + 50_000_000)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 1]))
    failed = _pytp("verify", expect=exitcodes.EXIT_VERIFY_FAILED)
    assert f"FAILED {src / 'big.bin'}: checksum mismatch" in failed.stdout


def test_restore_without_selection_extracts_the_tape_file_under_the_head(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", big_file=1000)
    _pytp(
        "backup",
        str(src / "docs"),
        str(src / "many") if (src / "many").exists() else str(src / "docs" / "deep"),
        "--keep-loaded",
    )
    _pytp("rewind")
    _pytp("ff", "1")
    out = tmp_path / "out"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        _pytp("restore", str(out))
    finally:
        os.chdir(cwd)
    assert (out / str(src).lstrip("/") / "docs" / "report.txt").read_text() == "quarterly report\n"
    assert not (tmp_path / str(src).lstrip("/")).exists()  # nothing landed in the current directory
    assert _pytp("position").stdout.strip() == "2"  # the head moved past the tape file


def test_interrupted_backup_is_marked_failed_and_the_next_one_appends(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.bin").write_bytes(os.urandom(24 << 20))
    _pytp("config")  # create the embedded default first
    data_home = Path(os.environ["XDG_DATA_HOME"]) / "pytp"
    victim = Victim("backup", "--progress", str(src))
    assert victim.wait_for_progress(), victim.finish()
    # The job is running.  With the catalog's write lock held it cannot end,
    # so Ctrl-C lands mid-job however fast the machine is (no sleeps).
    with catalog_held(data_home / "catalog.db"):
        cut = data_home / "libraries" / "vlib" / "tapes"
        assert wait_for_size(next(cut.glob("*/file-00000")).parent / "file-00001", 512 << 10)
        victim.signal(signal.SIGINT)
    code, _, stderr = victim.finish()
    assert code == exitcodes.EXIT_INTERRUPTED, stderr
    jobs = json.loads(_pytp("jobs", "--format", "json").stdout)
    assert jobs[0]["status"] == "failed" and jobs[0]["message"] == "interrupted"
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_text("after the interruption")
    result = _pytp("backup", str(small))
    assert "file 2:" in result.stdout  # after the label and the cut data file, never over it
    _pytp("search", "data.bin", expect=exitcodes.EXIT_NOT_FOUND)
