"""The single seam to xxhash: pytp's content checksum is xxh3-128.

Everything that hashes file data goes through here, so that the algorithm is
named once and its hex form is the same in the catalog, the manifest on tape
and verification.

The checksum of a member is over exactly the bytes it has on tape.  For a
sparse file those are its map and its data regions (``sparse``), so a file on
disk is hashed against the map the catalog recorded for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import xxhash

from .sparse import live_data_outside, map_block, parse_map


class ContentHasher:
    """Incremental xxh3-128 over exactly the bytes fed to it."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = xxhash.xxh3_128()

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def hash_bytes(data: bytes | memoryview) -> str:
    """xxh3-128 of ``data`` in one call (verify hashes thousands of small
    members: one call instead of an object and two method calls each)."""
    return xxhash.xxh3_128_hexdigest(data)


def hash_file(path: str | bytes | Path, sparse_map: str | None = None, chunk_size: int = 1 << 20) -> str:
    """xxh3-128 of a file as a member of the archive holds it.

    :param sparse_map: the map the file was stored with (``Entry.sparse_map``);
        None for a file stored whole.  With a map, the hash covers the map
        block and the bytes at its regions, and any non-zero data the file
        has outside them too, so only a copy with the same content matches,
        whatever its own layout of holes.
    """
    hasher = ContentHasher()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        if sparse_map is None:
            while chunk := os.read(fd, chunk_size):
                hasher.update(chunk)
            return hasher.hexdigest()
        regions = parse_map(sparse_map)
        hasher.update(map_block(sparse_map))
        for offset, length in regions:
            _hash_range(fd, offset, length, hasher, chunk_size)
        size = os.fstat(fd).st_size
        realsize = sum(regions[-1]) if regions else 0
        for offset, length in live_data_outside(fd, size, regions):
            stray = _hash_range(fd, offset, length, ContentHasher(), chunk_size, nonzero=True)
            if stray:
                hasher.update(b"data outside the sparse map")
        if size != realsize:
            hasher.update(b"size differs from the sparse map")
        return hasher.hexdigest()
    finally:
        os.close(fd)


def _hash_range(
    fd: int, offset: int, length: int, hasher: ContentHasher, chunk_size: int, nonzero: bool = False
) -> bool:
    """Feed ``length`` bytes at ``offset``; return whether any was non-zero
    (only looked at with ``nonzero``).  A file shorter than the range feeds
    what it has, so the digest differs."""
    found = False
    while length > 0:
        chunk = os.pread(fd, min(chunk_size, length), offset)
        if not chunk:
            break
        hasher.update(chunk)
        if nonzero and chunk.count(0) != len(chunk):
            found = True
        offset += len(chunk)
        length -= len(chunk)
    return found
