"""Where an archive goes on after end of medium: the cut and the continuation.

A tape fills at a block boundary, wherever that falls in the tar stream.  The
next tape's tape file must again be a tar archive GNU tar can read, so:

* a cut between members, or in a member's padding, simply resumes at the next
  member;
* a cut inside a member's headers starts that member again, whole, on the
  next tape;
* a cut inside a member's data continues it on the next tape as a member of
  the same name holding only the rest of the data, marked by a pax
  ``comment`` ("pytp continuation …").  Every member that is whole on one tape
  extracts with plain GNU tar; a cut member is rejoined by appending the
  continuation's content to the first part (docs/format.md).

Data offsets inside a member are multiples of 512 at every cut, because tape
blocks and tar records both are, so the continuation's padding equals the
original's.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

from .tarformat import MemberHeader, build_header, padded


@dataclass(frozen=True)
class MemberStart:
    """Where a member begins in the archive stream, and its header.

    :param offset: stream offset of the member's first header byte.
    :param header_size: bytes of its headers (pax included).
    """

    offset: int
    header_size: int
    header: MemberHeader

    @property
    def data_start(self) -> int:
        return self.offset + self.header_size

    @property
    def data_size(self) -> int:
        return self.header.size if self.header.kind == "file" else 0


@dataclass(frozen=True)
class Resume:
    """How the stream continues on the next tape after a cut at stream offset ``cut``.

    :param resume_at: the stream offset of the first byte that follows ``prefix``.
    :param prefix: bytes written first on the next tape (a regenerated or a
        continuation header), then the stream from ``resume_at``.
    :param member: the member whose data is split, when the cut is in its data.
    :param data_done: that member's data bytes before the cut.
    """

    cut: int
    resume_at: int
    prefix: bytes = b""
    member: MemberStart | None = None
    data_done: int = 0


def continuation_comment(name: bytes, data_done: int, size: int) -> str:
    shown = name.decode("utf-8", "backslashreplace")
    return f"pytp continuation of {shown} from data byte {data_done} of {size}"


def plan_resume(starts: list[MemberStart], cut: int) -> Resume:
    """Decide how the stream continues after a cut at stream offset ``cut``.

    :param starts: every member begun so far, in stream order.
    """
    index = bisect.bisect_right([s.offset for s in starts], cut) - 1
    if index < 0:
        return Resume(cut, cut)
    member = starts[index]
    if cut == member.offset:
        return Resume(cut, cut)
    if cut <= member.data_start:
        # In the headers (or right after them): the member starts again, whole, on the next tape.
        return Resume(cut, member.data_start, build_header(member.header))
    data_end = member.data_start + member.data_size
    if cut < data_end:
        done = cut - member.data_start
        header = replace(
            member.header,
            size=member.data_size - done,
            comment=continuation_comment(member.header.name, done, member.data_size),
            # The rest of a sparse member's stored bytes is plain data: appended
            # to the first part, they complete the sparse member (docs/format.md).
            realsize=None,
        )
        return Resume(cut, cut, build_header(header), member, done)
    # In the padding after the data: the member is complete; skip its padding.
    return Resume(cut, max(cut, member.data_start + padded(member.data_size)))
