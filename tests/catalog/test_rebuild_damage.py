"""A rebuild reads every tape it can (issue 8, defect 3): a damaged manifest,
a zero-byte tape file and a tape sitting in another drive do not stop it, and
each problem is reported by tape, tape file and line with exit code 10.

All at pytp's default 512 KiB blocks."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pytp.cli.main import cli
from pytp.tapeio.exitcodes import EXIT_VERIFY_FAILED
from pytp.tapeio.virtual_changer import VirtualChanger
from pytp.tapeio.virtual_drive import read_counters
from tests.conftest import write_library_config
from tests.crafted_tape import (
    DEFAULT_BLOCK_SIZE,
    file_member,
    job_files,
    library_tape,
    tar_bytes,
    write_tape,
)

POOLS = [{"name": f"p{i}", "retention_days": 30} for i in (1, 2, 3)]


class Site:
    """A virtual library at the default block size, one pool per tape, and the CLI on it."""

    def __init__(
        self, tmp_path: Path, pools: list[dict] | None = None, tapes: int = 3, url: str = "", tape_size: int = 64 << 20
    ) -> None:
        self.database = tmp_path / "catalog.db"
        self.config = write_library_config(
            tmp_path / "site",
            url or f"sqlite:///{self.database}",
            tapes=tapes,
            block_size=DEFAULT_BLOCK_SIZE,
            pools=pools or POOLS,
            tape_size=tape_size,
        )
        self.library = tmp_path / "site" / "lib"
        self.tmp = tmp_path

    def run(self, *args: str, expect: int | None = 0) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(self.config), *args], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, result.output
        return result

    def forget_catalog(self) -> None:
        """The disaster: the catalog is gone, only the tapes are left."""
        for suffix in ("", "-wal", "-shm"):
            self.database.with_name(self.database.name + suffix).unlink(missing_ok=True)

    def search(self) -> list[tuple]:
        rows = json.loads(self.run("search", "/", "--all-versions", "--host", "all", "--format", "json").stdout)
        return sorted((r["path"], r["size"], r["tape"], r["tape_file"], r["offset"]) for r in rows)

    def entries(self) -> list[tuple]:
        with sqlite3.connect(self.database) as db:
            return db.execute(
                "SELECT entry.path_text, entry.xxh3, job.name, job.status FROM entry JOIN job ON job.id = entry.job_id"
            ).fetchall()


def _tree(root: Path, name: str) -> Path:
    (root / name / "sub").mkdir(parents=True)
    for i in range(5):
        (root / name / f"file{i}.txt").write_text(f"{name} {i}\n" * (i + 1))
    (root / name / "sub" / "big.bin").write_bytes(bytes(range(256)) * 4000)
    return root / name


def _three_tapes(site: Site) -> list[tuple]:
    for i in (1, 2, 3):
        site.run("backup", str(_tree(site.tmp / "src", f"t{i}")), "--job", f"job{i}", "--pool", f"p{i}")
    return site.search()


def test_damaged_manifest_on_tape_1_of_3_is_recovered_from_headers_and_the_others_imported(tmp_path: Path) -> None:
    site = Site(tmp_path)
    before = _three_tapes(site)
    assert {row[2] for row in before} == {"PYT001L9", "PYT002L9", "PYT003L9"}
    # Tape 1: label, data file 1, manifest 2.  Its header line and first
    # member lines are overwritten (the tar header around them is intact).
    manifest = library_tape(site.library, "PYT001L9") / "file-00002"
    with open(manifest, "r+b") as f:
        f.seek(512)
        f.write(b"\x00garbage{{{" * 100)
    site.forget_catalog()

    result = site.run("catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)

    assert "PYT001L9 file 2 line 1: the header line is not JSON" in result.stdout
    assert "PYT001L9 file 1: data file(s) 1: its manifest is unreadable" in result.stdout
    assert "Traceback" not in result.output
    assert "Error: " in result.stderr and "PYT001L9" in result.stderr
    assert "PYT002L9" in result.stdout and "PYT003L9" in result.stdout
    # Every member is back, at the same place on tape.
    assert site.search() == before
    rows = site.entries()
    recovered = [r for r in rows if r[2].startswith("recovered-PYT001L9")]
    assert recovered and all(r[3] == "partial" for r in recovered)
    # Members whose lines survived keep their checksum; the others came from their headers.
    assert any(r[1] is None for r in recovered if r[0].endswith(".txt"))
    assert any(r[1] is not None for r in recovered if r[0].endswith(".txt"))
    assert "entries recovered from tar headers (no checksum)" in result.stdout
    assert {r[0] for r in recovered} == {r[0] for r in before if r[2] == "PYT001L9"}
    assert all(r[1] is not None for r in rows if r[2] in ("job2", "job3") and r[0].endswith(".txt"))
    # The recovered job restores; its files are byte-identical.
    jobs = json.loads(site.run("jobs", "--format", "json").stdout)
    job = next(j for j in jobs if j["name"].startswith("recovered-PYT001L9"))
    assert job["status"] == "partial"
    out = tmp_path / "out"
    site.run("restore", str(out), "--match", "*/t1/*", "--job", str(job["id"]))
    restored = out / str(tmp_path / "src" / "t1").lstrip("/")
    assert (restored / "sub" / "big.bin").read_bytes() == (tmp_path / "src" / "t1" / "sub" / "big.bin").read_bytes()
    # Verify reads every member whole; the ones without checksum are not "damaged".
    assert "0 problem(s)" in site.run("verify", "--job", str(job["id"])).stdout
    # Rebuilding again merges: nothing is added twice.
    again = site.run("catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)
    assert "0 job(s) added" in again.stdout and "0 entries" in again.stdout
    assert site.search() == before


def test_damaged_member_lines_keep_the_rest_and_recover_the_lost_members(tmp_path: Path) -> None:
    site = Site(tmp_path)
    before = _three_tapes(site)
    manifest = library_tape(site.library, "PYT002L9") / "file-00002"
    data = bytearray(manifest.read_bytes())
    start = data.index(b'\n{"path"', 512) + 1  # the first member line
    data[start : start + 4] = b"\xff\xfe[["
    manifest.write_bytes(bytes(data))
    site.forget_catalog()

    result = site.run("catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)

    assert "PYT002L9 file 2 line 2: is not JSON" in result.stdout
    assert site.search() == before
    rows = [r for r in site.entries() if r[2] == "job2"]
    assert sum(1 for r in rows if r[1] is None and r[0].endswith((".txt", ".bin"))) <= 1
    assert all(r[3] == "partial" for r in rows)  # the job says it was damaged
    jobs = {j["name"]: j for j in json.loads(site.run("jobs", "--format", "json").stdout)}
    assert jobs["job1"]["status"] == "ok" and jobs["job3"]["status"] == "ok"


def test_a_zero_byte_tape_file_does_not_end_the_scan(tmp_path: Path, catalog_url: str) -> None:
    site = Site(tmp_path, pools=[{"name": "default", "retention_days": 30}], tapes=1, url=catalog_url)
    first = tar_bytes([file_member("data/a.txt", b"first job\n")])
    second = tar_bytes([file_member("data/b.txt", b"second job\n")])
    files = [
        *job_files("PYT001L9", 1, [("/data", first)], name="before"),
        b"",  # two filemarks in a row: tape file 3 is empty
        *job_files("PYT001L9", 4, [("/data", second)], name="after"),
    ]
    write_tape(library_tape(site.library, "PYT001L9"), files, label="PYT001L9")

    result = site.run("catalog", "rebuild", "--all", "-d", "d0")

    assert "PYT001L9 file 3: empty tape file" in result.stdout
    # crafted tapes were written by host "crafted": --host all (issue 9)
    names = sorted(j["name"] for j in json.loads(site.run("jobs", "--host", "all", "--format", "json").stdout))
    assert names == ["after", "before"]
    assert [r[0] for r in site.search()] == ["/data/a.txt", "/data/b.txt"]
    tapes = {t["label"]: t for t in json.loads(site.run("tapes", "--format", "json").stdout) if t["label"]}
    assert tapes["PYT001L9"]["tape_files"] == 6  # label, 2 + empty + 2: what end of data says
    # The catalog agrees with the tape, so the next backup appends to it.
    src = _tree(tmp_path / "src", "new")
    assert "PYT001L9" in site.run("backup", str(src), "--job", "new").stdout
    out = tmp_path / "out"
    site.run("restore", str(out), "--match", "/data/b.txt", "--host", "all")
    assert (out / "data" / "b.txt").read_text() == "second job\n"


def test_a_tape_in_another_drive_is_read_there(tmp_path: Path) -> None:
    site = Site(tmp_path)
    before = _three_tapes(site)
    changer = VirtualChanger(site.library)
    slot = next(s.number for s in changer.status().slots if s.barcode == "PYT002L9")
    changer.load(slot, 1)  # drive d1 holds tape 2
    site.forget_catalog()

    result = site.run("catalog", "rebuild", "--all", "-d", "d0")

    assert "PYT002L9" in result.stdout.splitlines()[-1]
    assert "3 job(s) added" in result.stdout
    assert site.search() == before
    assert changer.status().drive(1).barcode == "PYT002L9"  # read in place, not moved

    # One tape by name, in the other drive: read there too.
    site.forget_catalog()
    result = site.run("catalog", "rebuild", "--tape", "PYT002L9", "-d", "d0")
    assert "Read 1 tape(s) (PYT002L9): 1 job(s) added" in result.stdout


def test_a_tape_in_a_busy_drive_is_reported_not_skipped_silently(tmp_path: Path) -> None:
    site = Site(tmp_path)
    _three_tapes(site)
    changer = VirtualChanger(site.library)
    if changer.status().drive(0).full:
        changer.unload(None, 0)
    slot = next(s.number for s in changer.status().slots if s.barcode == "PYT003L9")
    changer.load(slot, 1)
    site.forget_catalog()
    # Another pytp holds drive d1 (a process of its own, as in real life).
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_DRIVE, str(site.config), "d1"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = site.run("catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)
    finally:
        holder.kill()
        holder.wait()

    assert "problem: PYT003L9: sits in drive d1, which is in use" in result.stdout
    assert "Read 2 tape(s)" in result.stdout


HOLD_DRIVE = """
import sys, time
from pathlib import Path
from pytp.catalog.config import read_config
from pytp.catalog.devices import drive_lock
config = read_config(Path(sys.argv[1]), "--config")
with drive_lock(config.drive(sys.argv[2])):
    print("held", flush=True)
    time.sleep(600)
"""


def test_recovery_from_headers_spaces_over_data_instead_of_reading_it(tmp_path: Path) -> None:
    """A data file with no manifest: its members come from their headers alone,
    the big one's 24 MiB are passed with ``fsr`` (and nothing is hashed)."""
    site = Site(tmp_path, pools=[{"name": "default", "retention_days": 30}], tapes=1)
    big = b"\x01" * (24 << 20)
    long_name = "data/" + "/".join(["deep-" + "d" * 50] * 12) + "/tail.txt"  # pax path, several records
    archive = tar_bytes(
        [file_member("data/small.txt", b"small\n"), file_member("data/big.bin", big), file_member(long_name, b"x\n")]
    )
    blocks = -(-len(archive) // DEFAULT_BLOCK_SIZE)
    write_tape(library_tape(site.library, "PYT001L9"), [archive], label="PYT001L9")
    drive0 = site.library / "drives" / "0"
    before = read_counters(drive0)

    result = site.run("catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)

    assert "PYT001L9 file 1: data file(s) 1: no manifest describes them" in result.stdout
    assert "3 entries recovered from tar headers (no checksum)" in result.stdout
    after = read_counters(drive0)
    assert blocks >= 48
    assert after.blocks_read - before.blocks_read <= 8  # labels, first blocks, header blocks: not the data
    assert after.fsr > before.fsr
    rows = {r[0]: r for r in site.entries()}
    assert set(rows) == {"/data/small.txt", "/data/big.bin", "/" + long_name}
    assert all(r[1] is None for r in rows.values())
    out = tmp_path / "out"
    site.run("restore", str(out), "--match", "/data/big.bin", "--host", "all")
    assert (out / "data" / "big.bin").read_bytes() == big


def test_a_manifest_on_the_next_tape_takes_over_what_an_earlier_rebuild_recovered(tmp_path: Path) -> None:
    """A job that spanned tapes describes a full tape in a manifest on the next
    one.  Rebuilding the full tape alone can only recover its data from the
    headers; rebuilding the next tape later puts the job's own rows in place."""
    site = Site(tmp_path, pools=[{"name": "default", "retention_days": 30}], tapes=2)
    archive = tar_bytes([file_member("data/a.txt", b"part one\n"), file_member("data/b.txt", b"more\n")])
    *data, manifest = job_files("PYT001L9", 1, [("/data", archive)], name="spanned")
    write_tape(library_tape(site.library, "PYT001L9"), data, label="PYT001L9")
    write_tape(library_tape(site.library, "PYT002L9"), [manifest], label="PYT002L9")

    first = site.run("catalog", "rebuild", "--tape", "PYT001L9", "-d", "d0", expect=EXIT_VERIFY_FAILED)
    assert "PYT001L9 file 1: data file(s) 1: no manifest describes them" in first.stdout
    assert [r[2] for r in site.entries()] == ["recovered-PYT001L9-1"] * 2

    site.run("catalog", "rebuild", "--tape", "PYT002L9", "-d", "d0")
    rows = site.entries()
    assert sorted((r[0], r[2], r[3]) for r in rows) == [
        ("/data/a.txt", "spanned", "ok"),
        ("/data/b.txt", "spanned", "ok"),
    ]
    assert all(r[1] is not None for r in rows)
    assert [j["name"] for j in json.loads(site.run("jobs", "--host", "all", "--format", "json").stdout)] == ["spanned"]


def test_recovery_skips_a_damaged_header_to_the_next_member(tmp_path: Path) -> None:
    """As GNU tar does ("skipping to next header"): one bad header costs its member only."""
    site = Site(tmp_path, pools=[{"name": "default", "retention_days": 30}], tapes=1)
    archive = bytearray(
        tar_bytes(
            [
                file_member("data/first.txt", b"first\n"),
                file_member("data/damaged.txt", b"\0" * 5000),  # zeros inside: not an end of archive
                file_member("data/last.txt", b"last\n"),
            ]
        )
    )
    damaged = archive.index(b"data/damaged.txt")
    archive[damaged] = ord("X")  # one flipped byte: the header's checksum no longer matches
    write_tape(library_tape(site.library, "PYT001L9"), [bytes(archive)], label="PYT001L9")

    out = site.run("catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED).stdout

    assert f"PYT001L9 file 1: no valid tar header at byte {damaged} (bad checksum); skipped to byte" in out
    assert sorted(r[0] for r in site.entries()) == ["/data/first.txt", "/data/last.txt"]
    target = tmp_path / "out"
    site.run("restore", str(target), "--match", "/data/last.txt", "--host", "all")
    assert (target / "data" / "last.txt").read_text() == "last\n"


def test_a_pytp_tape_whose_label_is_zeroed_is_a_problem_not_a_foreign_tape(tmp_path: Path) -> None:
    """A disaster that took the label block too must not lose the tape's jobs without a word."""
    site = Site(tmp_path)
    before = _three_tapes(site)
    label = library_tape(site.library, "PYT002L9") / "file-00000"
    label.write_bytes(bytes(label.stat().st_size))
    # Another program's tape in the library is still only a note.
    foreign = library_tape(site.library, "PYT003L9")
    write_tape(foreign, [tar_bytes([file_member("someone/else.txt", b"not pytp\n")])], label=None)
    site.forget_catalog()

    result = site.run("catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)

    assert "problem: PYT002L9 file 0: " in result.stdout
    assert "tape file 2 holds a pytp manifest" in result.stdout
    assert "its jobs are not in the catalog" in result.stdout
    assert "note: PYT003L9: not a pytp tape, skipped" in result.stdout
    assert "PYT002L9" in result.stderr and "PYT003L9" not in result.stderr
    assert "Traceback" not in result.output
    assert site.search() == [row for row in before if row[2] == "PYT001L9"]


def test_a_damaged_label_member_is_a_problem_even_on_an_otherwise_empty_tape(tmp_path: Path) -> None:
    site = Site(tmp_path)
    write_tape(library_tape(site.library, "PYT001L9"), [], label=b'{"pytp_volume_label": {"label": 5}')

    result = site.run("catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)

    assert "problem: PYT001L9 file 0: The tape's volume label is damaged" in result.stdout


def _job(site: Site) -> dict:
    (job,) = json.loads(site.run("jobs", "--host", "all", "--format", "json").stdout)
    return job


def test_a_data_file_shorter_than_its_manifest_says_makes_the_job_partial(tmp_path: Path) -> None:
    """A tape file cut short (a damaged tape) must not come back whole: the rebuild spaces over its blocks."""
    site = Site(tmp_path)
    src = tmp_path / "src" / "big"
    src.mkdir(parents=True)
    for i in range(4):
        (src / f"f{i}.bin").write_bytes(bytes([i]) * 400_000)
    site.run("backup", str(src), "--pool", "p1")
    data = library_tape(site.library, "PYT001L9") / "file-00001"
    assert data.stat().st_size == 4 * DEFAULT_BLOCK_SIZE
    with open(data, "r+b") as f:
        f.truncate(DEFAULT_BLOCK_SIZE)
    site.forget_catalog()

    result = site.run("catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)

    assert "problem: PYT001L9 file 1: holds fewer than the 4 blocks its manifest names" in result.stdout
    job = _job(site)
    assert job["status"] == "partial"
    assert "data file 1 of tape PYT001L9 is cut short" in site.run("jobs", str(job["id"])).stdout
    # What is before the cut restores; the rest is named, not passed over.
    out = tmp_path / "out"
    restore = site.run("restore", str(out), "--job", str(job["id"]), expect=EXIT_VERIFY_FAILED)
    assert "f3.bin" in restore.output
    assert (out / str(src).lstrip("/") / "f0.bin").read_bytes() == bytes([0]) * 400_000


def _spanned(site: Site, sources: int = 1) -> tuple[Path, list[str]]:
    """A job of ``sources`` directories, 40 MiB in all, on 16 MiB tapes: it spans three."""
    src = site.tmp / "src" / "span"
    for n in range(sources):
        (src / f"d{n}").mkdir(parents=True)
        for i in range(40 // sources):
            (src / f"d{n}" / f"s{i:02d}.bin").write_bytes(os.urandom(1 << 20))
    site.run("backup", *(str(src / f"d{n}") for n in range(sources)), "--pool", "p1", "--job", "span")
    tapes = _job(site)["tapes"]
    assert len(tapes) >= 3, tapes
    return src, tapes


def test_a_spanned_job_whose_first_tape_is_lost_is_partial_and_a_problem(tmp_path: Path) -> None:
    site = Site(tmp_path, tapes=4, tape_size=16 << 20)
    _, tapes = _spanned(site)
    for tape_file in library_tape(site.library, tapes[0]).glob("file-*"):
        tape_file.unlink()  # the first tape is destroyed: it reads blank
    site.forget_catalog()

    result = site.run("catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)

    assert f"its manifest names tape files on {tapes[0]}" in result.stdout
    assert "the job is partial: those members are not in the catalog" in result.stdout
    assert "or use --all" not in result.output
    job = _job(site)
    assert job["status"] == "partial"
    assert f"members on tapes not read: {tapes[0]}" in site.run("jobs", str(job["id"])).stdout


def test_a_spanned_job_is_partial_until_all_its_tapes_are_read_and_then_ok(tmp_path: Path) -> None:
    site = Site(tmp_path, tapes=4, tape_size=16 << 20)
    _, tapes = _spanned(site)
    before = site.search()
    site.forget_catalog()

    last = site.run("catalog", "rebuild", "--tape", tapes[-1], "-d", "d0")  # the final manifest: a note

    others = ", ".join(tapes[:-1])
    assert f"its manifest names tape files on {others}; the job is partial until those tapes are read" in last.stdout
    job = _job(site)
    assert job["status"] == "partial"
    assert f"members on tapes not read: {others}" in site.run("jobs", str(job["id"])).stdout

    site.run("catalog", "rebuild", "--all", "-d", "d0")

    job = _job(site)
    assert job["status"] == "ok", site.run("jobs", str(job["id"])).stdout
    assert "not read" not in site.run("jobs", str(job["id"])).stdout
    assert site.search() == before


def test_a_failed_backup_whose_manifest_reached_tape_stays_failed_with_a_note(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.run("backup", str(_tree(site.tmp / "src", "t1")), "--job", "job1", "--pool", "p1")
    with sqlite3.connect(site.database) as db:
        db.execute("UPDATE job SET status = 'failed', message = 'interrupted'")

    result = site.run("catalog", "rebuild", "--tape", "PYT001L9", "-d", "d0")

    assert "job 1 is failed in the catalog, though its manifest on tape is complete and says ok" in result.stdout
    assert _job(site)["status"] == "failed"


@pytest.mark.parametrize("sources", [1, 2])
def test_a_spanned_job_rebuilt_tape_by_tape_comes_back_whole(tmp_path: Path, sources: int) -> None:
    """README's recipe: `catalog rebuild --tape X` for each tape; a spanned job's first tapes have no manifest."""
    site = Site(tmp_path, tapes=4, tape_size=16 << 20)
    _, tapes = _spanned(site, sources)
    before = site.search()
    site.forget_catalog()

    for tape in tapes:
        site.run("catalog", "rebuild", "--tape", tape, "-d", "d0", expect=None)

    (job,) = json.loads(site.run("jobs", "--host", "all", "--format", "json").stdout)  # no recovered job is left
    assert job["name"] == "span" and job["status"] == "ok", site.run("jobs", str(job["id"])).stdout
    assert site.search() == before
    again = site.run("catalog", "rebuild", "--all", "-d", "d0")
    assert "problem" not in again.stdout and _job(site)["status"] == "ok"


def test_a_tape_the_catalog_knows_with_a_zeroed_label_and_no_manifest_is_a_problem(tmp_path: Path) -> None:
    site = Site(tmp_path)
    _three_tapes(site)
    tape = library_tape(site.library, "PYT002L9")
    (tape / "file-00000").write_bytes(bytes(DEFAULT_BLOCK_SIZE))
    (tape / "file-00002").write_bytes(b"")  # its manifest lost too

    result = site.run("catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)

    assert "problem: PYT002L9 file 0: " in result.stdout and "the catalog has it as tape PYT002L9" in result.stdout
    # Asked for by name, a tape nothing can be read of is not a success either.
    foreign = library_tape(site.library, "PYT003L9")
    write_tape(foreign, [tar_bytes([file_member("someone/else.txt", b"not pytp\n")])], label=None)
    site.forget_catalog()
    named = site.run("catalog", "rebuild", "--tape", "PYT003L9", "-d", "d0", expect=EXIT_VERIFY_FAILED)
    assert "problem: PYT003L9 file 0: " in named.stdout and "not a pytp tape, nothing rebuilt" in named.stdout


def test_a_rebuilt_tape_knows_its_capacity_and_when_it_was_last_written(tmp_path: Path) -> None:
    """`pytp pools` said 0 B free for every rebuilt tape (issue 9 probe)."""
    site = Site(tmp_path)
    _three_tapes(site)
    before = {t["label"]: t for t in json.loads(site.run("tapes", "--format", "json").stdout) if t["label"]}
    site.forget_catalog()

    site.run("catalog", "rebuild", "--all", "-d", "d0")

    after = {t["label"]: t for t in json.loads(site.run("tapes", "--format", "json").stdout) if t["label"]}
    for label in ("PYT001L9", "PYT002L9", "PYT003L9"):
        assert after[label]["capacity"] == before[label]["capacity"] is not None
        assert after[label]["free"] == before[label]["free"]
        assert after[label]["last_written"] is not None


def test_a_rebuild_with_neither_tape_nor_all_and_an_empty_drive_says_what_to_give(tmp_path: Path) -> None:
    site = Site(tmp_path)
    result = site.run("catalog", "rebuild", "-d", "d0", expect=11)
    assert "Error: Drive d0 is empty: give --tape LABEL, or --all for every tape of library lib." in result.stderr
    assert "None" not in result.stderr
