"""Running a command and measuring it: wall seconds, CPU seconds, peak memory.

Every run is a child process waited for with ``os.wait4``, whose rusage covers
the child and every descendant it reaped (a ``sh -c "cat | tar"`` pipeline
included), so CPU seconds are the children's user + system time.  The peak RSS is the
measured program's own high-water mark, read while it runs (see
``_wait_watching_peak`` for why rusage's is not).  Both sides of a comparison run the same way:
pinned to one CPU with ``taskset`` when it is there, because on this 2-core VM
a pipe between the two CPUs is sometimes very slow and the ratio would measure
the hypervisor instead of the program.
"""

from __future__ import annotations

import os
import select
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


#: how often a running child's peak resident set is read (its exit is seen at once)
_PEAK_POLL = 0.01


def _wait_watching_peak(pid: int) -> tuple[int, os.struct_rusage, int | None]:
    """Wait for ``pid``; its exit status, rusage, and its own peak RSS in bytes (None: not
    watched, no pidfd; 0: gone before it could be read).

    wait4 gives this child's rusage alone (with its reaped descendants), not
    the sum over every child this benchmark ever ran.  Its ``ru_maxrss`` is no
    peak of the program, though: Linux keeps, across ``exec``, the resident
    set of the process that forked it, so every child "peaked" at least at the
    benchmark's own size (1 GiB after writing a million-line manifest).  The
    program's own high-water mark, ``VmHWM`` of the ``exec``'d image (``taskset``
    execs the measured command in place), is read while it runs instead; a
    pidfd tells the moment it exits, so the wall time loses nothing.  A
    pipeline's figure is its shell's; no benchmark reports one.
    """
    peak = 0
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux ≥ 5.3: rusage only
        _, status, usage = os.wait4(pid, 0)
        return status, usage, None
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        peak = _high_water_mark(pid)
        while not poller.poll(_PEAK_POLL * 1000):
            peak = max(peak, _high_water_mark(pid))
    finally:
        os.close(pidfd)
    _, status, usage = os.wait4(pid, 0)
    return status, usage, peak


def _high_water_mark(pid: int) -> int:
    """``VmHWM`` of a running process in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


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
            status, usage, peak = _wait_watching_peak(process.pid)
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
        return Sample(
            wall=wall, cpu=usage.ru_utime + usage.ru_stime, max_rss=usage.ru_maxrss * 1024 if peak is None else peak
        )

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
