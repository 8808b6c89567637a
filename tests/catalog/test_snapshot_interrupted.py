"""A catalog snapshot cut short on tape, or interrupted while written, never blocks a disaster recovery.

At pytp's default block size (512 KiB) on a virtual library with SQLite
catalogs: `catalog restore --tape T` loads the newest snapshot on T that reads
back whole, naming each one it passes over; an interrupted `catalog backup`
leaves its tape-file row `incomplete`, and one killed outright leaves a
`writing` row that the next append to that tape settles.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pytp.catalog.manifest import SNAPSHOT_MEMBER
from pytp.cli.main import cli
from pytp.tapeio.smallarchive import write_small_archive
from tests.conftest import write_library_config
from tests.crafted_tape import DEFAULT_BLOCK_SIZE, library_tape, write_tape

TAPE = "PYT001L9"


class _Blocks:
    """A stand-in drive that keeps what ``write_small_archive`` writes, to take a prefix of it."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.data += data
        return len(data)

    def weof(self, count: int) -> None:
        pass


def cut_snapshot_block() -> bytes:
    """The first block of a 1.5 MiB snapshot as pytp writes it: what a `catalog backup` killed after it leaves."""
    payload = random.Random(7).randbytes(3 * DEFAULT_BLOCK_SIZE)
    out = _Blocks()
    write_small_archive(out, DEFAULT_BLOCK_SIZE, SNAPSHOT_MEMBER, payload)  # type: ignore[arg-type]
    assert len(out.data) > DEFAULT_BLOCK_SIZE
    return bytes(out.data[:DEFAULT_BLOCK_SIZE])


class Site:
    """One virtual library at the default block size; each restore gets a new, empty SQLite catalog."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.config = write_library_config(
            tmp_path / "site", f"sqlite:///{tmp_path / 'catalog.db'}", tapes=2, block_size=DEFAULT_BLOCK_SIZE
        )
        self.library = tmp_path / "site" / "lib"
        self.restores = 0

    def run(self, *args: str, expect: int = 0, config: Path | None = None) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(config or self.config), *args])
        assert result.exit_code == expect, result.output + result.stderr
        assert "Traceback" not in result.output + result.stderr
        return result

    def restore(self, tape: str = TAPE, expect: int = 0) -> tuple[Result, Path]:
        """``catalog restore --tape`` into a new catalog on the same library."""
        self.restores += 1
        data = json.loads(self.config.read_text())
        data["catalog"]["url"] = f"sqlite:///{self.tmp_path / f'restored-{self.restores}.db'}"
        other = self.tmp_path / f"other-catalog-{self.restores}.json"
        other.write_text(json.dumps(data))
        return self.run("catalog", "restore", "--tape", tape, expect=expect, config=other), other

    def tape_file(self, number: int, tape: str = TAPE) -> Path:
        return library_tape(self.library, tape) / f"file-{number:05d}"

    def statuses(self, config: Path | None = None) -> dict[int, str]:
        """Tape file number → status, as `pytp tapes TAPE` shows them."""
        [shown] = json.loads(self.run("tapes", TAPE, "--format", "json", config=config).stdout)
        return {row["file_number"]: row["status"] for row in shown["tape_file_list"]}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield Site(tmp_path)


def _jobs(site: Site, config: Path) -> list[str]:
    return sorted(job["name"] for job in json.loads(site.run("jobs", "--format", "json", config=config).stdout))


def test_restore_skips_cut_short_snapshots_and_loads_the_newest_complete_one(site: Site, source_tree: Path) -> None:
    # label 0; job one: files 1-2, snapshot 3; job two: 4-5, snapshot 6; job three: 7-8, snapshot 9
    for number, job in ((3, "one"), (6, "two"), (9, "three")):
        site.run("backup", str(source_tree / "docs"), "--job", job)
        assert f"written to tape {TAPE} file {number}." in site.run("catalog", "backup").stdout
    cut = cut_snapshot_block()

    # The middle snapshot cut short: the newest is complete and is the one loaded.
    site.tape_file(6).write_bytes(cut)
    result, restored = site.restore()
    assert f"Catalog restored from tape {TAPE} file 9:" in result.stdout
    assert _jobs(site, restored) == ["one", "three", "two"]

    # The newest cut short as well: both are named, and the oldest is loaded.
    site.tape_file(9).write_bytes(cut)
    result, restored = site.restore()
    notes = [line for line in result.stdout.splitlines() if line.startswith("note: ")]
    assert len(notes) == 3
    assert notes[0].startswith(f"note: {TAPE} file 9: snapshot cut short (")
    assert notes[1].startswith(f"note: {TAPE} file 6: snapshot cut short (")
    assert all(note.endswith("; skipped") for note in notes[:2])
    assert notes[2] == (
        f"note: {TAPE} holds tape files after this snapshot (up to file 9), written after it: "
        f"`pytp catalog rebuild --tape {TAPE}` adds them"
    )
    assert f"Catalog restored from tape {TAPE} file 3:" in result.stdout
    assert _jobs(site, restored) == ["one"]
    # The snapshot's own tape file is recorded: it could not hold its own row.
    assert site.statuses(restored) == {1: "complete", 2: "complete", 3: "complete"}


def test_a_restored_catalog_appends_to_the_snapshot_tape(site: Site, source_tree: Path) -> None:
    """The disaster recipe: restore the newest snapshot, then back up again to the same tape."""
    site.run("backup", str(source_tree / "docs"), "--job", "one")
    site.run("catalog", "backup")  # file 3, the last on the tape
    result, restored = site.restore()
    assert "holds tape files after" not in result.stdout

    out = site.run("backup", str(source_tree / "docs"), "--job", "after", config=restored).stdout

    assert f"{TAPE} file 4:" in out
    assert site.statuses(restored) == {1: "complete", 2: "complete", 3: "complete", 4: "complete", 5: "complete"}


def test_a_damaged_snapshot_is_skipped_too(site: Site, source_tree: Path) -> None:
    site.run("backup", str(source_tree / "docs"), "--job", "one")
    site.run("catalog", "backup")  # file 3
    site.run("catalog", "backup")  # file 4
    newest = bytearray(site.tape_file(4).read_bytes())
    newest[600] ^= 0xFF  # inside the gzip stream, past the tar header: the gzip checksum fails
    site.tape_file(4).write_bytes(bytes(newest))
    result, restored = site.restore()
    assert f"note: {TAPE} file 4: snapshot damaged: " in result.stdout
    assert f"Catalog restored from tape {TAPE} file 3:" in result.stdout
    assert _jobs(site, restored) == ["one"]


def test_a_tape_with_only_cut_short_snapshots_is_an_error_naming_each(site: Site) -> None:
    cut = cut_snapshot_block()
    write_tape(library_tape(site.library, "PYT002L9"), [b"not a snapshot", cut, cut], label="PYT002L9")
    result, _ = site.restore("PYT002L9", expect=10)
    assert result.stdout == ""
    error = result.stderr.strip()
    assert error.startswith("Error: Tape PYT002L9 holds no usable catalog snapshot: file 2: snapshot cut short (")
    assert "; file 3: snapshot cut short (" in error
    assert "pytp catalog rebuild" in error
    assert len(result.stderr.strip().splitlines()) == 1


def _interrupting_write(signum: int) -> object:
    """A ``write_small_archive`` that puts the first block on tape, then gets ``signum``."""

    def write(drive, block_size, name, payload, size=None):  # type: ignore[no-untyped-def]
        drive.write(cut_snapshot_block())
        os.kill(os.getpid(), signum)
        raise AssertionError(f"signal {signum} did not interrupt the snapshot")

    return write


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_catalog_backup_marks_its_tape_file_incomplete(
    site: Site, source_tree: Path, monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    from pytp.catalog import snapshot

    site.run("backup", str(source_tree / "docs"), "--job", "one")
    site.run("catalog", "backup")  # file 3
    # Whatever the code under test does not catch must not end the test run (SIGTERM's default).
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(RuntimeError("SIGTERM not handled")))
    try:
        with monkeypatch.context() as patch:
            patch.setattr(snapshot, "write_small_archive", _interrupting_write(signum))
            result = site.run("catalog", "backup", expect=130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "Error: interrupted." in result.stderr
    assert site.statuses()[4] == "incomplete"
    assert signal.getsignal(signal.SIGTERM) is previous
    # The next snapshot appends after it, and restore passes over the cut one.
    assert f"written to tape {TAPE} file 5." in site.run("catalog", "backup").stdout
    site.tape_file(5).write_bytes(cut_snapshot_block())
    result, _ = site.restore()
    assert f"Catalog restored from tape {TAPE} file 3:" in result.stdout


KILLED_AFTER_FIRST_BLOCK = textwrap.dedent(
    """
    import os, signal, sys
    from pytp.catalog import snapshot

    def write(drive, block_size, name, payload, size=None):
        drive.write(b"\\0" * block_size)
        os.kill(os.getpid(), signal.SIGKILL)

    snapshot.write_small_archive = write
    from pytp.cli.main import cli
    cli(["--config", sys.argv[1], "catalog", "backup"])
    """
)


def test_a_killed_catalog_backup_is_settled_by_the_next_append(site: Site, source_tree: Path) -> None:
    site.run("backup", str(source_tree / "docs"), "--job", "one")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_FIRST_BLOCK, str(site.config)], capture_output=True, timeout=120
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert site.tape_file(3).stat().st_size == DEFAULT_BLOCK_SIZE
    assert site.statuses()[3] == "writing"  # nothing can tell yet: a snapshot has no job row
    assert f"written to tape {TAPE} file 4." in site.run("catalog", "backup").stdout
    assert site.statuses() == {1: "complete", 2: "complete", 3: "incomplete", 4: "complete"}
    # The snapshot in file 4 was taken after the settling: restored, it says so too.
    result, restored = site.restore()
    assert f"Catalog restored from tape {TAPE} file 4:" in result.stdout
    assert site.statuses(restored)[3] == "incomplete"


def test_a_rebuild_records_a_cut_short_snapshot_as_incomplete(site: Site, source_tree: Path) -> None:
    site.run("backup", str(source_tree / "docs"), "--job", "one")
    site.run("catalog", "backup")  # file 3
    site.run("catalog", "backup")  # file 4, then cut short as a killed `catalog backup` leaves it
    site.tape_file(4).write_bytes(cut_snapshot_block())
    for suffix in ("", "-wal", "-shm"):
        (site.tmp_path / f"catalog.db{suffix}").unlink(missing_ok=True)

    out = site.run("catalog", "rebuild", "--tape", TAPE).stdout

    assert f"note: {TAPE} file 4: a catalog snapshot cut short, not counted" in out
    assert "1 catalog snapshot(s) found" in out
    statuses = site.statuses()
    assert statuses[3] == "complete" and statuses[4] == "incomplete"


def test_a_crafted_snapshot_row_is_named_and_nothing_is_loaded(site: Site, source_tree: Path) -> None:
    """Its gzip checksum holds, but a row names a column no table has (issue 9 probe: 'unexpected KeyError')."""
    import gzip
    import io
    import tarfile

    site.run("backup", str(source_tree / "docs"), "--job", "one")
    site.run("catalog", "backup")  # file 3
    with tarfile.open(fileobj=io.BytesIO(site.tape_file(3).read_bytes())) as archive:
        payload = archive.extractfile(SNAPSHOT_MEMBER).read()  # type: ignore[union-attr]
    crafted = gzip.compress(gzip.decompress(payload) + b'{"t": "entry", "r": {"bogus": 1}}\n')
    out = _Blocks()
    write_small_archive(out, DEFAULT_BLOCK_SIZE, SNAPSHOT_MEMBER, crafted)  # type: ignore[arg-type]
    site.tape_file(3).write_bytes(bytes(out.data))

    result, restored = site.restore(expect=10)

    assert "Error: The catalog snapshot's line" in result.stderr and "KeyError" in result.stderr
    assert "nothing was loaded" in result.stderr
    assert json.loads(site.run("jobs", "--format", "json", config=restored).stdout) == []
