"""Lock files that say who holds them: ``flock`` without waiting, and the holder's pid inside.

The one pid-file lock of pytp (issue 10): the per-drive lock every command
takes (``catalog.devices``) and the virtual drive's own lock, which stands in
for the ``st`` driver refusing a second open.  ``flock`` belongs to the open
file description, so a second open in the same process conflicts too, and
the kernel releases it when the holder dies (kill -9 included); the pid is
only there to name the holder in the busy message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def try_lock(path: Path) -> int | None:
    """An fd holding ``path``'s lock, with this process's pid written in; None if someone holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def holder(path: Path) -> int | None:
    """The pid written in the lock file at ``path``; None if none is (or it cannot be read)."""
    try:
        raw = path.read_bytes()[:32].strip()
    except OSError:
        return None
    return int(raw) or None if raw.isdigit() else None


def unlock(fd: int) -> None:
    """Release a lock from :func:`try_lock`.

    The pid is cleared first: a stale pid would make a later busy message name
    the wrong process during the moment between lock and pid write.
    """
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the last descriptor releases the flock
