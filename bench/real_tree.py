"""A real tree (a copy of part of /usr/share): a pytp backup against ``tar -cf``."""

from __future__ import annotations

from .context import Context, compare_backup
from .report import Figure, cpu_ratio, emit, named_timing, note, time_ratio, timing
from .trees import REAL_TREE_SOURCE, real_tree, tree_stats

NAME = "real-tree"


def run(ctx: Context) -> list[Figure]:
    max_files, max_bytes = ctx.size((2_000, 64 << 20), (20_000, 512 << 20))
    source, files, size = real_tree(ctx.path("real-tree"), max_files, max_bytes)
    entries, _ = tree_stats(source)
    note(
        f"real tree: {files:,} regular files ({size / 1e6:.0f} MB), {entries:,} entries, copied from {REAL_TREE_SOURCE}"
    )
    pytp, tar = compare_backup(ctx, source, "tar -cf", "tar -cf {out} {src}")
    return [
        emit(
            Figure(
                f"real tree ({REAL_TREE_SOURCE}: {files:,} files, {size / 1e6:.0f} MB), backup",
                timing(pytp),
                named_timing(tar),
                time_ratio(pytp, tar),
                "≥ 0.5",
                cpu_ratio=cpu_ratio(pytp, tar),
            )
        )
    ]
