"""Peak memory of a backup of many files, and its ingest rate (entries/s).

The peak is the pytp process's own high-water resident set (``VmHWM``, read
while it runs: ``measure._wait_watching_peak``), buffer included; GNU tar's
stays constant whatever the file count.  Files are 1 KiB so that a million of
them fit any disk; the count is what matters here.
The largest size runs once (its memory does not vary from run to run).

Then an incremental backup of the same tree, unchanged: pytp compares every
path with the chain's state, GNU tar with its snapshot file (``tar -g``,
level 1 against a copy of the level 0's snapshot each round).
"""

from __future__ import annotations

import shutil
from pathlib import Path

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
        figures.append(incremental(ctx, source, count, entries, repeat))
        shutil.rmtree(source)  # a million files: free the disk before the next size
    return figures


def incremental(ctx: Context, source: Path, count: int, entries: int, repeat: int) -> Figure:
    """Peak memory and rate of an incremental backup of ``source`` when nothing changed."""
    site = ctx.sandbox()
    site.call("backup", str(source))  # the full job the incrementals compare with, not measured
    level0, snapshot, out = ctx.path("level0.snar"), ctx.path("level1.snar"), ctx.path("reference-incremental.tar")
    ctx.runner.run(["tar", "-g", str(level0), "-cf", str(out), source.name], cwd=source.parent)

    def tar_once() -> Sample:
        shutil.copyfile(level0, snapshot)
        try:
            return ctx.runner.run(["tar", "-g", str(snapshot), "-cf", str(out), source.name], cwd=source.parent)
        finally:
            out.unlink(missing_ok=True)

    pytp, tar = Series("pytp"), Series("tar -g")
    try:
        interleave(
            repeat,
            [
                (pytp, lambda: ctx.runner.run(site.argv("backup", "--incremental", str(source)), env=site.env)),
                (tar, tar_once),
            ],
        )
    finally:
        site.remove()
    rate, tar_rate = entries / pytp.wall, entries / tar.wall
    return emit(
        Figure(
            f"peak memory, incremental of {count:,} unchanged files",
            f"peak {mib(pytp.max_rss)}, {rate:,.0f} entries/s ({pytp.wall:.1f} s)",
            f"tar -g peak {mib(tar.max_rss)}, {tar_rate:,.0f} entries/s",
            rate / tar_rate,
            "≤ 256 MiB + buffer",
            cpu_ratio=tar.cpu / pytp.cpu,
        )
    )
