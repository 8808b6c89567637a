"""Who holds a device: the process id and command line, from /proc.

The original pytp showed the process that kept a drive busy (via ``lsof``);
reading /proc directly needs no extra tool.  Linux only; elsewhere the
functions answer "unknown" rather than fail, since they only enrich a message.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

#: overrides this host's name: several "hosts" on one machine share a catalog (tests, demos)
HOSTNAME_ENV = "PYTP_HOSTNAME"


def host_name() -> str:
    """This host's name as jobs record it and ``--host`` filters by: ``$PYTP_HOSTNAME``, else the system's.

    The one place pytp asks who it is, so the override reaches every use.
    """
    return os.environ.get(HOSTNAME_ENV) or socket.gethostname()


def process_cmdline(pid: int) -> str | None:
    """The command line of ``pid`` as one string, or None if it is gone or hidden."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    args = [a.decode("utf-8", "backslashreplace") for a in raw.split(b"\0") if a]
    return " ".join(args) or None


def pid_alive(pid: int) -> bool:
    """True if a process with ``pid`` exists (signal 0 probes without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_identity(pid: int) -> str | None:
    """What tells ``pid`` apart from a later process that reuses the number.

    ``BOOT_ID:STARTTIME``: the kernel's boot id and the process start time in
    clock ticks since boot (field 22 of ``/proc/PID/stat``).  None if the
    process is gone (or /proc is not there).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "?"
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def find_holders(device: str | os.PathLike[str]) -> list[tuple[int, str | None]]:
    """Processes that have ``device`` open, as ``(pid, cmdline)``; own pid excluded."""
    try:
        target = os.stat(device)
    except OSError:
        return []
    holders: list[tuple[int, str | None]] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = os.scandir(f"/proc/{entry.name}/fd")
            for fd in fds:
                try:
                    st = os.stat(fd.path)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino, st.st_rdev) == (target.st_dev, target.st_ino, target.st_rdev):
                    pid = int(entry.name)
                    holders.append((pid, process_cmdline(pid)))
                    break
        except OSError:
            continue
    return holders


def describe_holder(pid: int | None) -> str:
    """``"pid 123 (tar -cf /dev/nst0)"`` for a busy-drive message."""
    if pid is None:
        return "another process"
    cmd = process_cmdline(pid)
    return f"pid {pid} ({cmd})" if cmd else f"pid {pid}"
