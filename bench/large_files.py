"""4 random files of 256 MiB, in the page cache: a pytp backup against
``tar -b1024 -cf - | cat`` (the same 512 KiB blocks, through a pipe as to a drive)."""

from __future__ import annotations

from .context import Context, compare_backup
from .report import Figure, cpu_ratio, emit, named_timing, time_ratio, timing
from .trees import large_files

NAME = "large"


def run(ctx: Context) -> list[Figure]:
    size = ctx.size(16 << 20, 256 << 20)
    source = large_files(ctx.path("large"), 4, size)
    pytp, tar = compare_backup(ctx, source, "tar -b1024 -cf - | cat", "tar -b1024 -cf - {src} | cat > /dev/null")
    rate = 4 * size / pytp.wall / 1e6
    return [
        emit(
            Figure(
                f"4 × {size >> 20} MiB random files, backup",
                f"{timing(pytp)}, {rate:.0f} MB/s",
                named_timing(tar),
                time_ratio(pytp, tar),
                "≥ 1.0",
                cpu_ratio=cpu_ratio(pytp, tar),
            )
        )
    ]
