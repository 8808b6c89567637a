"""The progress line of the long commands on a terminal (issue 11, part 4).

The core reports events (``pytp.catalog.progress``); this module draws them:
one line on stderr, redrawn with ``\\r`` at most :data:`REDRAWS_PER_SECOND`
times a second, with files, bytes, MB/s, the memory buffer's fill and an ETA
against the known total.  Nothing is drawn when stderr is not a terminal (a
pipe, cron, systemd) or with ``--quiet``; ``--verbose`` lists each file (on
stderr, so ``--format json`` on stdout stays clean), on a terminal or not.

Per file, the display costs a counter update and a clock read (``time.monotonic``
is a vDSO call on Linux, not a system call); formatting happens only on a redraw.

This module must stay importable without the catalog stack (sqlmodel): it
imports only ``pytp.catalog.progress``, which imports nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import click

from pytp.catalog.progress import CountingProgress, Progress

#: redraws of the progress line per second at most
REDRAWS_PER_SECOND = 4


def progress_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``-q/--quiet``, ``-v/--verbose`` and ``--progress/--no-progress`` for a long command."""
    func = click.option(
        "--progress/--no-progress",
        "show_progress",
        default=None,
        help="Draw the progress line (default: when stderr is a terminal and not --quiet).",
    )(func)
    func = click.option("-v", "--verbose", is_flag=True, help="List each file as it is done (on stderr).")(func)
    return click.option("-q", "--quiet", is_flag=True, help="No progress line and no file list.")(func)


def make_progress(
    quiet: bool, verbose: bool, show_progress: bool | None = None, stream: TextIO | None = None
) -> Progress | None:
    """The listener for a command's options, or None when nothing would be shown.

    :param quiet: ``--quiet``: nothing at all (wins over the others).
    :param verbose: ``--verbose``: list the files.
    :param show_progress: ``--progress``/``--no-progress``; None: when the stream is a terminal.
    :param stream: where to draw (default: stderr).
    """
    if quiet:
        return None
    out = stream if stream is not None else sys.stderr
    line = show_progress if show_progress is not None else _isatty(out)
    if not line and not verbose:
        return None
    return TerminalProgress(out, line=line, verbose=verbose)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


class TerminalProgress(CountingProgress):
    """Draws the totals as one line, ``\\r``-rewritten, and lists files with ``verbose``.

    :param stream: where to write (stderr).
    :param line: draw the progress line.
    :param verbose: print each file's path on a line of its own.
    :param clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        line: bool = True,
        verbose: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.stream = stream
        self.line = line
        self.wants_paths = verbose
        self.clock = clock
        self.interval = 1.0 / REDRAWS_PER_SECOND
        self.started = clock()
        self._next = 0.0
        self._width = 0  # of the line on screen, to blank what a shorter line leaves
        #: how many times the line was drawn (tests check the rate limit)
        self.redraws = 0

    # events --------------------------------------------------------------
    def start(
        self, what: str, total_files: int | None = None, total_bytes: int | None = None, unit: str = "files"
    ) -> None:
        self.started = self.clock()
        self._next = 0.0  # the first event of the phase draws at once
        super().start(what, total_files, total_bytes, unit)

    def file(self, path: str, size: int) -> None:
        if path:
            self._print(path)
        super().file(path, size)

    def note(self, message: str) -> None:
        super().note(message)
        self._print(message)

    def done(self) -> None:
        self.finished += 1
        self._clear()  # the shell prompt (or the summary) starts on a clean line

    def changed(self, force: bool = False) -> None:
        if not self.line:
            return
        now = self.clock()
        if now < self._next and not force:
            return
        self._next = now + self.interval
        self._draw(now)

    # drawing ---------------------------------------------------------------
    def render(self, now: float) -> str:
        """The progress line for the totals at time ``now``."""
        t = self.totals
        elapsed = max(now - self.started, 1e-9)
        rate = t.bytes / elapsed
        parts = [f"{t.what}: {_count(t.files, t.total_files)} {t.unit}", _bytes_of(t.bytes, t.total_bytes)]
        parts.append(f"{rate / 1e6:.1f} MB/s")
        if t.fill is not None:
            parts.append(f"buffer {100.0 * t.fill:.0f}%")
        eta = _eta(t.bytes, t.total_bytes, rate, t.files, t.total_files, elapsed)
        if eta is not None:
            parts.append(f"ETA {_duration(eta)}")
        return ", ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.render(now)
        pad = " " * max(0, self._width - len(text))
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._width = len(text)
        self.redraws += 1

    def _clear(self) -> None:
        if self.line and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def _print(self, text: str) -> None:
        """A line of its own above the progress line."""
        self._clear()
        self.stream.write(text + "\n")
        if self.line:
            self._next = 0.0  # redraw the line on the next event


def _count(done: int, total: int | None) -> str:
    return f"{done}/{total}" if total else str(done)


def _bytes_of(done: int, total: int | None) -> str:
    if total:
        return f"{_human(done)} of ~{_human(total)}"
    return _human(done)


def _eta(
    done_bytes: int, total_bytes: int | None, rate: float, files: int, total_files: int | None, elapsed: float
) -> float | None:
    """Seconds left, from bytes when their total is known, else from files; None when unknowable."""
    if total_bytes and done_bytes and rate > 0:
        return max(0.0, (total_bytes - done_bytes) / rate)
    if total_files and files:
        return max(0.0, (total_files - files) * elapsed / files)
    return None


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover
