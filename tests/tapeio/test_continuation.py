"""Where a cut archive continues on the next tape (pure planning)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pytp.tapeio.continuation import MemberStart, plan_resume
from pytp.tapeio.tarformat import END_OF_ARCHIVE, MemberHeader, build_header, padded, parse_header


def _stream(sizes: list[int]) -> tuple[bytes, list[MemberStart], list[bytes]]:
    out, starts, contents = b"", [], []
    for i, size in enumerate(sizes):
        header = MemberHeader(name=b"dir/file%d" % i, kind="file", size=size, mtime_ns=10**18 + 1)  # pax: 3 records
        encoded = build_header(header)
        starts.append(MemberStart(len(out), len(encoded), header))
        content = bytes([65 + i]) * size
        contents.append(content)
        out += encoded + content + b"\0" * (padded(size) - size)
    return out + END_OF_ARCHIVE, starts, contents


def test_cut_between_members_resumes_at_the_next() -> None:
    _, starts, _ = _stream([700, 100])
    resume = plan_resume(starts, starts[1].offset)
    assert (resume.resume_at, resume.prefix, resume.member) == (starts[1].offset, b"", None)


def test_cut_in_headers_restarts_the_member() -> None:
    _, starts, _ = _stream([700, 100])
    resume = plan_resume(starts, starts[1].offset + 512)
    assert resume.prefix == build_header(starts[1].header)
    assert resume.resume_at == starts[1].data_start


def test_cut_in_padding_skips_it() -> None:
    _, starts, _ = _stream([700, 100])
    resume = plan_resume(starts, starts[0].data_start + 1024)  # 700 bytes use two records
    assert resume.resume_at == starts[1].offset and resume.prefix == b""


def test_cut_in_data_continues_with_a_member_of_the_rest(tmp_path: Path) -> None:
    stream, starts, contents = _stream([5000, 300])
    cut = starts[0].data_start + 2048
    resume = plan_resume(starts, cut)
    assert resume.member == starts[0] and resume.data_done == 2048
    header = parse_header(resume.prefix)
    assert header.name == b"dir/file0" and header.size == 5000 - 2048
    assert header.comment == "pytp continuation of dir/file0 from data byte 2048 of 5000"
    # The first part up to the cut and the continuation are both readable by GNU tar.
    second = resume.prefix + stream[resume.resume_at :]
    (tmp_path / "second.tar").write_bytes(second)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "second.tar"), "-C", str(out)], check=True, capture_output=True)
    assert (out / "dir" / "file0").read_bytes() == contents[0][2048:]
    assert (out / "dir" / "file1").read_bytes() == contents[1]
    # Rejoining by hand: the first part's bytes then the continuation's.
    (tmp_path / "first.tar").write_bytes(stream[:cut])
    first = tmp_path / "first"
    first.mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "first.tar"), "-C", str(first)], capture_output=True)
    joined = (first / "dir" / "file0").read_bytes() + (out / "dir" / "file0").read_bytes()
    assert joined == contents[0]
