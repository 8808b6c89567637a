"""What of the st backend can be tested without a tape drive.

* The ioctl request numbers, struct sizes, op codes and status bits, against
  a C program compiled with the kernel's <linux/mtio.h> and glibc's
  <sys/mtio.h> (what mt-st uses).
* Decoding ``struct mtget`` into a DriveStatus, cross-checked with what
  mt-st printed for the same bits in the hardware transcripts.
* The errno → pytp error mapping.
* StDrive's refusals that need no tape (wrong node, bad sizes).

The drive itself is exercised on /dev/nst0 by the system suite (tgt + QEMU).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytp.tapeio import st_ioctl
from pytp.tapeio.drive import UNKNOWN, Drive, DriveStatus
from pytp.tapeio.errors import (
    BlankTape,
    BlockSizeError,
    DriveBusy,
    DriveError,
    EndOfMedium,
    MediumError,
    NoMedium,
    WriteProtected,
)
from pytp.tapeio.st_drive import StDrive
from pytp.tapeio.st_ioctl import (
    GENERIC_IOC,
    MTGET_SIZE,
    MTIOCGET,
    THREE_BIT_DIR_IOC,
    MtGet,
    drive_status_from_mtget,
    gstat_flags,
    ioc,
    ioc_layout,
    is_rewinding_node,
    map_os_error,
    pack_mtget,
    unpack_mtget,
)
from tests.tapeio.transcripts import FIXTURES

C_PROGRAM = r"""
#include <stdio.h>
#include <sys/ioctl.h>
#include @HEADER@

#define P(name, value) printf("%s %lu\n", name, (unsigned long)(value))
int main(void) {
    P("MTIOCTOP", MTIOCTOP);
    P("MTIOCGET", MTIOCGET);
    P("MTIOCPOS", MTIOCPOS);
    P("sizeof_mtop", sizeof(struct mtop));
    P("sizeof_mtget", sizeof(struct mtget));
    P("sizeof_mtpos", sizeof(struct mtpos));
    P("MTFSF", MTFSF); P("MTBSF", MTBSF); P("MTFSR", MTFSR); P("MTBSR", MTBSR);
    P("MTWEOF", MTWEOF); P("MTREW", MTREW); P("MTOFFL", MTOFFL); P("MTNOP", MTNOP);
    P("MTRETEN", MTRETEN); P("MTBSFM", MTBSFM); P("MTEOM", MTEOM);
    P("MTSETBLK", MTSETBLK); P("MTSEEK", MTSEEK);
    P("GMT_EOF", GMT_EOF(0xffffffffUL)); P("GMT_BOT", GMT_BOT(0xffffffffUL));
    P("GMT_EOT", GMT_EOT(0xffffffffUL)); P("GMT_SM", GMT_SM(0xffffffffUL));
    P("GMT_EOD", GMT_EOD(0xffffffffUL)); P("GMT_WR_PROT", GMT_WR_PROT(0xffffffffUL));
    P("GMT_ONLINE", GMT_ONLINE(0xffffffffUL)); P("GMT_D_6250", GMT_D_6250(0xffffffffUL));
    P("GMT_D_1600", GMT_D_1600(0xffffffffUL)); P("GMT_D_800", GMT_D_800(0xffffffffUL));
    P("GMT_DR_OPEN", GMT_DR_OPEN(0xffffffffUL)); P("GMT_IM_REP_EN", GMT_IM_REP_EN(0xffffffffUL));
#ifdef GMT_CLN
    P("GMT_CLN", GMT_CLN(0xffffffffUL));  /* not in glibc's copy */
#endif
    P("MT_ST_BLKSIZE_MASK", MT_ST_BLKSIZE_MASK); P("MT_ST_DENSITY_SHIFT", MT_ST_DENSITY_SHIFT);
    return 0;
}
"""

PYTHON_VALUES = {
    "MTIOCTOP": st_ioctl.MTIOCTOP,
    "MTIOCGET": st_ioctl.MTIOCGET,
    "MTIOCPOS": st_ioctl.MTIOCPOS,
    "sizeof_mtop": st_ioctl.MTOP_SIZE,
    "sizeof_mtget": st_ioctl.MTGET_SIZE,
    "sizeof_mtpos": st_ioctl.MTPOS_SIZE,
    **{name: getattr(st_ioctl, name) for name in (
        "MTFSF", "MTBSF", "MTFSR", "MTBSR", "MTWEOF", "MTREW", "MTOFFL", "MTNOP", "MTRETEN",
        "MTBSFM", "MTEOM", "MTSETBLK", "MTSEEK",
        "GMT_EOF", "GMT_BOT", "GMT_EOT", "GMT_SM", "GMT_EOD", "GMT_WR_PROT", "GMT_ONLINE",
        "GMT_D_6250", "GMT_D_1600", "GMT_D_800", "GMT_DR_OPEN", "GMT_IM_REP_EN", "GMT_CLN",
        "MT_ST_BLKSIZE_MASK", "MT_ST_DENSITY_SHIFT",
    )},
}


@pytest.mark.parametrize("header", ["<linux/mtio.h>", "<sys/mtio.h>"])
def test_constants_match_the_c_headers(header: str, tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (apt install gcc) to compile the header check")
    source = tmp_path / "mtio.c"
    # The header goes into the source: "-DHEADER=<linux/mtio.h>" would not do,
    # since GNU C predefines the macro "linux" as 1.
    source.write_text(C_PROGRAM.replace("@HEADER@", header))
    program = tmp_path / "mtio"
    compiled = subprocess.run([gcc, "-o", str(program), str(source)], capture_output=True, text=True)
    if compiled.returncode != 0 and "No such file" in compiled.stderr:
        pytest.skip(f"{header} is missing: apt install linux-libc-dev libc6-dev ({compiled.stderr.strip()})")
    assert compiled.returncode == 0, compiled.stderr
    output = subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout
    from_c = {name: int(value) for name, value in (line.split() for line in output.splitlines())}
    assert set(PYTHON_VALUES) - set(from_c) <= {"GMT_CLN"}
    assert from_c == {name: PYTHON_VALUES[name] for name in from_c}


def test_x86_64_numbers_by_hand() -> None:
    # _IOW('m', 1, 8) and _IOR('m', 2, 48) on LP64 asm-generic, as strace shows them.
    assert ioc(GENERIC_IOC.write, "m", 1, 8, GENERIC_IOC) == 0x40086D01
    assert ioc(GENERIC_IOC.read, "m", 2, 48, GENERIC_IOC) == 0x80306D02
    assert ioc(GENERIC_IOC.read, "m", 3, 8, GENERIC_IOC) == 0x80086D03
    # 32-bit ARM: struct mtget is 28 bytes.
    assert ioc(GENERIC_IOC.read, "m", 2, 28, GENERIC_IOC) == 0x801C6D02


def test_other_ioctl_encodings() -> None:
    # powerpc/mips/sparc: 13 size bits, 3 direction bits, write = 4.
    assert ioc_layout("ppc64le") is THREE_BIT_DIR_IOC
    assert ioc_layout("mips64") is THREE_BIT_DIR_IOC
    assert ioc_layout("aarch64") is GENERIC_IOC
    assert ioc(THREE_BIT_DIR_IOC.write, "m", 1, 8, THREE_BIT_DIR_IOC) == 0x80086D01
    assert ioc(THREE_BIT_DIR_IOC.read, "m", 2, 48, THREE_BIT_DIR_IOC) == 0x40306D02
    with pytest.raises(ValueError):
        ioc(THREE_BIT_DIR_IOC.read, "m", 2, 1 << 13, THREE_BIT_DIR_IOC)


def test_python_passes_the_request_number_to_the_kernel() -> None:
    # A request above 2**31 must reach the driver (ENOTTY from /dev/null), not
    # fail in Python's argument conversion.
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as caught:
            fcntl.ioctl(fd, MTIOCGET, bytearray(MTGET_SIZE), True)
        assert caught.value.errno == errno.ENOTTY
    finally:
        os.close(fd)


# --- decoding struct mtget ---------------------------------------------------------------


def test_unpack_roundtrip_with_the_eof_bit() -> None:
    value = MtGet(type=0x72, resid=0, dsreg=(0x5A << 24) | 524288, gstat=0x81010000, erreg=3, fileno=22, blkno=0)
    decoded = unpack_mtget(pack_mtget(value))
    assert decoded == value
    assert (decoded.block_size, decoded.density, decoded.soft_errors, decoded.partition) == (524288, 0x5A, 3, 0)


def test_gstat_flags() -> None:
    assert gstat_flags(0x81010000) == ["EOF", "ONLINE", "IM_REP_EN"]
    assert gstat_flags(0x41010000) == ["BOT", "ONLINE", "IM_REP_EN"]
    assert gstat_flags(0x50000) == ["DR_OPEN", "IM_REP_EN"]
    assert gstat_flags(0x0C000000) == ["EOD", "WR_PROT"]
    assert gstat_flags(0) == []


def test_status_no_tape() -> None:
    status = drive_status_from_mtget(MtGet(0x72, 0, 0, 0x50000, 0, -1, -1))
    assert status == DriveStatus(online=False, file_number=UNKNOWN, block_number=UNKNOWN, door_open=True)


def test_status_write_protected_at_eod() -> None:
    status = drive_status_from_mtget(MtGet(0x72, 0, 524288, 0x0D010000, 0, 3, 0))
    assert (status.online, status.eod, status.write_protected, status.file_number, status.block_size) == (
        True, True, True, 3, 524288,
    )
    assert status.flags() == ["EOD", "WR_PROT", "ONLINE"]


MT_ST_FIXTURES = sorted(
    [p.name for p in FIXTURES.glob("mt-status--*.txt")] + [p.name for p in FIXTURES.glob("tgt-vtl--mt-status-*.txt")]
)


# What mt-st prints (mt.c, st_status), e.g.:
#   File number=1, block number=0, partition=0.
#   Tape block size 524288 bytes. Density code 0x5a (LTO-6).
#   General status bits on (81010000):
#    EOF ONLINE IM_REP_EN
_MT_ST_STATUS = re.compile(
    r"File number=(?P<file>-?\d+), block number=(?P<block>-?\d+).*?"
    r"Tape block size (?P<size>\d+) bytes\. Density code (?P<density>0x[0-9a-fA-F]+).*?"
    r"General status bits on \((?P<gstat>[0-9a-fA-F]+)\):\n(?P<names>[^\n]*)",
    re.DOTALL,
)


@pytest.mark.parametrize("name", MT_ST_FIXTURES)
def test_decoding_agrees_with_mt_st(name: str) -> None:
    """The kernel struct behind each transcript decodes to what mt-st printed."""
    if not FIXTURES.is_dir():
        pytest.fail(f"Hardware transcripts not found at {FIXTURES} (tests/fixtures/hardware in the repository).")
    mt = _MT_ST_STATUS.search((FIXTURES / name).read_text(encoding="utf-8"))
    assert mt, name
    gstat, names = int(mt["gstat"], 16), mt["names"].split()
    raw = pack_mtget(MtGet(
        type=0x72, resid=0, dsreg=(int(mt["density"], 16) << 24) | int(mt["size"]),
        gstat=gstat, erreg=0, fileno=int(mt["file"]), blkno=int(mt["block"]),
    ))
    decoded = unpack_mtget(raw)
    # The same bit names in the same order as mt-st's.
    assert gstat_flags(decoded.gstat) == names
    status = drive_status_from_mtget(decoded)
    # pytp's DriveStatus has every bit mt-st showed, IM_REP_EN (a mode, not a state) aside.
    assert set(status.flags()) == set(names) - {"IM_REP_EN"}
    assert (status.file_number, status.block_number) == (
        int(mt["file"]) if int(mt["file"]) >= 0 else UNKNOWN,
        int(mt["block"]) if int(mt["block"]) >= 0 else UNKNOWN,
    )
    assert status.block_size == int(mt["size"])


def test_decoding_fixtures_exist() -> None:
    if not FIXTURES.is_dir():
        pytest.fail(f"Hardware transcripts not found at {FIXTURES} (tests/fixtures/hardware in the repository).")
    assert len(MT_ST_FIXTURES) == 12


def test_rewinding_node() -> None:
    assert is_rewinding_node(os.makedev(9, 0)) is True      # /dev/st0
    assert is_rewinding_node(os.makedev(9, 128)) is False   # /dev/nst0
    assert is_rewinding_node(os.makedev(9, 129)) is False   # /dev/nst1
    assert is_rewinding_node(os.makedev(9, 0x20)) is True   # /dev/st0l (mode 1)
    assert is_rewinding_node(os.makedev(1, 3)) is None      # /dev/null


# --- errno mapping ---------------------------------------------------------------------

DEV = "drive lto1 (/dev/nst0)"
ONLINE = DriveStatus(online=True, file_number=2, block_number=10, block_size=524288)
OFFLINE = DriveStatus(online=False, door_open=True)
AT_EOD = DriveStatus(online=True, file_number=3, block_number=0, block_size=524288, eof=True, eod=True)
AT_BOT = DriveStatus(online=True, file_number=0, block_number=0, block_size=524288, bot=True)


def mapped(code: int, operation: str, **kwargs: object):  # noqa: ANN201 - returns the mapped error
    return map_os_error(OSError(code, os.strerror(code)), device=DEV, operation=operation, **kwargs)


@pytest.mark.parametrize(
    ("code", "operation", "kwargs", "error_class", "advice"),
    [
        (errno.ENOMEDIUM, "open", {}, NoMedium, "Load one"),
        (errno.EIO, "open", {"status": OFFLINE}, NoMedium, "not ready"),
        (errno.EIO, "fsf", {"status": OFFLINE}, NoMedium, "not ready"),
        (errno.ENOSPC, "write", {"transfer": True}, EndOfMedium, "another tape"),
        (errno.ENOSPC, "weof", {}, EndOfMedium, "another tape"),
        (errno.ENOSPC, "close", {}, EndOfMedium, "another tape"),
        (errno.EROFS, "open", {}, WriteProtected, "write-protect tab"),
        (errno.EACCES, "write", {"transfer": True}, WriteProtected, "write-protect tab"),
        (errno.EACCES, "weof", {}, WriteProtected, "write-protect tab"),
        (errno.EACCES, "open", {}, DriveError, "'tape'"),
        (errno.EINVAL, "read", {"transfer": True, "argument": 1000}, BlockSizeError, "whole number of blocks"),
        (errno.EINVAL, "write", {"transfer": True, "argument": 1000}, BlockSizeError, "mt setblk"),
        (errno.ENOMEM, "read", {"transfer": True, "argument": 512}, BlockSizeError, "larger block size"),
        (errno.EINVAL, "set_block_size", {"argument": 9999999}, BlockSizeError, "MinBlock/MaxBlock"),
        (errno.EIO, "read", {"transfer": True, "status": ONLINE}, MediumError, "dmesg"),
        (errno.EIO, "write", {"transfer": True, "status": ONLINE}, MediumError, "clean"),
        (errno.EIO, "read", {"transfer": True, "status": AT_BOT}, BlankTape, "blank tape"),
        (errno.EIO, "read", {"transfer": True, "status": AT_EOD}, BlankTape, "end of data"),
        # The contract (tests/tapeio/contract.py) wants a failed SPACE to be a MediumError.
        (errno.EIO, "fsf", {"status": AT_EOD, "argument": 5}, MediumError, "end of data"),
        (errno.EIO, "fsr", {"status": AT_EOD, "argument": 5}, MediumError, "end of data"),
        (errno.EIO, "bsf", {"status": AT_BOT, "argument": 3}, MediumError, "I/O error"),
        (errno.EIO, "fsr", {"status": DriveStatus(online=True, file_number=3, block_number=0, eof=True),
                            "argument": 5}, DriveError, "stopped at a filemark"),
        (errno.EIO, "rewind", {"status": None}, MediumError, "I/O error"),
        (errno.EIO, "seek", {"status": ONLINE, "argument": 77}, DriveError, "LOCATE"),
        (errno.ENOENT, "open", {}, DriveError, "PYTP_DEV"),
        (errno.ENXIO, "open", {}, DriveError, "lsscsi"),
        (errno.ENOTTY, "status", {}, DriveError, "not a SCSI tape device"),
        (errno.EINVAL, "fsf", {"argument": 3}, DriveError, "rejected fsf 3"),
        (errno.ENOSYS, "retension", {}, DriveError, "does not support retension"),
        (errno.EINTR, "rewind", {}, DriveError, "EINTR"),
    ],
)
def test_errno_mapping(code: int, operation: str, kwargs: dict, error_class: type, advice: str) -> None:
    error = mapped(code, operation, **kwargs)
    assert type(error) is error_class
    assert DEV in str(error)
    assert advice in str(error)


def test_busy_names_the_holder() -> None:
    error = mapped(errno.EBUSY, "open", holders=[(4242, "tar -cf /dev/nst0 /srv")])
    assert isinstance(error, DriveBusy)
    assert str(error).startswith(f"{DEV} is busy: it is held by pid 4242 (tar -cf /dev/nst0 /srv). Wait")
    anonymous = mapped(errno.EBUSY, "open")
    assert "another program" in str(anonymous) and "fuser -v" in str(anonymous)
    ourselves = mapped(errno.EBUSY, "open", holders=[(os.getpid(), None)])
    assert f"this program (pid {os.getpid()}) already has it open through another handle" in str(ourselves)


# --- StDrive without a tape drive -------------------------------------------------------


def test_is_a_drive() -> None:
    assert isinstance(StDrive("/dev/nst0", "lto1"), Drive)


def test_a_node_that_is_not_a_tape(tmp_path: Path) -> None:
    drive = StDrive("/dev/null", "lto1")
    with pytest.raises(DriveError, match="not a SCSI tape device"):
        drive.status()
    with pytest.raises(DriveError, match="not a SCSI tape device"):
        drive.rewind()
    with pytest.raises(DriveError, match="does not exist"):
        StDrive(tmp_path / "nst7", "lto1").status()


def test_rewinding_node_is_refused(tmp_path: Path) -> None:
    node = tmp_path / "st0"
    try:
        os.mknod(node, 0o600 | 0o020000, os.makedev(9, 0))  # S_IFCHR
    except OSError as err:
        pytest.skip(f"cannot create a device node here ({err.strerror})")
    with pytest.raises(DriveError, match=r"rewinding node.*/dev/nstN"):
        StDrive(node, "lto1").status()


def test_sizes_and_counts_are_checked_before_the_device() -> None:
    drive = StDrive("/nonexistent/nst0", "lto1")
    with pytest.raises(ValueError):
        drive.read(0)
    with pytest.raises(ValueError):
        drive.fsf(-1)
    with pytest.raises(ValueError):
        drive.fsf(0x800000)
    with pytest.raises(ValueError):
        drive.set_block_size(1 << 24)
    drive.write(b"")  # nothing to write: the device is not even opened
    drive.fsf(0)
    drive.close()


def test_whole_blocks_are_enforced_once_the_block_size_is_known() -> None:
    drive = StDrive("/nonexistent/nst0", "lto1")
    drive._block_size = 512  # as a status() of a fixed-block drive leaves it
    with pytest.raises(BlockSizeError, match="not a whole number of 512-byte blocks"):
        drive.read(1000)
    with pytest.raises(BlockSizeError, match="not a whole number of 512-byte blocks"):
        drive.write(b"x" * 1000)
