"""Extended attributes and POSIX ACLs of a file, read for the archive.

GNU tar (``--xattrs --acls``) stores them as pax records, and so does pytp
(``tarformat``): every extended attribute as ``SCHILY.xattr.NAME`` with its raw
value, except the two the kernel uses to hold POSIX ACLs
(``system.posix_acl_access`` and ``system.posix_acl_default``), which go as
``SCHILY.acl.access`` / ``SCHILY.acl.default`` in the long text form
``acl_to_text(3)`` prints (``user::rw-\\nuser:alice:r--\\n…``), the form GNU
tar's ``--acls`` writes and reads back.  pytp decodes the kernel's binary ACL
itself, so it needs no libacl.

A filesystem without extended attributes has nothing to store; any other
failure to read them is reported, so the job is ``partial`` rather than the
metadata silently lost (issue 8, defect 12).
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import struct
import subprocess
from dataclasses import dataclass
from functools import lru_cache

ACL_ACCESS = b"system.posix_acl_access"
ACL_DEFAULT = b"system.posix_acl_default"

#: errors that mean "this filesystem (or file type) has no extended attributes"
_UNSUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}

# linux/posix_acl_xattr.h: a version word, then (tag, perm, id) entries.
_ACL_VERSION = 2
_ACL_HEADER = struct.Struct("<I")
_ACL_ENTRY = struct.Struct("<HHI")
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_TAG_NAMES = {_USER_OBJ: "user", _USER: "user", _GROUP_OBJ: "group", _GROUP: "group", _MASK: "mask", _OTHER: "other"}


@dataclass(frozen=True)
class FileMeta:
    """What a file carries beyond its stat.

    :param xattrs: ``(name, value)`` pairs, sorted by name, ACL xattrs excluded.
    :param acl_access: the access ACL as text, or None (none beyond the mode).
    :param acl_default: a directory's default ACL as text, or None.
    :param problem: why some of it could not be read (then it is incomplete).
    """

    xattrs: tuple[tuple[bytes, bytes], ...] = ()
    acl_access: str | None = None
    acl_default: str | None = None
    problem: str | None = None


NO_META = FileMeta()


@lru_cache(maxsize=4096)
def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@lru_cache(maxsize=4096)
def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def acl_text(value: bytes) -> str:
    """The long text form of a kernel ACL xattr, as GNU tar stores it.

    Named entries use the user or group name, or the number when it has none
    (``acl_to_text(3)`` does the same).

    :raises ValueError: the value is not a version 2 POSIX ACL.
    """
    if len(value) < _ACL_HEADER.size or (len(value) - _ACL_HEADER.size) % _ACL_ENTRY.size:
        raise ValueError("not a POSIX ACL (bad length)")
    (version,) = _ACL_HEADER.unpack_from(value)
    if version != _ACL_VERSION:
        raise ValueError(f"POSIX ACL version {version} is not supported")
    lines = []
    for tag, perm, ident in _ACL_ENTRY.iter_unpack(value[_ACL_HEADER.size :]):
        kind = _TAG_NAMES.get(tag)
        if kind is None:
            raise ValueError(f"unknown POSIX ACL entry tag {tag:#x}")
        qualifier = _user(ident) if tag == _USER else _group(ident) if tag == _GROUP else ""
        rwx = "".join(flag if perm & bit else "-" for flag, bit in (("r", 4), ("w", 2), ("x", 1)))
        lines.append(f"{kind}:{qualifier}:{rwx}\n")
    return "".join(lines)


def read_meta(target: bytes | int) -> FileMeta:
    """Read the extended attributes and ACLs of a path (not following a
    symlink) or an open file descriptor.

    Never raises for a file's own failure: it is described in ``problem``.
    """
    follow = isinstance(target, int)
    try:
        names = sorted(os.listxattr(target, follow_symlinks=follow))
    except OSError as err:
        if err.errno in _UNSUPPORTED:
            return NO_META
        return FileMeta(problem=f"cannot list extended attributes and ACLs: {err.strerror}")
    xattrs: list[tuple[bytes, bytes]] = []
    acls: dict[bytes, str] = {}
    failures: list[str] = []
    for name in names:
        raw = os.fsencode(name)
        try:
            value = os.getxattr(target, name, follow_symlinks=follow)
        except OSError as err:
            if err.errno == errno.ENODATA:
                continue  # removed since it was listed
            failures.append(f"{name}: {err.strerror}")
            continue
        if raw in (ACL_ACCESS, ACL_DEFAULT):
            try:
                acls[raw] = acl_text(value)
            except ValueError as err:
                failures.append(f"{name}: {err}")
            continue
        xattrs.append((raw, value))
    problem = "cannot read extended attributes: " + "; ".join(failures) if failures else None
    return FileMeta(tuple(xattrs), acls.get(ACL_ACCESS), acls.get(ACL_DEFAULT), problem)


@lru_cache(maxsize=1)
def tar_metadata_options() -> tuple[str, ...]:
    """The GNU tar options that restore extended attributes and ACLs, when
    this tar was built with them (``--xattrs``/``--acls`` are compile-time
    features); restore adds them so what the archive holds comes back."""
    try:
        help_text = subprocess.run(["tar", "--help"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ()
    options: list[str] = []
    if "--xattrs" in help_text:
        # Without an include pattern GNU tar restores only user.* attributes.
        options += ["--xattrs", "--xattrs-include=*"]
    if "--acls" in help_text:
        options.append("--acls")
    return tuple(options)
