"""The single seam to xxhash: pytp's content checksum is xxh3-128.

Everything that hashes file data goes through here, so that the algorithm is
named once and its hex form is the same in the catalog, the manifest on tape
and verification.
"""

from __future__ import annotations

from pathlib import Path

import xxhash


class ContentHasher:
    """Incremental xxh3-128 over exactly the bytes fed to it."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = xxhash.xxh3_128()

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def hash_file(path: str | bytes | Path, chunk_size: int = 1 << 20) -> str:
    """xxh3-128 of a file's content, read in chunks."""
    hasher = ContentHasher()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            hasher.update(chunk)
    return hasher.hexdigest()
