"""What every benchmark gets: the temporary directory, the runner, the sizes, and
the one comparison most of them make (a pytp backup against a tar pipeline)."""

from __future__ import annotations

import itertools
import os
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

    def sandbox(self) -> Sandbox:
        return Sandbox(self.path("site"))


def pytp_backup_once(ctx: Context, source: Path, *extra: str) -> Sample:
    """One ``pytp backup SOURCE`` in a new sandbox; only the command is timed."""
    site = ctx.sandbox()
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
    out = ctx.path("reference.tar")
    script = reference.format(src=source.name, out=out)
    pytp = Series("pytp")
    ref = Series(reference_name)

    def reference_once() -> Sample:
        try:
            return ctx.runner.shell(script, cwd=source.parent)
        finally:
            if out.exists():
                os.unlink(out)

    interleave(ctx.repeat, [(pytp, lambda: pytp_backup_once(ctx, source)), (ref, reference_once)])
    return pytp, ref
