"""The data sets, built in the benchmark's temporary directory.

Small files get pseudo-random content (slices of one random buffer: the bytes
differ from file to file, so nothing compresses or deduplicates by accident),
1,000 files per directory, like a file server's tree rather than one huge
directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .report import note

PER_DIRECTORY = 1000
#: the real tree: every Debian machine has /usr/share (docs, locales, man pages, icons)
REAL_TREE_SOURCE = Path("/usr/share")


def small_files(root: Path, count: int, size: int) -> Path:
    """``count`` files of ``size`` bytes under ``root`` (created); returns ``root``."""
    root.mkdir(parents=True)
    pool = os.urandom(size + 65536)
    for i in range(count):
        directory = root / f"d{i // PER_DIRECTORY:05d}"
        if i % PER_DIRECTORY == 0:
            directory.mkdir()
        start = (i * 7919) % 65536
        with open(directory / f"f{i:07d}", "wb") as f:
            f.write(pool[start : start + size])
    return root


def large_files(root: Path, count: int, size: int) -> Path:
    """``count`` random files of ``size`` bytes each (every MiB different)."""
    root.mkdir(parents=True)
    for i in range(count):
        with open(root / f"big{i}.bin", "wb") as f:
            for _ in range(size >> 20):
                f.write(os.urandom(1 << 20))
    return root


def real_tree(root: Path, max_files: int, max_bytes: int) -> tuple[Path, int, int]:
    """Copy :data:`REAL_TREE_SOURCE` in sorted walk order until ``max_files``
    regular files or ``max_bytes`` of them: the same tree on the same machine
    every time.  Symbolic links are copied as links; unreadable files are skipped.

    :returns: the copy, its regular files and their bytes.
    """
    files = total = 0
    root.mkdir(parents=True)
    for dirpath, dirnames, filenames in os.walk(REAL_TREE_SOURCE):
        relative = Path(dirpath).relative_to(REAL_TREE_SOURCE)
        target = root / relative
        target.mkdir(exist_ok=True)
        # os.walk does not descend into links to directories: copy them as links.
        for name in [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            os.symlink(os.readlink(os.path.join(dirpath, name)), target / name)
            dirnames.remove(name)
        dirnames.sort()
        for name in sorted(filenames):
            source = Path(dirpath) / name
            try:
                if source.is_symlink():
                    os.symlink(os.readlink(source), target / name)
                    continue
                if not source.is_file():
                    continue
                size = source.stat().st_size
                if files >= max_files or total + size > max_bytes:
                    return root, files, total
                shutil.copy2(source, target / name)
            except OSError:
                continue
            files += 1
            total += size
    note(f"{REAL_TREE_SOURCE} is smaller than the limits: all of it was copied")
    return root, files, total


def tree_stats(root: Path) -> tuple[int, int]:
    """Entries (files, directories, links) and bytes of regular files under ``root``."""
    entries = size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        entries += len(dirnames) + len(filenames)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                size += os.path.getsize(path)
    return entries + 1, size
