"""The restore guard reads headers with pytp's own parser (issue 9): it judges
every header variant pytp writes as tarfile did, refuses every hostile one as
damaged, and keeps a stream reader in step over refused members."""

from __future__ import annotations

import io
import tarfile

import pytest

from pytp.tapeio.extract_guard import DamagedMember, UnsafeMember, judge
from pytp.tapeio.tarformat import RECORD, build_header, padded
from tests.tapeio.test_tarformat import HOSTILE, VARIANTS


@pytest.mark.parametrize(("header", "length"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_every_variant_is_judged_as_tarfile_reads_it(header, length) -> None:  # type: ignore[no-untyped-def]
    encoded = build_header(header)
    if header.name.startswith(b"../") or header.kind in ("fifo",):
        with pytest.raises(UnsafeMember):
            judge(encoded)
        return
    member = judge(encoded)
    with tarfile.open(fileobj=io.BytesIO(encoded + b"\0" * (padded(header.size) + 2 * RECORD))) as archive:
        info = archive.next()
    assert info is not None
    assert member.name == b"/".join(p for p in header.name.split(b"/") if p)
    assert member.kind == header.kind
    assert member.size == (info.size if header.kind == "file" else 0)
    assert member.mtime_ns == header.mtime_ns  # exact (tarfile's float lost nanoseconds)
    assert (member.uid, member.gid, member.mode) == (info.uid, info.gid, info.mode)


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_headers_are_damage(data: bytes) -> None:
    with pytest.raises(DamagedMember, match="damaged tar header"):
        judge(data)


def _typed(flag: bytes, name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(b"x" * size))
    block = bytearray(out.getvalue()[:RECORD])
    block[156:157] = flag
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def test_refused_types_say_how_much_data_to_pass_over() -> None:
    with pytest.raises(UnsafeMember, match="type b'V' is not restored") as unknown:
        judge(_typed(b"V", "volume-label", 1000))
    assert unknown.value.skip == 1024  # unknown types carry their data, as POSIX says
    with pytest.raises(UnsafeMember, match="type b'7' is not restored") as contiguous:
        judge(_typed(b"7", "contiguous", 10))
    assert contiguous.value.skip == 512
    with pytest.raises(UnsafeMember) as fifo:
        judge(_typed(b"6", "a-fifo", 0))
    assert fifo.value.skip == 0


def test_old_style_regular_files_and_directories() -> None:
    assert judge(_typed(b"\0", "old-file", 3)).kind == "file"
    directory = judge(_typed(b"\0", "old-dir/", 0))
    assert (directory.kind, directory.name) == ("dir", b"old-dir")


def test_a_global_pax_header_is_judged_with_the_member() -> None:
    records = b"20 VENDOR.path=../x\n"
    head = bytearray(_typed(b"g", "global", len(records)))
    data = bytes(head) + records.ljust(RECORD, b"\0") + _typed(b"0", "ok.txt", 1)
    with pytest.raises(UnsafeMember, match="VENDOR.path"):
        judge(data)
