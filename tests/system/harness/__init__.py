"""System-test harness: real Linux tape drivers (st, sg, ch) against tgt.

The pieces, from the bottom up:

* :class:`TapeLibrary` runs a private ``tgtd`` on a free loopback port and
  configures it with ``tgtadm`` from a :class:`LibrarySpec`: N tape drives
  (SSC LUNs), a media changer (SMC LUN) with storage slots and import/export
  slots, and cartridges made by ``tgtimg`` with barcodes and sizes in MB.
* :func:`prepare_guest` builds (once, then caches) what a QEMU guest boots:
  the kernel of Debian's ``linux-image-amd64`` package, fetched with
  ``apt-get download`` and unpacked with ``dpkg-deb`` (never installed), and
  a small initramfs holding busybox, the SCSI/virtio/9p modules in
  dependency order and an ``/init`` that mounts the host's root over 9p and
  runs a script in a chroot there.
* :func:`run_in_guest` boots QEMU (TCG) with every LUN of the library passed
  through (``scsi-generic`` over QEMU's own iSCSI initiator), so inside the
  guest the kernel's ``st``, ``sg`` and ``ch`` drivers see ``/dev/nst*`` and
  a changer ``/dev/sgN`` exactly as on a server with a tape library. The
  script runs with the host's own Python and the installed pytp; its exit
  status, stdout and stderr come back through files in a job directory
  shared over a second, uncached 9p mount (not by parsing the console).

Nothing here imports pytest: :class:`HarnessUnavailable` says that a piece is
missing, and the caller decides whether that is a skip or a failure
(``tests/system/conftest.py``: a failure when ``CI`` is set).

The package's modules, one concern each: ``host`` (errors, processes,
prerequisites), ``image`` (the guest image), ``tgt`` (the tape library) and
``guest`` (QEMU and the script's results).

Running it by hand, for a look at the devices::

    python3 -m tests.system.harness 'lsscsi -g; mtx -f $PYTP_TEST_CHANGER status'
"""

from .guest import GuestDevices, GuestResult, StepResult, run_in_guest
from .host import (
    INSTALL_HINT,
    GuestError,
    GuestTimeout,
    HarnessError,
    HarnessUnavailable,
    TgtError,
    _live,
    default_cache_dir,
    missing_prerequisites,
    repo_root,
)
from .image import GuestImage, prepare_guest
from .tgt import Cartridge, LibrarySpec, TapeLibrary

__all__ = [
    "Cartridge",
    "GuestDevices",
    "GuestError",
    "GuestImage",
    "GuestResult",
    "GuestTimeout",
    "HarnessError",
    "HarnessUnavailable",
    "INSTALL_HINT",
    "LibrarySpec",
    "StepResult",
    "TapeLibrary",
    "TgtError",
    "_live",
    "default_cache_dir",
    "missing_prerequisites",
    "prepare_guest",
    "repo_root",
    "run_in_guest",
]
