"""The one pid-file lock (``tapeio.pidlock``): held once, names its holder, released on unlock or death."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pytp.tapeio.pidlock import holder, try_lock, unlock


def test_a_second_take_fails_even_in_the_same_process_and_the_pid_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "drive.lock"
    fd = try_lock(path)
    assert fd is not None
    assert try_lock(path) is None
    assert holder(path) == os.getpid()
    unlock(fd)
    assert holder(path) is None  # cleared: no stale pid for the next busy message
    again = try_lock(path)
    assert again is not None
    unlock(again)


def test_a_killed_holder_leaves_the_lock_free(tmp_path: Path) -> None:
    path = tmp_path / "drive.lock"
    script = (
        "import os, sys, signal\n"
        "from pathlib import Path\n"
        "from pytp.tapeio.pidlock import try_lock\n"
        f"assert try_lock(Path({str(path)!r})) is not None\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == -9
    assert holder(path) not in (None, os.getpid())  # its pid stays written, the lock does not
    fd = try_lock(path)
    assert fd is not None
    unlock(fd)


def test_garbage_in_the_file_names_no_holder(tmp_path: Path) -> None:
    path = tmp_path / "drive.lock"
    path.write_bytes(b"not a pid\n")
    assert holder(path) is None
    assert holder(tmp_path / "missing.lock") is None
