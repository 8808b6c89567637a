"""Keeping an extraction inside its target directory (issue 8, defect 1).

GNU tar follows a symlink it finds on the way to a member, so a tape whose
first archive holds ``x -> /victim`` and whose second holds ``x/pwned.txt``
writes outside the target when both are extracted.  pytp therefore never lets
tar create a link: tar only ever sees regular files and directories, and
symlinks and hard links are placed here, after everything else of the whole
restore (what GNU tar's delayed-link placeholders do inside one archive).
Every destination's parent chain is opened from a descriptor on the target
with no symlink followed on the way, whoever put it there: by one
``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`` where the kernel has it
(Linux 5.6 on; issue 9: the walk below cost two system calls per level and
file), else component by component with ``O_NOFOLLOW | O_DIRECTORY``.
Nothing is cached between members: each check sees the tree as it is then.

Member headers are read here with ``tarformat.read_member`` (as strict as
Python's ``tarfile``, which read them before issue 9) and judged the way
``tarfile``'s ``data`` filter judges them: absolute names and ``..`` are refused, hard links must stay
inside the target, device nodes and fifos are refused, and setuid, setgid and
sticky bits are cleared, unless the caller allows special files (root only).
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import exitcodes
from .errors import TapeIOError
from .hashing import ContentHasher, hash_file
from .tarformat import RECORD, MemberHeader, read_member

#: setuid, setgid and sticky: what a foreign tape must not plant by default
SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
#: pax keywords a member may carry; anything else could make GNU tar read the
#: member differently from the check here, so such a member is refused.
_PAX_PREFIXES = ("SCHILY.xattr.", "SCHILY.acl.", "LIBARCHIVE.xattr.", "GNU.sparse.", "SCHILY.")
_PAX_KEYS = {
    "path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime", "ctime", "comment", "hdrcharset",
}  # fmt: skip
#: type flags whose members carry data (regular, old-style regular, contiguous, old GNU sparse)
_DATA_TYPES = frozenset((b"0", b"\0", b"7", b"S"))
#: type flags tarfile knows; an unknown one is read as carrying data, as POSIX says
_KNOWN_TYPES = frozenset((b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"S"))
_DIRFLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class _OpenHow(ctypes.Structure):
    """``struct open_how`` of openat2(2)."""

    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


#: the openat2 system call's number (the same on x86-64, arm64 and every architecture since 5.6)
_SYS_OPENAT2 = 437
#: no symlink anywhere on the way, never above the starting directory, no /proc magic links
_RESOLVE = 0x08 | 0x04 | 0x02  # RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS


def _make_openat2() -> Callable[[int, bytes], int] | None:
    """``openat2(dir_fd, path)`` of a directory under ``dir_fd`` reached with no symlink
    followed; it raises ``OSError`` with the kernel's errno.  None where there is none."""
    if not os.uname().sysname == "Linux":
        return None
    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    how = _OpenHow(os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0), 0, _RESOLVE)
    how_ref, how_size = ctypes.byref(how), ctypes.sizeof(how)

    def openat2(dir_fd: int, path: bytes) -> int:
        fd = int(syscall(_SYS_OPENAT2, dir_fd, path, how_ref, how_size))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return fd

    return openat2


_openat2 = _make_openat2()
#: answers of openat2 that say the path is fine to judge with the walk instead: a
#: symlink or a non-directory on the way (the walk names it), ``..`` (EXDEV), a
#: concurrent rename (EAGAIN), no such call or not allowed (ENOSYS, EPERM: seccomp)
_WALK_INSTEAD = {errno.ELOOP, errno.ENOTDIR, errno.EXDEV, errno.EAGAIN, errno.ENOSYS, errno.EPERM, errno.EINVAL}


class UnsafeMember(TapeIOError):
    """A member would be written outside the restore target, or is a kind pytp does not restore."""

    exit_code = exitcodes.EXIT_RESTORE_REFUSED
    #: bytes of data after the refused member's headers (for a reader of the stream)
    skip: int = 0


class DamagedMember(TapeIOError):
    """A member's tar header on tape is damaged."""

    exit_code = exitcodes.EXIT_VERIFY_FAILED


@dataclass(frozen=True)
class Member:
    """One member as judged for extraction.

    :param name: the safe relative name (no ``/`` at either end, no ``.``/``..``).
    :param size: data bytes in the archive (for a sparse file: its map and regions).
    :param header: the header bytes to give tar (special bits cleared if asked).
    :param linkname: for a hard link, the safe name it links to; for a
        symlink, its text as stored.
    """

    name: bytes
    kind: str
    size: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    linkname: bytes
    header: bytes
    #: setuid/setgid/sticky bits were cleared from the mode on tape
    cleared: bool = False

    @property
    def data_length(self) -> int:
        """Bytes of data (padded to records) that follow the header in the archive."""
        return -(-self.size // RECORD) * RECORD if self.kind == "file" else 0

    @property
    def text(self) -> str:
        return self.name.decode("utf-8", "backslashreplace")


def safe_name(name: bytes, what: str = "member") -> bytes:
    """``name`` as a relative path that stays inside the target.

    Empty and ``.`` components are dropped (``a//./b`` is ``a/b``).

    :raises UnsafeMember: absolute, with a ``..`` component, or with a NUL byte.
    """
    shown = name.decode("utf-8", "backslashreplace")
    if name.startswith(b"/"):
        raise UnsafeMember(f"{shown}: absolute {what} name; refused (it would leave the target directory).")
    if b"\0" in name:
        raise UnsafeMember(f"{shown}: {what} name holds a NUL byte; refused.")
    parts = [p for p in name.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        raise UnsafeMember(f"{shown}: {what} name contains '..'; refused (it would leave the target directory).")
    return b"/".join(parts)


def _clear_mode_bits(header: bytes, mode: int) -> bytes:
    """``header`` with the ustar mode field set to ``mode`` and its checksum redone.

    The ustar block is the last record of a member's headers (pax or GNU
    long-name headers come before it); pax has no mode keyword.
    """
    block = bytearray(header[-RECORD:])
    block[100:108] = b"%07o\0" % mode
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return header[:-RECORD] + bytes(block)


def judge(header: bytes, allow_special: bool = False) -> Member:
    """Read one member's header bytes and decide how it may be extracted.

    :param allow_special: keep device nodes, fifos and setuid/setgid/sticky bits.
    :raises DamagedMember: the bytes are not a valid tar header.
    :raises UnsafeMember: the member must not be extracted (named in the message).
    """
    # pytp's own parser (issue 9: a whole ``tarfile`` per member was most of a
    # restore's per-file cost); it refuses at least what tarfile refused, and
    # the header bytes must end exactly where the member's data starts, or tar
    # and this check would read different members.
    try:
        parsed, flag, pax = read_member(header)
    except ValueError as err:
        raise DamagedMember(f"damaged tar header ({err})") from err
    # A sparse member's size is its stored bytes (map and regions), as the header says.
    size = parsed.size
    # tarfile's reading: regular (also old-style and contiguous) and unknown types carry data.
    skip = -(-size // RECORD) * RECORD if flag in _DATA_TYPES or flag not in _KNOWN_TYPES else 0
    try:
        kind, name, linkname = _check(parsed, flag, pax, allow_special)
    except UnsafeMember as err:
        err.skip = skip  # the data to pass over, so a stream reader stays in step
        raise
    mode = parsed.mode
    if mode & SPECIAL_BITS and not allow_special and kind in ("file", "dir"):
        mode &= ~SPECIAL_BITS
        header = _clear_mode_bits(header, mode)
    if kind == "dir" and not name:
        kind = "root"  # the member "./" itself: the target exists already
    return Member(
        name=name,
        kind=kind,
        size=size if kind == "file" else 0,
        mode=mode,
        uid=parsed.uid,
        gid=parsed.gid,
        mtime_ns=parsed.mtime_ns,
        linkname=linkname,
        header=header,
        cleared=mode != parsed.mode,
    )


def _check(parsed: MemberHeader, flag: bytes, pax: dict[bytes, bytes], allow_special: bool) -> tuple[str, bytes, bytes]:
    """The member's kind, safe name and link name.  :raises UnsafeMember: it must not be extracted."""
    raw_name = parsed.name
    shown = raw_name.decode("utf-8", "backslashreplace")
    keys = [key.decode("utf-8", "surrogateescape") for key in pax]
    odd = sorted(k for k in keys if k not in _PAX_KEYS and not k.startswith(_PAX_PREFIXES))
    if odd:
        raise UnsafeMember(f"{shown}: unknown pax keyword(s) {', '.join(odd)}; refused.")
    kind = parsed.kind
    if flag == b"\0" and kind != "dir":
        kind = "file"  # an old-style regular file
    name = safe_name(raw_name)
    linkname = parsed.linkname
    if kind == "hardlink":
        linkname = safe_name(linkname, "hard link target")
    if kind == "other":
        raise UnsafeMember(f"{shown}: tar member type {flag!r} is not restored by pytp; refused.")
    if kind in ("chardev", "blockdev", "fifo") and not allow_special:
        raise UnsafeMember(f"{shown}: a {kind} from tape is not created without --allow-special (root only); refused.")
    return kind, name, linkname


#: what a file moved aside while it is replaced is called: ``.NAME.pytp-old-RANDOM``
ASIDE_MARK = b".pytp-old-"


def _set_aside_at(parent: int, base: bytes) -> bytes:
    """Rename ``base`` in the directory ``parent`` (never followed if a symlink) to a hidden
    free name there, and return that name."""
    while True:
        aside = b"." + base[:100] + ASIDE_MARK + secrets.token_hex(6).encode()
        try:
            os.lstat(aside, dir_fd=parent)
        except FileNotFoundError:
            break  # rename would replace whatever has the name: a free one only
    os.rename(base, aside, src_dir_fd=parent, dst_dir_fd=parent)
    return aside


def _put_back_at(parent: int, aside: bytes, base: bytes) -> None:
    os.rename(aside, base, src_dir_fd=parent, dst_dir_fd=parent)


class SafeTree:
    """The restore target, opened once; paths below it are reached without following symlinks.

    :param target: an existing directory (resolved by the caller).
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def open_parent(self, name: bytes, create: bool = False) -> int | None:
        """A descriptor on the directory that holds ``name``; None if part of it is missing.

        :param create: create missing directories (mode 0o755) instead.
        :raises UnsafeMember: a component on the way is a symlink or not a directory.
        """
        global _openat2
        parent, _, _ = name.rpartition(b"/")
        if parent and _openat2 is not None:
            try:
                return _openat2(self.fd, parent)
            except OSError as err:
                if err.errno == errno.ENOSYS:
                    _openat2 = None  # an older kernel: the walk from now on
                if err.errno == errno.ENOENT and not create:
                    return None  # every component there is a real directory, one is missing
                if err.errno not in _WALK_INSTEAD and err.errno != errno.ENOENT:
                    raise
                # ENOENT with ``create``, or a refusal: the walk creates, or says which component
        return self._walk(name, create)

    def _walk(self, name: bytes, create: bool) -> int | None:
        """:meth:`open_parent` component by component (each opened with ``O_NOFOLLOW``)."""
        fd = os.dup(self.fd)
        parts = name.split(b"/")[:-1]
        try:
            for index, part in enumerate(parts):
                try:
                    child = os.open(part, _DIRFLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    child = os.open(part, _DIRFLAGS, dir_fd=fd)
                except OSError as err:
                    if err.errno in (errno.ELOOP, errno.ENOTDIR):
                        way = b"/".join(parts[: index + 1]).decode("utf-8", "backslashreplace")
                        raise UnsafeMember(
                            f"{name.decode('utf-8', 'backslashreplace')}: {way} is a symlink or not a directory "
                            "in the target; refusing to write through it."
                        ) from None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
            raise
        return fd

    def lstat(self, name: bytes) -> os.stat_result | None:
        """``lstat`` of ``name`` reached without symlinks; None if it (or a parent) is missing.

        :raises UnsafeMember: a parent is a symlink or not a directory.
        """
        parent = self.open_parent(name)
        if parent is None:
            return None
        try:
            return os.lstat(name.rsplit(b"/", 1)[-1], dir_fd=parent)
        except FileNotFoundError:
            return None
        finally:
            os.close(parent)

    def open_file(self, name: bytes) -> int:
        """Open the regular file ``name`` for reading, following no symlink.

        :raises OSError: missing, not a regular file, or a symlink (``ELOOP``).
        :raises UnsafeMember: a parent is a symlink.
        """
        parent = self.open_parent(name)
        if parent is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        try:
            return os.open(name.rsplit(b"/", 1)[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        finally:
            os.close(parent)

    def remove_file(self, name: bytes) -> None:
        """Unlink ``name`` (never a directory) if it is there."""
        parent = self.open_parent(name)
        if parent is None:
            return
        try:
            os.unlink(name.rsplit(b"/", 1)[-1], dir_fd=parent)
        except FileNotFoundError:
            pass
        finally:
            os.close(parent)

    def digest(self, name: bytes, sparse_map: str | None = None) -> str:
        """The xxh3 of the regular file ``name`` as pytp's catalog records it (no symlink followed).

        :raises OSError: it cannot be opened or read.
        :raises UnsafeMember: the way to it is not safe.
        """
        fd = self.open_file(name)
        try:
            if sparse_map is not None:
                # hash_file knows how a sparse member is hashed; /proc/self/fd
                # names this very descriptor, so no path is resolved again.
                return hash_file(f"/proc/self/fd/{fd}", sparse_map)
            hasher = ContentHasher()
            while chunk := os.read(fd, 1 << 20):
                hasher.update(chunk)
            return hasher.hexdigest()
        finally:
            os.close(fd)

    def set_aside(self, name: bytes) -> bytes:
        """Rename ``name`` (never followed if a symlink) to a hidden free name in its own
        directory, and return that name's last component (for :meth:`put_back`).

        :raises OSError: it could not be renamed (or ``name``'s directory is gone).
        :raises UnsafeMember: a parent is a symlink.
        """
        parent = self.open_parent(name)
        if parent is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        try:
            return _set_aside_at(parent, name.rsplit(b"/", 1)[-1])
        finally:
            os.close(parent)

    def put_back(self, name: bytes, aside: bytes) -> None:
        """Rename the file :meth:`set_aside` moved back to ``name`` (replacing a file there).

        :raises OSError: it could not (a directory is at ``name``, or the way is gone).
        """
        parent = self.open_parent(name)
        if parent is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        try:
            _put_back_at(parent, aside, name.rsplit(b"/", 1)[-1])
        finally:
            os.close(parent)

    def remove_aside(self, name: bytes, aside: bytes) -> None:
        """Unlink the file :meth:`set_aside` moved away from ``name`` (it was replaced)."""
        self.remove_file(name.rsplit(b"/", 1)[0] + b"/" + aside if b"/" in name else aside)

    def place_link(self, member: Member, overwrite: bool, same_owner: bool) -> None:
        """Create the symlink or hard link ``member``, after everything else is extracted.

        :raises UnsafeMember: the way is not safe, or a directory is in its place.
        :raises FileExistsError: something is in its place and ``overwrite`` is off.
        :raises OSError: the link could not be made.
        """
        parent = self.open_parent(member.name, create=True)
        assert parent is not None
        base = member.name.rsplit(b"/", 1)[-1]
        source_parent: int | None = None
        try:
            try:
                existing = os.lstat(base, dir_fd=parent)
            except FileNotFoundError:
                existing = None
            if existing is not None:
                if stat.S_ISDIR(existing.st_mode):
                    raise UnsafeMember(
                        f"{member.text}: a directory is in the place of this {member.kind}; not replaced."
                    )
                if not overwrite:
                    raise FileExistsError(errno.EEXIST, f"{member.text} exists")
            source = b""
            if member.kind == "hardlink":
                # Checked before anything is moved: a refused link leaves what is in its place.
                source_parent = self.open_parent(member.linkname)
                if source_parent is None:
                    raise FileNotFoundError(
                        errno.ENOENT, f"{member.linkname.decode('utf-8', 'replace')} was not restored"
                    )
                source = member.linkname.rsplit(b"/", 1)[-1]
                if not stat.S_ISREG(os.lstat(source, dir_fd=source_parent).st_mode):
                    raise UnsafeMember(f"{member.text}: a hard link may only point to a regular file; refused.")
            # What is in its place waits under a hidden name until the link is made, and
            # comes back if it cannot be (a name too long, the source gone…).
            aside = _set_aside_at(parent, base) if existing is not None else None
            try:
                if member.kind == "symlink":
                    os.symlink(member.linkname, base, dir_fd=parent)
                    if same_owner:
                        os.chown(base, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
                    os.utime(base, ns=(member.mtime_ns, member.mtime_ns), dir_fd=parent, follow_symlinks=False)
                else:
                    os.link(source, base, src_dir_fd=source_parent, dst_dir_fd=parent, follow_symlinks=False)
            except BaseException:
                if aside is not None:
                    _put_back_at(parent, aside, base)
                raise
            if aside is not None:
                os.unlink(aside, dir_fd=parent)
        finally:
            os.close(parent)
            if source_parent is not None:
                os.close(source_parent)

    def set_dir_mtime(self, name: bytes, mtime_ns: int) -> None:
        """Put a directory's modification time back after links were placed in it."""
        parent = self.open_parent(name) if name else os.dup(self.fd)
        if parent is None:
            return
        try:
            fd = os.open(name.rsplit(b"/", 1)[-1], _DIRFLAGS, dir_fd=parent) if name else os.dup(parent)
            try:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)
        except OSError:
            pass  # a directory that is not there or is a link: nothing to put back
        finally:
            os.close(parent)
