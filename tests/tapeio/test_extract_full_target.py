"""Guarded extraction into a target that fills up, fed crafted members directly.

tar may create the next member's file (mode 0600, empty) before the restore
learns from tar's stderr that the target is full; that file must go as well.
With ``--overwrite``, a file whose replacement does not fit must stay as it was.
The full target is a real tmpfs (root; skipped loudly elsewhere).
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pytp.tapeio.extract_guard import Member, judge
from pytp.tapeio.gnutar import GuardedExtraction, TargetFull
from tests.conftest import small_filesystem


def member(name: str, size: int, comment_bytes: int = 0) -> Member:
    """A regular file member; a long pax comment makes its header that many bytes longer."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 1_700_000_000
    if comment_bytes:
        info.pax_headers = {"comment": "c" * comment_bytes}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(b"d" * size))
    data = out.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        first = archive.next()
        assert first is not None
        return judge(data[: first.offset_data])


def reader(size: int) -> io.BytesIO:
    return io.BytesIO(b"d" * (-(-size // 512) * 512))


def fill(directory: Path) -> None:
    """Fill the file system of ``directory`` to the last byte."""
    with open(directory / "filler", "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass


def files_in(directory: Path) -> dict[str, tuple[int, int]]:
    """name: (size, permission bits) of every file under ``directory``."""
    return {
        str(p.relative_to(directory)): (p.stat().st_size, stat.S_IMODE(p.stat().st_mode))
        for p in directory.rglob("*")
        if p.is_file()
    }


def test_the_file_tar_made_for_the_next_member_is_removed(tmp_path: Path) -> None:
    """The member that does not fit is small (its data still in the pipe's buffer when the
    next header goes out); the next member's header is long, so tar has read past it, made
    that file and complained about the first by the time it is fed: the stop comes there."""
    with small_filesystem(tmp_path / "out", "1m") as out:
        fill(out)
        before = files_in(out)
        extraction = GuardedExtraction(out)
        first, second = member("a/first", 4096), member("a/second", 100_000, comment_bytes=300_000)
        try:
            with pytest.raises(TargetFull) as stopped:
                extraction.extract(first, reader(first.size).read)
                extraction.extract(second, reader(second.size).read)
                extraction.finish()
            assert stopped.value.member == "a/first"
        finally:
            extraction.abort()
        assert files_in(out) == before  # no empty mode-0600 a/second, nothing of a/first


def test_a_replacement_that_does_not_fit_leaves_the_old_file(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "out", "1m") as out:
        (out / "a").mkdir()
        (out / "a" / "old").write_bytes(b"OLD\n")
        (out / "a" / "later").write_bytes(b"LATER\n")
        fill(out)
        extraction = GuardedExtraction(out, overwrite=True)
        big, later = member("a/old", 300_000), member("a/later", 10)
        try:
            with pytest.raises(TargetFull) as stopped:
                extraction.extract(big, reader(big.size).read)
                extraction.extract(later, reader(later.size).read)
                extraction.finish()
        finally:
            extraction.abort()
        assert (out / "a" / "old").read_bytes() == b"OLD\n"
        assert (out / "a" / "later").read_bytes() == b"LATER\n"
        assert sorted(os.listdir(out / "a")) == ["later", "old"]  # no file left aside
        assert stopped.value.member == "a/old" and getattr(stopped.value, "kept", False)
        assert "the file that was there is kept unchanged" in str(stopped.value)


def test_a_member_named_like_a_tar_complaint_removes_nothing_that_was_there(tmp_path: Path) -> None:
    """tar prints names unquoted in its write errors: ``tar: precious.txt: Cannot write: x: Wrote only…``
    once named the existing ``precious.txt`` as the file to remove (issue 9 probe), without --overwrite."""
    with small_filesystem(tmp_path / "out", "1m") as out:
        (out / "precious.txt").write_bytes(b"PRECIOUS\n")
        big = member("precious.txt: Cannot write: x", 3 << 20)
        extraction = GuardedExtraction(out)
        try:
            with pytest.raises(TargetFull) as stopped:
                extraction.extract(big, reader(big.size).read)
                extraction.finish()
        finally:
            extraction.abort()
        assert (out / "precious.txt").read_bytes() == b"PRECIOUS\n"
        assert sorted(os.listdir(out)) == ["precious.txt"]
        assert stopped.value.member == "precious.txt: Cannot write: x"


def test_a_name_repeated_on_the_tape_loses_no_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "a").write_bytes(b"ORIG\n")
    extraction = GuardedExtraction(target, overwrite=True)
    first, second = member("a", 1), member("a", 2)
    try:
        extraction.extract(first, reader(first.size).read)
        extraction.extract(second, reader(second.size).read)
        extraction.finish()
    finally:
        extraction.close()
    assert (target / "a").read_bytes() == b"d"  # the first one, whole
    assert sorted(os.listdir(target)) == ["a"]
    assert extraction.refused == [("a", "appears again before the first of that name was written; not extracted")]


def test_a_link_that_cannot_be_made_leaves_the_file_in_its_place(tmp_path: Path) -> None:
    from tests.crafted_tape import dir_member, link_member, tar_bytes

    target = tmp_path / "out"
    target.mkdir()
    for name in ("h1", "h2", "s1"):
        (target / name).write_bytes(f"PRECIOUS {name}\n".encode())
    archive = tar_bytes(
        [dir_member("d"), link_member("h1", "missing", hard=True), link_member("h2", "d", hard=True)]
        + [link_member("s1", "x" * 5000)]
    )
    extraction = GuardedExtraction(target, overwrite=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for info in tar.getmembers():
                header = archive[info.offset : info.offset_data]
                extraction.extract(judge(header), io.BytesIO(b"").read)
        extraction.finish()
    finally:
        extraction.close()
    for name in ("h1", "h2", "s1"):
        assert (target / name).read_bytes() == f"PRECIOUS {name}\n".encode(), name
    assert sorted(os.listdir(target)) == ["d", "h1", "h2", "s1"]
    assert len(extraction.problems()) == 3


def test_tar_works_in_the_directory_opened_even_if_its_path_is_swapped_for_a_symlink(tmp_path: Path) -> None:
    """Someone who may rename entries beside the target swaps it for a symlink while the
    tape loads: every file went through it, and the restore said ok (issue 9 probe)."""
    target, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    target.mkdir()
    elsewhere.mkdir()
    extraction = GuardedExtraction(target)
    (tmp_path / "out").rename(tmp_path / "out.real")
    (tmp_path / "out").symlink_to(elsewhere)
    one = member("d/one", 10)
    try:
        extraction.extract(one, reader(one.size).read)
        extraction.finish()
    finally:
        extraction.close()
    assert os.listdir(elsewhere) == []
    assert (tmp_path / "out.real" / "d" / "one").read_bytes() == b"d" * 10


def test_a_directory_member_never_replaces_a_file(tmp_path: Path) -> None:
    from tests.crafted_tape import dir_member, tar_bytes

    target = tmp_path / "out"
    target.mkdir()
    (target / "a").write_bytes(b"PRECIOUS\n")
    archive = tar_bytes([dir_member("a")])
    extraction = GuardedExtraction(target, overwrite=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            (info,) = tar.getmembers()
            assert extraction.extract(judge(archive[info.offset : info.offset_data]), io.BytesIO(b"").read) is False
        extraction.finish()
    finally:
        extraction.close()
    assert (target / "a").read_bytes() == b"PRECIOUS\n"
    assert extraction.refused == [("a", "a file or link is in the place of this directory; not replaced")]


def test_a_hard_link_to_a_file_put_back_is_not_made(tmp_path: Path) -> None:
    """Its target's new content was cut short and the old file put back: linking to it
    replaced another existing file with the old one's content (issue 9 probe)."""
    from pytp.tapeio.errors import BlankTape
    from tests.crafted_tape import link_member, tar_bytes

    target = tmp_path / "out"
    target.mkdir()
    (target / "a").write_bytes(b"OLD_A\n")
    (target / "b").write_bytes(b"OLD_B\n")
    archive = tar_bytes([link_member("b", "a", hard=True)])
    extraction = GuardedExtraction(target, overwrite=True)
    big = member("a", 100_000)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            (info,) = tar.getmembers()
            extraction.extract(judge(archive[info.offset : info.offset_data]), io.BytesIO(b"").read)
        with pytest.raises(BlankTape):
            extraction.extract(big, io.BytesIO(b"d" * 1024).read)  # the tape file ends inside it
        extraction.finish()
    finally:
        extraction.close()
    assert (target / "a").read_bytes() == b"OLD_A\n" and (target / "b").read_bytes() == b"OLD_B\n"
    assert (target / "a").stat().st_ino != (target / "b").stat().st_ino
    assert ("b", "its target was not restored (whole); not linked") in extraction.refused


def test_a_way_turned_into_a_symlink_while_tar_is_behind_is_named_loudly(tmp_path: Path) -> None:
    """GNU tar follows a symlink in the middle of a path: a subdirectory swapped after pytp
    checked it, before tar reached the member, was reported as 'not written whole; removed'
    (issue 9 probe).  It is named as a possible escape, and the restore fails (exit 10)."""
    import signal

    target, outside = tmp_path / "out", tmp_path / "outside"
    (target / "sub").mkdir(parents=True)
    outside.mkdir()
    extraction = GuardedExtraction(target)
    first, evil = member("first", 10), member("sub/evil", 6)
    try:
        extraction.extract(first, reader(first.size).read)
        tar = extraction._tar
        assert tar is not None
        os.kill(tar.process.pid, signal.SIGSTOP)
        try:
            assert extraction.extract(evil, reader(evil.size).read)
            (target / "sub").rename(target / "sub.old")
            (target / "sub").symlink_to(outside)
        finally:
            os.kill(tar.process.pid, signal.SIGCONT)
        extraction.finish()
    finally:
        extraction.close()
    assert extraction.has_damage
    (named,) = [(name, what) for name, what in extraction.problem_pairs() if name == "sub/evil"]
    assert "replaced during the restore" in named[1] and "outside the target" in named[1]


def test_a_hard_link_to_a_file_refused_is_not_made(tmp_path: Path) -> None:
    from tests.crafted_tape import link_member, tar_bytes

    target = tmp_path / "out"
    target.mkdir()
    (target / "f").write_bytes(b"the user's own file\n")
    archive = tar_bytes([link_member("h", "f", hard=True)])
    extraction = GuardedExtraction(target)  # no --overwrite: f is refused
    f = member("f", 4)
    try:
        assert not extraction.extract(f, reader(f.size).read)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            (info,) = tar.getmembers()
            extraction.extract(judge(archive[info.offset : info.offset_data]), io.BytesIO(b"").read)
        extraction.finish()
    finally:
        extraction.close()
    assert sorted(os.listdir(target)) == ["f"]
    assert ("h", "its target was not restored (whole); not linked") in extraction.refused
