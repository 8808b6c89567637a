"""Damage costs only what is damaged (issue 8, defect 4): a flipped header byte
and an unreadable block in the middle of a job, at the default 512 KiB blocks;
every intact file is restored, each damaged one named, exit 10."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, col, select

from pytp.catalog.database import open_catalog
from pytp.catalog.models import Entry, TapeFile
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from pytp.tapeio.virtual_tape import configure_tape, tape_file_path
from tests.conftest import write_library_config
from tests.crafted_tape import DEFAULT_BLOCK_SIZE


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> tuple[Path, str]:
    return write_library_config(tmp_path / "site", sqlite_url, drives=1, block_size=DEFAULT_BLOCK_SIZE), sqlite_url


def invoke(config: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def two_roots(tmp_path: Path) -> tuple[Path, Path]:
    """Two source roots (two tape files); the first spans several 512 KiB blocks."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for i in range(40):
        (first / f"f{i:02d}.bin").write_bytes(os.urandom(60_000 + i))
    for i in range(5):
        (second / f"s{i}.txt").write_text(f"second {i}\n")
    return first, second


def files_of(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in root.iterdir()}


def entries(url: str) -> list[tuple[Entry, int]]:
    with Session(open_catalog(url)) as session:
        rows = session.exec(
            select(Entry, TapeFile)
            .join(TapeFile, col(TapeFile.id) == Entry.tape_file_id)
            .where(Entry.kind == "file")
            .order_by(col(Entry.offset))
        ).all()
        return [(e, t.file_number) for e, t in rows]


def test_flipped_header_byte_loses_only_that_file(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, url = site
    first, second = two_roots(tmp_path)
    assert invoke(config, "backup", str(first), str(second)).exit_code == 0
    flip_header_byte(config, url, b"/f20.bin")
    out = tmp_path / "out"
    result = invoke(config, "restore", str(out), "--job", "1")
    assert result.exit_code == exitcodes.EXIT_VERIFY_FAILED, result.output
    assert "f20.bin" in result.stderr and "damaged" in result.stderr
    got_first = files_of(out / str(first).lstrip("/"))
    expected = files_of(first)
    del expected["f20.bin"]
    assert got_first == expected  # every other file of that tape file, intact
    assert files_of(out / str(second).lstrip("/")) == files_of(second)  # and the later tape file


def flip_header_byte(config: Path, url: str, name: bytes) -> Path:
    """Flip a byte in the ustar header of member ``name``; return the tape directory."""
    victim, number = next((e, n) for e, n in entries(url) if e.path.endswith(name))
    tape = next(p for p in (config.parent / "lib").rglob("tape.json") if "PYT001" in p.read_text()).parent
    with open(tape_file_path(tape, number), "r+b") as f:
        ustar = victim.offset + victim.header_size - 512
        f.seek(ustar + 3)  # a byte of the member's name: the header checksum no longer matches
        byte = f.read(1)
        f.seek(ustar + 3)
        f.write(bytes([byte[0] ^ 0x40]))
    return tape


def test_raw_restore_of_a_damaged_tape_file_names_the_damage_and_extracts_the_rest(  # type: ignore[no-untyped-def]
    site, tmp_path: Path
) -> None:
    config, url = site
    first, second = two_roots(tmp_path)
    assert invoke(config, "backup", str(first), str(second), "--keep-loaded").exit_code == 0
    flip_header_byte(config, url, b"/f20.bin")
    assert invoke(config, "rewind").exit_code == 0
    assert invoke(config, "ff", "1").exit_code == 0
    out = tmp_path / "out"
    # A file already in the target is refused as well: damage still decides the exit code (10, not 12).
    (out / str(first).lstrip("/")).mkdir(parents=True)
    (out / str(first).lstrip("/") / "f03.bin").write_bytes(b"mine\n")
    result = invoke(config, "restore", str(out))
    assert result.exit_code == exitcodes.EXIT_VERIFY_FAILED, result.output
    assert "damaged tar header" in result.stderr and "f03.bin: exists; not replaced" in result.stderr
    expected = files_of(first)
    del expected["f20.bin"]
    expected["f03.bin"] = b"mine\n"
    assert files_of(out / str(first).lstrip("/")) == expected


def test_unreadable_block_loses_only_the_files_in_it(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, url = site
    first, second = two_roots(tmp_path)
    assert invoke(config, "backup", str(first), str(second)).exit_code == 0
    rows = entries(url)
    bad_block = 2
    hit = {
        e.path.rsplit(b"/", 1)[-1].decode()
        for e, n in rows
        if n == 1
        and e.offset // DEFAULT_BLOCK_SIZE <= bad_block <= (e.offset + e.header_size + e.size - 1) // DEFAULT_BLOCK_SIZE
    }
    assert hit and len(hit) < 20
    tape = next(p for p in (config.parent / "lib").rglob("tape.json") if "PYT001" in p.read_text()).parent
    configure_tape(tape, read_errors=[(1, bad_block)])
    out = tmp_path / "out"
    result = invoke(config, "restore", str(out), "--job", "1")
    assert result.exit_code == exitcodes.EXIT_VERIFY_FAILED, result.output
    for name in hit:
        assert name in result.stderr
    expected = {k: v for k, v in files_of(first).items() if k not in hit}
    got = files_of(out / str(first).lstrip("/"))
    assert {k: v for k, v in got.items() if k not in hit} == expected
    assert files_of(out / str(second).lstrip("/")) == files_of(second)


def _tar_child(pid: int) -> int | None:
    """The pid of an extracting `tar -x` child of ``pid``, if it has one now."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == pid and argv[0] == b"tar" and b"-x" in argv:
            return int(entry)
    return None


def test_ctrl_c_during_restore_exits_130_and_leaves_no_half_written_file(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C while tar writes: exit 130, tar is stopped, nothing half-written stays.

    tar is frozen (SIGSTOP) first, so pytp is certainly in the middle of the
    restore when SIGINT comes, whatever the speed of the machine.
    """
    import signal
    import subprocess
    import sys

    config, _ = site
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"big{i}.bin").write_bytes(os.urandom(8 << 20))
    assert invoke(config, "backup", str(src)).exit_code == 0
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytp.cli.main", "--config", str(config), "restore", str(out), "--job", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tar = None
    while tar is None and proc.poll() is None:
        tar = _tar_child(proc.pid)
    assert tar is not None, "the restore ended before its tar could be seen"
    os.kill(tar, signal.SIGSTOP)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            os.kill(tar, signal.SIGKILL)
    assert proc.returncode == exitcodes.EXIT_INTERRUPTED, stderr
    assert "interrupted" in stderr
    assert not Path(f"/proc/{tar}").exists() or "zombie" in Path(f"/proc/{tar}/status").read_text()
    restored = out / str(src).lstrip("/")
    for path in restored.iterdir() if restored.exists() else []:
        assert path.read_bytes() == (src / path.name).read_bytes(), f"{path.name} was left half-written"


def test_overwrite_never_replaces_a_file_with_data_that_fails_its_checksum(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A flipped data byte on tape: restored in place with --overwrite, the good file on disk
    was replaced by the damaged copy (issue 9 probe); it now stays, and the damage is named."""
    config, url = site
    first, second = two_roots(tmp_path)
    assert invoke(config, "backup", str(first), str(second)).exit_code == 0
    victim, number = next((e, n) for e, n in entries(url) if e.path.endswith(b"/f20.bin"))
    tape = next(p for p in (config.parent / "lib").rglob("tape.json") if "PYT001" in p.read_text()).parent
    with open(tape_file_path(tape, number), "r+b") as f:
        f.seek(victim.offset + victim.header_size + 100)  # a byte of its data
        byte = f.read(1)
        f.seek(victim.offset + victim.header_size + 100)
        f.write(bytes([byte[0] ^ 0xFF]))
    good = (first / "f20.bin").read_bytes()
    (first / "f21.bin").write_bytes(b"changed since\n")  # replaced by the tape's good copy

    result = invoke(config, "restore", "/", "--job", "1", "--match", f"{first}/*", "--overwrite")

    assert result.exit_code == exitcodes.EXIT_VERIFY_FAILED, result.output
    assert "f20.bin: checksum differs from the catalog; the file that was there is kept" in result.stderr
    assert (first / "f20.bin").read_bytes() == good
    assert (first / "f21.bin").read_bytes() != b"changed since\n"
    assert not [p.name for p in first.iterdir() if ".pytp-old-" in p.name]


def test_a_restore_with_problems_reports_them_in_its_summary_and_damage_outranks_a_refusal(  # type: ignore[no-untyped-def]
    site, tmp_path: Path
) -> None:
    """Its JSON summary (the log, the notify hook) said 'files 0, problems []', and a refused
    fifo made the exit code 12 though a file was damaged (issue 9 probe)."""
    config, url = site
    first, second = two_roots(tmp_path)
    os.mkfifo(first / "pipe")
    assert invoke(config, "backup", str(first), str(second)).exit_code == 0
    victim, number = next((e, n) for e, n in entries(url) if e.path.endswith(b"/f20.bin"))
    tape = next(p for p in (config.parent / "lib").rglob("tape.json") if "PYT001" in p.read_text()).parent
    with open(tape_file_path(tape, number), "r+b") as f:
        f.seek(victim.offset + victim.header_size + 100)
        byte = f.read(1)
        f.seek(victim.offset + victim.header_size + 100)
        f.write(bytes([byte[0] ^ 0xFF]))

    result = invoke(config, "restore", str(tmp_path / "out"), "--job", "1", "--format", "json")

    assert result.exit_code == exitcodes.EXIT_VERIFY_FAILED, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed" and summary["files"] > 40 and summary["tapes"] == ["PYT001L9"]
    assert summary["verified"] == 44 and summary["target"] == str(tmp_path / "out")
    problems = {p["path"]: p["message"] for p in summary["problems"]}
    assert problems[f"{first}/f20.bin"] == "checksum differs from the catalog"
    assert any(path.endswith("pipe") for path in problems)


def test_overwrite_keeps_a_good_file_when_its_copy_cut_across_tapes_is_damaged(tmp_path: Path, sqlite_url: str) -> None:
    """A member cut across tapes is fed to a tar of its own: it was not checked against the
    catalog before the file it replaced was let go (issue 9 probe)."""
    config = write_library_config(
        tmp_path / "site", sqlite_url, tapes=4, drives=1, block_size=DEFAULT_BLOCK_SIZE, tape_size=16 << 20
    )
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(24_000_000))  # 16 MiB tapes: cut across two
    assert invoke(config, "backup", str(src)).exit_code == 0
    middle = config.parent / "lib" / "tapes" / "PYT002L9"
    cut = max(middle.glob("file-*"), key=lambda p: p.stat().st_size)  # the continuation of big
    with open(cut, "r+b") as f:
        f.seek(5_000_000)
        byte = f.read(1)
        f.seek(5_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    (src / "big").write_bytes(b"GOOD OLD CONTENT\n")

    result = invoke(config, "restore", "/", "--job", "1", "--match", str(src / "big"), "--overwrite")

    assert result.exit_code == exitcodes.EXIT_VERIFY_FAILED, result.output
    assert "checksum differs from the catalog; the file that was there is kept" in result.stderr
    assert (src / "big").read_bytes() == b"GOOD OLD CONTENT\n"
    assert not [p.name for p in src.iterdir() if ".pytp-old-" in p.name]
