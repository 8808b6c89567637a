"""The guard sees the tree as it is at each member, not as it was (issue 9).

The parent chain of each destination is opened in one ``openat2`` call that
follows no symlink (the component walk where the kernel has none).  A way
that was a real directory for one member and is a symlink, or a file, by the
next must be refused then, whoever swapped it: nothing of the check may be
remembered from member to member.  Both ways of opening (``openat2`` and the
walk) are run on each case and must answer alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytp.tapeio import extract_guard
from pytp.tapeio.extract_guard import SafeTree, UnsafeMember, judge
from pytp.tapeio.gnutar import GuardedExtraction
from pytp.tapeio.tarformat import MemberHeader, build_header

WAYS = ["openat2", "walk"]


@pytest.fixture(params=WAYS)
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "walk":
        monkeypatch.setattr(extract_guard, "_openat2", None)
    elif extract_guard._openat2 is None:
        pytest.fail("openat2 is not available on this Linux: the guard walks every component")
    return str(request.param)


def _file(name: bytes) -> extract_guard.Member:
    return judge(build_header(MemberHeader(name=name, kind="file", size=1, mode=0o644)))


def _site(tmp_path: Path) -> tuple[Path, Path]:
    target, outside = tmp_path / "target", tmp_path / "outside"
    (target / "a" / "b").mkdir(parents=True)
    (outside / "b").mkdir(parents=True)  # the same shape: only the place differs
    return target, outside


@pytest.mark.parametrize("swapped", ["a", "a/b"])
def test_a_directory_swapped_for_a_symlink_between_members_is_refused(tmp_path: Path, way: str, swapped: str) -> None:
    target, outside = _site(tmp_path)
    tree = SafeTree(target)
    try:
        assert tree.lstat(b"a/b/first") is None  # the way is checked and fine
        (target / swapped).rename(target / "moved-away")
        (target / swapped).symlink_to(outside / "b" if swapped == "a/b" else outside)
        with pytest.raises(UnsafeMember, match=f"{swapped} is a symlink"):
            tree.lstat(b"a/b/second")
        with pytest.raises(UnsafeMember, match="symlink"):
            tree.open_parent(b"a/b/third", create=True)
    finally:
        tree.close()
    assert [p.name for p in outside.rglob("*")] == ["b"]


def test_a_directory_swapped_for_a_file_between_members_is_refused(tmp_path: Path, way: str) -> None:
    target, _ = _site(tmp_path)
    tree = SafeTree(target)
    try:
        assert tree.lstat(b"a/b/first") is None
        (target / "a" / "b").rename(target / "moved-away")
        (target / "a" / "b").write_bytes(b"not a directory")
        with pytest.raises(UnsafeMember, match="a/b is a symlink or not a directory"):
            tree.lstat(b"a/b/second")
    finally:
        tree.close()


def test_the_extraction_refuses_a_member_whose_way_was_swapped_after_the_last_one(tmp_path: Path, way: str) -> None:
    """As the restore feeds tar: one member admitted, the way swapped, the next refused by name."""
    target, outside = _site(tmp_path)
    extraction = GuardedExtraction(target)
    try:
        assert extraction.admit(_file(b"a/b/first"))
        (target / "a").rename(target / "moved-away")
        (target / "a").symlink_to(outside)
        assert not extraction.admit(_file(b"a/b/second"))
        assert [name for name, _ in extraction.refused] == ["a/b/second"]
        assert "a is a symlink" in extraction.refused[0][1]
    finally:
        extraction.close()


def test_both_ways_answer_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Missing parts, symlinks at every depth, a file on the way, ``..`` and created directories."""
    target, outside = _site(tmp_path)
    (target / "a" / "b" / "c").mkdir()
    (target / "a" / "link").symlink_to("b")
    (target / "a" / "b" / "out").symlink_to(outside)
    (target / "a" / "file").write_bytes(b"x")
    names = [
        b"top", b"a/b/c/x", b"a/b/missing/x", b"missing/deeper/x", b"a/link/x", b"a/b/out/x",
        b"a/b/out/b/x", b"a/file/x", b"a/../a/b/x", b"a/b/c/../../b/x",
    ]  # fmt: skip

    def answers() -> list[object]:
        tree = SafeTree(target)
        out: list[object] = []
        try:
            for name in names:
                try:
                    st = tree.lstat(name)
                    out.append(None if st is None else (st.st_dev, st.st_ino))
                except UnsafeMember as err:
                    out.append(str(err))
            fd = tree.open_parent(b"a/b/c/new/deeper/file", create=True)
            assert fd is not None
            out.append(os.fstat(fd).st_ino == os.stat(target / "a/b/c/new/deeper").st_ino)
            os.close(fd)
        finally:
            tree.close()
        return out

    fast = answers()
    monkeypatch.setattr(extract_guard, "_openat2", None)
    assert answers() == fast
    assert [p.name for p in outside.rglob("*")] == ["b"]
