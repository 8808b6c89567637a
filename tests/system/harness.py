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

Running it by hand, for a look at the devices::

    python3 tests/system/harness.py 'lsscsi -g; mtx -f $PYTP_TEST_CHANGER status'
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import fcntl
import hashlib
import json
import lzma
import os
import pwd
import random
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

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
    "default_cache_dir",
    "missing_prerequisites",
    "prepare_guest",
    "repo_root",
    "run_in_guest",
]

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
    """The repository this file belongs to (``tests/system/harness.py``)."""
    return Path(__file__).resolve().parents[2]


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


# --------------------------------------------------------------------------
# Guest image: kernel + initramfs


# /init of the guest, run by busybox sh as PID 1. It reads its job directory
# from the kernel command line (pytp.job=PATH, a path on the host), mounts the
# host's root (9p tag "host", cached) at /root and the job directory (9p tag
# "job", uncached so results reach the host even if the guest dies) at the
# same path under /root, waits for the SCSI devices the host announced in
# guest.conf, writes their names to devices.env, and runs run.sh in a chroot.
_INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

JOB=
JOBM=
say() { echo "pytp-init: $*"; }
stamp() { [ -n "$JOBM" ] && echo "$1 $(cut -d' ' -f1 /proc/uptime)" >> "$JOBM/timing"; }
fail() {
    say "FAILED: $*"
    [ -n "$JOBM" ] && [ -d "$JOBM" ] && echo "$*" >> "$JOBM/init-error"
    sync
    reboot -f
    sleep 10
}

ROOTOPTS=msize=262144,cache=loose
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        pytp.job=*) JOB="${arg#pytp.job=}" ;;
        pytp.root9p=*) ROOTOPTS="${arg#pytp.root9p=}" ;;
    esac
done
[ -n "$JOB" ] || fail "no pytp.job= on the kernel command line"

while read -r m; do
    insmod "/modules/$m.ko" || fail "insmod $m"
done < /modules/order

mount -t 9p -o "trans=virtio,version=9p2000.L,$ROOTOPTS" host /root \
    || fail "cannot mount the host root over 9p"
JOBM="/root$JOB"
[ -d "$JOBM" ] || fail "job directory $JOB not visible through 9p"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 job "$JOBM" \
    || fail "cannot mount the job directory over 9p"
stamp mounted

EXPECT_TAPES=0
EXPECT_CHANGERS=0
DEVICE_WAIT=30
. "$JOBM/guest.conf"

# SCSI scanning is asynchronous: wait until every LUN has its driver's node.
n=0
while :; do
    nt=0; nc=0; ng=0
    for d in /sys/bus/scsi/devices/*:*:*:*; do
        [ -d "$d" ] || continue
        ls "$d/scsi_tape" 2>/dev/null | grep -qx 'nst[0-9]*' && nt=$((nt + 1))
        [ -d "$d/scsi_changer" ] && nc=$((nc + 1))
        [ -d "$d/scsi_generic" ] && ng=$((ng + 1))
    done
    if [ "$nt" -ge "$EXPECT_TAPES" ] && [ "$nc" -ge "$EXPECT_CHANGERS" ] \
        && [ "$ng" -ge $((EXPECT_TAPES + EXPECT_CHANGERS)) ]; then
        break
    fi
    n=$((n + 1))
    if [ "$n" -gt $((DEVICE_WAIT * 10)) ]; then
        ls -l /sys/bus/scsi/devices/ > "$JOBM/scsi-devices.txt" 2>&1
        fail "timeout: saw $nt tapes, $nc changers, $ng sg devices;" \
            "expected $EXPECT_TAPES tapes, $EXPECT_CHANGERS changers"
    fi
    sleep 0.1
done
stamp devices

# Name the devices in the order of their SCSI target id, which the host
# made the drive number (drive i = target i, the changer after them).
tapes=; tape_sgs=; changer=; changer_sch=
for d in $(ls -d /sys/bus/scsi/devices/*:*:*:* 2>/dev/null | sort -t: -k3,3n -k4,4n); do
    sg=$(ls "$d/scsi_generic" 2>/dev/null | head -n 1)
    nst=$(ls "$d/scsi_tape" 2>/dev/null | grep -x 'nst[0-9]*' | head -n 1)
    if [ -n "$nst" ]; then
        tapes="$tapes /dev/$nst"
        tape_sgs="$tape_sgs /dev/$sg"
    elif [ -d "$d/scsi_changer" ]; then
        [ -n "$changer" ] || { changer="/dev/$sg"; changer_sch="/dev/$(ls "$d/scsi_changer" | head -n 1)"; }
    fi
done
{
    echo "PYTP_TEST_TAPES=\"${tapes# }\""
    echo "PYTP_TEST_TAPE_SGS=\"${tape_sgs# }\""
    echo "PYTP_TEST_CHANGER=\"$changer\""
    echo "PYTP_TEST_CHANGER_SCH=\"$changer_sch\""
} > "$JOBM/devices.env"

# The chroot gets its own /dev, /proc, /sys and /run; the rest is the host's.
mount -t devtmpfs devtmpfs /root/dev || fail "mount /dev in the chroot"
mkdir -p /root/dev/pts /root/dev/shm
mount -t devpts devpts /root/dev/pts
mount -t tmpfs tmpfs /root/dev/shm
mount -t proc proc /root/proc || fail "mount /proc in the chroot"
mount -t sysfs sysfs /root/sys || fail "mount /sys in the chroot"
mount -t tmpfs tmpfs /root/run
stamp chroot

chroot /root /usr/bin/env -i /bin/bash --noprofile --norc "$JOB/run.sh" < /dev/null
rc=$?
say "run.sh exited $rc"
echo "$rc" > "$JOBM/init-rc"
stamp done
sync
umount /root/run /root/sys /root/proc /root/dev/shm /root/dev/pts /root/dev 2>/dev/null
umount "$JOBM" 2>/dev/null
umount /root 2>/dev/null
sync
reboot -f
sleep 10
"""

# Bumped by hand when the image layout changes in a way the hash of the init
# script and module list would not see.
_IMAGE_FORMAT = 2

# How long a cached image counts as current without asking apt whether the
# kernel package moved on (apt-cache alone costs 1-2 s).
_FRESH_SECONDS = 12 * 3600


@dataclasses.dataclass(frozen=True)
class GuestImage:
    """A bootable guest: kernel and initramfs, both in the cache directory.

    :ivar kernel: the uncompressed ``vmlinux`` of ``package`` when it can
        boot through PVH (QEMU jumps straight into it: under TCG this saves
        about 5 s of decompression per boot), else its ``vmlinuz``.
    :ivar initramfs: an uncompressed newc cpio archive.
    :ivar kernel_version: e.g. ``6.1.0-56-amd64``.
    :ivar package: the Debian package and version the kernel came from.
    :ivar modules: the modules in the initramfs, in load order.
    :ivar qemu: the QEMU system emulator to boot it with.
    """

    kernel: Path
    initramfs: Path
    kernel_version: str
    package: str
    modules: tuple[str, ...]
    qemu: str


def _recipe_hash(busybox: Path) -> str:
    h = hashlib.sha256()
    h.update(f"format={_IMAGE_FORMAT}\n".encode())
    h.update(_INIT_SCRIPT.encode())
    h.update(" ".join(GUEST_MODULES).encode())
    h.update(hashlib.sha256(busybox.read_bytes()).digest())
    return h.hexdigest()[:12]


def _resolve_kernel_package(meta: str) -> tuple[str, str] | None:
    """``(package, version)`` that ``meta`` depends on, from the apt lists."""
    proc = _run(["apt-cache", "show", "--no-all-versions", meta], check=False)
    m = re.search(r"^Depends:.*?\b(linux-image-[^\s,]+) \(= ([^)\s]+)\)", proc.stdout, re.MULTILINE)
    return (m.group(1), m.group(2)) if m else None


def _apt_update() -> None:
    proc = _run(["apt-get", "update", "-q"], timeout=600, check=False)
    if proc.returncode != 0:
        raise HarnessUnavailable(
            f"`apt-get update` failed ({proc.returncode}), so no kernel can be fetched:\n{proc.stderr.strip()}"
        )


def _cached_images(cache_dir: Path, recipe: str) -> list[Path]:
    found = [p for p in cache_dir.glob(f"guest-*-{recipe}") if (p / "manifest.json").is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _load_image(path: Path, qemu: str) -> GuestImage:
    m = json.loads((path / "manifest.json").read_text())
    return GuestImage(
        kernel=path / m["kernel"],
        initramfs=path / "initramfs.cpio",
        kernel_version=m["kernel_version"],
        package=m["package"],
        modules=tuple(m["modules"]),
        qemu=qemu,
    )


def prepare_guest(cache_dir: Path | str | None = None) -> GuestImage:
    """Build or reuse the guest's kernel and initramfs.

    The kernel is the one Debian's ``linux-image-<arch>`` currently depends
    on. A build is cached under ``cache_dir`` keyed by kernel package version
    and by a hash of the initramfs recipe, so a later run with the same
    kernel costs nothing; a new kernel in the apt lists triggers one new
    build (about 10 s plus the 70 MB download). When the apt lists cannot
    name a kernel (never updated, or offline), the newest cached build is
    used; only when there is none does this run ``apt-get update``.

    :param cache_dir: defaults to :func:`default_cache_dir`.
    :raises HarnessUnavailable: a tool is missing, or no kernel can be had.
    """
    _require_prerequisites()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    arch = _debian_arch()
    qemu, meta = _ARCHES[arch]
    qemu_path = _need(qemu, "qemu-system-x86")
    busybox = Path(_need("busybox", "busybox-static")).resolve()
    recipe = _recipe_hash(busybox)

    with open(cache / ".lock", "w") as lock:
        # One build at a time, even across processes (pytest-xdist, CI).
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _cached_images(cache, recipe)
        if cached and time.time() - _checked_at(cached[0]) < _FRESH_SECONDS:
            return _load_image(cached[0], qemu_path)
        resolved = _resolve_kernel_package(meta)
        if resolved is None:
            if cached:
                return _load_image(cached[0], qemu_path)
            _apt_update()
            resolved = _resolve_kernel_package(meta)
            if resolved is None:
                raise HarnessUnavailable(f"apt knows no kernel package behind {meta} even after `apt-get update`")
        pkg, version = resolved
        safe_version = re.sub(r"[^A-Za-z0-9.+~-]", "_", version)
        final = cache / f"guest-{pkg}-{safe_version}-{recipe}"
        if (final / "manifest.json").is_file():
            (final / ".checked").touch()
            return _load_image(final, qemu_path)
        build = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
        try:
            _build_image(build, pkg, version, busybox)
            if final.exists():
                shutil.rmtree(final)
            os.rename(build, final)
            (final / ".checked").touch()
            _prune(cache, keep=final)
        except HarnessError as e:
            if not cached:
                raise
            # A newer kernel is listed but cannot be had (mirror moved on,
            # no network): the cached one still tests the same drivers.
            print(f"harness: {e}\nharness: using the cached guest {cached[0].name}", file=sys.stderr)
            return _load_image(cached[0], qemu_path)
        finally:
            if build.exists():
                shutil.rmtree(build, ignore_errors=True)
        return _load_image(final, qemu_path)


def _prune(cache: Path, keep: Path, max_age: float = 7 * 86400) -> None:
    """Remove images no run has used for a week (old kernels, old recipes)."""
    for old in cache.glob("guest-*"):
        if old != keep and time.time() - _checked_at(old) > max_age:
            shutil.rmtree(old, ignore_errors=True)


def _checked_at(image_dir: Path) -> float:
    try:
        return (image_dir / ".checked").stat().st_mtime
    except OSError:
        return 0.0


def _download_kernel(pkg: str, version: str, dest: Path) -> Path:
    def attempt() -> subprocess.CompletedProcess[str]:
        # The sandbox user _apt cannot write into a root-owned temp dir;
        # downloading as root there is harmless and spares a warning.
        return _run(
            ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", f"{pkg}={version}"],
            cwd=dest,
            timeout=600,
            check=False,
        )

    proc = attempt()
    if proc.returncode != 0:
        # Stale lists point at a file the mirror no longer has.
        _apt_update()
        proc = attempt()
    debs = list(dest.glob(f"{pkg}_*.deb"))
    if proc.returncode != 0 or not debs:
        raise HarnessUnavailable(
            f"cannot download the guest kernel {pkg}={version} with apt-get download "
            f"(exit {proc.returncode}):\n{proc.stdout}{proc.stderr}".rstrip()
        )
    return debs[0]


def _module_order(modroot: Path, kver: str, wanted: Sequence[str]) -> list[Path]:
    """Module files to load, dependencies first, from ``modules.dep``."""
    _run([_need("depmod", "kmod"), "-b", str(modroot), kver])
    moddir = modroot / "lib" / "modules" / kver
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
        name = Path(mod).name.split(".ko")[0].replace("-", "_")
        by_name[name] = mod
    order: list[str] = []

    def visit(mod: str, trail: tuple[str, ...]) -> None:
        if mod in order:
            return
        if mod in trail:
            raise HarnessError(f"module dependency cycle: {' -> '.join((*trail, mod))}")
        for dep in deps.get(mod, []):
            visit(dep, (*trail, mod))
        order.append(mod)

    for name in wanted:
        key = name.replace("-", "_")
        if key not in by_name:
            raise HarnessUnavailable(f"kernel {kver} has no module {name} (built in or missing?)")
        visit(by_name[key], ())
    return [moddir / m for m in order]


def _build_image(build: Path, pkg: str, version: str, busybox: Path) -> None:
    deb = _download_kernel(pkg, version, build)
    root = build / "root"
    # Only boot/ and the modules are needed, but depmod wants the whole tree.
    _run(["dpkg-deb", "-x", str(deb), str(root)], timeout=300)
    # bookworm ships /lib/modules; merged-/usr successors ship /usr/lib/modules.
    for libdir in (root / "lib" / "modules", root / "usr" / "lib" / "modules"):
        if libdir.is_dir():
            if libdir.parent != root / "lib":
                (root / "lib").mkdir(exist_ok=True)
                os.rename(libdir, root / "lib" / "modules")
            break
    kvers = sorted(p.name for p in (root / "lib" / "modules").iterdir() if p.is_dir())
    if len(kvers) != 1:
        raise HarnessError(f"{deb.name}: expected one kernel version, found {kvers}")
    kver = kvers[0]
    vmlinuz = root / "boot" / f"vmlinuz-{kver}"
    if not vmlinuz.is_file():
        raise HarnessError(f"{deb.name} has no boot/vmlinuz-{kver}")
    modules = _module_order(root, kver, GUEST_MODULES)

    names = [m.name.split(".ko")[0] for m in modules]
    files: list[tuple[str, int, bytes]] = [
        ("init", 0o755, _INIT_SCRIPT.encode()),
        ("bin/busybox", 0o755, busybox.read_bytes()),
        ("modules/order", 0o644, ("\n".join(names) + "\n").encode()),
    ]
    for path, name in zip(modules, names, strict=True):
        if path.suffix != ".ko":
            # Compressed modules (.ko.xz/.ko.zst) would need a decompressor
            # in busybox's insmod; Debian's 6.1 kernels ship them plain.
            raise HarnessError(f"compressed module {path.name} not supported")
        files.append((f"modules/{name}.ko", 0o644, path.read_bytes()))
    _write_cpio(build / "initramfs.cpio", files)
    shutil.copyfile(vmlinuz, build / "vmlinuz")
    kernel = "vmlinuz"
    config = root / "boot" / f"config-{kver}"
    if config.is_file() and "\nCONFIG_PVH=y\n" in config.read_text():
        vmlinux = _extract_vmlinux(vmlinuz.read_bytes())
        if vmlinux is not None:
            (build / "vmlinux").write_bytes(vmlinux)
            kernel = "vmlinux"
    (build / "manifest.json").write_text(
        json.dumps(
            {"kernel_version": kver, "package": f"{pkg}={version}", "modules": names, "kernel": kernel},
            indent=1,
        )
    )
    shutil.rmtree(root)
    deb.unlink()


def _extract_vmlinux(bzimage: bytes) -> bytes | None:
    """The ELF kernel inside a bzImage, if it is xz or gzip compressed.

    What the kernel's ``scripts/extract-vmlinux`` does, for the two
    compressions Python's standard library reads.
    """
    for magic, make in (
        (b"\xfd7zXZ\x00", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ)),
        (b"\x1f\x8b\x08\x00", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)),
    ):
        start = bzimage.find(magic)
        while start != -1:
            try:
                data = make().decompress(bzimage[start:])
            except (lzma.LZMAError, zlib.error):
                data = b""
            if data[:4] == b"\x7fELF":
                return data
            start = bzimage.find(magic, start + 1)
    return None


def _write_cpio(dest: Path, files: Sequence[tuple[str, int, bytes]]) -> None:
    """Write an uncompressed newc cpio archive (what the kernel unpacks).

    Written here rather than by ``cpio`` so that ``/dev/console`` can be a
    real device node without mknod on the host.
    """
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = []
    dirs = {"bin", "dev", "proc", "sys", "root", "tmp", "modules"}
    for d in sorted(dirs):
        entries.append((d, stat.S_IFDIR | 0o755, b"", (0, 0)))
    # The kernel opens /dev/console for init's stdio before init runs.
    entries.append(("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)))
    for name, mode, data in files:
        entries.append((name, stat.S_IFREG | mode, data, (0, 0)))

    def pad(n: int) -> bytes:
        return b"\0" * (-n % 4)

    with open(dest, "wb") as out:
        for ino, (name, mode, data, (rmaj, rmin)) in enumerate([*entries, ("TRAILER!!!", 0, b"", (0, 0))], start=1):
            bname = name.encode() + b"\0"
            fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmaj, rmin, len(bname), 0)
            header = b"070701" + "".join(f"{v:08X}" for v in fields).encode()
            out.write(header + bname + pad(len(header) + len(bname)))
            out.write(data + pad(len(data)))


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


# --------------------------------------------------------------------------
# Running a script in the guest


@dataclasses.dataclass(frozen=True)
class GuestDevices:
    """Device nodes the guest found, drive order = LUN order.

    :ivar tapes: ``/dev/nstN`` of drive 0, 1, ...
    :ivar tape_sgs: the matching ``/dev/sgN``.
    :ivar changer: the changer's ``/dev/sgN`` (for mtx), or None.
    :ivar changer_sch: the changer's ``/dev/schN`` (the ch driver), or None.
    """

    tapes: tuple[str, ...] = ()
    tape_sgs: tuple[str, ...] = ()
    changer: str | None = None
    changer_sch: str | None = None


@dataclasses.dataclass(frozen=True)
class StepResult:
    """One ``step NAME CMD...`` of a guest script."""

    name: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    def check(self) -> StepResult:
        if self.exit_code != 0:
            raise AssertionError(
                f"step {self.name} exited {self.exit_code}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
            )
        return self


@dataclasses.dataclass(frozen=True)
class GuestResult:
    """What a guest run produced.

    :ivar exit_code: the script's exit status (None when it did not finish).
    :ivar stdout: / :ivar stderr: the script's own output.
    :ivar steps: the ``step`` calls of the script, by name, in order.
    :ivar devices: the device nodes the guest found.
    :ivar job_dir: the directory the guest shared with the host.
    :ivar out_dir: ``$PYTP_TEST_OUT``, for files the script leaves behind.
    :ivar console: the serial console log (kernel + init messages).
    :ivar timings: guest uptime in seconds at ``mounted``, ``devices``,
        ``chroot``, ``script-start``, ``script-end``, ``done``.
    :ivar wall_seconds: host wall time from QEMU start to exit.
    """

    exit_code: int | None
    stdout: str
    stderr: str
    steps: dict[str, StepResult]
    devices: GuestDevices
    job_dir: Path
    out_dir: Path
    console: str
    timings: dict[str, float]
    wall_seconds: float

    def check(self) -> GuestResult:
        """Raise AssertionError with the output unless the script exited 0."""
        if self.exit_code != 0:
            raise AssertionError(f"guest script exited {self.exit_code}\n{self.describe()}")
        return self

    def step(self, name: str) -> StepResult:
        try:
            return self.steps[name]
        except KeyError:
            raise AssertionError(
                f"the guest script ran no step {name!r} (ran: {list(self.steps)})\n{self.describe()}"
            ) from None

    def describe(self, lines: int = 30) -> str:
        def last(text: str) -> str:
            return "\n".join(text.splitlines()[-lines:])

        return (
            f"--- stdout (last {lines} lines)\n{last(self.stdout)}\n"
            f"--- stderr (last {lines} lines)\n{last(self.stderr)}\n"
            f"--- console (last {lines} lines)\n{last(self.console)}\n"
            f"--- job dir: {self.job_dir}"
        )


# The wrapper the guest runs in the chroot with `env -i bash run.sh`: it sets
# the environment, provides `step`, runs the script and records its status.
_RUN_SH = r"""# generated by tests/system/harness.py
JOB=__JOB__
export PYTP_TEST_JOB="$JOB"
. "$JOB/env.sh"
set -a
. "$JOB/devices.env"
set +a
stamp() { read -r up _ < /proc/uptime; echo "$1 $up" >> "$JOB/timing"; }

# step NAME CMD [ARGS...]: run CMD, keep its stdout, stderr, exit status and
# time under steps/NAME.*; returns CMD's status, so `set -e` scripts stop.
step() {
    local name=$1 d="$PYTP_TEST_JOB/steps" rc t0 t1
    shift
    read -r t0 _ < /proc/uptime
    "$@" > "$d/$name.out" 2> "$d/$name.err"
    rc=$?
    read -r t1 _ < /proc/uptime
    echo "$rc $t0 $t1" > "$d/$name.rc"
    echo "$name" >> "$d/ORDER"
    return $rc
}
export -f step

if ! cd "$PYTP_TEST_CWD"; then
    echo "harness: cannot cd to $PYTP_TEST_CWD" >> "$JOB/stderr"
    echo 125 > "$JOB/exitcode"
    exit 125
fi
stamp script-start
bash "$JOB/script.sh" > "$JOB/stdout" 2> "$JOB/stderr" < /dev/null
rc=$?
stamp script-end
echo "$rc" > "$JOB/exitcode"
exit 0
"""


# The guest kernel's command line. Under TCG every saved instruction counts:
# these skip work a throw-away test guest does not need (measured: about 1 s
# of a 4-5 s boot). cryptomgr.notests skips the crypto self-tests (0.45 s).
_KERNEL_ARGS = (
    "console=ttyS0",
    "quiet",
    "panic=-1",
    "mitigations=off",
    "nokaslr",
    "tsc=reliable",
    "no_timer_check",
    "audit=0",
    "apparmor=0",
    "cryptomgr.notests",
)


def _guest_env(job: Path, cwd: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    pybin = str(Path(sys.executable).parent)
    base = {
        # The host's interpreter first: pyenv-style shims are scripts that
        # cost seconds each under emulation.
        "PATH": f"{pybin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(job / "home"),
        "TMPDIR": str(job / "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "PYTHONUNBUFFERED": "1",
        "PYTP_TEST_GUEST": "1",
        "PYTP_TEST_PYTHON": sys.executable,
        "PYTP_TEST_REPO": str(repo_root()),
        "PYTP_TEST_OUT": str(job / "out"),
        "PYTP_TEST_CWD": str(cwd),
    }
    if env:
        base.update(env)
    return base


def _check_path(path: Path, what: str) -> None:
    # QEMU option values are comma separated, the kernel command line space
    # separated: a path with either would be cut.
    if re.search(r"[\s,]", str(path)):
        raise HarnessError(f"{what} {path} contains a comma or whitespace; use another temp dir")


def run_in_guest(
    image: GuestImage,
    library: TapeLibrary | None,
    script: str,
    *,
    timeout: float = 300,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    workdir: Path | str | None = None,
    memory_mb: int = 1024,
    cpus: int = 1,
    device_wait: float = 30,
    kernel_args: str = "",
    qemu_args: Sequence[str] = (),
) -> GuestResult:
    """Boot a guest with ``library``'s devices and run ``script`` in it.

    ``script`` runs with bash, in a chroot at the host's root (so the host's
    Python, pytp, mt, mtx and tar), in ``cwd``, with a clean environment:
    ``PATH`` (the host interpreter's bin directory first), ``HOME`` and
    ``TMPDIR`` inside the job directory, ``PYTP_TEST_TAPES`` (space
    separated ``/dev/nstN`` in drive order), ``PYTP_TEST_TAPE_SGS``,
    ``PYTP_TEST_CHANGER`` (``/dev/sgN`` for mtx), ``PYTP_TEST_CHANGER_SCH``,
    ``PYTP_TEST_OUT`` (a directory the host reads back), ``PYTP_TEST_REPO``,
    ``PYTP_TEST_PYTHON``, plus ``env``. The bash function ``step NAME CMD...``
    records one command's output and status (see :class:`StepResult`).

    The guest's own ``/tmp`` is the host's (over 9p); the job directory is
    mounted uncached, so what the script wrote there survives a guest crash.

    :param image: from :func:`prepare_guest`.
    :param library: a started :class:`TapeLibrary`, or None for no devices.
    :param timeout: seconds for the whole boot; QEMU is killed after it.
    :param cwd: working directory in the guest (a host path); defaults to
        ``$PYTP_TEST_OUT``.
    :param workdir: parent of the job directory; a temp dir if None (kept
        until the process exits, for the caller to read ``out_dir``).
    :param cpus: virtual CPUs (TCG runs one host thread per vCPU).
    :param device_wait: seconds the guest waits for its SCSI devices.
    :param kernel_args: more kernel command line (``loglevel=7`` to debug).
    :param qemu_args: more QEMU options.
    :returns: the script's exit status and output; a non-zero status is
        returned, not raised.
    :raises GuestTimeout: the guest ran past ``timeout``.
    :raises GuestError: the guest did not run the script to its end.
    """
    parent = Path(workdir) if workdir is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    job = Path(tempfile.mkdtemp(prefix="pytp-guest-", dir=parent)).resolve()
    if parent is None:
        atexit.register(shutil.rmtree, job, True)
    _check_path(job, "job directory")
    for sub in ("steps", "out", "home", "tmp"):
        (job / sub).mkdir()
    out_dir = job / "out"
    cwd_path = Path(cwd).resolve() if cwd is not None else out_dir

    spec = library.spec if library is not None else None
    if library is not None and library.port is None:
        raise HarnessError("the library is not started (use it as a context manager)")
    (job / "guest.conf").write_text(
        f"EXPECT_TAPES={spec.drives if spec else 0}\n"
        f"EXPECT_CHANGERS={1 if spec and spec.changer else 0}\n"
        f"DEVICE_WAIT={int(device_wait)}\n"
    )
    (job / "script.sh").write_text(script)
    envs = _guest_env(job, cwd_path, env)
    (job / "env.sh").write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in envs.items()))
    (job / "run.sh").write_text(_RUN_SH.replace("__JOB__", shlex.quote(str(job))))

    console = job / "console.log"
    options: list[tuple[str, str]] = [
        ("-accel", "tcg"),
        # q35: virtio-pci with MSI-X, no slow legacy INTx link set-up.
        ("-machine", "q35"),
        ("-cpu", "max"),
        ("-smp", str(cpus)),
        ("-m", str(memory_mb)),
        ("-display", "none"),
        ("-serial", f"file:{console}"),
        ("-kernel", str(image.kernel)),
        ("-initrd", str(image.initramfs)),
        ("-append", " ".join([*_KERNEL_ARGS, *kernel_args.split(), f"pytp.job={job}"])),
        ("-device", "virtio-scsi-pci,id=scsi0"),
        # The host's root, cached: the guest runs the host's programs. Its
        # submounts (/proc, /sys, /dev, a tmpfs /tmp) need multidevs=remap.
        ("-virtfs", "local,path=/,mount_tag=host,security_model=passthrough,multidevs=remap"),
        # The job directory, uncached: results reach the host as written.
        ("-virtfs", f"local,path={job},mount_tag=job,security_model=passthrough"),
    ]
    if library is not None and spec is not None:
        # Drive i is SCSI target i, the changer the target after the drives:
        # the guest names its devices in this order.
        for target, lun in enumerate(spec.luns):
            options.append(("-drive", f"file={library.iscsi_url(lun)},if=none,id=lun{lun},format=raw"))
            options.append(("-device", f"scsi-generic,drive=lun{lun},bus=scsi0.0,channel=0,scsi-id={target},lun=0"))
    # -no-reboot: the guest's `reboot -f` (and a kernel panic) ends QEMU.
    cmd = [image.qemu, "-nodefaults", "-no-user-config", "-no-reboot"]
    for option in options:
        cmd.extend(option)
    cmd += list(qemu_args)

    start = time.monotonic()
    qemu_log = job / "qemu.log"
    proc = _spawn(cmd, qemu_log)
    timed_out = False
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill(proc, grace=2.0)
    wall = time.monotonic() - start

    result = _collect(job, out_dir, wall)
    if timed_out:
        raise GuestTimeout(f"guest did not finish within {timeout} s; QEMU killed\n{result.describe()}", result)
    if result.exit_code is None:
        qemu_text = _tail(qemu_log)
        hint = ""
        if "Unknown protocol" in qemu_text or "iscsi" in qemu_text.lower():
            hint = f"\n(QEMU's iSCSI driver missing? Debian package qemu-block-extra; {INSTALL_HINT})"
        init_error = _tail(job / "init-error")
        raise GuestError(
            f"guest did not run the script to its end (QEMU exit {proc.returncode}){hint}\n"
            f"--- init error: {init_error}\n--- qemu log:\n{qemu_text}\n{result.describe()}",
            result,
        )
    return result


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _parse_env(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k.strip()] = v.strip().strip('"')
    return out


def _collect(job: Path, out_dir: Path, wall: float) -> GuestResult:
    code_text = _read(job / "exitcode").strip()
    exit_code = int(code_text) if code_text.lstrip("-").isdigit() else None
    steps: dict[str, StepResult] = {}
    for name in _read(job / "steps" / "ORDER").split():
        rc_line = _read(job / "steps" / f"{name}.rc").split()
        if not rc_line:
            continue
        steps[name] = StepResult(
            name=name,
            exit_code=int(rc_line[0]),
            stdout=_read(job / "steps" / f"{name}.out"),
            stderr=_read(job / "steps" / f"{name}.err"),
            seconds=float(rc_line[2]) - float(rc_line[1]) if len(rc_line) >= 3 else 0.0,
        )
    devs = _parse_env(_read(job / "devices.env"))
    devices = GuestDevices(
        tapes=tuple(devs.get("PYTP_TEST_TAPES", "").split()),
        tape_sgs=tuple(devs.get("PYTP_TEST_TAPE_SGS", "").split()),
        changer=devs.get("PYTP_TEST_CHANGER") or None,
        changer_sch=devs.get("PYTP_TEST_CHANGER_SCH") or None,
    )
    timings: dict[str, float] = {}
    for line in _read(job / "timing").splitlines():
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                timings[parts[0]] = float(parts[1])
    return GuestResult(
        exit_code=exit_code,
        stdout=_read(job / "stdout"),
        stderr=_read(job / "stderr"),
        steps=steps,
        devices=devices,
        job_dir=job,
        out_dir=out_dir,
        console=_read(job / "console.log"),
        timings=timings,
        wall_seconds=wall,
    )


def _main(argv: Sequence[str]) -> int:
    """Boot a guest with a default library and run a shell snippet in it."""
    script = " ".join(argv) if argv else "lsscsi -g; mtx -f $PYTP_TEST_CHANGER status"
    t0 = time.monotonic()
    image = prepare_guest()
    t1 = time.monotonic()
    spec = LibrarySpec(
        drives=2,
        slots=8,
        import_export=1,
        cartridges=tuple(Cartridge(f"PYT{i:03d}L9", size_mb=64, slot=i) for i in range(1, 4)),
    )
    with TapeLibrary(spec) as lib:
        t2 = time.monotonic()
        result = run_in_guest(image, lib, script, cwd=repo_root())
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    print(
        f"[harness] image {t1 - t0:.1f} s, tgtd {t2 - t1:.1f} s, guest {result.wall_seconds:.1f} s "
        f"(timings {result.timings}), exit {result.exit_code}",
        file=sys.stderr,
    )
    return result.exit_code or 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
