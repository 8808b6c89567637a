"""A job three times a cartridge's capacity spans four tapes, loaded by the
changer without a prompt; restore, verify and rebuild treat a member cut
across tapes as one file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytp.cli.main import cli
from tests.conftest import write_library_config

TAPE = 8 << 20
BLOCK = 64 << 10


@pytest.fixture
def spanned(tmp_path: Path, catalog_url: str):  # type: ignore[no-untyped-def]
    return _spanned_job(tmp_path, catalog_url)


@pytest.fixture
def spanned_sqlite(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    return _spanned_job(tmp_path, sqlite_url)


def _spanned_job(tmp_path: Path, catalog_url: str):  # type: ignore[no-untyped-def]
    config = write_library_config(tmp_path / "site", catalog_url, tapes=6, slots=8, tape_size=TAPE, block_size=BLOCK)

    def run(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    src = tmp_path / "src"
    (src / "small").mkdir(parents=True)
    (src / "big1.bin").write_bytes(os.urandom(13 << 20))
    (src / "big2.bin").write_bytes(os.urandom(9 << 20))
    for i in range(150):
        (src / "small" / f"f{i:03d}.dat").write_bytes(os.urandom(20_000 + i * 10))
    other = tmp_path / "other"
    other.mkdir()
    (other / "after.txt").write_text("a second source after the spanned one\n")
    out = run("backup", str(src), str(other), "--job", "big").stdout
    run.src, run.other, run.out, run.tmp = src, other, out, tmp_path  # type: ignore[attr-defined]
    run.library = tmp_path / "site" / "lib"  # type: ignore[attr-defined]
    return run


def test_job_of_three_capacities_spans_four_tapes(spanned) -> None:  # type: ignore[no-untyped-def]
    assert "Job 1 ok" in spanned.out
    jobs = json.loads(spanned("jobs", "--format", "json").stdout)
    assert jobs[0]["status"] == "ok"
    assert jobs[0]["tapes"] == ["PYT001L9", "PYT002L9", "PYT003L9", "PYT004L9"]
    tapes = {t["label"]: t for t in json.loads(spanned("tapes", "--format", "json").stdout)}
    assert [tapes[f"PYT00{i}L9"]["status"] for i in (1, 2, 3)] == ["full"] * 3
    # Search shows each file once, at its first part.
    found = json.loads(spanned("search", "big1.bin", "--format", "json").stdout)
    assert len(found) == 1 and found[0]["tape"] == "PYT001L9"


def test_whole_job_and_a_cut_file_restore_identical(spanned) -> None:  # type: ignore[no-untyped-def]
    out = spanned.tmp / "whole"
    result = spanned("restore", str(out), "--job", "1").stdout
    assert "PYT004L9" in result
    for source in (spanned.src, spanned.other):
        diff = subprocess.run(["diff", "-r", str(source), str(out / str(source).lstrip("/"))], capture_output=True)
        assert diff.returncode == 0, diff.stdout[:1000]
    one = spanned.tmp / "one"
    spanned("restore", str(one), "--match", "big1.bin")
    copy = one / str(spanned.src / "big1.bin").lstrip("/")
    assert copy.read_bytes() == (spanned.src / "big1.bin").read_bytes()


def test_verify_reads_every_part(spanned) -> None:  # type: ignore[no-untyped-def]
    out = spanned("verify", "--job", "1").stdout
    assert "0 problem(s)" in out
    assert "PYT001L9, PYT002L9, PYT003L9, PYT004L9" in out


def test_gnu_tar_extracts_every_member_whole_on_one_tape(spanned) -> None:  # type: ignore[no-untyped-def]
    checked = 0
    for number in range(1, 5):
        tape = spanned.library / "tapes" / f"PYT00{number}L9"
        # After the label: the part manifest of the tape before (tapes 2-4), then the data.
        kinds = [_member(f) for f in sorted(tape.glob("file-*"))[1:]]
        data = tape / f"file-{kinds.index('data') + 1:05d}"
        if number > 1:
            assert kinds[0] == "PYTP-MANIFEST.jsonl"
        with tarfile.open(data, errors="surrogateescape") as archive:  # pax comments show continuations
            members = []
            try:
                for member in archive:
                    members.append(member)
            except tarfile.ReadError:
                pass
        cut_at_end = subprocess.run(["tar", "-tf", str(data)], capture_output=True).returncode != 0
        whole = members[:-1] if cut_at_end else members
        if whole and "pytp continuation" in whole[0].pax_headers.get("comment", ""):
            assert number > 1
            whole = whole[1:]
        out = spanned.tmp / f"by-tar-{number}"
        out.mkdir()
        subprocess.run(["tar", "-xf", str(data), "-C", str(out)], capture_output=True)
        for member in whole:
            if member.isfile():
                original = Path("/" + member.name)
                assert (out / member.name).read_bytes() == original.read_bytes(), member.name
                checked += 1
    assert checked >= 152 - 3  # every file but the (at most three) cut between the four tapes
    # The part manifest of the first tape is the second tape's first file and names the cut.
    manifest = subprocess.run(
        ["tar", "-xOf", str(spanned.library / "tapes" / "PYT002L9" / "file-00001")], capture_output=True, check=True
    ).stdout.splitlines()
    header = json.loads(manifest[0])["job"]
    assert header["final"] is False
    assert header["describes"]["label"] == "PYT001L9" and header["volume"]["label"] == "PYT002L9"
    lines = [json.loads(line) for line in manifest[1:]]
    assert any("cut" in line for line in lines)
    assert {line["tape"] for line in lines if "type" in line} == {"PYT001L9"}


def _member(path: Path) -> str:
    """The first member's name of a tape file, or "data" when it is not a one-member pytp file."""
    names = subprocess.run(["tar", "-tf", str(path)], capture_output=True).stdout.decode().split()
    return names[0] if names and names[0].startswith("PYTP-") else "data"


def test_rebuild_recreates_the_parts(spanned_sqlite) -> None:  # type: ignore[no-untyped-def]
    spanned = spanned_sqlite
    before = json.loads(spanned("search", "/", "--format", "json").stdout)
    config = json.loads((spanned.tmp / "site" / "config.json").read_text())
    database = Path(config["catalog"]["url"].removeprefix("sqlite:///"))
    for leftover in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        leftover.unlink(missing_ok=True)
    out = spanned("catalog", "rebuild", "--all", "-d", "d0").stdout
    assert "1 job(s) added" in out
    after = json.loads(spanned("search", "/", "--format", "json").stdout)
    key = lambda r: (r["path"], r["xxh3"], r["tape"], r["tape_file"], r["offset"])  # noqa: E731
    assert sorted(map(key, after)) == sorted(map(key, before))
    assert json.loads(spanned("jobs", "--format", "json").stdout)[0]["status"] == "ok"
    target = spanned.tmp / "rebuilt"
    spanned("restore", str(target), "--job", "1")
    diff = subprocess.run(["diff", "-r", str(spanned.src), str(target / str(spanned.src).lstrip("/"))])
    assert diff.returncode == 0
    assert "0 problem(s)" in spanned("verify", "--job", "1").stdout


def test_a_drive_without_changer_asks_for_the_next_tape(tmp_path: Path, sqlite_url: str) -> None:
    from pytp.catalog.backup import BackupOptions, run_backup
    from pytp.catalog.config import read_config
    from pytp.catalog.database import open_catalog
    from pytp.catalog.devices import select
    from pytp.catalog.errors import TapeFull, WrongTape
    from pytp.catalog.restore import RestoreOptions, run_restore
    from pytp.tapeio.virtual_drive import create_virtual_drive, load_tape, unload_tape
    from pytp.tapeio.virtual_tape import create_virtual_tape

    drive = create_virtual_drive(tmp_path / "drive")
    tapes = [create_virtual_tape(tmp_path / f"t{i}", f"SOLO0{i}L9", TAPE) for i in (1, 2, 3)]
    load_tape(drive, tapes[0])
    config_path = tmp_path / "config.json"
    config_path.write_text(
        json.dumps(
            {
                "catalog": {"url": sqlite_url},
                "tape_drives": [{"name": "solo", "device_path": str(drive), "block_size": BLOCK, "type": "virtual"}],
            }
        )
    )
    config = read_config(config_path, "--config")
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(TAPE + (2 << 20)))
    requests: list[str] = []

    def operator(request: str) -> bool:
        requests.append(request)
        unload_tape(drive)
        load_tape(drive, tapes[len(requests)])  # the next cartridge goes in
        return True

    engine = open_catalog(config.catalog_url)
    result = run_backup(engine, config, select(config), BackupOptions(sources=[str(src)], ask_for_tape=operator))
    assert result.status == "ok" and len(result.tapes) == 2  # no barcodes here: generated labels
    first = next(t for t in result.tapes if f"Tape {t} is full. Insert a blank tape" in requests[0])
    second = next(t for t in result.tapes if t != first)
    assert len(requests) == 1
    # Without anybody to ask, the same situation fails the job with that request.
    unload_tape(drive)
    load_tape(drive, tapes[2])
    with pytest.raises(TapeFull, match="Nobody could be asked"):
        run_backup(engine, config, select(config), BackupOptions(sources=[str(src)]))
    # Restoring the cut file from a drive without changer says which tape to load next.
    unload_tape(drive)
    load_tape(drive, tapes[0])
    with pytest.raises(WrongTape, match=f"Load tape {second}"):
        run_restore(engine, config, select(config), RestoreOptions(target=str(tmp_path / "out"), patterns=["big"]))


# --------------------------------------------------------------------------
# Spanning at the default block size, whatever the early-warning zone (issue 8)
#
# The part manifest of a full tape opens the next tape and a final manifest
# that does not fit goes to the next tape (docs/format.md, "Spanning"), so a
# job spans tapes whatever the block size, the early-warning zone (none at
# all with the end_of_medium_at fault) or the number of files per tape.

DEFAULT_BLOCK = 512 << 10  # what a new user gets (catalog/config.py)


def _site(  # type: ignore[no-untyped-def]
    tmp_path: Path, url: str, *, tapes: int, tape_size: int, block_size: int = DEFAULT_BLOCK
):
    config = write_library_config(
        tmp_path / "site", url, tapes=tapes, slots=tapes + 2, tape_size=tape_size, block_size=block_size, drives=1
    )

    def run(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    run.tmp = tmp_path  # type: ignore[attr-defined]
    run.tapes = tmp_path / "site" / "lib" / "tapes"  # type: ignore[attr-defined]
    run.database = Path(url.removeprefix("sqlite:///"))  # type: ignore[attr-defined]
    return run


def _random_tree(root: Path, sizes: list[int], seed: int = 8) -> Path:
    rnd = __import__("random").Random(seed)
    root.mkdir(parents=True)
    for i, size in enumerate(sizes):
        (root / f"f{i:05d}.bin").write_bytes(rnd.randbytes(size))
    return root


def _job_tapes(run) -> list[str]:  # type: ignore[no-untyped-def]
    jobs = json.loads(run("jobs", "--format", "json").stdout)
    assert jobs[0]["status"] == "ok", jobs[0]
    return jobs[0]["tapes"]


def _assert_restores_identical(run, src: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    out = run.tmp / name
    run("restore", str(out), "--job", "1")  # restore extracts with GNU tar
    diff = subprocess.run(["diff", "-r", str(src), str(out / str(src).lstrip("/"))], capture_output=True)
    assert diff.returncode == 0, diff.stdout[:2000]


def _assert_rebuild_gives_the_same_catalog(run, src: Path) -> None:  # type: ignore[no-untyped-def]
    key = lambda r: (r["path"], r["xxh3"], r["tape"], r["tape_file"], r["offset"])  # noqa: E731
    before = sorted(map(key, json.loads(run("search", "/", "--format", "json").stdout)))
    for leftover in (run.database, Path(f"{run.database}-wal"), Path(f"{run.database}-shm")):
        leftover.unlink(missing_ok=True)
    out = run("catalog", "rebuild", "--all").stdout
    assert "1 job(s) added" in out, out
    after = sorted(map(key, json.loads(run("search", "/", "--format", "json").stdout)))
    assert after == before
    _assert_restores_identical(run, src, "after-rebuild")


def _part_manifest(run, tape: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """The header of the manifest that opens ``tape`` (its file 1)."""
    text = subprocess.run(["tar", "-xOf", str(run.tapes / tape / "file-00001")], capture_output=True, check=True)
    return json.loads(text.stdout.splitlines()[0])["job"]


def test_issue_8_a_170_mb_job_spans_64_mib_tapes_at_512_kib_blocks(tmp_path: Path, sqlite_url: str) -> None:
    run = _site(tmp_path, sqlite_url, tapes=4, tape_size=64 << 20)
    src = _random_tree(tmp_path / "src", [10 << 20] * 17)
    run("backup", str(src))
    tapes = _job_tapes(run)
    assert tapes == ["PYT001L9", "PYT002L9", "PYT003L9"]
    # Every tape after the first opens with the part manifest of the tape before it.
    for before, tape in zip(tapes, tapes[1:]):
        header = _part_manifest(run, tape)
        assert header["final"] is False and header["describes"]["label"] == before
    _assert_restores_identical(run, src, "out")
    _assert_rebuild_gives_the_same_catalog(run, src)


def test_issue_8_a_48_mb_job_spans_16_mib_tapes_at_512_kib_blocks(tmp_path: Path, sqlite_url: str) -> None:
    # Before the fix: exit 7, the manifest refused after spacing to end of data.
    run = _site(tmp_path, sqlite_url, tapes=6, tape_size=16 << 20)
    src = _random_tree(tmp_path / "src", [1 << 20] * 48)
    run("backup", str(src))
    assert len(_job_tapes(run)) == 4
    _assert_restores_identical(run, src, "out")
    _assert_rebuild_gives_the_same_catalog(run, src)


@pytest.mark.parametrize(
    "data_blocks, tapes",
    [
        (30, ["PYT001L9"]),  # the manifest's one write passes early warning: written, as st does
        (31, ["PYT001L9", "PYT002L9"]),  # the tape is full: the final manifest goes to the next tape
    ],
)
def test_a_job_whose_data_ends_just_before_early_warning_finishes(
    tmp_path: Path, sqlite_url: str, data_blocks: int, tapes: list[str]
) -> None:
    run = _site(tmp_path, sqlite_url, tapes=3, tape_size=16 << 20)  # 32 blocks, early warning in the last one
    # One file whose archive is exactly data_blocks blocks, after the label's one.
    src = _random_tree(tmp_path / "src", [data_blocks * DEFAULT_BLOCK - (64 << 10)])
    out = run("backup", str(src)).stdout
    assert f"PYT001L9 file 1: {src} ({data_blocks} blocks)" in out
    assert _job_tapes(run) == tapes
    if len(tapes) == 2:
        assert not (run.tapes / "PYT001L9" / "file-00002").exists()  # the cut manifest is withdrawn
        assert _part_manifest(run, "PYT002L9")["final"] is True
    _assert_restores_identical(run, src, "out")
    _assert_rebuild_gives_the_same_catalog(run, src)


def test_a_tape_without_early_warning_zone_ends_the_data_and_the_manifest_follows(
    tmp_path: Path, sqlite_url: str
) -> None:
    """faults.end_of_medium_at: the tape ends right after the data, no room for a manifest at all."""
    from pytp.tapeio.virtual_tape import configure_tape

    run = _site(tmp_path, sqlite_url, tapes=3, tape_size=16 << 20)
    configure_tape(run.tapes / "PYT001L9", end_of_medium_at=8 * DEFAULT_BLOCK)
    src = _random_tree(tmp_path / "src", [7 * DEFAULT_BLOCK - (64 << 10)])
    run("backup", str(src))
    assert _job_tapes(run) == ["PYT001L9", "PYT002L9"]
    assert (run.tapes / "PYT001L9" / "file-00001").stat().st_size == 7 * DEFAULT_BLOCK
    _assert_restores_identical(run, src, "out")
    _assert_rebuild_gives_the_same_catalog(run, src)


@pytest.mark.parametrize(
    "block_size, sizes",
    [
        (16 << 10, [100_000, 300_000] + [300] * 400),  # many files per tape, tapes of 256 KiB
        (DEFAULT_BLOCK, [5 << 20, 9 << 20] + [2000] * 2000),
    ],
    ids=["16KiB", "512KiB"],
)
def test_tapes_of_16_blocks_span_at_any_block_size(
    tmp_path: Path, sqlite_url: str, block_size: int, sizes: list[int]
) -> None:
    run = _site(tmp_path, sqlite_url, tapes=8, tape_size=16 * block_size, block_size=block_size)
    # A tape without early-warning zone among them.
    from pytp.tapeio.virtual_tape import configure_tape

    configure_tape(run.tapes / "PYT002L9", end_of_medium_at=11 * block_size + 100)
    src = _random_tree(tmp_path / "src", sizes)
    run("backup", str(src))
    assert len(_job_tapes(run)) >= 3
    _assert_restores_identical(run, src, "out")
    _assert_rebuild_gives_the_same_catalog(run, src)


def test_verify_of_a_job_on_four_tapes_marks_only_the_damaged_one_failed(tmp_path: Path, sqlite_url: str) -> None:
    """Each tape's last verify says what was found on that tape: damage on the third of a job's
    four tapes does not mark the other three failed (scrub would set them aside)."""
    run = _site(tmp_path, sqlite_url, tapes=6, tape_size=16 << 20)
    src = _random_tree(tmp_path / "src", [1 << 20] * 48)
    run("backup", str(src))
    tapes = _job_tapes(run)
    assert len(tapes) == 4
    data = run.tapes / tapes[2] / "file-00002"  # after the part manifest of the tape before
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # mid-tape: inside a member wholly on this tape
    data.write_bytes(bytes(damaged))

    out = run("verify", "--job", "1", expect=10).stdout
    assert "checksum mismatch" in out
    verdicts = {t["label"]: t for t in json.loads(run("tapes", "--format", "json").stdout)}
    assert [verdicts[label]["last_verify_result"] for label in tapes] == ["ok", "ok", "failed", "ok"]
    with sqlite3.connect(run.database) as db:
        messages = dict(db.execute("SELECT label, last_verify_message FROM volume").fetchall())
    assert "checksum mismatch" in messages[tapes[2]]
    checked = [int(messages[label].split()[0]) for label in tapes if label != tapes[2]]
    assert all(0 < n < 48 for n in checked), messages  # each tape counts its own members, not the job's
