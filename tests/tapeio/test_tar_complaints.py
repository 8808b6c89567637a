"""Which of GNU tar's lines say the restore target is full.

Which member a line is about is never read from it: tar 1.34 prints names
unquoted in its write errors (``tar: a: b: Wrote only …`` for a member named
``a: b``), so a crafted name could make any name up (issue 9 probe).
"""

from __future__ import annotations

from pytp.tapeio.gnutar import says_full


def test_a_full_disk_is_told_by_its_error_text() -> None:
    assert says_full("tar: x: Cannot open: No space left on device")
    assert says_full("tar: x: Cannot write: Disk quota exceeded")
    assert not says_full("tar: x: Wrote only 7168 of 10240 bytes")  # the file system is asked (_no_room)
    assert not says_full("tar: x: Cannot open: File exists")
