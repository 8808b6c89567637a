"""50,000 files of 4 KiB: a pytp backup against ``tar -cf`` to a file.

A third side is a design probe (:mod:`.tar_stream_probe`): GNU tar writing
the archive with pytp's header layout while a Python process parses its
headers, hashes each file and passes the stream to a file.  It is what a
pipeline that lets GNU tar produce the stream would cost at the least, and
is shown against the same ``tar -cf``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from . import tar_stream_probe
from .context import Context, compare_backup_with
from .report import Figure, cpu_ratio, emit, named_timing, time_ratio, timing
from .trees import small_files

NAME = "small"
FILE_SIZE = 4096
PROBE = shlex.join([sys.executable, str(Path(tar_stream_probe.__file__).resolve())])


def run(ctx: Context) -> list[Figure]:
    count = ctx.size(2_000, 50_000)
    source = small_files(ctx.path("small"), count, FILE_SIZE)
    probe_pipeline = f"tar {tar_stream_probe.TAR_OPTIONS} -cf - {{src}} | {PROBE} {{out}}"
    pytp, (tar, probe) = compare_backup_with(
        ctx, source, [("tar -cf", "tar -cf {out} {src}"), ("tar | header parser", probe_pipeline)]
    )
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
        ),
        emit(
            Figure(
                f"{count:,} files × 4 KiB, probe: tar | parser",
                timing(probe),
                named_timing(tar),
                time_ratio(probe, tar),
                "(a floor for that design)",
                cpu_ratio=cpu_ratio(probe, tar),
                side="probe",
            )
        ),
    ]
