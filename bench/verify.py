"""Verify of 50,000 small files against ``cat TAPEFILE | tar -tf -``.

pytp re-reads the tape file, hashes every member and compares with the
catalog; the reference only reads and lists the same tape file (what any
verify must at least do).

A verify of a job of one member (an empty directory backed up after the
files), interleaved with the others, is pytp's start-up and fixed cost
(interpreter, imports, catalog, drive, job log): the context line gives it
and pytp's CPU per member beyond it, the two parts of issue 9's gap.
"""

from __future__ import annotations

from .context import Context
from .measure import Series, interleave
from .report import Figure, cpu_ratio, emit, named_timing, note, time_ratio, timing
from .trees import small_files

NAME = "verify"
FILE_SIZE = 4096


def run(ctx: Context) -> list[Figure]:
    count = ctx.size(2_000, 50_000)
    source = small_files(ctx.path("verify"), count, FILE_SIZE)
    empty = ctx.path("verify-empty")
    empty.mkdir()
    site = ctx.sandbox()
    site.call("backup", str(source))  # job 1
    site.call("backup", str(empty))  # job 2: one member
    tape_file = site.tape_file(1)
    pytp, ref = Series("pytp"), Series("cat TF | tar -tf -")
    floor = Series("pytp verify of a one-member job")
    interleave(
        ctx.repeat,
        [
            (pytp, lambda: ctx.runner.run(site.argv("verify", "--job", "1"), env=site.env)),
            (ref, lambda: ctx.runner.shell(f"cat '{tape_file}' | tar -tf - > /dev/null", pipefail=False)),
            (floor, lambda: ctx.runner.run(site.argv("verify", "--job", "2"), env=site.env)),
        ],
    )
    site.remove()
    per_member = (pytp.cpu - floor.cpu) / count * 1e6
    note(
        f"verify: start-up and fixed costs ({floor.name}) {timing(floor)}, "
        f"{100 * floor.cpu / pytp.cpu:.0f} % of pytp's CPU; the rest is {per_member:.1f} µs of CPU per member"
    )
    return [
        emit(
            Figure(
                f"verify, {count:,} files × 4 KiB",
                timing(pytp),
                named_timing(ref),
                time_ratio(pytp, ref),
                "≥ 1.0",
                cpu_ratio=cpu_ratio(pytp, ref),
            )
        )
    ]
