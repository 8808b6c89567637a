"""Where the time goes: ``python -m bench.profile backup|verify|restore [--files N]``.

Builds N files of 4 KiB (default 50,000) and a sandbox, then samples one
``pytp backup`` (or, after an unmeasured backup, one ``pytp verify`` or one
``pytp restore`` of the whole job into an empty directory) with
py-spy (all threads, 250 samples/s; ``pip install py-spy``) and prints the
functions with the largest share of samples: *self* (the function itself was
running) and *total* (it was on the stack), plus the share per source file.
Without py-spy it falls back to cProfile, which sees the main thread only.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .sandbox import Sandbox
from .trees import small_files

#: leaf functions of a thread that waits for its peer (py-spy counts them as active)
WAITING = {"Condition.wait", "Event.wait", "Thread.join", "Queue.get", "Queue.put", "_wait_for_tstate_lock", "wait"}
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def where(frame: str) -> tuple[str, str]:
    """``(function, short file)`` of a py-spy frame ``func (path/file.py:12)``."""
    match = FRAME.match(frame)
    if not match:
        return frame, "?"
    path = match["file"]
    for marker in ("/pytp/", "site-packages/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3.":
                path = "stdlib/" + path.split("/", 1)[1]
            break
    return match["func"], path


def summarize(raw: Path, top: int) -> str:
    """The top functions (self, total) and files (self) of a py-spy ``--format raw`` file."""
    self_time: collections.Counter[str] = collections.Counter()
    total_time: collections.Counter[str] = collections.Counter()
    by_file: collections.Counter[str] = collections.Counter()
    samples = busy = waiting = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [
            where(f) for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")
        ]
        if not frames:
            continue
        func, file = frames[-1]
        if func in WAITING:
            waiting += count  # a thread blocked on its peer: not work
            continue
        busy += count
        self_time[f"{func} ({file})"] += count
        by_file[file] += count
        for name in {f"{fn} ({fl})" for fn, fl in frames if not fl.startswith(("click/", "cli/main.py", "pytp"))}:
            total_time[name] += count
    out = [f"{samples} samples: {busy} busy, {waiting} waiting on another thread (left out; shares are of busy ones)"]
    for title, counter in (("self", self_time), ("total (on the stack)", total_time), ("self, per file", by_file)):
        out.append(f"\n{title}:")
        for name, count in counter.most_common(top):
            out.append(f"  {100 * count / busy:5.1f} %  {name}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work", choices=["backup", "verify", "restore"])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, help="keep the raw samples (py-spy) or the .prof (cProfile) here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pytp-profile-"))
    try:
        source = small_files(tmp / "src", args.files, 4096)
        site = Sandbox(tmp / "site")
        if args.work == "verify":
            site.call("backup", str(source))
            command = ["verify", "--job", "1"]
        elif args.work == "restore":
            site.call("backup", str(source))
            command = ["restore", str(tmp / "restored"), "--job", "1"]
        else:
            command = ["backup", str(source)]
        spy = shutil.which("py-spy")
        if spy:
            raw = args.out or tmp / "samples.txt"
            subprocess.run(
                [
                    spy,
                    "record",
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "--threads",
                    "-o",
                    str(raw),
                    "--",
                    *site.argv(*command),
                ],
                env=site.env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            print(f"py-spy, all threads: pytp {' '.join(command[:1])} of {args.files:,} files × 4 KiB")
            print(summarize(raw, args.top))
        else:
            prof = args.out or tmp / "pytp.prof"
            subprocess.run(
                [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "pytp.cli.main", *command],
                env=site.env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            import pstats

            print(f"cProfile (main thread only): pytp {command[0]} of {args.files:,} files × 4 KiB")
            pstats.Stats(str(prof)).sort_stats("tottime").print_stats(args.top)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
