"""Which device node is which library drive: by serial number, else the configured order (issue 11, part 2).

A drive in ``tape_drives`` may carry the ``serial`` the library shows for its
element (the library's panel or web interface lists element and serial).
When it does and the serial of the configured ``device_path`` can be read,
the two must agree; when they do not, the device that has the serial is used
instead (the kernel renumbered the st devices) and ``pytp drives`` says so.
Without a configured serial, or when no serial can be read (a drive without
the VPD page in sysfs), the configured order stands: ``library.drives[i]`` is
element ``i`` with its ``device_path``, and ``pytp drives`` says that too.

No sqlmodel here: ``pytp drives`` and every drive command use this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .config import DriveConfig

#: how a drive's device was settled
BY_SERIAL = "serial"
BY_ORDER = "configured order"
MISMATCH = "serial mismatch"


@dataclass(frozen=True)
class DriveMatch:
    """The device a configured drive is used through, and why.

    :param device: the device node (or virtual drive directory) to open.
    :param how: :data:`BY_SERIAL`, :data:`BY_ORDER` or :data:`MISMATCH`.
    :param serial: the serial read from ``device``, None if it cannot be read.
    :param note: a sentence for ``pytp drives`` (why the order was used, what moved).
    """

    drive: DriveConfig
    device: str
    how: str
    serial: str | None
    note: str


def read_serial(drive_type: str, device: str) -> str | None:
    """The serial of the drive at ``device``: sysfs (st, ``tapeinfo`` as a fallback) or its state (virtual)."""
    if drive_type == "virtual":
        from pytp.tapeio.virtual_drive import drive_serial

        return drive_serial(device)
    from pytp.tapeio.drive_serial import st_serial, tapeinfo_serial

    return st_serial(device) or tapeinfo_serial(device)


def _candidates(drive: DriveConfig) -> list[str]:
    """Devices that may carry ``drive``'s serial: every st node, or the virtual library's drive directories."""
    if drive.type == "virtual":
        parent = Path(drive.device_path).parent
        try:
            return sorted(str(p) for p in parent.iterdir() if (p / "state.json").is_file())
        except OSError:
            return []
    from pytp.tapeio.drive_serial import st_devices

    return st_devices()


def match_drive(drive: DriveConfig) -> DriveMatch:
    """Settle the device of ``drive`` (see the module docstring)."""
    configured = drive.device_path
    found = read_serial(drive.type, configured)
    if drive.serial is None:
        why = "no serial configured" if found is None else f"no serial configured (the device reports {found})"
        return DriveMatch(drive, configured, BY_ORDER, found, why)
    if found == drive.serial:
        return DriveMatch(drive, configured, BY_SERIAL, found, f"{configured} has serial {found}")
    for device in _candidates(drive):
        if os.path.realpath(device) == os.path.realpath(configured):
            continue
        if read_serial(drive.type, device) == drive.serial:
            note = (
                f"serial {drive.serial} is at {device}, not at the configured {configured}"
                + (f" (which has serial {found})" if found else "")
                + f": using {device}"
            )
            return DriveMatch(drive, device, BY_SERIAL, drive.serial, note)
    if found is None:
        return DriveMatch(
            drive, configured, BY_ORDER, None, f"the serial of {configured} cannot be read; configured order used"
        )
    return DriveMatch(
        drive,
        configured,
        MISMATCH,
        found,
        f"{configured} has serial {found}, the configuration says {drive.serial}, and no other drive has it; "
        "configured order used: check tape_drives in the configuration",
    )


def device_for(drive: DriveConfig) -> str:
    """The device to open for ``drive``: by serial when configured and found, else ``device_path``."""
    if drive.serial is None:
        return drive.device_path  # no reads at all for the common case
    return match_drive(drive).device
