"""Running pytp as a separate process to stop or kill it at a chosen point.

The point is chosen by what the process has done, never by sleeping: its
progress output on a pipe (``--progress``), the size of a virtual tape file,
or the catalog's write lock held by the test so that the job cannot end.  A
bound on each wait only keeps a broken run from hanging.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PROGRESS = re.compile(rb"(\d+) files, ([\d.]+) (B|KiB|MiB|GiB|TiB)")
_UNITS = {b"B": 1, b"KiB": 1 << 10, b"MiB": 1 << 20, b"GiB": 1 << 30, b"TiB": 1 << 40}


def pytp_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytp.cli.main", *args]


class Victim:
    """A pytp subprocess whose stderr is read in the background."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.process = subprocess.Popen(
            pytp_command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or os.environ.copy(),
            cwd=cwd,
        )
        self.stderr = b""
        self._progress_bytes = -1
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        while chunk := os.read(self.process.stderr.fileno(), 65536):
            with self._changed:
                self.stderr += chunk
                found = _PROGRESS.findall(self.stderr[-4096:])
                if found:
                    _, number, unit = found[-1]
                    self._progress_bytes = int(float(number) * _UNITS[unit])
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_progress(self, min_bytes: int = 0, bound: float = 120) -> bool:
        """Wait until the progress shows ``min_bytes`` read; False if the process ended first."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._progress_bytes >= min_bytes or self.process.poll() is not None, timeout=bound
            ) and self._progress_bytes >= min_bytes

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def finish(self, bound: float = 120) -> tuple[int, str, str]:
        """Wait for the end; return (exit code, stdout, stderr)."""
        stdout = self.process.stdout.read() if self.process.stdout else b""  # type: ignore[union-attr]
        code = self.process.wait(timeout=bound)
        self._reader.join(timeout=bound)
        return code, stdout.decode(errors="replace"), self.stderr.decode(errors="replace")


@contextmanager
def catalog_held(database: Path) -> Iterator[None]:
    """Hold the SQLite catalog's write lock: a job can run but not commit its end.

    A job that has started cannot become ``ok`` while the lock is held, so
    whatever is done to its process meanwhile lands mid-job, however fast the
    machine is.  (The job's own commits wait for the lock, up to 30 s.)
    """
    connection = sqlite3.connect(database, isolation_level=None, timeout=60)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def wait_for_size(path: Path, min_size: int, bound: float = 120) -> bool:
    """Poll until the file at ``path`` holds ``min_size`` bytes (a virtual tape file filling up)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size >= min_size:
            return True
        time.sleep(0.02)
    return False
