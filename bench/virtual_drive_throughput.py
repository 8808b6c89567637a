"""Throughput of the virtual drive: large writes and reads, in MiB/s.

The virtual drive is what the tests and the embedded default run on, so a
slow one slows everything; the test suite checks only that large transfers
move many blocks per call (tests/tapeio/test_virtual_drive.py), and the
timing lives here.  Run: python bench/virtual_drive_throughput.py [--mib 64] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from pytp.tapeio.drive import ensure_block_size
from pytp.tapeio.virtual_drive import VirtualDrive, create_virtual_drive, load_tape, unload_tape
from pytp.tapeio.virtual_tape import create_virtual_tape

MiB = 1 << 20
BLOCK = 512 << 10  # the default block size


def one_run(work: Path, mib: int, run: int) -> tuple[float, float]:
    """Seconds to write ``mib`` MiB in 1 MiB writes, and to read them back in 4 MiB reads."""
    drive_dir = create_virtual_drive(work / f"drive{run}")
    tape = create_virtual_tape(work / f"tape{run}", f"BNC{run:03d}L9", capacity=(mib + 64) * MiB)
    load_tape(drive_dir, tape)
    chunk = os.urandom(MiB)
    drive = VirtualDrive(drive_dir, name="bench")
    try:
        ensure_block_size(drive, BLOCK)
        drive.rewind()
        start = time.perf_counter()
        for _ in range(mib):
            drive.write(chunk)
        drive.weof(1)
        write_seconds = time.perf_counter() - start
        drive.rewind()
        start = time.perf_counter()
        total = 0
        while data := drive.read(4 * MiB):
            total += len(data)
        read_seconds = time.perf_counter() - start
    finally:
        drive.close()
    if total != mib * MiB:
        raise SystemExit(f"read back {total} bytes, wrote {mib * MiB}")
    unload_tape(drive_dir)
    return write_seconds, read_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=64, help="MiB written and read back")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median counts")
    args = parser.parse_args()
    writes, reads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            w, r = one_run(Path(tmp), args.mib, run)
            writes.append(w)
            reads.append(r)
    writes.sort()
    reads.sort()
    w, r = writes[len(writes) // 2], reads[len(reads) // 2]
    print(f"virtual drive write: {args.mib} MiB in {w:6.3f} s  {args.mib / w:8.1f} MiB/s (median of {args.runs})")
    print(f"virtual drive read : {args.mib} MiB in {r:6.3f} s  {args.mib / r:8.1f} MiB/s (median of {args.runs})")


if __name__ == "__main__":
    main()
