"""The restore guard's pure parts: member names, header judgement, and the
no-symlink walk under a real directory."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from pytp.tapeio.extract_guard import DamagedMember, SafeTree, UnsafeMember, judge, safe_name
from pytp.tapeio.tarformat import MemberHeader, build_header, parse_header


def header_of(info: tarfile.TarInfo) -> bytes:
    """The header bytes ``tarfile`` writes for ``info`` (pax format, no data)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(info, io.BytesIO(b"x" * info.size) if info.size else None)
    data = out.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        member = tf.next()
        assert member is not None
        return data[: member.offset_data]


@pytest.mark.parametrize(
    ("name", "safe"),
    [(b"a/b", b"a/b"), (b"a//./b/", b"a/b"), (b"./a", b"a"), (b".", b""), (b"caf\xe9/x", b"caf\xe9/x")],
)
def test_safe_names(name: bytes, safe: bytes) -> None:
    assert safe_name(name) == safe


@pytest.mark.parametrize("name", [b"/etc/passwd", b"../x", b"a/../../x", b"a/..", b"a\0b"])
def test_unsafe_names(name: bytes) -> None:
    with pytest.raises(UnsafeMember):
        safe_name(name)


def test_setuid_bits_are_cleared_in_the_header_tar_will_read() -> None:
    header = build_header(MemberHeader(name=b"bin/tool", kind="file", size=3, mode=0o6755))
    member = judge(header)
    assert member.mode == 0o755
    assert parse_header(member.header).mode == 0o755  # checksum redone: still a valid header
    assert judge(header, allow_special=True).mode == 0o6755


def test_devices_fifos_and_unknown_types_are_refused() -> None:
    device = tarfile.TarInfo("dev/sda")
    device.type = tarfile.BLKTYPE
    with pytest.raises(UnsafeMember, match="allow-special"):
        judge(header_of(device))
    assert judge(header_of(device), allow_special=True).kind == "blockdev"
    odd = tarfile.TarInfo("contiguous")
    odd.type = tarfile.CONTTYPE
    with pytest.raises(UnsafeMember, match="not restored"):
        judge(header_of(odd))


def test_hard_link_out_and_odd_pax_keywords_are_refused() -> None:
    link = tarfile.TarInfo("a")
    link.type, link.linkname = tarfile.LNKTYPE, "../../etc/shadow"
    with pytest.raises(UnsafeMember, match="hard link target"):
        judge(header_of(link))
    sneaky = tarfile.TarInfo("ok.txt")
    sneaky.pax_headers = {"GNU.dumpdir": "x", "VENDOR.path": "../evil"}
    with pytest.raises(UnsafeMember, match="VENDOR.path"):
        judge(header_of(sneaky))


def test_damaged_or_mis_sized_headers_are_damage() -> None:
    header = bytearray(build_header(MemberHeader(name=b"f", kind="file", size=1)))
    header[-512 + 5] ^= 0x01
    with pytest.raises(DamagedMember):
        judge(bytes(header))
    good = build_header(MemberHeader(name=b"f", kind="file", size=1))
    with pytest.raises(DamagedMember, match="bytes of headers"):
        judge(good + b"\0" * 512)  # the catalog says the headers are longer than they are


def test_the_walk_never_follows_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "real").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (target / "link").symlink_to(tmp_path / "outside")
    (target / "inside-link").symlink_to("real")
    tree = SafeTree(target)
    try:
        assert tree.lstat(b"real/missing") is None
        for name in (b"link/x", b"inside-link/x", b"link/deeper/x"):
            with pytest.raises(UnsafeMember, match="symlink"):
                tree.lstat(name)
        fd = tree.open_parent(b"new/dirs/file", create=True)
        assert fd is not None
        os.close(fd)
        assert (target / "new" / "dirs").is_dir()
    finally:
        tree.close()
    assert list((tmp_path / "outside").iterdir()) == []
