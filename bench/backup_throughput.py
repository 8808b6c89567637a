"""Backup throughput of pytp against GNU tar, measured in the same invocation.

Builds a source tree (a few large random files and many small ones) in a temp
dir, then times:
  reference: GNU tar -b N -cf FILE (same block size, writing to a plain file)
  pytp:      run_backup() onto a virtual tape (tar framing, xxh3, catalog rows)
and prints both rates and the ratio pytp/tar, best of --runs runs each (the
machine may be busy).  Run: python bench/backup_throughput.py [--mib 512] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script (python bench/backup_throughput.py) or as a module (python -m bench.backup_throughput).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.site import bench_site  # noqa: E402
from pytp.catalog.backup import BackupOptions, run_backup  # noqa: E402
from pytp.catalog.database import open_catalog  # noqa: E402
from pytp.catalog.devices import select  # noqa: E402

BLOCK = 512 << 10


def make_source(root: Path, mib: int, small_files: int) -> int:
    root.mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    total = 0
    for i in range(4):
        with open(root / f"big{i}.bin", "wb") as f:
            for _ in range(mib // 4):
                f.write(chunk)
        total += (mib // 4) << 20
    for i in range(small_files):
        d = root / f"dir{i // 100}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}.txt").write_bytes(chunk[: 1000 + i % 3000])
        total += 1000 + i % 3000
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=512, help="MiB in large files")
    parser.add_argument("--small", type=int, default=5000, help="number of small files")
    parser.add_argument("--runs", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        total = make_source(work / "src", args.mib, args.small)
        subprocess.run(["sync"])
        tar_seconds = pytp_seconds = float("inf")
        for run in range(args.runs):
            start = time.perf_counter()
            tar_file = work / "ref.tar"
            subprocess.run(["tar", "-b", str(BLOCK // 512), "-cf", str(tar_file), "-C", str(work), "src"], check=True)
            tar_seconds = min(tar_seconds, time.perf_counter() - start)
            os.unlink(tar_file)

            site = work / f"site{run}"
            config = bench_site(site, tape_size=64 << 30, block_size=BLOCK)
            engine = open_catalog(config.catalog_url)
            start = time.perf_counter()
            result = run_backup(
                engine, config, select(config, library_name="bench"), BackupOptions(sources=[str(work / "src")])
            )
            pytp_seconds = min(pytp_seconds, time.perf_counter() - start)
            shutil.rmtree(site)
    mib = total / (1 << 20)
    print(f"source: {mib:.0f} MiB in {result.files} members; block size {BLOCK}")
    print(f"GNU tar -cf   : {tar_seconds:6.2f} s  {mib / tar_seconds:7.1f} MiB/s")
    print(f"pytp backup   : {pytp_seconds:6.2f} s  {mib / pytp_seconds:7.1f} MiB/s  (xxh3 + catalog + manifest)")
    print(f"ratio pytp/tar: {tar_seconds / pytp_seconds:.2f} of GNU tar's throughput")


if __name__ == "__main__":
    main()
