"""Replacing a small file in one step: readers and a crash see the old file or the new one, never half.

The one atomic writer of pytp (issue 10): the configuration, the virtual
library's and tapes' state and the HTML report all go through it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_atomically(path: Path, text: str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``text`` (UTF-8) through a temporary file beside it.

    The temporary name is per process, so two processes writing at once
    cannot rename each other's file away.

    :param durable: make the data reach the disk before the rename, or a power
        cut could leave an empty file; state rewritten on every tape operation
        (the virtual devices') skips it.
    :raises OSError: naming ``path``, not the temporary file (which is removed).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise type(err)(err.errno, err.strerror, str(path)) from err
