"""What every part of the system-test harness shares: its errors, running and
killing host processes, and the check for the programs it needs."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .guest import GuestResult


# --------------------------------------------------------------------------
# Errors


class HarnessError(Exception):
    """The harness itself failed (not the commands under test)."""


class HarnessUnavailable(HarnessError):
    """A piece the system tests need is missing on this machine.

    The message names the piece and how to get it. Callers skip on it
    outside CI and fail on it in CI (a missing piece there is a bug).
    """


class TgtError(HarnessError):
    """tgtd did not start, or tgtadm refused the library configuration."""


class GuestError(HarnessError):
    """The guest did not run the script to its end (boot or harness failure).

    :ivar result: what was collected before the failure (console log,
        partial stdout/stderr), for the message and for debugging.
    """

    def __init__(self, message: str, result: GuestResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class GuestTimeout(GuestError):
    """The guest ran past its timeout and QEMU was killed."""


# --------------------------------------------------------------------------
# Small helpers


INSTALL_HINT = "run `bash .ci/install-system-test-deps.sh` as root"

# Kernel modules the guest needs; the load order (with their dependencies)
# comes from the kernel's own modules.dep, via `depmod -b`.
GUEST_MODULES = ("virtio_pci", "virtio_scsi", "st", "sg", "ch", "9pnet_virtio", "9p")

# Debian architecture → (QEMU binary, kernel meta package).
_ARCHES = {"amd64": ("qemu-system-x86_64", "linux-image-amd64")}


def repo_root() -> Path:
    """The repository this file belongs to (``tests/system/harness/host.py``)."""
    return Path(__file__).resolve().parents[3]


def default_cache_dir() -> Path:
    """Where guest images are cached between runs.

    ``PYTP_SYSTEM_TEST_CACHE`` wins; otherwise ``~/.cache`` of the account,
    so that fresh clones (CI) on the same machine reuse one build.
    """
    env = os.environ.get("PYTP_SYSTEM_TEST_CACHE")
    if env:
        return Path(env)
    # The account's real home, not $HOME: test fixtures point HOME at temp
    # dirs, and a cache there would be rebuilt every session.
    return Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "pytp-system-tests"


def _which(name: str) -> str | None:
    # tgtd, depmod and friends live in sbin, which a non-login PATH may lack.
    extra = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + extra)


def _need(name: str, package: str) -> str:
    path = _which(name)
    if path is None:
        raise HarnessUnavailable(f"`{name}` not found (Debian package {package}); {INSTALL_HINT}")
    return path


def _run(
    cmd: Sequence[str], *, cwd: Path | None = None, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"`{shlex.join(cmd)}` timed out after {timeout} s") from e
    if check and proc.returncode != 0:
        raise HarnessError(f"`{shlex.join(cmd)}` exited {proc.returncode}:\n{proc.stdout}{proc.stderr}".rstrip())
    return proc


def _debian_arch() -> str:
    try:
        return _run(["dpkg", "--print-architecture"]).stdout.strip()
    except (OSError, HarnessError) as e:
        raise HarnessUnavailable(f"not a Debian system (dpkg failed: {e})") from e


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # runs in the child between fork and exec
    # If the test process dies without cleaning up (SIGKILL, a crash), the
    # kernel kills tgtd/QEMU too, so nothing keeps a port or a tape file busy.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_live: set[subprocess.Popen[bytes]] = set()


def _spawn(cmd: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
            preexec_fn=_child_setup,
        )
    _live.add(proc)
    return proc


def _kill(proc: subprocess.Popen[bytes], grace: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Stop a process started by :func:`_spawn` and its process group."""
    try:
        if proc.poll() is None and sig != signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Whatever it left in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    finally:
        _live.discard(proc)


@atexit.register
def _kill_all_live() -> None:
    for proc in list(_live):
        _kill(proc, grace=1.0)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path.name}: not written)"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------
# Prerequisites


def missing_prerequisites() -> list[str]:
    """What the system tests need and this machine lacks, as messages.

    Cheap: no download, no build. An empty list does not promise that the
    kernel download will work (that needs the package registry).
    """
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("must run as root (tgtd, chroot and device nodes in the guest)")
    try:
        arch = _debian_arch()
    except HarnessUnavailable as e:
        return [*missing, str(e)]
    if arch not in _ARCHES:
        missing.append(f"Debian architecture {arch!r} is not supported (only {sorted(_ARCHES)})")
        return missing
    qemu = _ARCHES[arch][0]
    tools = [
        ("tgtd", "tgt"),
        ("tgtadm", "tgt"),
        ("tgtimg", "tgt"),
        (qemu, "qemu-system-x86"),
        ("busybox", "busybox-static"),
        ("depmod", "kmod"),
        ("apt-get", "apt"),
        ("dpkg-deb", "dpkg"),
        ("mt", "mt-st"),
        ("mtx", "mtx"),
        ("lsscsi", "lsscsi"),
        ("tar", "tar"),
        ("bash", "bash"),
    ]
    for name, package in tools:
        if _which(name) is None:
            missing.append(f"`{name}` (Debian package {package})")
    if not any(Path("/usr/lib").glob("*/qemu/block-iscsi.so")) and not any(
        Path("/usr/lib/qemu").glob("block-iscsi.so")
    ):
        missing.append("QEMU's iSCSI block driver block-iscsi.so (Debian package qemu-block-extra)")
    busybox = _which("busybox")
    if busybox and not _is_static(Path(busybox)):
        missing.append(f"{busybox} is not statically linked (Debian package busybox-static)")
    return missing


def _is_static(path: Path) -> bool:
    # A dynamically linked ELF names its loader in a PT_INTERP segment; the
    # loader's path is the simplest tell that needs no `file` or `ldd`.
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return data[:4] == b"\x7fELF" and b"/lib64/ld-linux" not in data and b"/lib/ld-linux" not in data


def _require_prerequisites() -> None:
    missing = missing_prerequisites()
    if missing:
        raise HarnessUnavailable("system tests cannot run, missing: " + "; ".join(missing) + f" ({INSTALL_HINT})")
