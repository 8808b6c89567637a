"""Modification times on tape (issue 9, docs/format.md#headers): a member with a
whole-second time fits one 512-byte ustar header, one with nanoseconds keeps a
pax ``mtime`` record, and both come back exactly through GNU tar alone, through
a rebuild from the tar headers when the manifest is lost, and through a
restore of what that rebuild recovered.  Default 512 KiB blocks, SQLite."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

from pytp.tapeio.exitcodes import EXIT_VERIFY_FAILED
from tests.catalog.test_rebuild_damage import Site
from tests.crafted_tape import library_tape

SECOND = 1_000_000_000
LONG = "l" * 50 + "/" + "m" * 90  # a name of 101–255 bytes: split into the ustar prefix, no pax path


def _tree(root: Path) -> dict[str, int]:
    """Files with chosen times; returns path → mtime_ns."""
    times = {
        "whole.txt": 1_600_000_000 * SECOND,
        "fine.txt": 1_600_000_000 * SECOND + 123_456_789,
        f"{LONG}/deep.txt": 1_500_000_000 * SECOND,
        "before-1970.txt": -1_500_000_000,
    }
    for name, mtime in times.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
        os.utime(path, ns=(mtime, mtime))
    return {str(root / name): mtime for name, mtime in times.items()}


def test_times_come_back_exactly_through_tar_a_rebuild_from_headers_and_a_restore(tmp_path: Path) -> None:
    site = Site(tmp_path, pools=[{"name": "default", "retention_days": 30}], tapes=2)
    source = tmp_path / "src"
    times = _tree(source)
    site.run("backup", str(source))
    with sqlite3.connect(site.database) as db:
        rows = dict(db.execute("SELECT path_text, header_size FROM entry WHERE kind = 'file'").fetchall())
    assert rows[str(source / "whole.txt")] == 512
    long_name = str(source / LONG / "deep.txt")
    assert 100 < len(long_name) - 1 <= 255 and rows[long_name] == 512
    assert rows[str(source / "fine.txt")] == 1536
    assert rows[str(source / "before-1970.txt")] == 1536

    # GNU tar alone, on the tape file, puts every time back to the nanosecond.
    tape = library_tape(site.library, "PYT001L9")
    by_tar = tmp_path / "by-tar"
    by_tar.mkdir()
    subprocess.run(["tar", "-b", "1024", "-xf", str(tape / "file-00001"), "-C", str(by_tar)], check=True)
    for path, mtime in times.items():
        assert (by_tar / path.lstrip("/")).stat().st_mtime_ns == mtime, path

    # The manifest is lost: the rebuild reads the members' own headers.
    with open(tape / "file-00002", "r+b") as f:
        f.seek(512)
        f.write(b"\x00garbage{{{" * 100)
    site.forget_catalog()
    site.run("catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)
    with sqlite3.connect(site.database) as db:
        rebuilt = dict(db.execute("SELECT path_text, mtime_ns FROM entry WHERE kind = 'file'").fetchall())
    assert rebuilt == times

    restored = tmp_path / "restored"
    site.run("restore", str(restored), "--job", "1", "--host", "all")
    for path, mtime in times.items():
        assert (restored / path.lstrip("/")).stat().st_mtime_ns == mtime, path


def test_a_time_beyond_what_the_catalog_holds_is_clamped_there_and_exact_on_tape(tmp_path: Path) -> None:
    """A file dated 2300 (or 1600) overflowed the catalog's 64-bit nanoseconds: the job
    failed with 'Python int too large to convert to SQLite INTEGER' after its tape file
    was written.  The catalog keeps the nearest time it can hold, the tape the exact one."""
    int64 = (1 << 63) - 1
    site = Site(tmp_path, pools=[{"name": "default", "retention_days": 30}], tapes=2)
    source = tmp_path / "src"
    source.mkdir()
    times = {"2300.txt": 10_413_792_000 * SECOND + 5, "1600.txt": -11_676_096_000 * SECOND}
    for name, mtime in times.items():
        (source / name).write_text(name)
        os.utime(source / name, ns=(mtime, mtime))
        times[name] = (source / name).stat().st_mtime_ns  # a file system may hold less (ext4: 1901 at the earliest)
    assert times["2300.txt"] > int64, "this file system cannot hold a time past 2262"
    site.run("backup", str(source))
    with sqlite3.connect(site.database) as db:
        stored = dict(db.execute("SELECT path_text, mtime_ns FROM entry WHERE kind = 'file'").fetchall())
    assert stored == {str(source / name): max(-int64 - 1, min(mtime, int64)) for name, mtime in times.items()}

    tape = library_tape(site.library, "PYT001L9")
    by_tar = tmp_path / "by-tar"
    by_tar.mkdir()
    subprocess.run(["tar", "-b", "1024", "-xf", str(tape / "file-00001"), "-C", str(by_tar)], check=True)
    restored = tmp_path / "restored"
    site.run("restore", str(restored), "--job", "1")
    for name, mtime in times.items():
        for tree in (by_tar, restored):
            assert (tree / str(source / name).lstrip("/")).stat().st_mtime_ns == mtime, (tree, name)

    # unchanged is unchanged: compared in the catalog's terms
    site.run("verify", "--against-disk", str(source))
    out = site.run("backup", str(source), "--incremental", "--format", "json").stdout
    assert json.loads(out)["files"] == 1, out  # the root directory only


def test_a_job_whose_only_problems_were_notes_is_ok_after_a_rebuild(tmp_path: Path) -> None:
    """A skipped socket is a note (the job stays ok); the manifest listed it with the problems,
    so a catalog rebuilt from the tapes made the job partial."""
    import socket

    site = Site(tmp_path, pools=[{"name": "default", "retention_days": 30}], tapes=2)
    source = tmp_path / "src"
    source.mkdir()
    (source / "data.txt").write_text("data\n")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(source / "sock"))
        site.run("backup", str(source))
    site.forget_catalog()
    site.run("catalog", "rebuild", "--all", "-d", "d0")
    jobs = json.loads(site.run("jobs", "--format", "json", "--host", "all").stdout)
    assert [job["status"] for job in jobs] == ["ok"], jobs
