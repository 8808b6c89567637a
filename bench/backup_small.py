"""50,000 files of 4 KiB: a pytp backup against ``tar -cf`` to a file."""

from __future__ import annotations

from .context import Context, compare_backup
from .report import Figure, cpu_ratio, emit, named_timing, time_ratio, timing
from .trees import small_files

NAME = "small"
FILE_SIZE = 4096


def run(ctx: Context) -> list[Figure]:
    count = ctx.size(2_000, 50_000)
    source = small_files(ctx.path("small"), count, FILE_SIZE)
    pytp, tar = compare_backup(ctx, source, "tar -cf", "tar -cf {out} {src}")
    return [
        emit(
            Figure(
                f"{count:,} files × 4 KiB, backup",
                timing(pytp),
                named_timing(tar),
                time_ratio(pytp, tar),
                "≥ 0.5",
                cpu_ratio=cpu_ratio(pytp, tar),
            )
        )
    ]
