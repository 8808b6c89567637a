"""Sparse files: finding their data with SEEK_DATA/SEEK_HOLE, and their map.

A file with holes is stored in GNU tar's pax sparse format 1.0: the member's
data starts with the *map* (the number of regions, then each region's offset
and length, every number on a line of its own, padded with NULs to 512
bytes), followed by the bytes of the data regions, one after the other.  The
holes are not read and not written: a 1 GiB file with two small data regions
costs a few KiB of reading and of tape.

pytp's xxh3 of a member is over exactly the bytes that go to tape, so for a
sparse file it covers the padded map and the data regions (docs/format.md).
The catalog keeps the map text (``Entry.sparse_map``), from which the number
of bytes on tape follows, and with which a restored copy is checked whatever
its own layout of holes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

RECORD = 512

Region = tuple[int, int]  # (offset, length)


def data_regions(fd: int, size: int) -> list[Region] | None:
    """The data regions of an open file, or None when it has no holes (or the
    filesystem cannot say), so it is stored as a plain file.

    A file whose blocks cover its size cannot have holes; only the others
    are asked with ``SEEK_DATA``/``SEEK_HOLE``, which never read the holes.
    A file that ends in a hole gets a last region ``(size, 0)``, as GNU tar
    writes it, so every reader extends the file to its full size.
    """
    if size == 0 or os.fstat(fd).st_blocks * 512 >= size:
        return None
    regions: list[Region] = []
    position = 0
    try:
        while position < size:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError as err:
                if err.errno == errno.ENXIO:  # only a hole from here to the end
                    break
                raise
            if start >= size:
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            regions.append((start, end - start))
            position = end
    except OSError as err:
        if err.errno in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None  # no SEEK_DATA here: read it whole
        raise
    finally:
        os.lseek(fd, 0, os.SEEK_SET)
    if regions == [(0, size)]:
        return None
    if not regions or sum(regions[-1]) < size:
        regions.append((size, 0))
    return regions


def map_text(regions: list[Region]) -> str:
    """The map as the format writes it (before the padding to 512 bytes)."""
    return f"{len(regions)}\n" + "".join(f"{offset}\n{length}\n" for offset, length in regions)


def map_block(text: str) -> bytes:
    """The map as it leads the member's data: padded with NULs to whole records."""
    raw = text.encode("ascii")
    return raw + b"\0" * (-len(raw) % RECORD)


def parse_map(text: str) -> list[Region]:
    """The regions of a map text.

    :raises ValueError: the text is not a well-formed map.
    """
    numbers = [int(n) for n in text.split()]
    if not numbers or numbers[0] != (len(numbers) - 1) // 2 or len(numbers) % 2 == 0:
        raise ValueError("not a sparse map")
    if any(n < 0 for n in numbers):
        raise ValueError("negative number in a sparse map")
    regions = list(zip(numbers[1::2], numbers[2::2]))
    end = 0
    for offset, length in regions:
        if offset < end:
            raise ValueError("sparse map regions overlap or are out of order")
        end = offset + length
    return regions


def stored_size(text: str) -> int:
    """Bytes a sparse member's data takes in the archive: the map block and the regions."""
    return len(map_block(text)) + sum(length for _, length in parse_map(text))


def stored_size_bound(size: int, blocks: int) -> int:
    """At most how many data bytes a file of ``size`` bytes with ``blocks``
    512-byte blocks allocated takes in the archive (staging checks its space
    with this): a file with holes has at most ``blocks + 1`` regions, each
    line of the map at most 42 bytes."""
    allocated = blocks * 512
    if allocated >= size:
        return size
    return min(size, allocated + len(map_block("x" * 42 * (blocks + 2))))


def live_data_outside(fd: int, size: int, regions: list[Region]) -> Iterator[Region]:
    """Pieces of the file's current data that lie outside ``regions``.

    A restored copy may have its data laid out differently (another
    filesystem); what matters is that everything outside the map reads as
    zeros, which the caller checks on these pieces only.
    """
    live = data_regions_always(fd, size)
    for start, length in live:
        cursor, end = start, start + length
        for offset, count in regions:
            if offset + count <= cursor or count == 0:
                continue
            if offset >= end:
                break
            if offset > cursor:
                yield cursor, offset - cursor
            cursor = max(cursor, offset + count)
            if cursor >= end:
                break
        if cursor < end:
            yield cursor, end - cursor


def data_regions_always(fd: int, size: int) -> list[Region]:
    """The data regions of a file, the whole file when it has no holes."""
    regions = data_regions(fd, size)
    if regions is None:
        return [(0, size)] if size else []
    return [(offset, length) for offset, length in regions if length]
