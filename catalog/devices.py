"""From configuration to open devices: which drive, which library, and the lock.

A command names a drive (``--drive``/``PYTP_DEV``), a library
(``--library``/``PYTP_LIB``), both or neither.  With a library and no drive,
pytp takes that library's first free drive.  While a command uses a drive it
holds a per-drive lock file, so a second pytp on the same drive stops at once
with the holder's pid and command line instead of interleaving tape commands.
Choosing a free drive takes its lock, so two commands started together on a
library get different drives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytp.tapeio.errors import DriveBusy
from pytp.tapeio.pidlock import holder, try_lock, unlock

from .config import Config, DriveConfig, LibraryConfig, data_home
from .errors import ConfigError

if TYPE_CHECKING:  # the drive and changer code is imported by open_drive/open_changer, when a device is opened
    from pytp.tapeio.changer import Changer
    from pytp.tapeio.drive import Drive


@dataclass(frozen=True)
class Selection:
    """The drive a command works with, and its library if it sits in one.

    :param element: the drive's data transfer element number in the library.
    """

    drive: DriveConfig
    library: LibraryConfig | None = None
    element: int | None = None
    #: chosen by pytp (the library's first free drive), not named by the user:
    #: a restore may take the drive that holds its tape instead (``take_instead``)
    automatic: bool = field(default=False, compare=False)


def open_drive(drive: DriveConfig) -> Drive:
    """Open the drive's device (virtual directory or ``/dev/nst*``), found by serial when configured."""
    from .drive_matching import device_for

    device = device_for(drive)
    if drive.type == "virtual":
        from pytp.tapeio.virtual_drive import VirtualDrive

        return VirtualDrive(device, name=drive.name)
    from pytp.tapeio.st_drive import StDrive

    return StDrive(device, name=drive.name)


def open_changer(library: LibraryConfig) -> Changer:
    if library.type == "virtual":
        from pytp.tapeio.virtual_changer import LIBRARY_FILE, VirtualChanger

        if not Path(library.device_path, LIBRARY_FILE).is_file():
            # the directory is the device: a wrong path is a configuration error, not a crash
            raise ConfigError(
                f"Library '{library.name}': there is no virtual library at {library.device_path} "
                f"({LIBRARY_FILE} is missing). Fix its device_path in the configuration, "
                "or create one with `pytp library add-virtual`."
            )
        return VirtualChanger(library.device_path, name=library.name)
    from pytp.tapeio.mtx import MtxChanger

    return MtxChanger(library.device_path, name=library.name, timeout=library.move_timeout)


def _lock_path(drive: DriveConfig) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in drive.name)
    return data_home() / "locks" / f"drive-{safe}.lock"


def lock_holder(drive: DriveConfig) -> int | None:
    """The pid of the live process holding ``drive``'s command lock, None when it is free.

    Only reads the lock file (taking the lock to test it would make another
    pytp starting at that instant see the drive busy); a pid whose process
    is gone was left by a crash and does not count.
    """
    pid = holder(_lock_path(drive))
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return pid


def _try_lock(path: Path) -> int | None:
    """An fd holding the lock at ``path``, or None if someone else holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return try_lock(path)


@dataclass
class _Held:
    """A drive lock this process holds: its fd, and how many ``drive_lock`` blocks use it."""

    fd: int
    pid: int
    users: int = 0


#: Drive locks held by this process, by lock path.  ``select`` takes a drive
#: when it chooses it (issue 8, defect 6: probing a lock by taking and
#: releasing it let two backups choose the same free drive); the command's
#: ``drive_lock`` then adopts that lock instead of taking it a second time,
#: and releases it when its block ends.
_held: dict[Path, _Held] = {}


def _own(path: Path) -> _Held | None:
    held = _held.get(path)
    if held is not None and held.pid != os.getpid():  # inherited through fork: not ours
        del _held[path]
        return None
    return held


def _claim(drive: DriveConfig) -> bool:
    """Take ``drive`` for this process if it is free (or already ours and unused)."""
    path = _lock_path(drive)
    held = _own(path)
    if held is not None:
        return held.users == 0
    fd = _try_lock(path)
    if fd is None:
        return False
    _held[path] = _Held(fd, os.getpid())
    return True


def _release(path: Path) -> None:
    held = _held.pop(path, None)
    if held is not None:
        unlock(held.fd)


def release_unused() -> None:
    """Let go of drives this process chose but never used (a command that stopped early)."""
    for path, held in list(_held.items()):
        if held.pid == os.getpid() and held.users == 0:
            _release(path)


@contextmanager
def drive_lock(drive: DriveConfig) -> Iterator[None]:
    """Hold ``drive`` for this process for the duration of the block.

    A drive that ``select`` chose is already held: the block adopts the lock,
    and releases it at its end like one it took itself.

    :raises DriveBusy: another pytp holds it.
    """
    path = _lock_path(drive)
    held = _own(path)
    if held is None:
        fd = _try_lock(path)
        if fd is None:
            from pytp.tapeio.procinfo import describe_holder  # only for this message

            raise DriveBusy(
                f"Drive {drive.name} is busy: used by {describe_holder(holder(path))}. "
                "Wait for it to finish, or choose another drive with --drive."
            )
        held = _held[path] = _Held(fd, os.getpid())
    held.users += 1
    try:
        yield
    finally:
        held.users -= 1
        if held.users == 0:
            _release(path)


def select(config: Config, drive_name: str | None = None, library_name: str | None = None) -> Selection:
    """Choose the drive and library for a command.

    Order: ``drive_name``, ``$PYTP_DEV``; else the library (``library_name``,
    ``$PYTP_LIB``, the first configured) and its first free drive; else the
    first configured drive.  A drive chosen from a library is taken (locked)
    at once and stays taken until the ``drive_lock`` block of the command
    that uses it ends.

    :raises ConfigError: a named drive or library is unknown, or none is configured.
    """
    drive_name = drive_name or os.environ.get("PYTP_DEV") or None
    library_name = library_name or os.environ.get("PYTP_LIB") or None
    library = config.library(library_name) if library_name else None
    if drive_name:
        drive = config.drive(drive_name)
        placed = config.library_of(drive.name)
        if library is not None and (placed is None or placed[0].name != library.name):
            raise ConfigError(f"Drive '{drive.name}' is not in library '{library.name}'.")
        if placed is None:
            return Selection(drive)
        return Selection(drive, placed[0], placed[1])
    if library is None and config.libraries:
        library = config.libraries[0]
    if library is not None:
        if not library.drives:
            raise ConfigError(f"Library '{library.name}' lists no drives; add them to its 'drives' in {config.path}.")
        for index, name in enumerate(library.drives):
            drive = config.drive(name)
            # Choosing a drive takes it: a second pytp choosing now sees it busy.
            if _claim(drive):
                return Selection(drive, library, index, automatic=True)
        drive = config.drive(library.drives[0])
        return Selection(drive, library, 0)  # all busy: the lock will say by whom
    if not config.drives:
        raise ConfigError(f"No tape drives are configured in {config.path}; add one to 'tape_drives'.")
    return Selection(config.drives[0])


def take_instead(config: Config, selection: Selection, drive_name: str) -> Selection | None:
    """The library drive ``drive_name`` instead of the one pytp chose, if it is free.

    A restore whose tape sits in another drive reads it there rather than
    moving it (issue 11).  A drive the user named is kept.

    :returns: the new selection (the other drive taken, the chosen one let go), or None.
    """
    library = selection.library
    if not selection.automatic or library is None or drive_name not in library.drives:
        return None
    if drive_name == selection.drive.name:
        return None
    drive = config.drive(drive_name)
    if not _claim(drive):
        return None
    path = _lock_path(selection.drive)
    held = _own(path)
    if held is not None and held.users == 0:
        _release(path)
    return Selection(drive, library, library.drives.index(drive_name), automatic=True)


def select_library(config: Config, library_name: str | None = None) -> LibraryConfig:
    """The library for changer commands: named, ``$PYTP_LIB``, or the first one."""
    name = library_name or os.environ.get("PYTP_LIB") or None
    if name:
        return config.library(name)
    if not config.libraries:
        raise ConfigError(f"No tape library is configured in {config.path}; add one to 'tape_libraries'.")
    return config.libraries[0]
