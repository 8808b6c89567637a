"""``python -m bench``: pytp against the tools it wraps, side by side, in one run.

Each benchmark builds its data set in a temporary directory, then runs pytp
and a reference (GNU tar, plocate, the bare interpreter) alternately,
``--repeat`` rounds, and prints one line per figure: the medians of wall and
CPU seconds (children's rusage) of each side and, last, the ratio (higher is
better for pytp; 1.0 = as fast as the reference).  Both sides are pinned to
one CPU with taskset.  Context (machine, load, data sets) goes to stderr.

Examples:
    python -m bench --quick                 # a smoke check, a few minutes
    python -m bench                         # the sizes of issue 9's table
    python -m bench --full --markdown       # adds 300k and 1M files
    python -m bench --only small --only verify --repeat 5
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from . import backup_small, large_files, memory, real_tree, restore, scaling, search, startup, verify
from .context import Context
from .measure import BenchError, Runner, default_cpu
from .report import Figure, markdown, note

#: in the order of issue 9's table
BENCHMARKS = {
    m.NAME: m for m in (backup_small, real_tree, scaling, memory, verify, restore, search, startup, large_files)
}


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{platform.node()}: {os.cpu_count()} × {model}, {memory:.0f} GiB, Linux {platform.release()}"


def load() -> str:
    uptime = shutil.which("uptime")
    if uptime:
        return subprocess.run([uptime], capture_output=True, text=True).stdout.strip()
    return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes: a smoke check of the suite")
    size.add_argument("--full", action="store_true", help="also the largest sizes (300k files, 1M files' memory)")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each side; medians are reported (3)")
    parser.add_argument("--cpu", type=int, default=default_cpu(), help="CPU to pin both sides to (the last one)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--tmp", type=Path, help="where to build the data sets (default: the system's temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the data sets and sandboxes")
    parser.add_argument("--markdown", action="store_true", help="end with the figures as a Markdown table")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "full" if args.full else "default"
    runner = Runner(None if args.no_pin else args.cpu)
    note(f"pytp {version('pytp')}, Python {platform.python_version()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    note(machine())
    note(f"mode {mode}, {args.repeat} rounds, medians, {runner.describe()}")
    note(f"at start: {load()}")
    tmp = Path(tempfile.mkdtemp(prefix="pytp-bench-", dir=args.tmp))
    figures: list[Figure] = []
    status = 0
    started = time.perf_counter()
    try:
        for name in args.only or BENCHMARKS:
            module = BENCHMARKS[name]
            ctx = Context(tmp=tmp / name, runner=runner, repeat=args.repeat, mode=mode)
            ctx.tmp.mkdir()
            try:
                figures.extend(module.run(ctx))
            except BenchError as err:
                print(f"{name}: FAILED: {err}", file=sys.stderr, flush=True)
                status = 1
            finally:
                if not args.keep:
                    shutil.rmtree(ctx.tmp, ignore_errors=True)
    except KeyboardInterrupt:
        status = 130
    finally:
        if args.keep:
            note(f"data sets kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    note(f"at end ({time.perf_counter() - started:.0f} s): {load()}")
    if args.markdown and figures:
        print()
        print(markdown(figures))
    return status


if __name__ == "__main__":
    sys.exit(main())
