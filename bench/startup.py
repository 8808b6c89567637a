"""Start-up: ``pytp tapes`` and ``pytp status`` from start to end, on an empty
catalog and a virtual drive, then ``pytp search`` of a catalog holding one
one-file job, against ``python3 -c pass`` (the interpreter alone)."""

from __future__ import annotations

import sys

from .context import Context
from .measure import Series, interleave
from .report import Figure, cpu_ratio, emit, named_timing, time_ratio, timing

NAME = "startup"
#: issue 9's goals; it sets none for search's start (what it times is in-process)
GOALS = {"tapes": "≤ 0.3 s", "status": "≤ 0.2 s", "search": "—"}
#: the one file of the job ``pytp search`` looks in
NEEDLE = "needle.txt"


def run(ctx: Context) -> list[Figure]:
    site = ctx.sandbox()
    # status needs a tape in the drive: load the first slot once, outside the timing
    site.call("load", "1")
    figures = []
    repeat = max(ctx.repeat, 5)  # short runs: a few more rounds cost nothing
    commands: list[list[str]] = [["tapes"], ["status"], ["search", NEEDLE]]
    for command in commands:
        if command[0] == "search":
            source = site.root / "source"
            source.mkdir()
            (source / NEEDLE).write_text("found\n")
            site.call("backup", str(source))
        pytp, python = Series("pytp"), Series("python3 -c pass")
        interleave(
            repeat,
            [
                (pytp, lambda: ctx.runner.run(site.argv(*command), env=site.env)),
                (python, lambda: ctx.runner.run([sys.executable, "-c", "pass"])),
            ],
        )
        figures.append(
            emit(
                Figure(
                    f"`pytp {' '.join(command)}` start to end",
                    timing(pytp),
                    named_timing(python),
                    time_ratio(pytp, python),
                    GOALS[command[0]],
                    cpu_ratio=cpu_ratio(pytp, python),
                )
            )
        )
    site.remove()
    return figures
