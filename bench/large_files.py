"""4 random files of 256 MiB (1 GiB with ``--full``), in the page cache: a pytp
backup against ``tar -b1024 -cf - | cat`` (the same 512 KiB blocks, through a
pipe as to a drive).

A drive takes the bytes through ``write()``; the virtual drive writes them to a
file, and on a disk that is the kernel's file system work (on an ext4 mounted
with ``discard``, 0.4–5 GB/s depending on what was freed before), which
``tar | cat > /dev/null`` never does.  So the sandbox's virtual library goes on
tmpfs (``/dev/shm``) when it has room, and a second reference writes tar's bytes
to a file in that same place: the line against ``> /dev/null`` is what pytp
costs beyond tar, the line against the file is the like-for-like one.  pytp's
rate is also given after start-up (interpreter, imports, catalog: the time of
a backup of one small file, interleaved with the others, is subtracted).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .context import Context, compare_backup_with, pytp_backup_once
from .measure import Series
from .report import Figure, cpu_ratio, emit, named_timing, note, time_ratio, timing
from .trees import large_files

NAME = "large"
COUNT = 4
#: tmpfs used for the tapes only when this much more than they need is free
MARGIN = 512 << 20


def tape_place(need: int) -> Path | None:
    """A fresh directory on tmpfs for the virtual tapes, or None (no room: they stay in the temporary directory)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shutil.disk_usage(shm).free < need + MARGIN:
        return None
    return Path(tempfile.mkdtemp(prefix="pytp-bench-tapes-", dir=shm))


def run(ctx: Context) -> list[Figure]:
    size = ctx.size(16 << 20, 256 << 20, 1 << 30)
    data = COUNT * size
    source = large_files(ctx.path("large"), COUNT, size)
    tiny = ctx.path("one-file")
    tiny.mkdir()
    (tiny / "f").write_bytes(b"x")
    # pytp's tape and the reference's file are never there at the same time; headers add little
    place = tape_place(data + data // 8)
    where = "tmpfs" if place is not None else "the temporary directory's file system"
    note(f"large: virtual tapes and the reference's file on {where} ({place or ctx.tmp})")
    startup = Series("pytp backup of one small file")
    try:
        pytp, (discard, to_file) = compare_backup_with(
            ctx,
            source,
            [
                ("tar -b1024 -cf - | cat > /dev/null", "tar -b1024 -cf - {src} | cat > /dev/null"),
                (f"tar -b1024 -cf - | cat > file on {where}", "tar -b1024 -cf - {src} | cat > {out}"),
            ],
            library_in=place,
            extra_sides=[(startup, lambda: pytp_backup_once(ctx, tiny, library_in=place))],
        )
    finally:
        if place is not None:
            shutil.rmtree(place, ignore_errors=True)
    rate = data / pytp.wall / 1e6
    steady, steady_cpu = pytp.wall - startup.wall, pytp.cpu - startup.cpu
    after = (
        f"; after start-up ({startup.wall:.2f} s, CPU {startup.cpu:.2f} s) {data / steady / 1e6:.0f} MB/s, "
        f"{data / steady_cpu / 1e6:.0f} MB per CPU second"
        if steady > 0 and steady_cpu > 0
        else ""
    )
    text = f"{timing(pytp)}, {rate:.0f} MB/s{after}"
    work = f"{COUNT} × {size >> 20} MiB random files, backup, tape on {'tmpfs' if place else 'disk'}"
    return [
        emit(Figure(work, text, named_timing(ref), time_ratio(pytp, ref), "≥ 1.0", cpu_ratio=cpu_ratio(pytp, ref)))
        for ref in (discard, to_file)
    ]
