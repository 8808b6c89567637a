"""Tape files that hold one small document: the volume label and job manifests.

Each is a plain POSIX tar archive with a single member, so that GNU tar alone
can read them (``mt fsf N; tar -xf /dev/nst0``), written in fixed blocks and
closed with a filemark.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from .blockio import TRANSFER_BYTES, BlockAssembler, TapeFileReader
from .drive import Drive
from .errors import TarFormatError
from .tarformat import END_OF_ARCHIVE, MemberHeader, build_header, padded, parse_header


def write_small_archive(
    drive: Drive, block_size: int, name: str, payload: bytes | Iterable[bytes], size: int | None = None
) -> int:
    """Write a one-member tar archive as a tape file, then a filemark.

    The drive must be positioned where the file belongs (end of data).

    :param payload: the member's content, or its pieces in order (a job's
        manifest can be large, so it is streamed, not held in memory).
    :param size: the content's total length when ``payload`` is in pieces.
    :returns: the number of blocks written.
    """
    pieces = [payload] if isinstance(payload, bytes) else payload
    length = len(payload) if isinstance(payload, bytes) else size
    if length is None:
        raise ValueError("size is required when payload comes in pieces")
    out = BlockAssembler(drive.write, block_size)
    header = MemberHeader(
        name=name.encode(),
        kind="file",
        size=length,
        mode=0o644,
        # Whole seconds: no pax header, so the label is one plain ustar record.
        mtime_ns=int(time.time()) * 1_000_000_000,
        uname="pytp",
        gname="pytp",
    )
    out.write(build_header(header))
    written = 0
    for piece in pieces:
        out.write(piece)
        written += len(piece)
    if written != length:
        raise ValueError(f"{name}: {written} bytes of content, the header says {length}")
    out.write(b"\0" * (padded(length) - length))
    out.write(END_OF_ARCHIVE)
    blocks = out.finish()
    drive.weof(1)
    return blocks


def _leading_header(data: bytes) -> tuple[MemberHeader, int] | None:
    """The first member header in ``data`` and its length, pax records included."""
    for records in range(1, min(len(data) // 512, 8) + 1):
        try:
            return parse_header(data[: records * 512]), records * 512
        except ValueError:
            continue
    return None


def peek_member_name(first_block: bytes) -> str | None:
    """The name of the first member of a tape file from its first block, if it is tar."""
    found = _leading_header(first_block)
    return found[0].name.decode("utf-8", "replace") if found else None


def small_archive_blocks(first_block: bytes, block_size: int) -> int | None:
    """The blocks a one-member archive takes on tape (as :func:`write_small_archive` writes it),
    from its first block; None when that block does not start with a tar header."""
    found = _leading_header(first_block)
    if found is None:
        return None
    header, length = found
    return archive_blocks(header.size, block_size, length)


def archive_blocks(size: int, block_size: int, header_length: int = 512) -> int:
    """The blocks :func:`write_small_archive` writes for ``size`` bytes of content: its
    header (one ustar record), the padded content and the end-of-archive marker."""
    return -(-(header_length + padded(size) + len(END_OF_ARCHIVE)) // block_size)


def read_small_archive(
    drive: Drive, block_size: int, max_size: int = 1 << 30, first_block: bytes = b"", expect: str | None = None
) -> tuple[str, bytes]:
    """Read the one-member archive at the head; leaves the drive inside the file.

    :param first_block: the file's first block when the caller already read it.
    :param expect: the member name wanted; any other is refused before more is read.
    :raises TarFormatError: the tape file is not such an archive.
    """
    name, pieces = stream_small_archive(drive, block_size, max_size, first_block, expect)
    return name, b"".join(pieces)


def stream_small_archive(
    drive: Drive, block_size: int, max_size: int = 1 << 30, first_block: bytes = b"", expect: str | None = None
) -> tuple[str, Iterator[bytes]]:
    """:func:`read_small_archive`'s member, its content in pieces as they are read.

    A job's manifest can be larger than memory should hold (issue 9): its
    reader takes it piece by piece.  The header is checked before this
    returns; a member cut short raises from the iteration, at its end.

    :raises TarFormatError: the tape file is not such an archive, or (iterating) is cut short.
    """
    reader = TapeFileReader(drive, block_size, prefetched=first_block)
    start = reader.read(max(block_size, 4096))
    found = _leading_header(start)
    if found is None:
        raise TarFormatError("the tape file does not start with a tar header")
    header, header_size = found
    name = header.name.decode("utf-8", "replace")
    if expect is not None and name != expect:
        # Checked before reading on: a data file is left after its first block.
        raise TarFormatError(f"the tape file holds '{name}', not {expect}")
    if header.size > max_size:
        raise TarFormatError(f"member {name!r} is {header.size} bytes, more than expected")
    return name, _pieces(reader, start[header_size : header_size + header.size], header.size, name)


def _pieces(reader: TapeFileReader, first: bytes, size: int, name: str) -> Iterator[bytes]:
    if first:
        yield first
    left = size - len(first)
    while left > 0:
        piece = reader.read(min(left, TRANSFER_BYTES))
        if not piece:
            raise TarFormatError(f"member {name!r} is cut short on tape")
        left -= len(piece)
        yield piece
