"""The manifest writer on its own (a virtual drive, GNU tar reading the result),
and a large job's manifest produced in bounded memory."""

from __future__ import annotations

import subprocess
import tracemalloc
from pathlib import Path

import pytest

from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select as select_drive
from pytp.catalog.manifest_writer import Spool, manifest_lines, write_manifest
from pytp.tapeio.errors import EndOfMedium
from pytp.tapeio.virtual_drive import VirtualDrive, create_virtual_drive, load_tape, loaded_tape
from pytp.tapeio.virtual_tape import create_virtual_tape, tape_file_path

BLOCK = 512 << 10  # the default block size


def _drive(tmp_path: Path, capacity: int) -> Path:
    drive = create_virtual_drive(tmp_path / "drive")
    load_tape(drive, create_virtual_tape(tmp_path / "tape", "MAN001L9", capacity))
    return drive


def _lines(count: int) -> list[bytes]:
    return [b'{"path":"/data/file-%06d","type":"file"}\n' % n for n in range(count)]


def test_a_manifest_from_any_iterator_of_lines_is_one_tar_member_gnu_tar_reads(tmp_path: Path) -> None:
    drive_dir = _drive(tmp_path, 64 << 20)
    header = b'{"pytp_manifest":1,"job":{"id":1}}\n'
    lines = _lines(30_000)  # about 1.2 MB: more than two 512 KiB blocks
    with VirtualDrive(drive_dir) as drive:
        drive.set_block_size(BLOCK)
        drive.rewind()
        blocks = write_manifest(drive, BLOCK, header, iter(lines))
        with Spool(lines) as spool:  # a spool is written again as often as asked (a retry on the next tape)
            again = [write_manifest(drive, BLOCK, header, spool) for _ in range(2)]
    tape = tmp_path / "tape"
    for number in range(3):
        path = tape_file_path(tape, number)
        assert path.stat().st_size == blocks * BLOCK
        listing = subprocess.run(["tar", "-tf", str(path)], capture_output=True, check=True).stdout
        assert listing == b"PYTP-MANIFEST.jsonl\n"
        content = subprocess.run(["tar", "-xOf", str(path)], capture_output=True, check=True).stdout
        assert content == header + b"".join(lines)
    assert again == [blocks, blocks]
    archive = 512 + -(-len(content) // 512) * 512 + 1024  # header record, padded data, end of archive
    assert blocks == -(-archive // BLOCK)


def test_a_manifest_larger_than_the_tape_ends_in_end_of_medium(tmp_path: Path) -> None:
    drive_dir = _drive(tmp_path, 16 * BLOCK)
    with VirtualDrive(drive_dir) as drive:
        drive.set_block_size(BLOCK)
        drive.rewind()
        with pytest.raises(EndOfMedium):
            write_manifest(drive, BLOCK, b"{}\n", iter(_lines(300_000)))  # about 12 MB on an 8 MiB tape


def test_the_manifest_of_20000_small_files_is_produced_in_bounded_memory(sqlite_lib_config, tmp_path: Path) -> None:
    """The manifest streams from the catalog a batch at a time into its spool: no per-file objects for the whole job.

    Loading every entry through the ORM, as the manifest was built before,
    took about 4 KiB of Python memory per file (a 74 MiB peak for this job's
    backup, against 20 MiB now): the bound leaves room for one batch of
    rows, not for the job's entries.
    """
    source = tmp_path / "many"
    for d in range(20):
        folder = source / f"d{d:02d}"
        folder.mkdir(parents=True)
        for n in range(1000):
            (folder / f"f{n:04d}").write_bytes(b"x")
    engine = open_catalog(sqlite_lib_config.catalog_url)
    options = BackupOptions(sources=[str(source)])
    result = run_backup(engine, sqlite_lib_config, select_drive(sqlite_lib_config), options)
    assert result.status == "ok" and result.files == 20_000 + 21
    tracemalloc.start()
    try:
        with Spool(manifest_lines(engine, result.job_id)) as spool:
            _, peak = tracemalloc.get_traced_memory()
            body = b"".join(spool)
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak >> 20} MiB"
    # ... and it is the manifest the backup wrote after its data (tape file 2), header aside.
    tape = loaded_tape(sqlite_lib_config.drive("d0").device_path)
    assert tape is not None
    on_tape = subprocess.run(["tar", "-xOf", str(tape / "file-00002")], capture_output=True, check=True).stdout
    assert on_tape.split(b"\n", 1)[1] == body
    assert body.count(b"\n") == 20_021
