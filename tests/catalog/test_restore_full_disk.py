"""A restore into a file system that fills up, at the default 512 KiB blocks.

The restore stops at the first member that does not fit (going on only fails
member after member), removes what tar wrote of it, keeps the files restored
before (verified), and ends with one ``Error:`` line naming the target and the
counts, exit 3.  A rerun is not blocked by what was removed.  A member tar
cannot write for another reason is named once, not again as a checksum
mismatch.  The full disk is a real tmpfs (root; skipped loudly elsewhere).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from pytp.catalog.restore import verify_restored
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from pytp.tapeio.hashing import ContentHasher
from tests.conftest import small_filesystem, write_library_config
from tests.crafted_tape import DEFAULT_BLOCK_SIZE

BIG = 5 << 20  # each larger than the 4 MiB target


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Path:
    return write_library_config(tmp_path / "site", sqlite_url, drives=1, block_size=DEFAULT_BLOCK_SIZE)


def invoke(config: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def source(tmp_path: Path) -> Path:
    """Five small files, then three larger than the target, then five small ones (tape order)."""
    src = tmp_path / "src"
    for sub in ("a", "b", "c"):
        (src / sub).mkdir(parents=True)
    for i in range(5):
        (src / "a" / f"s{i}.txt").write_bytes(os.urandom(30_000 + i))
        (src / "c" / f"t{i}.txt").write_bytes(os.urandom(1_000 + i))
    for i in range(3):
        (src / "b" / f"big{i}").write_bytes(os.urandom(BIG + i))
    return src


def restored_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def source_files(src: Path) -> dict[str, bytes]:
    return {str(p).lstrip("/"): p.read_bytes() for p in src.rglob("*") if p.is_file()}


def assert_nothing_partial(out: Path, src: Path) -> None:
    """Every file in the target is whole: the catalog's size and content."""
    expected = source_files(src)
    for name, data in restored_files(out).items():
        assert name in expected, name
        assert len(data) == len(expected[name]) and data == expected[name], f"{name}: partial or wrong"


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr  # one line, not one per member
    assert lines[0].startswith("Error: No space left on device in "), lines[0]
    return lines[0]


def test_a_full_target_stops_at_the_first_file_that_does_not_fit(site: Path, tmp_path: Path) -> None:
    src = source(tmp_path)
    assert invoke(site, "backup", str(src)).exit_code == 0
    with small_filesystem(tmp_path / "out", "4m") as out:
        result = invoke(site, "restore", str(out), "--job", "1")
        assert result.exit_code == exitcodes.EXIT_ERROR, result.output
        assert "Traceback" not in result.output
        line = one_error_line(result.stderr)
        assert f"in {out}:" in line and "restored 5 of 13 file(s)" in line, line
        assert f"{src}/b/big0" in line and "--overwrite" in line, line
        assert_nothing_partial(out, src)
        got = restored_files(out)
        assert sorted(got) == sorted(n for n in source_files(src) if "/a/" in n)  # the rest were not restored


def test_one_file_larger_than_the_target_leaves_nothing_behind(site: Path, tmp_path: Path) -> None:
    src = source(tmp_path)
    assert invoke(site, "backup", str(src)).exit_code == 0
    with small_filesystem(tmp_path / "out", "4m") as out:
        result = invoke(site, "restore", str(out), "--match", f"{src}/b/big1")
        assert result.exit_code == exitcodes.EXIT_ERROR, result.output
        line = one_error_line(result.stderr)
        assert f"in {out}:" in line and "restored 0 of 1 file(s)" in line, line
        assert restored_files(out) == {}  # not a 4 MiB piece with the original's mtime


def test_after_freeing_space_a_rerun_is_not_blocked_by_what_was_removed(site: Path, tmp_path: Path) -> None:
    src = source(tmp_path)
    assert invoke(site, "backup", str(src)).exit_code == 0
    with small_filesystem(tmp_path / "out", "4m") as out:
        assert invoke(site, "restore", str(out), "--job", "1").exit_code == exitcodes.EXIT_ERROR
        subprocess.run(["mount", "-o", "remount,size=64m", str(out)], check=True)  # space freed
        refused = invoke(site, "restore", str(out), "--job", "1")
        assert refused.exit_code == exitcodes.EXIT_RESTORE_REFUSED, refused.output
        assert "5 file(s) already exist" in refused.stderr, refused.stderr  # only the whole ones
        again = invoke(site, "restore", str(out), "--job", "1", "--overwrite")
        assert again.exit_code == 0, again.output
        assert "13 file checksum(s) verified" in again.output
        assert restored_files(out) == source_files(src)


def test_overwrite_into_a_full_target_keeps_each_old_file_not_replaced_whole(site: Path, tmp_path: Path) -> None:
    """--overwrite stops at the replacement that does not fit: that file and every one after
    it keep their old content (tar's --unlink-first must not have removed it), and the
    untouched old files are not listed as checksum problems."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    for i in range(1, 21):
        (src / "a" / f"f{i}").write_bytes(os.urandom(100_000))
    (src / "a" / "x.txt").write_bytes(b"small\n")
    assert invoke(site, "backup", str(src)).exit_code == 0
    with small_filesystem(tmp_path / "out", "2600k") as out:
        assert invoke(site, "restore", str(out), "--job", "1").exit_code == 0
        here = out / str(src / "a").lstrip("/")
        old = {p.name: f"OLD {p.name}\n".encode() for p in here.iterdir()}
        for name, content in old.items():
            (here / name).write_bytes(content)
        (out / "filler").write_bytes(b"\0" * (2300 << 10))
        result = invoke(site, "restore", str(out), "--job", "1", "--overwrite")
        assert result.exit_code == exitcodes.EXIT_ERROR, result.output
        line = one_error_line(result.stderr)  # no untouched old file listed as a checksum problem
        found = re.search(r"restored (\d+) of 21 file\(s\).*tar could not write (\S+), and (.*?);", line)
        assert found, line
        failed = Path(found.group(2))
        assert failed.parent == src / "a" and found.group(3) == "the file that was there is kept unchanged", line
        assert sorted(os.listdir(here)) == sorted(old)  # nothing left aside under a hidden name
        replaced = 0
        for name, content in old.items():
            data = (here / name).read_bytes()
            if data != content:
                assert data == (src / "a" / name).read_bytes(), f"{name}: neither old nor whole"
                replaced += 1
        assert (here / failed.name).read_bytes() == old[failed.name]
        assert replaced == int(found.group(1)) < 21


def test_a_file_tar_cannot_create_is_named_once(site: Path, tmp_path: Path) -> None:
    """Not the disk: a directory tar may not write into (immutable) loses its file,
    named by tar's line alone, and is not counted among the verified."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(3):
        (src / "d" / f"f{i}.txt").write_bytes(os.urandom(5_000 + i))
    (src / "e.txt").write_bytes(b"elsewhere\n")
    assert invoke(site, "backup", str(src)).exit_code == 0
    out = tmp_path / "out"
    locked = out / str(src / "d").lstrip("/")
    locked.mkdir(parents=True)
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("SKIPPED LOUDLY: chattr +i (root, a file system with the immutable flag) is needed")
    try:
        result = invoke(site, "restore", str(out), "--job", "1")
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert result.exit_code == exitcodes.EXIT_VERIFY_FAILED, result.output
    assert "3 problem(s) (1 file checksum(s) verified)" in result.stderr, result.stderr
    for i in range(3):
        assert result.stderr.count(f"f{i}.txt") == 1, result.stderr  # tar's line, no second one
    assert restored_files(out) == {str(src / "e.txt").lstrip("/"): b"elsewhere\n"}


def test_verified_counts_only_the_files_that_match(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "good").write_bytes(b"good\n")
    (tmp_path / "x" / "bad").write_bytes(b"half")

    def entry(name: str, content: bytes) -> SimpleNamespace:
        hasher = ContentHasher()
        hasher.update(content)
        path = f"/x/{name}"
        return SimpleNamespace(
            path=path.encode(), path_text=path, kind="file", xxh3=hasher.hexdigest(), sparse_map=None
        )

    verified, mismatches = verify_restored(tmp_path, [entry("good", b"good\n"), entry("bad", b"half of it\n")])
    assert verified == 1
    assert mismatches == [("/x/bad", "checksum differs from the catalog")]
