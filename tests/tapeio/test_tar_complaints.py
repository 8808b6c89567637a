"""GNU tar's complaints about members, parsed from lines captured from tar 1.34
(its escape quoting: ``\\:`` for a colon, octal for bytes outside the locale)."""

from __future__ import annotations

import pytest

from pytp.tapeio.gnutar import says_full, tar_complaint, write_failure


@pytest.mark.parametrize(
    ("line", "name", "message"),
    [
        ("tar: tmp/src/b/big0: Wrote only 7168 of 10240 bytes", b"tmp/src/b/big0", "Wrote only 7168 of 10240 bytes"),
        (
            "tar: tmp/src/c/t0.txt: Cannot write: No space left on device",
            b"tmp/src/c/t0.txt",
            "Cannot write: No space left on device",
        ),
        (r"tar: ./a\: b: Cannot open: File exists", b"./a: b", "Cannot open: File exists"),
        (r"tar: ./nl\nx: Cannot open: File exists", b"./nl\nx", "Cannot open: File exists"),
        (r"tar: ./\303\251: Cannot open: File exists", "./é".encode(), "Cannot open: File exists"),
        (r"tar: ./back\\slash: Cannot open: File exists", b"./back\\slash", "Cannot open: File exists"),
    ],
)
def test_a_complaint_names_its_member(line: str, name: bytes, message: str) -> None:
    assert tar_complaint(line) == (name, message)


@pytest.mark.parametrize(
    "line",
    [
        "tar: Unexpected EOF in archive",
        "tar: Exiting with failure status due to previous errors",
        "tar: Error is not recoverable: exiting now",
    ],
)
def test_a_line_about_no_member(line: str) -> None:
    assert tar_complaint(line) is None


def test_which_complaints_are_write_failures_and_a_full_disk() -> None:
    assert write_failure("Wrote only 7168 of 10240 bytes") and write_failure("Cannot write: Disk quota exceeded")
    assert not write_failure("Cannot open: File exists")
    assert says_full("Cannot open: No space left on device") and says_full("Cannot write: Disk quota exceeded")
    assert not says_full("Wrote only 7168 of 10240 bytes")  # the file system is asked (_no_room)
