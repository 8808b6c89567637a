"""Peak memory of a backup of many files, and its ingest rate (entries/s).

The peak is the pytp process's own high-water resident set (``VmHWM``, read
while it runs: ``measure._wait_watching_peak``), buffer included; GNU tar's
stays constant whatever the file count.  Files are 1 KiB so that a million of
them fit any disk; the count is what matters here.
The largest size runs once (its memory does not vary from run to run).
"""

from __future__ import annotations

import shutil

from .context import Context, pytp_backup_once
from .measure import Sample, Series, interleave
from .report import Figure, emit, mib
from .trees import small_files, tree_stats

NAME = "memory"
FILE_SIZE = 1024


def run(ctx: Context) -> list[Figure]:
    figures = []
    for count in ctx.size([10_000], [100_000], [100_000, 1_000_000]):
        source = small_files(ctx.path(f"memory{count}"), count, FILE_SIZE)
        entries, _ = tree_stats(source)
        out = ctx.path("reference.tar")
        pytp, tar = Series("pytp"), Series("tar -cf")

        def tar_once() -> Sample:
            try:
                return ctx.runner.run(["tar", "-cf", str(out), source.name], cwd=source.parent)
            finally:
                out.unlink(missing_ok=True)

        repeat = 1 if count >= 1_000_000 else ctx.repeat
        interleave(repeat, [(pytp, lambda: pytp_backup_once(ctx, source)), (tar, tar_once)])
        rate, tar_rate = entries / pytp.wall, entries / tar.wall
        figures.append(
            emit(
                Figure(
                    f"peak memory, {count:,} files (1 KiB)",
                    f"peak {mib(pytp.max_rss)}, {rate:,.0f} entries/s ({pytp.wall:.1f} s)",
                    f"tar -cf peak {mib(tar.max_rss)}, {tar_rate:,.0f} entries/s",
                    rate / tar_rate,
                    "≤ 256 MiB + buffer",
                    cpu_ratio=tar.cpu / pytp.cpu,
                )
            )
        )
        shutil.rmtree(source)  # a million files: free the disk before the next size
    return figures
