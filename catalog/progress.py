"""Progress events of the long operations (backup, restore, verify, rebuild, copy, scrub).

The core reports what it does through :class:`Progress`; a terminal display
(cli/progress_display.py) or nothing (:data:`NULL`) listens.  No terminal code
lives here: the core stays usable and testable without a terminal.

The events are cheap on purpose.  pytp fights for per-file speed (millions of
small files), so :meth:`Progress.file` must cost a method call and two
additions: no string formatting, no system call.  A listener that needs the
path (``--verbose``) says so with :attr:`Progress.wants_paths`, and the core
then passes the decoded path; otherwise it may pass ``""``.

How an operation uses it::

    progress.start("backup", total_files=None, total_bytes=estimate)
    for member in members:
        progress.file(path if progress.wants_paths else "", member.size)
    progress.bytes(n)               # bytes written/read that are not whole files
    progress.buffer_fill(0.83)      # memory buffer fill, 0.0 … 1.0, when there is one
    progress.done()

``start`` may be called again for a new phase (e.g. each tape of a verify);
totals are ``None`` when not known, and a display then shows no ETA.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["NULL", "CountingProgress", "NullProgress", "Progress", "ProgressTotals"]


@runtime_checkable
class Progress(Protocol):
    """What a long operation tells whoever watches it."""

    #: True when the listener shows each file's path (``--verbose``); the core
    #: decodes paths for :meth:`file` only then.
    wants_paths: bool

    def start(
        self, what: str, total_files: int | None = None, total_bytes: int | None = None, unit: str = "files"
    ) -> None:
        """A (new phase of an) operation begins.

        :param what: a few words: ``"backup"``, ``"verify VHH001L9"``.
        :param total_files: files expected, or ``None`` when unknown.
        :param total_bytes: bytes expected, or ``None`` when unknown.
        :param unit: what :meth:`file` counts, for the display (``"tapes"`` for a rebuild).
        """

    def file(self, path: str, size: int) -> None:
        """One file done (stored, restored, verified).

        :param path: its path when :attr:`wants_paths`, else may be ``""``.
        :param size: its size in bytes; counted into the bytes done.
        """

    def bytes(self, n: int) -> None:
        """``n`` bytes done that :meth:`file` does not count (e.g. raw tape reads)."""

    def buffer_fill(self, fraction: float) -> None:
        """The memory buffer is this full (0.0 … 1.0)."""

    def note(self, message: str) -> None:
        """A line worth showing above the progress line (e.g. ``"loading VHH002L9"``)."""

    def done(self) -> None:
        """The operation (or phase) ended; a display clears its line."""


class NullProgress:
    """Listens to nothing: the default, so the core never tests for ``None``."""

    wants_paths = False

    def start(
        self, what: str, total_files: int | None = None, total_bytes: int | None = None, unit: str = "files"
    ) -> None:
        pass

    def file(self, path: str, size: int) -> None:
        pass

    def bytes(self, n: int) -> None:
        pass

    def buffer_fill(self, fraction: float) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def done(self) -> None:
        pass


#: The shared do-nothing listener.
NULL: Progress = NullProgress()


class ProgressTotals:
    """Running totals of one operation: the state a display draws from."""

    __slots__ = ("what", "unit", "total_files", "total_bytes", "files", "bytes", "fill", "last_path")

    def __init__(self) -> None:
        self.what = ""
        self.unit = "files"
        self.total_files: int | None = None
        self.total_bytes: int | None = None
        self.files = 0
        self.bytes = 0
        self.fill: float | None = None
        self.last_path = ""


class CountingProgress:
    """Keeps the totals and nothing else; base of displays and of tests' listeners.

    Subclasses override :meth:`changed` (called after each event, so it must be
    cheap: a display checks the clock there and redraws a few times a second).
    """

    wants_paths = False

    def __init__(self) -> None:
        self.totals = ProgressTotals()
        self.notes: list[str] = []
        self.phases: list[str] = []
        self.finished = 0

    def start(
        self, what: str, total_files: int | None = None, total_bytes: int | None = None, unit: str = "files"
    ) -> None:
        t = self.totals
        t.what, t.unit, t.total_files, t.total_bytes = what, unit, total_files, total_bytes
        t.files = t.bytes = 0
        t.fill = None
        self.phases.append(what)
        # No hook here: a display draws once work flows (the first file or bytes), not while
        # the job still waits for a tape or the catalog.

    def file(self, path: str, size: int) -> None:
        t = self.totals
        t.files += 1
        t.bytes += size
        if path:
            t.last_path = path
        self.changed()

    def bytes(self, n: int) -> None:
        self.totals.bytes += n
        self.changed()

    def buffer_fill(self, fraction: float) -> None:
        self.totals.fill = fraction
        self.changed()

    def note(self, message: str) -> None:
        self.notes.append(message)

    def done(self) -> None:
        self.finished += 1
        self.changed(force=True)

    def changed(self, force: bool = False) -> None:
        """Hook after each file, bytes and fill event; ``force`` on done."""
