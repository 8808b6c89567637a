"""A tape drive's serial number, and which device node carries a given one (issue 11, part 2).

Linux numbers ``st`` devices in the order it finds them: after a reboot, a
firmware update or a replaced HBA, ``/dev/nst0`` may be the library's second
drive.  The library knows its drives by element number and serial number
(its panel and web interface list both), so a drive configured with its
``serial`` is found by serial wherever the kernel put it.

Where the serial comes from, in order:

* sysfs: ``/sys/class/scsi_tape/nstN/device/vpd_pg80``, the drive's Unit
  Serial Number VPD page (SPC-4 7.8.19) as the kernel read it at probe time:
  no command is sent to the drive, so a busy drive answers too;
* ``tapeinfo -f DEVICE`` (the mtx package), its ``SerialNumber:`` line, on
  systems whose kernel does not export the page;
* a virtual drive's ``state.json`` (``serial``).

Parsing is pure (tested on captured output); the functions that read sysfs
or run ``tapeinfo`` only fetch the text.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

#: where the kernel lists st devices
SCSI_TAPE_SYSFS = "/sys/class/scsi_tape"

_TAPEINFO_SERIAL = re.compile(r"^SerialNumber:\s*'([^']*)'", re.MULTILINE)
#: the non-rewinding node of each st device: nst0, nst1 (not nst0a, nst0l, nst0m)
_NST = re.compile(r"^nst\d+$")


def parse_vpd_pg80(data: bytes) -> str | None:
    """The serial number in a Unit Serial Number VPD page (0x80), or None.

    Layout (SPC-4): byte 1 is the page code 0x80, bytes 2-3 the length of what
    follows, then the serial in ASCII, often padded with spaces (or NULs).
    """
    if len(data) < 4 or data[1] != 0x80:
        return None
    length = int.from_bytes(data[2:4], "big")
    serial = data[4 : 4 + length].decode("ascii", "replace").strip(" \x00")
    return serial or None


def parse_tapeinfo_serial(text: str) -> str | None:
    """The ``SerialNumber: '...'`` of ``tapeinfo`` output, or None."""
    found = _TAPEINFO_SERIAL.search(text)
    if found is None:
        return None
    return found.group(1).strip() or None


def st_serial(device_path: str | os.PathLike[str], sysfs: str = SCSI_TAPE_SYSFS) -> str | None:
    """The serial of the st drive at ``device_path`` (``/dev/nst0`` or a by-id link), from sysfs."""
    name = os.path.basename(os.path.realpath(device_path))
    try:
        data = Path(sysfs, name, "device", "vpd_pg80").read_bytes()
    except OSError:
        return None
    return parse_vpd_pg80(data)


def tapeinfo_serial(device_path: str | os.PathLike[str], timeout: float = 30.0) -> str | None:
    """The serial ``tapeinfo`` reports (an INQUIRY sent to the drive), or None without tapeinfo."""
    program = shutil.which("tapeinfo")
    if program is None:
        return None
    try:
        done = subprocess.run(
            [program, "-f", os.fspath(device_path)], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_tapeinfo_serial(done.stdout) if done.returncode == 0 else None


def st_devices(sysfs: str = SCSI_TAPE_SYSFS) -> list[str]:
    """Every non-rewinding st node the kernel knows, ``/dev/nst0`` first."""
    try:
        names = [n for n in os.listdir(sysfs) if _NST.match(n)]
    except OSError:
        return []
    return [f"/dev/{n}" for n in sorted(names, key=lambda n: int(n[3:]))]


def find_st_by_serial(serial: str, sysfs: str = SCSI_TAPE_SYSFS) -> str | None:
    """The non-rewinding st node of the drive with this serial, or None."""
    for device in st_devices(sysfs):
        if st_serial(device, sysfs) == serial:
            return device
    return None
