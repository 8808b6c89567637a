"""Writing one source tree as one POSIX tar archive, recording every member.

Each file is read once: its bytes go to the archive and through the xxh3-128
hasher in the same pass, so the checksum is over exactly what went to tape.
Every member's byte offset inside the tape file (the offset of its first
header, pax header included) and its header length are recorded, so a restore
can start reading at the member's block.

Extended attributes and POSIX ACLs go with every member (``fsmeta``); a file
whose attributes cannot be read is stored with what could be read and
reported, so the job is partial.  A file with holes is stored sparse
(``sparse``): only its data regions are read and written.

A walk leaves out what ``exclude.Exclusions`` says (``--exclude``,
``--one-file-system``) and reports the subtrees it did not enter, so an
incremental backup does not take what it did not look at for deleted.
Sockets cannot be archived; they are skipped with a note, which does not make
the job partial (issue 11), as GNU tar only mentions them.

Member names are the absolute paths without the leading ``/``, as GNU tar
stores them, so ``tar -x -C TARGET`` puts ``/home/a/x`` at ``TARGET/home/a/x``
for full and incremental jobs alike (the original pytp mixed ``./rel`` and
``abs`` layouts).
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NamedTuple, Protocol

from .blockio import BlockAssembler
from .continuation import MemberStart
from .exclude import Exclusions
from .fsmeta import NO_META, FileMeta, read_meta
from .hashing import ContentHasher, hash_bytes
from .sparse import data_regions, map_block, map_text, stored_size
from .tarformat import MemberHeader, build_header, padded

#: Files up to this size are read, hashed and written with one call each.
SMALL_FILE = 1 << 20
#: listxattr's errors for a file system without extended attributes (``fsmeta.read_meta``'s too)
_NO_XATTRS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})
#: the padding of a member's data to a whole 512-byte record
_PADDING = bytes(512)


class MemberRecord(NamedTuple):
    """One member as it went to tape: what the catalog and manifest store.

    A named tuple, not a frozen dataclass: one is made per file, and a frozen
    dataclass sets each of its 17 fields through ``object.__setattr__`` (issue 9).

    :param path: the absolute path on the source host (raw bytes).
    :param offset: byte offset of the member's first header in the tape file.
    :param header_size: bytes of headers before the data.
    :param link_target: symlink text, or the absolute path a hard link points to.
    :param size: the file's size (a sparse file's apparent size).
    :param sparse_map: a file stored sparse: its map (``sparse.map_text``);
        the archive then holds ``sparse.stored_size`` data bytes, not ``size``.
    """

    path: bytes
    kind: str
    size: int
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int
    link_target: bytes | None
    xxh3: str | None
    offset: int
    header_size: int
    sparse_map: str | None = None

    @property
    def member_name(self) -> bytes:
        return member_name(self.path)

    @property
    def data_size(self) -> int:
        """Data bytes the member has in the archive (after its headers)."""
        return member_data_size(self.kind, self.size, self.sparse_map)

    @property
    def length(self) -> int:
        """Bytes the member occupies in the archive, headers and padding included."""
        return self.header_size + padded(self.data_size)


@dataclass(frozen=True)
class Problem:
    """A path that was not stored, or not stored intact; it makes a job partial.

    :param note: only worth a note in the job log (a skipped socket, a mount
        point not entered): the job stays ``ok``.
    """

    path: bytes
    message: str
    note: bool = False


class SeenPaths(Protocol):
    """What an incremental or differential backup learns from the walk: the paths it
    found and the subtrees it left out (``catalog.chain_state.ChainState``), to tell
    which paths of the chain are gone."""

    def add(self, path: bytes, is_dir: bool) -> None:
        """The walk found ``path``."""
        ...

    def prune(self, path: bytes) -> None:
        """``path`` and what is below it were left out (excluded, a mount point not
        entered) or could not be looked at."""
        ...


def member_data_size(kind: str, size: int, sparse_map: str | None) -> int:
    """Data bytes a member has in the archive: a file's size, or for a sparse
    file its map block and data regions; other members have none.

    The catalog's ``Entry`` has the same three columns, so restore and verify
    use this too.
    """
    if kind != "file":
        return 0
    return size if sparse_map is None else stored_size(sparse_map)


def member_name(path: bytes) -> bytes:
    """Archive name of an absolute path: GNU tar's convention, leading ``/`` removed."""
    name = path.lstrip(b"/")
    return name or b"."


@lru_cache(maxsize=4096)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@lru_cache(maxsize=4096)
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


#: the largest value of a signed 64-bit column (SQLite's INTEGER, PostgreSQL's BIGINT)
_INT64_MAX = (1 << 63) - 1


def catalog_ns(ns: int) -> int:
    """A time in nanoseconds as the catalog and the manifest keep it: clamped to what a
    signed 64-bit count holds (1677-09-21 to 2262-04-11).  The tar header keeps the
    exact time; a file dated 2300 must not cost the whole job (an integer overflow)."""
    return ns if -_INT64_MAX - 1 <= ns <= _INT64_MAX else max(-_INT64_MAX - 1, min(ns, _INT64_MAX))


def catalog_inode(inode: int) -> int:
    """An inode number as a signed 64-bit column holds it: the low 63 bits (NFS and some
    file systems give numbers up to 2**64 - 1)."""
    return inode & _INT64_MAX


def member_kind(mode: int) -> str | None:
    """The catalog's kind of a file with ``st_mode`` ``mode`` (a hard link's first name is a "file"), or None."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode):
        return "chardev"
    if stat.S_ISBLK(mode):
        return "blockdev"
    return None  # sockets and doors cannot be archived (GNU tar ignores them too)


def walk(
    root: bytes,
    on_problem: Callable[[Problem], None],
    exclude: Exclusions | None = None,
    on_prune: Callable[[bytes], None] | None = None,
) -> Iterator[tuple[bytes, os.stat_result]]:
    """Yield ``(path, lstat)`` for ``root`` and everything below it, depth first.

    Entries are sorted by name so that the same tree gives the same archive.
    A symlinked ``root`` is followed (``tar -C root .`` did that in the
    original pytp); links below it are stored as links.

    :param exclude: paths to leave out: an excluded path is neither yielded
        nor entered (nor even stat'ed); with ``one_file_system`` a directory on
        another file system is yielded but not entered, with a note.
    :param on_prune: called with each path whose subtree is left out or could
        not be looked at (a directory that cannot be listed, a name whose
        ``lstat`` fails other than by its being gone): an incremental must not
        take what is below it for deleted.
    """
    try:
        root_stat = os.stat(root)
    except OSError as err:
        on_problem(Problem(root, f"cannot read: {err.strerror}"))
        if on_prune is not None and not isinstance(err, FileNotFoundError):
            on_prune(root)
        return
    stack: list[tuple[bytes, os.stat_result]] = [(root, root_stat)]
    prefix = len(root.rstrip(b"/")) + 1
    while stack:
        path, st = stack.pop()
        yield path, st
        if not stat.S_ISDIR(st.st_mode):
            continue
        if exclude is not None and exclude.one_file_system and st.st_dev != root_stat.st_dev:
            # GNU tar's --one-file-system: the mount point is stored, what is mounted on it is not.
            on_problem(Problem(path, "is a mount point; its contents were not backed up (--one-file-system)", True))
            if on_prune is not None:
                on_prune(path)
            continue
        try:
            with os.scandir(path) as it:
                names = sorted(entry.name for entry in it)
        except OSError as err:
            on_problem(Problem(path, f"cannot list directory: {err.strerror}"))
            if on_prune is not None:
                on_prune(path)  # not looked at: what was below it is not gone
            continue
        children = []
        # Without patterns there is nothing to match per name (--one-file-system is checked above).
        patterns = exclude if exclude is not None and exclude.patterns else None
        parent = path.rstrip(b"/") + b"/"
        for name in names:
            child = parent + name
            if patterns is not None and patterns.excluded(child, child[prefix:]):
                if on_prune is not None:
                    on_prune(child)
                continue
            try:
                children.append((child, os.lstat(child)))
            except FileNotFoundError:
                on_problem(Problem(child, "vanished before it could be read"))
            except OSError as err:
                on_problem(Problem(child, f"cannot read: {err.strerror}"))
                if on_prune is not None:
                    on_prune(child)  # there, but not looked at: not deleted
        stack.extend(reversed(children))


_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NOATIME = getattr(os, "O_NOATIME", 0)


def _open_for_reading(path: bytes) -> int:
    if _NOATIME:
        try:
            # A backup should not touch atimes; only the owner or root may ask.
            return os.open(path, _READ_FLAGS | _NOATIME)
        except PermissionError:
            pass
    return os.open(path, _READ_FLAGS)


class ArchiveWriter:
    """Writes members into a tar archive that goes to ``out``.

    :param out: receives the archive bytes and tracks the offset.
    :param on_member: called for each member stored intact.
    :param on_problem: called for each path skipped or not stored intact.
    :param on_bytes: called with the number of data bytes as they are read
        (for progress output).
    :param on_start: called as each member's header goes out, before its data
        (spanning needs to know the member a cut falls into).
    """

    def __init__(
        self,
        out: BlockAssembler,
        on_member: Callable[[MemberRecord], None],
        on_problem: Callable[[Problem], None],
        on_bytes: Callable[[int], None] | None = None,
        on_start: Callable[[MemberStart], None] | None = None,
    ) -> None:
        self.out = out
        self.on_member = on_member
        self.on_problem = on_problem
        self.on_bytes = on_bytes
        self.on_start = on_start
        self._hardlinks: dict[tuple[int, int], bytes] = {}

    def add_tree(
        self,
        root: bytes,
        select: Callable[[bytes, os.stat_result], bool] | None = None,
        exclude: Exclusions | None = None,
        seen: SeenPaths | None = None,
    ) -> None:
        """Add ``root`` (an absolute path) and everything below it.

        :param select: for an incremental backup, says which members to store;
            directories are always stored (their metadata is part of the tree).
            Called right after ``seen.add`` of the same path.
        :param exclude: what to leave out (``--exclude``, ``--one-file-system``).
        :param seen: told of every path found and every subtree left out
            (incremental, differential: to find the deleted paths).
        """
        on_prune = seen.prune if seen is not None else None
        for path, st in walk(root, self.on_problem, exclude, on_prune):
            is_dir = stat.S_ISDIR(st.st_mode)
            if seen is not None:
                seen.add(path, is_dir)
            if select is None or is_dir or select(path, st):
                self.add(path, st)

    def add(self, path: bytes, st: os.stat_result) -> None:
        kind = member_kind(st.st_mode)
        if kind is None:
            self.on_problem(Problem(path, "is a socket or other special file that tar cannot store; skipped", True))
            return
        link_target: bytes | None = None
        key = (st.st_dev, st.st_ino)
        if kind == "file" and st.st_nlink > 1:
            first = self._hardlinks.get(key)
            if first is not None:
                kind, link_target = "hardlink", first
        if kind == "symlink":
            try:
                link_target = os.readlink(path)
            except OSError as err:
                self.on_problem(Problem(path, f"cannot read link: {err.strerror}"))
                return
        if kind == "file":
            self._add_file(path, st)
            return
        # A hard link's attributes are its first name's (one inode).
        meta = self._meta(path, path) if kind != "hardlink" else NO_META
        offset = self.out.offset
        encoded = self._write_header(self._header_of(path, kind, st, 0, link_target, meta))
        self.on_member(self._record(path, kind, st, 0, link_target, None, offset, len(encoded)))

    def _meta(self, path: bytes, target: bytes | int) -> FileMeta:
        """The member's xattrs and ACLs; a failure to read them is reported
        (the member is stored with what could be read).

        Most files have none: one ``listxattr`` says so, and ``read_meta``
        (which lists them again) runs only for the others (issue 9, per-file cost).
        """
        try:
            if not os.listxattr(target, follow_symlinks=isinstance(target, int)):
                return NO_META
        except OSError as err:
            if err.errno in _NO_XATTRS:
                return NO_META  # as read_meta: the file system keeps none
        meta = read_meta(target)
        if meta.problem is not None:
            self.on_problem(Problem(path, meta.problem + " (stored without them)"))
        return meta

    def _write_header(self, header: MemberHeader) -> bytes:
        offset = self.out.offset
        encoded = build_header(header)
        if self.on_start is not None:
            self.on_start(MemberStart(offset, len(encoded), header))
        self.out.write(encoded)
        return encoded

    @staticmethod
    def _record(
        path: bytes,
        kind: str,
        st: os.stat_result,
        size: int,
        link_target: bytes | None,
        xxh3: str | None,
        offset: int,
        header_size: int,
        sparse_map: str | None = None,
    ) -> MemberRecord:
        """The member's record as it went to tape, from its stat (built once: no ``replace``)."""
        return MemberRecord(
            path,
            kind,
            size,
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            _user_name(st.st_uid),
            _group_name(st.st_gid),
            catalog_ns(st.st_mtime_ns),
            catalog_ns(st.st_ctime_ns),
            catalog_inode(st.st_ino),
            st.st_dev,
            link_target,
            xxh3,
            offset,
            header_size,
            sparse_map,
        )

    @staticmethod
    def _header_of(
        path: bytes, kind: str, st: os.stat_result, size: int, link_target: bytes | None, meta: FileMeta = NO_META
    ) -> MemberHeader:
        """The tar header of a member: hard links name the first member, not a path."""
        linkname = b"" if link_target is None else member_name(link_target) if kind == "hardlink" else link_target
        device = kind in ("chardev", "blockdev")
        return MemberHeader(
            member_name(path) + (b"/" if kind == "dir" and path != b"/" else b""),
            kind,
            size,
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            _user_name(st.st_uid),
            _group_name(st.st_gid),
            st.st_mtime_ns,
            linkname,
            os.major(st.st_rdev) if device else 0,
            os.minor(st.st_rdev) if device else 0,
            None,
            meta.xattrs,
            meta.acl_access,
            meta.acl_default,
        )

    def _add_file(self, path: bytes, lst: os.stat_result) -> None:
        try:
            fd = _open_for_reading(path)
        except FileNotFoundError:
            self.on_problem(Problem(path, "vanished before it could be read"))
            return
        except OSError as err:
            reason = "is now a symlink" if err.errno == errno.ELOOP else err.strerror
            self.on_problem(Problem(path, f"cannot open: {reason}"))
            return
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (lst.st_dev, lst.st_ino):
                self.on_problem(Problem(path, "was replaced while being backed up; skipped"))
                return
            self._stream_file(fd, path, st)
        finally:
            os.close(fd)

    def _stream_file(self, fd: int, path: bytes, st: os.stat_result) -> None:
        size = st.st_size
        offset = self.out.offset
        meta = self._meta(path, fd)
        # A file whose blocks cover its size has no holes: only others are asked
        # (data_regions would fstat again; issue 9, per-file cost).
        regions = data_regions(fd, size) if size and st.st_blocks * 512 < size else None
        sparse = map_text(regions) if regions is not None else None
        header = self._header_of(path, "file", st, size, None, meta)
        if sparse is not None:
            header = replace(header, size=stored_size(sparse), realsize=size)
        elif size <= SMALL_FILE:
            self._small_file(fd, path, st, header, offset)
            return
        encoded = self._write_header(header)
        hasher = ContentHasher()
        if sparse is not None:
            block = map_block(sparse)
            hasher.update(block)
            self.out.write(block)
        problem = None
        for start, length in regions if regions is not None else [(0, size)]:
            problem = self._copy_range(fd, start, length, hasher)
            if problem is not None:
                break
        written = self.out.offset - offset - len(encoded)
        data = member_data_size("file", size, sparse)
        if written < data:
            # The header promised `data` bytes: fill with zeros so the archive
            # stays valid for tar, and keep the file out of the catalog.
            self.out.write(b"\0" * (data - written))
        self.out.write(b"\0" * (padded(data) - data))
        if problem is None:
            after = os.fstat(fd)
            grew = os.pread(fd, 1, size) != b""
            if grew or after.st_mtime_ns != st.st_mtime_ns or after.st_size != size:
                problem = "changed while being read; the copy on tape is not consistent"
        self._stored(path, st, size, problem, hasher.hexdigest(), offset, len(encoded), sparse)

    def _small_file(self, fd: int, path: bytes, st: os.stat_result, header: MemberHeader, offset: int) -> None:
        """A file of at most ``SMALL_FILE`` bytes: read with one call, hashed with
        one, written to the archive with one (header, data and padding): most
        files of a file server are small, and each Python call counts at tens
        of thousands of files a second (issue 9)."""
        size = st.st_size
        encoded = build_header(header)
        if self.on_start is not None:
            self.on_start(MemberStart(offset, len(encoded), header))
        problem = None
        try:
            # One byte more than the size: a file that grew is seen in the same read.
            data = os.pread(fd, size + 1, 0)
        except OSError as err:
            data, problem = b"", f"read error at byte 0: {err.strerror}"
        grew = len(data) > size
        if grew:
            data = data[:size]
        elif len(data) < size and problem is None:
            problem = f"shrank while being read (ended at byte {len(data)}, expected {size})"
        # Zeros where the data is short keep the archive valid for tar (the file
        # stays out of the catalog), then the padding to a whole record.
        out = self.out
        out.write(encoded)
        out.write(data)
        pad = padded(size) - len(data)
        if pad:
            out.write(_PADDING[:pad] if pad <= 512 else bytes(pad))
        if self.on_bytes is not None and data:
            self.on_bytes(len(data))
        if problem is None:
            after = os.fstat(fd)
            if grew or after.st_mtime_ns != st.st_mtime_ns or after.st_size != size:
                problem = "changed while being read; the copy on tape is not consistent"
        self._stored(path, st, size, problem, hash_bytes(data), offset, len(encoded), None)

    def _stored(
        self,
        path: bytes,
        st: os.stat_result,
        size: int,
        problem: str | None,
        xxh3: str,
        offset: int,
        header_size: int,
        sparse: str | None,
    ) -> None:
        """Report a file written to the archive: stored intact, or the problem that keeps it out of the catalog."""
        if problem is not None:
            self.on_problem(Problem(path, problem + " (not recorded as backed up)"))
            return
        if st.st_nlink > 1:
            self._hardlinks[(st.st_dev, st.st_ino)] = path
        self.on_member(self._record(path, "file", st, size, None, xxh3, offset, header_size, sparse))

    def _copy_range(self, fd: int, start: int, length: int, hasher: ContentHasher) -> str | None:
        """Copy ``length`` bytes at ``start`` to the archive and the hasher.

        Read straight into the block assembler's chunk and hashed there: the
        bytes are copied once, by the kernel (issue 9: large files at tape speed).

        :returns: what went wrong, or None.
        """
        out = self.out
        position, end = start, start + length
        while position < end:
            room = out.room()
            try:
                n = os.preadv(fd, [room[: end - position]], position)
            except OSError as err:
                return f"read error at byte {position}: {err.strerror}"
            if n == 0:
                return f"shrank while being read (ended at byte {position}, expected {end})"
            hasher.update(room[:n])
            out.commit(n)
            position += n
            if self.on_bytes:
                self.on_bytes(n)
        return None
