"""Verify of 50,000 small files against ``cat TAPEFILE | tar -tf -``.

pytp re-reads the tape file, hashes every member and compares with the
catalog; the reference only reads and lists the same tape file (what any
verify must at least do).
"""

from __future__ import annotations

from .context import Context
from .measure import Series, interleave
from .report import Figure, cpu_ratio, emit, named_timing, time_ratio, timing
from .trees import small_files

NAME = "verify"
FILE_SIZE = 4096


def run(ctx: Context) -> list[Figure]:
    count = ctx.size(2_000, 50_000)
    source = small_files(ctx.path("verify"), count, FILE_SIZE)
    site = ctx.sandbox()
    site.call("backup", str(source))
    tape_file = site.tape_file(1)
    pytp, ref = Series("pytp"), Series("cat TF | tar -tf -")
    interleave(
        ctx.repeat,
        [
            (pytp, lambda: ctx.runner.run(site.argv("verify", "--job", "1"), env=site.env)),
            (ref, lambda: ctx.runner.shell(f"cat '{tape_file}' | tar -tf - > /dev/null", pipefail=False)),
        ],
    )
    site.remove()
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
