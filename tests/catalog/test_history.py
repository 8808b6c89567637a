"""Incremental and differential backups from the catalog, and point-in-time
restores that give back the tree exactly as it was after each job."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytp.cli.main import cli
from pytp.tapeio.virtual_drive import loaded_tape
from pytp.tapeio.virtual_tape import configure_tape
from tests.conftest import write_library_config


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its type, mode, mtime and content or link target."""
    result: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                result[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, path.read_bytes())
    return result


@pytest.fixture
def run(tmp_path: Path, catalog_url: str):  # type: ignore[no-untyped-def]
    config = write_library_config(tmp_path / "site", catalog_url)

    def invoke(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    return invoke


def write(path: Path, text: str, mtime: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime * 10**9, mtime * 10**9))


def stored(run, job: int) -> set[str]:  # type: ignore[no-untyped-def]
    rows = json.loads(run("search", "/", "--job", str(job), "--all-versions", "--format", "json").stdout)
    return {r["path"].rsplit("/", 1)[-1] for r in rows if r["type"] == "file"}


def test_scripted_history_restores_every_job_exactly(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    write(src / "a.txt", "a1", 1_700_000_000)
    write(src / "b.txt", "b1", 1_700_000_001)
    write(src / "c.txt", "c1", 1_700_000_002)
    write(src / "d" / "e.txt", "e1", 1_700_000_003)
    (src / "l").symlink_to("a.txt")
    snapshots = {}

    def job(level: str) -> int:
        out = run("backup", str(src), "--job", "home", "--level", level).stdout
        number = int(out.split()[1])
        snapshots[number] = snapshot(src)
        return number

    j1 = job("full")
    write(src / "new.txt", "n1", 1_700_000_100)
    write(src / "a.txt", "a2-longer", 1_700_000_101)
    (src / "b.txt").unlink()
    (src / "c.txt").rename(src / "c2.txt")
    os.chmod(src / "d" / "e.txt", 0o600)
    j2 = job("incremental")
    assert stored(run, j2) == {"new.txt", "a.txt", "c2.txt", "e.txt"}
    write(src / "new.txt", "n2", 1_700_000_200)
    (src / "d" / "e.txt").unlink()
    write(src / "d" / "f.txt", "f1", 1_700_000_201)
    j3 = job("differential")
    # A differential backup holds every change since the full one.
    assert stored(run, j3) == {"new.txt", "a.txt", "c2.txt", "f.txt"}
    write(src / "a.txt", "a3", 1_700_000_300)
    (src / "l").unlink()
    (src / "l").symlink_to("new.txt")
    j4 = job("incremental")
    assert stored(run, j4) == {"a.txt"}

    for number in (j1, j2, j3, j4):
        target = tmp_path / f"as-of-{number}"
        run("restore", str(target), "--as-of", str(number))
        restored = target / str(src).lstrip("/")
        assert snapshot(restored) == snapshots[number], f"tree as of job {number}"

    # The same views without a tape: ls-catalog and search --as-of.
    listing = json.loads(run("ls-catalog", str(src), "--as-of", str(j2), "--format", "json").stdout)
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in listing) == ["a.txt", "c2.txt", "d", "l", "new.txt"]
    run("search", "b.txt", "--as-of", str(j2), expect=11)
    assert json.loads(run("search", "b.txt", "--as-of", str(j1), "--format", "json").stdout)[0]["job"] == j1
    versions = json.loads(run("versions", str(src / "a.txt"), "--format", "json").stdout)
    assert [v["job"] for v in versions] == [j4, j3, j2, j1]
    gone = json.loads(run("versions", str(src / "b.txt"), "--format", "json").stdout)
    # The differential backup records the deletion again: it is relative to the full one.
    assert [(v["job"], v["type"]) for v in gone] == [(j3, "deleted"), (j2, "deleted"), (j1, "file")]


def test_failed_job_is_not_a_base_for_the_next_incremental(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        write(src / f"f{i:02d}.txt", "x" * 5000, 1_700_000_000 + i)
    run("backup", str(src), "--job", "chain", "--keep-loaded")  # its tape stays in d0 for the fault below
    for i in range(20):
        write(src / f"f{i:02d}.txt", "y" * 5000, 1_700_001_000 + i)
    tape = loaded_tape(Path(json.loads(run("config", "--json").stdout)["tape_drives"][0]["device_path"]))
    assert tape is not None
    configure_tape(tape, write_errors=[(3, 0)])  # the next data file fails at its first block
    run("backup", str(src), "--job", "chain", "--incremental", expect=6)
    configure_tape(tape, write_errors=[])
    run("backup", str(src), "--job", "chain", "--incremental")
    jobs = json.loads(run("jobs", "--format", "json").stdout)
    assert [j["status"] for j in jobs] == ["ok", "failed", "ok"]
    assert stored(run, jobs[0]["id"]) == {f"f{i:02d}.txt" for i in range(20)}


def test_checksum_catches_a_content_change_that_metadata_hides(tmp_path: Path) -> None:
    from pytp.catalog.levels import Known, has_changed
    from pytp.tapeio.hashing import hash_file

    path = tmp_path / "f.bin"
    path.write_bytes(b"original")
    st = path.lstat()
    same = Known(
        "file",
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        st.st_mode & 0o7777,
        st.st_uid,
        st.st_gid,
        None,
        hash_file(path),
    )
    assert not has_changed(same, bytes(path), st, checksum=True)
    rotted = Known(**{**same.__dict__, "xxh3": "0" * 32})  # what the catalog recorded differs from the content
    assert not has_changed(rotted, bytes(path), st, checksum=False)  # metadata alone cannot see it
    assert has_changed(rotted, bytes(path), st, checksum=True)
    assert has_changed(None, bytes(path), st, checksum=False)  # a new path
