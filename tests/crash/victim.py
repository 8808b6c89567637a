"""Running pytp as a separate process to stop or kill it at a chosen point.

The point is chosen by what the process has done, never by sleeping: its
progress output on a pipe (``--progress``), the size of a virtual tape file,
or the catalog's write lock held by the test so that the job cannot end.  A
bound on each wait only keeps a broken run from hanging.
"""

from __future__ import annotations

import os
import re
import signal
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


class _Forked:
    """The parts of ``subprocess.Popen`` a victim needs, for a forked child."""

    def __init__(self, pid: int, stdout: int, stderr: int) -> None:
        self.pid = pid
        self.stdout = os.fdopen(stdout, "rb")
        self.stderr = os.fdopen(stderr, "rb")
        self.returncode: int | None = None

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, flags)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self, timeout: float | None = None) -> int:
        code = self._reap(0)
        assert code is not None
        return code

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)


def _fork_pytp(args: list[str]) -> _Forked:
    """Run ``pytp ARGS`` in a child forked from this process, pytp already imported.

    It saves the interpreter start-up of a new process (about half a second
    here) on every run of the crash harness; the child runs the same command
    code, and ``os._exit`` keeps it from tidying up anything it inherited.
    """
    from pytp.cli.main import cli

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 3
        try:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for fd in (out_r, out_w, err_r, err_w, null):
                os.close(fd)
            sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                cli.main(args, prog_name="pytp", standalone_mode=True)
                code = 0
            except SystemExit as end:
                code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    os.close(out_w)
    os.close(err_w)
    return _Forked(pid, out_r, err_r)


class Victim:
    """A pytp process whose stderr is read in the background.

    :param fork: fork it from this process instead of starting a new interpreter.
    """

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, fork: bool = False
    ) -> None:
        if fork:
            self.process: subprocess.Popen[bytes] | _Forked = _fork_pytp(list(args))
        else:
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
            return (
                self._changed.wait_for(
                    lambda: self._progress_bytes >= min_bytes or self.process.poll() is not None, timeout=bound
                )
                and self._progress_bytes >= min_bytes
            )

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
