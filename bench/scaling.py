"""N small files for N in a list: does the per-file cost stay flat as N grows?"""

from __future__ import annotations

from .context import Context, compare_backup
from .report import Figure, cpu_ratio, emit, mib, named_timing, time_ratio, timing
from .trees import small_files

NAME = "scaling"
FILE_SIZE = 4096


def run(ctx: Context) -> list[Figure]:
    figures = []
    for count in ctx.size([1_000, 5_000], [10_000, 100_000], [10_000, 100_000, 300_000]):
        source = small_files(ctx.path(f"scaling{count}"), count, FILE_SIZE)
        pytp, tar = compare_backup(ctx, source, "tar -cf", "tar -cf {out} {src}")
        per_file = pytp.wall / count * 1e6
        figures.append(
            emit(
                Figure(
                    f"{count:,} small files (4 KiB), backup",
                    f"{timing(pytp)}, {per_file:.0f} µs/file, peak {mib(pytp.max_rss)}",
                    named_timing(tar),
                    time_ratio(pytp, tar),
                    "≥ 0.5",
                    cpu_ratio=cpu_ratio(pytp, tar),
                )
            )
        )
    return figures
