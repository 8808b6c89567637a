"""Waiting for a drive to become ready after a load (issue 11, part 2).

A changer load returns when the robot has put the cartridge in; the drive then
threads the tape and, for a cartridge it has not seen (a new LTO-9 cartridge),
calibrates it: up to two hours in which it answers TEST UNIT READY with "not
ready".  A blocking ``open`` of ``/dev/nst0`` gives up after the st driver's
own two minutes, so pytp polls the status through a non-blocking handle
(``StDrive.status``: ``O_NONBLOCK`` + ``MTIOCGET``; ``GMT_ONLINE`` is the
drive's "ready") until it is ready or the configured time
(``timeouts.drive_ready_seconds``, default 2 h 10 min) has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .drive import Drive
from .errors import DriveNotReady, NoMedium, TapeIOError

#: the default wait for ready after a load: a new LTO-9 cartridge's first load
#: calibrates for up to two hours, plus ten minutes of margin
DRIVE_READY_SECONDS = 2 * 3600 + 10 * 60

#: seconds between two status polls while waiting (the first polls come sooner)
POLL_SECONDS = 5.0
FIRST_POLL_SECONDS = 0.25

#: a drive that still reports no tape (door open) this long after the load got none
NO_TAPE_SECONDS = 120.0


def wait_until_ready(
    drive: Drive,
    timeout: float = DRIVE_READY_SECONDS,
    *,
    poll: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Return once ``drive`` reports a ready tape; how long that took, in seconds.

    :param timeout: seconds to wait at most.
    :param poll: seconds between status reads at most; the first come after
        :data:`FIRST_POLL_SECONDS`, doubling (the last sleep is cut to the deadline).
    :raises NoMedium: the drive still reports no tape (door open) :data:`NO_TAPE_SECONDS` after the load.
    :raises DriveNotReady: still not ready after ``timeout`` seconds.
    """
    start = clock()
    deadline = start + timeout
    pause = min(FIRST_POLL_SECONDS, poll)  # most loads are ready within seconds: look soon, then less often
    while True:
        try:
            status = drive.status()
        except DriveNotReady:
            status = None
        if status is not None and status.online:
            return clock() - start
        now = clock()
        if status is not None and status.door_open and now - start >= min(NO_TAPE_SECONDS, timeout):
            # Right after the robot's move some drives say "no medium" for a moment; not for minutes.
            raise NoMedium(
                f"Drive {_name(drive)} still holds no tape {now - start:.0f} s after the load: check the library."
            )
        if now >= deadline:
            raise DriveNotReady(
                f"Drive {_name(drive)} was not ready {timeout:g} s after the tape was loaded. A new cartridge's "
                "first load can take up to two hours (LTO-9 calibration); raise timeouts.drive_ready_seconds "
                "in the configuration if the drive needs longer, or check the drive."
            )
        sleep(min(pause, deadline - now))
        pause = min(pause * 2, poll)


def _name(drive: Drive) -> str:
    try:
        return str(getattr(drive, "name", "") or drive)
    except TapeIOError:  # pragma: no cover - a repr that touches the device
        return "?"
