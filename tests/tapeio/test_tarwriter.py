"""The archive writer's per-file path (issue 9): a small file is read, hashed
and written with one call each, a larger one in chunks; either way the member
is recorded with the checksum of exactly what went to tape, GNU tar reads the
archive back at the default 512 KiB block size, and a file that grows, shrinks
or cannot be read while it is stored keeps the archive valid and stays out of
the catalog.  The faults are real files whose size lies (``/proc``, ``/sys``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pytp.tapeio.blockio import BlockAssembler
from pytp.tapeio.hashing import hash_file
from pytp.tapeio.tarformat import END_OF_ARCHIVE, RECORD, parse_header
from pytp.tapeio.tarwriter import SMALL_FILE, ArchiveWriter, MemberRecord, Problem

BLOCK = 512 << 10  # the default block size
SECOND = 1_000_000_000


def archive(paths: list[Path]) -> tuple[bytes, list[MemberRecord], list[Problem]]:
    """The archive of ``paths`` (each added alone), its records and problems."""
    chunks: list[bytes] = []
    records: list[MemberRecord] = []
    problems: list[Problem] = []
    out = BlockAssembler(chunks.append, BLOCK)
    writer = ArchiveWriter(out, records.append, problems.append)
    for path in paths:
        writer.add(os.fsencode(path), os.lstat(path))
    out.write(END_OF_ARCHIVE)
    out.finish()
    return b"".join(chunks), records, problems


def tar_list(data: bytes, tmp_path: Path) -> list[str]:
    tape_file = tmp_path / "archive.tar"
    tape_file.write_bytes(data)
    done = subprocess.run(["tar", "-b", "1024", "-tf", str(tape_file)], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


SIZES = [0, 1, 511, 512, 513, 4096, SMALL_FILE - 1, SMALL_FILE, SMALL_FILE + 1, 3 * SMALL_FILE + 17]


def test_files_small_and_large_are_recorded_as_gnu_tar_reads_them(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for size in SIZES:
        path = src / f"f{size}"
        path.write_bytes(os.urandom(size))
        os.utime(path, ns=(SECOND, 1_600_000_000 * SECOND))  # whole seconds: one 512-byte header
        paths.append(path)
    data, records, problems = archive(paths)
    assert problems == []
    assert [r.path for r in records] == [os.fsencode(p) for p in paths]
    for record, path in zip(records, paths, strict=True):
        assert record.header_size == RECORD
        assert record.xxh3 == hash_file(path)
        header = parse_header(data[record.offset : record.offset + record.header_size])
        assert header.size == record.size == path.stat().st_size
        start = record.offset + record.header_size
        assert data[start : start + record.size] == path.read_bytes()
    assert tar_list(data, tmp_path) == [str(p).lstrip("/") for p in paths]
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-b", "1024", "-xf", str(tmp_path / "archive.tar"), "-C", str(out)], check=True)
    for path in paths:
        copy = out / str(path).lstrip("/")
        assert copy.read_bytes() == path.read_bytes()
        assert copy.stat().st_mtime_ns == path.stat().st_mtime_ns


def _lying_file(path: str) -> Path:
    if not os.path.exists(path):
        pytest.skip(f"{path} is not on this machine: no file whose size lies to test with")
    return Path(path)


@pytest.mark.parametrize(
    ("liar", "problem"),
    [
        ("/proc/self/stat", "changed while being read"),  # size 0, yet it has bytes
        ("/sys/kernel/mm/transparent_hugepage/enabled", "shrank while being read"),  # size 4096, a line of text
        ("/proc/self/mem", "read error at byte 0"),  # EIO at offset 0
    ],
    ids=["grew", "shrank", "read-error"],
)
def test_a_file_that_lies_keeps_the_archive_valid_and_stays_out_of_the_catalog(
    tmp_path: Path, liar: str, problem: str
) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    before.write_bytes(b"b" * 100)
    after.write_bytes(b"a" * 5000)
    data, records, problems = archive([before, _lying_file(liar), after])
    assert [r.path for r in records] == [os.fsencode(before), os.fsencode(after)]
    assert [p.path for p in problems] == [os.fsencode(liar)]
    assert problems[0].message.startswith(problem) and "not recorded as backed up" in problems[0].message
    # The member is there with the size its header promised: tar stays in step.
    assert tar_list(data, tmp_path) == [str(before).lstrip("/"), liar.lstrip("/"), str(after).lstrip("/")]
    last = records[-1]
    assert data[last.offset + last.header_size :][:5000] == b"a" * 5000
