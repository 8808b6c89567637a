"""The guest image: a Debian kernel (downloaded, never installed) and a small
initramfs with busybox, the SCSI/virtio/9p modules and an ``/init`` that
mounts the host's root over 9p; built once and cached."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

from .host import (
    _ARCHES,
    GUEST_MODULES,
    HarnessError,
    HarnessUnavailable,
    _debian_arch,
    _need,
    _require_prerequisites,
    _run,
    default_cache_dir,
)

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
