"""Restore of 50,000 small files against ``cat TAPEFILE | tar -xf - -C DIR``.

pytp looks the job up in the catalog, reads the tape file, judges each
member's header before GNU tar sees it, and hashes every restored file
against the catalog afterwards; the reference only extracts the same tape
file with GNU tar (what any restore must at least do).  Both write into an
empty directory, emptied again (untimed) before each run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .context import Context
from .measure import Sample, Series, interleave
from .report import Figure, cpu_ratio, emit, named_timing, time_ratio, timing
from .trees import small_files

NAME = "restore"
FILE_SIZE = 4096


def _into_empty(directory: Path, run: Callable[[], Sample]) -> Callable[[], Sample]:
    """``run`` after ``directory`` is made empty; only ``run`` is timed."""

    def once() -> Sample:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        return run()

    return once


def run(ctx: Context) -> list[Figure]:
    count = ctx.size(2_000, 50_000)
    source = small_files(ctx.path("restore"), count, FILE_SIZE)
    site = ctx.sandbox()
    site.call("backup", str(source))
    tape_file = site.tape_file(1)
    ours, theirs = ctx.path("restored"), ctx.path("extracted")
    pytp, ref = Series("pytp"), Series("cat TF | tar -xf -")
    interleave(
        ctx.repeat,
        [
            (
                pytp,
                _into_empty(ours, lambda: ctx.runner.run(site.argv("restore", str(ours), "--job", "1"), env=site.env)),
            ),
            (
                ref,
                _into_empty(
                    theirs, lambda: ctx.runner.shell(f"cat '{tape_file}' | tar -xf - -C '{theirs}'", pipefail=False)
                ),
            ),
        ],
    )
    site.remove()
    shutil.rmtree(ours, ignore_errors=True)
    shutil.rmtree(theirs, ignore_errors=True)
    return [
        emit(
            Figure(
                f"restore, {count:,} files × 4 KiB",
                timing(pytp),
                named_timing(ref),
                time_ratio(pytp, ref),
                "≥ 1.0",
                cpu_ratio=cpu_ratio(pytp, ref),
            )
        )
    ]
