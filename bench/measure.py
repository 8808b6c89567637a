"""Running a command and measuring it: wall seconds, CPU seconds, peak memory.

Every run is a child process waited for with ``os.wait4``, whose rusage covers
the child and every descendant it reaped (a ``sh -c "cat | tar"`` pipeline
included), so CPU seconds are the children's user + system time and the peak
RSS is the largest of them.  Both sides of a comparison run the same way:
pinned to one CPU with ``taskset`` when it is there, because on this 2-core VM
a pipe between the two CPUs is sometimes very slow and the ratio would measure
the hypervisor instead of the program.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class BenchError(Exception):
    """A measured command failed; the benchmark cannot go on."""


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    #: peak resident set size in bytes (the largest process of the run)
    max_rss: int


@dataclass
class Series:
    """The samples of one side of a comparison; medians are what is reported."""

    name: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def cpu(self) -> float:
        return statistics.median(s.cpu for s in self.samples)

    @property
    def max_rss(self) -> int:
        return max(s.max_rss for s in self.samples)


class Runner:
    """Runs commands pinned to one CPU (if ``cpu`` is not None and taskset exists)."""

    def __init__(self, cpu: int | None) -> None:
        self.taskset = shutil.which("taskset") if cpu is not None else None
        self.cpu = cpu if self.taskset else None

    def describe(self) -> str:
        return f"pinned to CPU {self.cpu} with taskset" if self.cpu is not None else "not pinned"

    def run(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stdout: Path | None = None,
    ) -> Sample:
        """Run ``argv`` to completion; raise :class:`BenchError` on a non-zero exit.

        :param stdout: a file for the output (default: discarded).
        """
        command = list(argv)
        if self.cpu is not None:
            command = [self.taskset or "taskset", "-c", str(self.cpu), *command]
        out = open(stdout, "wb") if stdout else subprocess.DEVNULL
        try:
            start = time.perf_counter()
            process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.PIPE)
            # wait4 gives this child's rusage alone (with its reaped descendants),
            # not the sum over every child this benchmark ever ran.
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)
            assert process.stderr is not None
            err = process.stderr.read().decode(errors="replace")
            process.stderr.close()
        finally:
            if stdout:
                out.close()  # type: ignore[union-attr]
        if process.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited with {process.returncode}:\n{err.strip()[-2000:]}")
        return Sample(wall=wall, cpu=usage.ru_utime + usage.ru_stime, max_rss=usage.ru_maxrss * 1024)

    def shell(
        self, script: str, *, env: dict[str, str] | None = None, cwd: Path | None = None, pipefail: bool = True
    ) -> Sample:
        """Run a shell pipeline; ``pipefail`` so a failing first stage is not hidden.

        :param pipefail: False where a reader may stop early on purpose (``cat | tar -t``
            stops at the end-of-archive marker and ``cat`` gets SIGPIPE on the padding).
        """
        return self.run(["bash", "-o", "pipefail" if pipefail else "posix", "-c", script], env=env, cwd=cwd)


def interleave(
    repeat: int,
    sides: Sequence[tuple[Series, Callable[[], Sample]]],
    between: Callable[[], None] | None = None,
) -> None:
    """Run each side once per round, in turn (A B A B ...), so a load that comes
    and goes on the shared machine hits both sides alike.

    :param between: called after every run (e.g. to remove an output file).
    """
    for _ in range(repeat):
        for series, run_once in sides:
            series.samples.append(run_once())
            if between:
                between()


def default_cpu() -> int | None:
    """The last CPU this process may use: the one both sides are pinned to."""
    try:
        return max(os.sched_getaffinity(0))
    except (AttributeError, ValueError):
        return None
