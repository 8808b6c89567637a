"""The tape library on the host: a private ``tgtd`` serving tape drives (SSC),
a media changer (SMC) and barcoded cartridges over iSCSI on loopback."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .host import HarnessUnavailable, TgtError, _free_port, _kill, _need, _run, _spawn, _tail

# --------------------------------------------------------------------------
# The tape library (tgt)


_BARCODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


@dataclasses.dataclass(frozen=True)
class Cartridge:
    """A virtual cartridge made with ``tgtimg``.

    :ivar barcode: also the file name in the library's media directory.
    :ivar size_mb: capacity; the tape reports end of medium when it is full.
    :ivar slot: storage slot, numbered from 1 as ``mtx`` numbers them.
    :ivar mailslot: import/export slot, numbered from 1 within the I/E slots.
    :ivar drive: for a library without changer only: the drive it sits in.
        A cartridge with no place is created in the media directory only.
    """

    barcode: str
    size_mb: int = 64
    slot: int | None = None
    mailslot: int | None = None
    drive: int | None = None


@dataclasses.dataclass(frozen=True)
class LibrarySpec:
    """What tgt should emulate.

    Element addresses follow the HP MSL2024 example shipped with tgt: the
    picker at 1, drives from 2, import/export from 100, slots from 1000.
    Drive *i* is LUN *i*+1 and SCSI target *i* in the guest, so it shows up
    as ``/dev/nst<i>``; the changer is the LUN after the drives.

    :ivar drives: number of tape drives.
    :ivar slots: number of storage slots.
    :ivar import_export: number of import/export (mail) slots.
    :ivar cartridges: the cartridges and where they start.
    :ivar changer: False for standalone drives without a media changer.
    """

    drives: int = 2
    slots: int = 8
    import_export: int = 0
    cartridges: tuple[Cartridge, ...] = ()
    changer: bool = True

    PICKER_ADDRESS = 1
    DRIVE_BASE = 2
    IE_BASE = 100
    SLOT_BASE = 1000

    def __post_init__(self) -> None:
        if not 1 <= self.drives <= 16:
            raise ValueError("drives must be between 1 and 16")
        if self.changer and not 1 <= self.slots <= 999:
            raise ValueError("slots must be between 1 and 999")
        if not 0 <= self.import_export <= 99:
            raise ValueError("import_export must be between 0 and 99")
        seen: set[str] = set()
        places: set[tuple[str, int]] = set()
        for c in self.cartridges:
            if not _BARCODE.match(c.barcode):
                raise ValueError(f"barcode {c.barcode!r}: 1-32 letters, digits, _ or -")
            if c.barcode in seen:
                raise ValueError(f"barcode {c.barcode} given twice")
            seen.add(c.barcode)
            if c.size_mb < 1:
                raise ValueError(f"{c.barcode}: size_mb must be at least 1")
            given = [
                (k, v) for k, v in (("slot", c.slot), ("mailslot", c.mailslot), ("drive", c.drive)) if v is not None
            ]
            if len(given) > 1:
                raise ValueError(f"{c.barcode}: give at most one of slot, mailslot, drive")
            for kind, n in given:
                limit = {"slot": self.slots, "mailslot": self.import_export, "drive": self.drives}[kind]
                low = 0 if kind == "drive" else 1
                if not low <= n <= (limit - 1 if kind == "drive" else limit):
                    raise ValueError(f"{c.barcode}: {kind} {n} does not exist")
                if kind == "drive" and self.changer:
                    raise ValueError(
                        f"{c.barcode}: cartridges start in a drive only without a changer; load them with mtx instead"
                    )
                if kind != "drive" and not self.changer:
                    raise ValueError(f"{c.barcode}: no changer, so no {kind}")
                if (kind, n) in places:
                    raise ValueError(f"{c.barcode}: {kind} {n} is already taken")
                places.add((kind, n))

    def slot_address(self, slot: int) -> int:
        return self.SLOT_BASE + slot - 1

    def mailslot_address(self, mailslot: int) -> int:
        return self.IE_BASE + mailslot - 1

    def drive_address(self, drive: int) -> int:
        return self.DRIVE_BASE + drive

    @property
    def luns(self) -> list[int]:
        """The LUNs of the target, drives first, then the changer."""
        return list(range(1, self.drives + 1 + (1 if self.changer else 0)))

    @property
    def changer_lun(self) -> int | None:
        return self.drives + 1 if self.changer else None


class TapeLibrary:
    """A private tgtd emulating ``spec``; a context manager.

    Entering starts ``tgtd`` in its own process group on a free loopback
    port (its control socket number is that port, so several libraries can
    run at once), creates the cartridges and configures the target. Leaving
    kills the process group; so does the end of the Python process
    (``atexit``) or its death (``PR_SET_PDEATHSIG``).

    The library keeps its state while it runs, across guest boots: a tape
    loaded by one guest is still in its drive for the next, and still at the
    position where that guest left it, while the next guest's st driver
    starts out believing it is at BOT. Rewind first in every boot.

    :param spec: what to emulate.
    :param workdir: where tgtd's files go; a fresh temp dir if None (removed
        on exit). A given directory is left in place, for debugging.
    """

    IQN = "iqn.2024-01.org.pytp.test:vtl"

    def __init__(self, spec: LibrarySpec | None = None, workdir: Path | str | None = None) -> None:
        self.spec = spec or LibrarySpec()
        self._given_workdir = Path(workdir) if workdir is not None else None
        self.workdir: Path | None = None
        self.port: int | None = None
        self.control_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths

    @property
    def media_dir(self) -> Path:
        assert self.workdir is not None, "library not started"
        return self.workdir / "media"

    def cartridge_path(self, barcode: str) -> Path:
        """The tgtimg file of a cartridge (tgt's ``media_home/BARCODE``)."""
        return self.media_dir / barcode

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None, "library not started"
        return self.workdir / "tgtd.log"

    def iscsi_url(self, lun: int) -> str:
        assert self.port is not None, "library not started"
        return f"iscsi://127.0.0.1:{self.port}/{self.IQN}/{lun}"

    # -- lifecycle

    def __enter__(self) -> TapeLibrary:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._proc is not None:
            raise TgtError("library already started")
        for tool, package in (("tgtd", "tgt"), ("tgtadm", "tgt"), ("tgtimg", "tgt")):
            _need(tool, package)
        if os.geteuid() != 0:
            raise HarnessUnavailable("tgtd must run as root")
        if self._given_workdir is not None:
            self._given_workdir.mkdir(parents=True, exist_ok=True)
            self.workdir = self._given_workdir.resolve()
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="pytp-tgt-")).resolve()
        try:
            self._make_media()
            self._start_tgtd()
            self._configure()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._proc is not None:
            # tgtd ignores SIGTERM while it has targets; nothing of its state
            # needs saving (the media files are written through).
            _kill(self._proc, sig=signal.SIGKILL)
            self._proc = None
        if self.control_port is not None:
            # tgtd leaves its control socket and lock file behind.
            for suffix in ("", ".lock"):
                with contextlib.suppress(OSError):
                    os.unlink(f"{_TGTD_SOCKET_DIR}/socket.{self.control_port}{suffix}")
        if self._given_workdir is None and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _make_media(self) -> None:
        self.media_dir.mkdir(parents=True, exist_ok=True)
        for c in self.spec.cartridges:
            self._tgtimg(self.cartridge_path(c.barcode), c.barcode, c.size_mb, "data")
        # An empty drive's LUN still needs a backing file; tgt's own VTL
        # setup uses a cleaning image there, kept out of media_home.
        for i in range(self.spec.drives):
            self._tgtimg(self.workdir / f"empty-drive{i}", f"EMPTY{i:02d}", 1, "clean")
        if self.spec.changer:
            (self.workdir / "smc").write_bytes(b"\0" * 1024)

    def _tgtimg(self, path: Path, barcode: str, size_mb: int, kind: str) -> None:
        proc = _run(
            [
                "tgtimg",
                "--op",
                "new",
                "--device-type",
                "tape",
                "--barcode",
                barcode,
                "--size",
                str(size_mb),
                "--type",
                kind,
                "--file",
                str(path),
            ],
            check=False,
        )
        if proc.returncode != 0 or not path.is_file():
            raise TgtError(f"tgtimg could not create {path.name}:\n{proc.stdout}{proc.stderr}")

    def _start_tgtd(self) -> None:
        last = ""
        rng = random.Random()
        for _ in range(5):
            port = _free_port()
            # tgtd's control "port" is the number of its unix socket,
            # 0-32767; tgtd refuses one whose lock another tgtd holds.
            control = rng.randint(1000, 32767)
            if os.path.exists(f"{_TGTD_SOCKET_DIR}/socket.{control}"):
                continue
            self.port, self.control_port = port, control
            proc = _spawn(
                ["tgtd", "-f", "-C", str(control), "--iscsi", f"portal=127.0.0.1:{port}"],
                self.log_path,
            )
            self._proc = proc
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                ok = _run(self._tgtadm_cmd("--op", "show", "--mode", "system"), check=False)
                if ok.returncode == 0 and _port_open(port):
                    return
                time.sleep(0.05)
            last = _tail(self.log_path)
            _kill(proc, sig=signal.SIGKILL)
            self._proc = None
        raise TgtError(f"tgtd did not start (5 tries); its log:\n{last}")

    def _tgtadm_cmd(self, *args: str) -> list[str]:
        return ["tgtadm", "-C", str(self.control_port), "--lld", "iscsi", *args]

    def tgtadm(self, *args: str) -> str:
        """Run tgtadm against this library's tgtd; raise TgtError on failure."""
        proc = _run(self._tgtadm_cmd(*args), check=False)
        if proc.returncode != 0:
            raise TgtError(
                f"tgtadm {shlex.join(args)} failed ({proc.returncode}): "
                f"{(proc.stdout + proc.stderr).strip()}\n-- tgtd log:\n{_tail(self.log_path)}"
            )
        return proc.stdout

    def _lu(self, op: str, lun: int, *args: str) -> None:
        self.tgtadm("--mode", "logicalunit", "--op", op, "--tid", "1", "--lun", str(lun), *args)

    def _configure(self) -> None:
        spec = self.spec
        assert self.workdir is not None
        self.tgtadm("--mode", "target", "--op", "new", "--tid", "1", "-T", self.IQN)
        in_drive = {c.drive: c for c in spec.cartridges if c.drive is not None}
        for i in range(spec.drives):
            lun = i + 1
            cart = in_drive.get(i)
            backing = self.cartridge_path(cart.barcode) if cart else self.workdir / f"empty-drive{i}"
            self._lu("new", lun, "-b", str(backing), "--bstype", "ssc", "--device-type", "tape")
            if cart is None:
                self._lu("update", lun, "--params", "online=0")
        if spec.changer:
            lun = spec.changer_lun
            assert lun is not None
            self._lu("new", lun, "-b", str(self.workdir / "smc"), "--bstype", "smc", "--device-type", "changer")
            params = [
                f"media_home={self.media_dir}",
                f"element_type=1,start_address={spec.PICKER_ADDRESS},quantity=1",
                f"element_type=2,start_address={spec.SLOT_BASE},quantity={spec.slots}",
                f"element_type=4,start_address={spec.DRIVE_BASE},quantity={spec.drives}",
            ]
            if spec.import_export:
                params.append(f"element_type=3,start_address={spec.IE_BASE},quantity={spec.import_export}")
            for i in range(spec.drives):
                params.append(f"element_type=4,address={spec.drive_address(i)},tid=1,lun={i + 1}")
            for c in spec.cartridges:
                if c.slot is not None:
                    params.append(f"element_type=2,address={spec.slot_address(c.slot)},barcode={c.barcode},sides=1")
                elif c.mailslot is not None:
                    params.append(
                        f"element_type=3,address={spec.mailslot_address(c.mailslot)},barcode={c.barcode},sides=1"
                    )
            for p in params:
                self._lu("update", lun, "--params", p)
        self.tgtadm("--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL")

    def show(self) -> str:
        """``tgtadm --op show --mode target``: what tgt thinks it emulates."""
        return self.tgtadm("--mode", "target", "--op", "show")


_TGTD_SOCKET_DIR = "/var/run/tgtd"


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
