"""A job three times a cartridge's capacity spans four tapes, loaded by the
changer without a prompt; restore, verify and rebuild treat a member cut
across tapes as one file."""

from __future__ import annotations

import json
import os
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
    (src / "big1.bin").write_bytes(os.urandom(11 << 20))
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
        data = spanned.library / "tapes" / f"PYT00{number}L9" / "file-00001"
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
    # The part manifest of the first tape names the cut.
    manifest = subprocess.run(
        ["tar", "-xOf", str(spanned.library / "tapes" / "PYT001L9" / "file-00002")], capture_output=True, check=True
    ).stdout.splitlines()
    assert json.loads(manifest[0])["job"]["final"] is False
    assert any("cut" in json.loads(line) for line in manifest[1:])


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
    from pytp.tapeio.virtual_drive import create_virtual_drive, create_virtual_tape, load_tape, unload_tape

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
