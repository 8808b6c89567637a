"""What every benchmark gets: the temporary directory, the runner, the sizes, and
the one comparison most of them make (a pytp backup against a tar pipeline)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .measure import Runner, Sample, Series, interleave
from .sandbox import Sandbox

T = TypeVar("T")


@dataclass
class Context:
    tmp: Path
    runner: Runner
    repeat: int
    #: "quick" (smoke check), "default" (the issue's table) or "full" (adds the largest sizes)
    mode: str
    _counter: itertools.count = field(default_factory=itertools.count)

    def size(self, quick: T, default: T, full: T | None = None) -> T:
        if self.mode == "quick":
            return quick
        if self.mode == "full" and full is not None:
            return full
        return default

    def path(self, name: str) -> Path:
        """A fresh path in the temporary directory (not created)."""
        return self.tmp / f"{name}-{next(self._counter)}"

    def sandbox(self, library_in: Path | None = None) -> Sandbox:
        """A new sandbox; its virtual library in ``library_in`` when given (else in the sandbox)."""
        site = self.path("site")
        return Sandbox(site, library=None if library_in is None else library_in / f"{site.name}-lib")


def pytp_backup_once(ctx: Context, source: Path, *extra: str, library_in: Path | None = None) -> Sample:
    """One ``pytp backup SOURCE`` in a new sandbox; only the command is timed."""
    site = ctx.sandbox(library_in)
    try:
        return ctx.runner.run(site.argv("backup", str(source), *extra), env=site.env)
    finally:
        site.remove()


def compare_backup(ctx: Context, source: Path, reference_name: str, reference: str) -> tuple[Series, Series]:
    """``pytp backup SOURCE`` against the shell pipeline ``reference``, interleaved.

    ``reference`` may use ``{src}`` (the source's name, run from its parent
    directory, as tar is usually called) and ``{out}`` (an output file that is
    removed after each run, like each pytp sandbox).
    """
    pytp, (ref,) = compare_backup_with(ctx, source, [(reference_name, reference)])
    return pytp, ref


def compare_backup_with(
    ctx: Context,
    source: Path,
    references: list[tuple[str, str]],
    library_in: Path | None = None,
    extra_sides: list[tuple[Series, Callable[[], Sample]]] | None = None,
) -> tuple[Series, list[Series]]:
    """``pytp backup SOURCE`` against each ``(name, shell pipeline)``, interleaved.

    A pipeline may use ``{src}`` and ``{out}`` as in :func:`compare_backup`;
    ``{out}`` is in ``library_in`` when given, next to where pytp's virtual
    tapes are, so a reference that writes a file writes it to the same place.

    :param library_in: the directory the sandboxes' virtual libraries go in.
    :param extra_sides: more ``(series, run once)`` to interleave with them.
    """
    out = (library_in or ctx.tmp) / f"reference-{next(ctx._counter)}.tar"
    pytp = Series("pytp")
    series = [Series(name) for name, _ in references]

    def reference_once(script: str) -> Callable[[], Sample]:
        def once() -> Sample:
            try:
                return ctx.runner.shell(script, cwd=source.parent)
            finally:
                if out.exists():
                    os.unlink(out)

        return once

    sides: list[tuple[Series, Callable[[], Sample]]] = [
        (pytp, lambda: pytp_backup_once(ctx, source, library_in=library_in))
    ]
    sides += [
        (ref, reference_once(script.format(src=source.name, out=out))) for ref, (_, script) in zip(series, references)
    ]
    interleave(ctx.repeat, sides + (extra_sides or []))
    return pytp, series
