"""GNU tar as pytp runs it: a process fed on stdin, and guarded extraction.

``TarProcess`` only runs tar.  ``GuardedExtraction`` is what every restore
goes through (by catalog lookup and the raw ``pytp restore DIR`` alike): each
member's header is judged by :mod:`.extract_guard` before tar sees it, tar
only ever receives regular files and directories (with special mode bits
cleared), and symlinks and hard links are placed after tar has finished the
whole restore, so nothing a restore creates can redirect a later member.
``extract_here`` and ``list_here`` are the original ``restore``/``ls``: tar
on the tape file under the head.  Nothing here knows the catalog, so those two
commands do not load it.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import tarfile
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import IO

from . import exitcodes
from .blockio import TapeFileReader
from .drive import Drive
from .errors import BlankTape, MediumError, NothingHere, TapeIOError, TargetError
from .extract_guard import DamagedMember, Member, SafeTree, UnsafeMember, judge
from .fsmeta import tar_metadata_options
from .tarformat import END_OF_ARCHIVE, RECORD, parse_pax_records

#: GNU tar reads stdin in records of 20 x 512 bytes; the stream is padded to a
#: whole record so tar never sees a short last record.
TAR_RECORD = 20 * 512
_CHUNK = 1 << 20
#: header types that only prefix the next member (pax, GNU long names)
_PREFIX_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, b"X")


class TarFailed(TapeIOError):
    """GNU tar failed."""

    exit_code = exitcodes.EXIT_ERROR


class ExtractionProblems(TapeIOError):
    """Some members were refused or damaged; every other member was extracted."""

    exit_code = exitcodes.EXIT_VERIFY_FAILED


class TargetFull(TapeIOError):
    """The file system of the restore target is full (no space, no inode, or over quota)."""

    exit_code = exitcodes.EXIT_ERROR

    def __init__(
        self, message: str | None = None, member: str = "", target: Path | None = None, kept: bool = False
    ) -> None:
        super().__init__(message)
        #: the member tar could not write (tar's own quoting undone, decoded for display)
        self.member = member
        self.target = target
        #: the file that was at that member's place (``--overwrite``) is there again, unchanged
        self.kept = kept


def end_of_stream(fed: int) -> bytes:
    """The end-of-archive marker, padded so tar sees whole records."""
    return END_OF_ARCHIVE + b"\0" * (-(fed + len(END_OF_ARCHIVE)) % TAR_RECORD)


def extract_command(target: Path, overwrite: bool, allow_special: bool = False) -> list[str]:
    """tar reading an archive on stdin into ``target``.

    ``--unlink-first`` replaces a file without writing through whatever is in
    its place.  A directory that is already there is never given to tar again
    (``GuardedExtraction.admit`` keeps it as it is), so ``--unlink-first``
    never meets a non-empty directory (issue 8, defect 5).  GNU tar 1.34
    takes ``--no-overwrite-dir`` beside neither of these options.
    """
    command = ["tar", "-x", "-B", "-f", "-", "-C", str(target), "--preserve-permissions"]
    command += ["--unlink-first"] if overwrite else ["--keep-old-files"]
    # Extended attributes and ACLs travel in pax records; tar restores them only when asked.
    options = list(tar_metadata_options())
    if "--xattrs" in options and not allow_special:
        # File capabilities grant privileges as setuid does: not from a foreign tape by default.
        options.append("--xattrs-exclude=security.capability")
    return command + options


def _piped(stream: IO[bytes] | None) -> IO[bytes]:
    """A standard stream Popen was told to pipe: never None, which typeshed cannot say."""
    if stream is None:
        raise RuntimeError("tar was started without the pipe pytp asked for")
    return stream


class TarProcess:
    """A running GNU tar fed on stdin; its stdout and stderr are collected on
    threads so a chatty tar can never block the feeding.

    :param track: a list the process adds itself to before tar starts, so an
        owner interrupted at any moment can still stop it (see ``kill``).
    :param on_error: called (on the reading thread) with each line tar writes
        to stderr, as it comes, so an owner can react while still feeding.
    :param pass_fds: descriptors tar inherits (the target directory it works in).
    """

    def __init__(
        self,
        command: list[str],
        track: list[TarProcess] | None = None,
        on_error: Callable[[str], None] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.stopped = False
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        if track is not None:
            track.append(self)
        # Ctrl-C while Popen runs would leave a tar nobody knows about, so
        # SIGINT waits until ``process`` is set.  tar inherits the blocked
        # SIGINT: pytp itself stops it on Ctrl-C, after which it cleans up.
        main = threading.current_thread() is threading.main_thread()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if main else None
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds
            )
            stdout, stderr = _piped(self.process.stdout), _piped(self.process.stderr)
            #: bytes of ours the pipe to tar can hold, not yet read by tar
            self.capacity = _pipe_capacity(self.process.stdin)
            self._threads = [
                threading.Thread(target=lambda: self._out.append(stdout.read()), daemon=True),
                threading.Thread(target=self._read_errors, args=(stderr, on_error), daemon=True),
            ]
            for thread in self._threads:
                thread.start()
        finally:
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _read_errors(self, stderr: IO[bytes], on_error: Callable[[str], None] | None) -> None:
        if on_error is None:
            self._err.append(stderr.read())
            return
        for line in stderr:  # a line as soon as tar has written it
            self._err.append(line)
            on_error(line.decode("utf-8", "backslashreplace").rstrip("\n"))

    def feed(self, data: bytes) -> None:
        """Send ``data``; sets ``stopped`` when tar has stopped reading."""
        if self.stopped:
            return
        try:
            _piped(self.process.stdin).write(data)
        except BrokenPipeError:
            self.stopped = True

    def close(self) -> tuple[int, str, str]:
        """Close stdin and wait: ``(exit status, stdout, stderr)``."""
        try:
            _piped(self.process.stdin).close()
        except BrokenPipeError:
            pass
        self.process.wait()
        for thread in self._threads:
            thread.join()
        out = b"".join(self._out).decode("utf-8", "backslashreplace")
        return self.process.returncode, out, b"".join(self._err).decode("utf-8", "backslashreplace").strip()

    def finish(self) -> str:
        """Close stdin, wait; return stdout.  :raises TarFailed: on a non-zero exit."""
        status, out, err = self.close()
        if status != 0:
            lines = [line for line in err.splitlines() if line and "Exiting with failure status" not in line]
            raise TarFailed(f"tar failed (exit {status}): {'; '.join(lines) or 'no message'}")
        return out

    def kill(self) -> None:
        """Stop tar now (an interrupted restore); SIGKILL also ends a stopped tar."""
        if not hasattr(self, "process"):
            return  # interrupted before tar started
        if self.process.poll() is None:
            self.process.kill()
        try:
            _piped(self.process.stdin).close()
        except (BrokenPipeError, OSError):
            pass
        self.process.wait()


#: strerror texts that say the file system is full (tar prints them untranslated in
#: the C and English locales; other locales are caught by ``_no_room``)
_FULL_TEXTS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))
#: below this much free space, a write tar could not complete is taken for a full disk
_NEARLY_FULL = 1 << 20


def says_full(message: str) -> bool:
    """Whether tar's ``message`` names a full file system (ENOSPC, EDQUOT)."""
    return any(text in message for text in _FULL_TEXTS)


def _no_room(directory: Path) -> bool:
    """Whether the file system of ``directory`` is (nearly) out of space or inodes.

    tar's "Wrote only N of M bytes" does not say why (write(2) returned short,
    then ENOSPC or EDQUOT or EIO), so the file system is asked.
    """
    try:
        fs = os.statvfs(directory)
    except OSError:
        return False
    free = fs.f_bfree if os.geteuid() == 0 else fs.f_bavail  # root writes into the reserved blocks
    return free * fs.f_frsize < _NEARLY_FULL or (fs.f_files > 0 and fs.f_favail == 0)


def _cut_complaint(line: str) -> bool:
    """Whether ``line`` is GNU tar's complaint about an input ended inside a member."""
    return any(text in line for text in ("Unexpected EOF", "Error is not recoverable", "Exiting with failure"))


@dataclass
class _Written:
    """A file handed to tar, and what was at its place before (``GuardedExtraction._settle``)."""

    name: bytes
    #: its size once written (None: a sparse member, whose size on tape is not its size)
    size: int | None
    before: tuple[int, int] | None
    #: where its data ends in the stream of the tar it was fed to (None: a tar of its own)
    end: int | None = None
    #: the hidden name, in the same directory, of the file it replaces (``--overwrite``),
    #: kept until tar has finished the member
    aside: bytes | None = None
    #: the catalog's (xxh3, sparse map) of the member: a replacement that does not match
    #: gives its place back to the file it replaced
    digest: tuple[str, str | None] | None = None


def _sparse(member: Member) -> bool:
    """Whether ``member`` is a sparse file (pax ``GNU.sparse.*`` records, or old GNU type S)."""
    return b"GNU.sparse." in member.header or member.header[-RECORD + 156 : -RECORD + 157] == b"S"


#: bytes fed to a tar that it may not have read yet besides the pipe's own
#: capacity: the buffer of Python's file on the pipe and GNU tar's record,
#: with room to spare (``GuardedExtraction._forget_finished``)
_UNREAD_MARGIN = 1 << 20
#: fcntl's F_GETPIPE_SZ (Linux)
_F_GETPIPE_SZ = 1032


def _pipe_capacity(stream: IO[bytes] | None) -> int:
    """Bytes the pipe to tar holds; a generous guess where the kernel does not say."""
    try:
        import fcntl

        return int(fcntl.fcntl(_piped(stream).fileno(), _F_GETPIPE_SZ))
    except (OSError, ValueError, RuntimeError):
        return 16 << 20


@dataclass
class GuardedExtraction:
    """One restore's extraction into ``target``, across any number of archives.

    :param target: the resolved target directory (it must exist).
    :param overwrite: replace files (never directories) that are in the way.
    :param allow_special: create device nodes and fifos and keep setuid/setgid/
        sticky bits (the caller checks that this is root).
    """

    target: Path
    overwrite: bool = False
    allow_special: bool = False
    #: (member name, why) for members not extracted because they are unsafe or in the way
    refused: list[tuple[str, str]] = field(default_factory=list)
    #: (member name, what) for members whose bytes on tape are damaged or unreadable
    damaged: list[tuple[str, str]] = field(default_factory=list)
    #: tar's own complaints, one line each (they name the member)
    tar_errors: list[str] = field(default_factory=list)
    #: members extracted with their setuid/setgid/sticky bits cleared
    cleared: list[str] = field(default_factory=list)
    extracted: int = 0

    def __post_init__(self) -> None:
        self.tree = SafeTree(self.target)
        # tar works in the directory this restore opened, by its descriptor: a target
        # renamed and replaced by a symlink meanwhile (its parent writable by someone
        # else) is never looked up by path again, by any tar of this restore.
        self.command = extract_command(Path(f"/proc/self/fd/{self.tree.fd}"), self.overwrite, self.allow_special)
        self._tar: TarProcess | None = None
        #: every tar started, so an interrupted restore stops them all
        self._processes: list[TarProcess] = []
        self._fed = 0
        self._links: list[Member] = []
        self._dirs: dict[bytes, int] = {}
        #: files handed to tar that it may still be writing, oldest first: what
        #: ``abort`` checks.  Files tar has certainly read past are dropped as the
        #: restore goes (``_forget_finished``), so this does not grow with the file count.
        self._written: deque[_Written] = deque()
        #: files given to tars of their own (members cut across tapes): few, kept
        self._written_apart: list[_Written] = []
        self._admitted: _Written | None = None
        #: files tar did not write whole (what it wrote of them was removed): named in
        #: the problems, not to be named again by a checksum pass
        self.failed: set[bytes] = set()
        #: (member, what) of those, each named unless a line of tar's names it already
        self.unwritten: list[tuple[str, str]] = []
        #: file members refused (in the way, unsafe): not restored, so never linked to
        self.not_restored: set[bytes] = set()
        #: (member, what) of files whose way in the target became a symlink while tar wrote
        self.escaped: list[tuple[str, str]] = []
        #: files that were in the place of a member (``--overwrite``) and are there again,
        #: unchanged, because tar did not write the member whole or the restore stopped first
        self.kept: set[bytes] = set()
        #: tar's first line saying the target is full (set on tar's stderr thread)
        self._full: str | None = None

    # ------------------------------------------------------------ feeding
    def _tar_for(self) -> TarProcess:
        return TarProcess(self.command, self._processes, on_error=self._watch, pass_fds=(self.tree.fd,))

    def _watch(self, line: str) -> None:
        """On tar's stderr thread: note the first line that says the target is full.

        Which member a line is about is not read from it: GNU tar prints names
        unquoted in its write errors, so a member named ``x: Cannot write: y``
        would make any name up.  What tar did to each file is looked at on disk
        (``_settle``), for the files this restore gave it.
        """
        if self._full is None and (says_full(line) or (line.startswith("tar: ") and _no_room(self.target))):
            self._full = line

    def _take_errors(self, err: str, cut: bool = False) -> None:
        """tar's stderr after it exited: keep each complaint once.  Once the target is
        full, what follows the first such line is its consequence and is not kept.

        :param cut: tar's input was ended inside a member on purpose: its complaint is dropped.
        """
        consequence = False
        for line in err.splitlines():
            if not line or "Exiting with failure status" in line or (cut and _cut_complaint(line)):
                continue
            consequence = consequence or (self._full is not None and line == self._full)
            if not consequence:
                self.tar_errors.append(line)

    def _full_stop(self, written: list[_Written]) -> None:
        """The target is full and tar is done with ``written`` (no longer tracked): keep the
        files before the member that did not fit, remove what tar made of it and of every
        later one, put back the files they were to replace, and stop.

        tar goes member by member, so the files before that member are finished; but it
        may have created the next file (mode 0600, empty) before this restore learnt the
        target was full.  That member not among ``written`` means tar was past it already.
        """
        first = next((index for index, one in enumerate(written) if not self._whole(one)), len(written))
        for index, one in enumerate(written):
            self._settle(one, whole_ok=index < first, report=False)  # the stop names the member
        failed = written[first].name if first < len(written) else None
        member = failed.decode("utf-8", "backslashreplace") if failed is not None else ""
        kept = failed is not None and failed in self.kept
        what = "the file that was there is kept unchanged" if kept else "what it wrote of it was removed"
        raise TargetFull(
            f"No space left on device in {self.target}"
            + (f": tar could not write {member} ({what})" if member else "")
            + "; the members before it were extracted, the rest were not. "
            "Free space, or extract into a target with more room.",
            member=member,
            target=self.target,
            kept=kept,
        )

    def _check_room(self) -> None:
        """Stop at the first member that did not fit: going on only makes more failures."""
        if self._full is None:
            return
        tar, self._tar = self._tar, None
        if tar is not None:
            # tar finishes what it was given, then meets the end of its input.
            _, _, err = tar.close()
            self._take_errors(err, cut=True)
        written = list(self._written)
        self._written.clear()
        self._full_stop(written)

    def _process(self) -> TarProcess:
        if self._tar is not None and self._tar.stopped:
            self._close_tar()  # tar gave up (its complaint is kept); go on with a new one
        if self._tar is None:
            self._fed = 0
            self._tar = self._tar_for()
        return self._tar

    def _feed(self, data: bytes) -> None:
        self._process().feed(data)
        self._fed += len(data)
        self._check_room()

    def _forget_finished(self) -> None:
        """Drop the files tar has certainly finished: a later member's header is in
        what it has read.  Everything fed but what the pipe and the buffers before
        tar can hold has been read (a write returns once its bytes are in the pipe),
        and GNU tar writes a file whole before it reads the next header."""
        tar = self._tar
        if tar is None or self._full is not None:
            return  # a full target: ``_full_stop`` decides, knowing which member did not fit
        read = self._fed - tar.capacity - _UNREAD_MARGIN
        while self._written and self._written[0].end is not None and self._written[0].end <= read:
            self._settle(self._written.popleft())

    def _close_tar(self) -> None:
        if self._tar is None:
            return
        self._tar.feed(end_of_stream(self._fed))
        status, _, err = self._tar.close()
        self._tar = None
        if status != 0:
            before = len(self.tar_errors)
            self._take_errors(err)
            if len(self.tar_errors) == before and self._full is None:
                self.tar_errors.append(f"tar exited with status {status}")
        written = list(self._written)
        self._written.clear()
        if self._full is not None:
            self._full_stop(written)
        for one in written:  # tar has exited: every file it was given is finished
            self._settle(one)

    def refuse(self, name: str, why: str) -> None:
        self.refused.append((name, why))

    def global_records(self, offset: int, data: bytes) -> None:
        """A global pax header, which is left out: named when it says more than a comment
        (``git archive`` writes one with the commit id), since GNU tar would apply it."""
        records: dict[bytes, bytes] = {}
        try:
            parse_pax_records(data, records)
        except ValueError as err:
            self.refuse(f"global pax header at byte {offset}", f"damaged ({err}); left out")
            return
        keys = sorted(key.decode("utf-8", "backslashreplace") for key in records if key != b"comment")
        if keys:
            self.refuse(
                f"global pax header at byte {offset}",
                f"its records ({', '.join(keys)}) are not applied: each member is restored as its own "
                "header describes it, where GNU tar would apply them to every later member",
            )

    def _refuse_member(self, member: Member, why: str) -> None:
        self.refuse(member.text, why)
        if member.kind == "file":
            self.not_restored.add(member.name)  # a hard link to it is not made (``finish``)

    def admit(self, member: Member) -> bool:
        """Whether tar gets ``member`` now; links are kept for :meth:`finish`, refusals recorded."""
        if member.kind == "root":
            return False
        if member.kind in ("symlink", "hardlink"):
            self._links.append(member)
            return False
        try:
            existing = self.tree.lstat(member.name)
        except UnsafeMember as err:
            self._refuse_member(member, str(err).removeprefix(f"{member.text}: "))
            return False
        if member.kind == "dir" and member.name in self._dirs:
            return False  # given to tar already (tar may not have made it yet): never twice
        if member.kind == "dir" and existing is not None and not stat.S_ISDIR(existing.st_mode):
            # tar's --unlink-first would remove it to make the directory: a file is never
            # destroyed for a directory (nor a directory for a file, below).
            self._refuse_member(member, "a file or link is in the place of this directory; not replaced")
            return False
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                if member.kind != "dir":
                    self._refuse_member(member, f"a directory is in the place of this {member.kind}; not replaced")
                return False  # an existing directory is kept as it is
            if not self.overwrite:
                self._refuse_member(member, "exists; not replaced (use --overwrite)")
                return False
        written = None
        if member.kind == "file":
            if any(one.name == member.name for one in (*self._written, *self._written_apart)):
                # tar may still be writing the first: a second one in its place would be taken
                # for it, or the file put back for one taken for the other's.
                self._refuse_member(member, "appears again before the first of that name was written; not extracted")
                return False
            before = (existing.st_dev, existing.st_ino) if existing is not None else None
            written = _Written(member.name, None if _sparse(member) else member.size, before)
            if existing is not None:
                # tar's --unlink-first removes the old file before it writes a byte of the new
                # one, so a replacement that does not fit (a full target) would lose both.
                # The old file waits under a hidden name until tar is done (``_settle``).
                try:
                    written.aside = self.tree.set_aside(member.name)
                except (OSError, UnsafeMember) as err:
                    why = err.strerror if isinstance(err, OSError) else str(err)
                    self._refuse_member(member, f"exists and could not be moved aside to be replaced safely ({why})")
                    return False
        if member.cleared:
            self.cleared.append(member.text)
        if member.kind == "dir":
            self._dirs[member.name] = member.mtime_ns
        self._admitted = written
        return True

    def extract(
        self, member: Member, read: Callable[[int], bytes], digest: tuple[str, str | None] | None = None
    ) -> bool:
        """Give tar ``member``: its header, then its data taken from ``read``.

        :param digest: the catalog's (xxh3, sparse map) of a regular file: with
            ``overwrite``, the file it replaces comes back if the new one does not match.

        :returns: False if the member was not given to tar (its data was not read).
        :raises MediumError, BlankTape: reading failed; what tar wrote of the
            member is removed (:meth:`_cut_short`) and the caller names it damaged.
        """
        self._admitted = None
        if self._tar is not None and self._tar.stopped:
            self._close_tar()  # tar gave up (its complaint is kept); go on with a new one
        self._check_room()
        if not self.admit(member):
            return False
        written, self._admitted = self._admitted, None  # a regular file's
        if written is not None:
            written.digest = digest
            # Tracked before tar has its header: tar may create the file before this
            # restore learns that the target is full (``_full_stop`` removes it then).
            self._written.append(written)
        self._feed(member.header)
        if written is not None:
            written.end = self._fed + member.data_length
        remaining = member.data_length
        try:
            while remaining:
                data = read(min(remaining, _CHUNK))
                if not data:
                    raise BlankTape(f"the tape file ends {remaining} bytes before the end of {member.text}")
                self._feed(data)
                remaining -= len(data)
        except (MediumError, BlankTape):
            self._cut_short(written)
            raise
        self.extracted += 1
        self._forget_finished()
        return True

    def _cut_short(self, written: _Written | None) -> None:
        """The member being fed could not be read whole: end tar's input inside it and
        remove what tar wrote of it; the next member goes to a new tar.

        Its header says how long it is, and a hostile one says anything: making
        the rest up with zeros, to keep tar in step, wrote an 8 GiB file from a
        1.5 MiB tape file, and fed a pax size of 10**20 to tar after tar forever.
        tar finishes the members before this one, then meets the end of its
        input inside this one ("Unexpected EOF": the caller names the damage).
        """
        tar, self._tar = self._tar, None
        if tar is not None:
            status, _, err = tar.close()
            if status != 0:
                self._take_errors(err, cut=True)
        finished = list(self._written)
        self._written.clear()
        for one in finished:
            self._settle(one, whole_ok=one is not written, report=one is not written)  # the caller names it

    def open_member(self, member: Member, digest: tuple[str, str | None] | None = None) -> TarProcess | None:
        """A tar of its own for a member whose data comes in parts (cut across tapes).

        The header is fed; the caller feeds the data and calls :meth:`close_member`.

        :param digest: as for :meth:`extract`.
        """
        self._admitted = None
        self._check_room()
        if not self.admit(member):
            return None
        if self._admitted is not None:
            self._admitted.digest = digest
            self._written_apart.append(self._admitted)
            self._admitted = None
        tar = self._tar_for()
        tar.feed(member.header)
        return tar

    def close_member(self, tar: TarProcess, member: Member, fed: int) -> None:
        """End the archive of a member fed by parts (``fed`` bytes of data so far)."""
        tar.feed(b"\0" * (member.data_length - fed))
        tar.feed(end_of_stream(len(member.header) + member.data_length))
        status, _, err = tar.close()
        if status != 0:
            self._take_errors(err)
        mine = [one for one in self._written_apart if one.name == member.name][:1]
        for one in mine:
            self._written_apart.remove(one)
        if self._full is not None:
            self._full_stop(mine)
        for one in mine:
            self._settle(one)
        if status == 0:
            self.extracted += 1

    # ------------------------------------------------------------ the end
    def finish(self, same_owner: bool | None = None) -> None:
        """Let tar finish, then place the symlinks and hard links, then put back directory times.

        Call :meth:`close` afterwards (or :meth:`abort` if this is interrupted).
        """
        self._close_tar()
        if same_owner is None:
            same_owner = os.geteuid() == 0
        touched: set[bytes] = set()
        for member in self._links:
            if member.kind == "hardlink" and (member.linkname in self.failed or member.linkname in self.not_restored):
                # It would link to whatever is there: the file put back, one refused, or nothing.
                self.refuse(member.text, "its target was not restored (whole); not linked")
                continue
            try:
                self.tree.place_link(member, self.overwrite, same_owner)
            except UnsafeMember as err:
                self.refuse(member.text, str(err).removeprefix(f"{member.text}: "))
                continue
            except FileExistsError:
                self.refuse(member.text, "exists; not replaced (use --overwrite)")
                continue
            except OSError as err:
                self.tar_errors.append(f"{member.text}: cannot create the {member.kind}: {err.strerror}")
                continue
            self.extracted += 1
            touched.add(member.name.rsplit(b"/", 1)[0] if b"/" in member.name else b"")
        for directory in sorted(touched):
            if directory in self._dirs:
                self.tree.set_dir_mtime(directory, self._dirs[directory])

    def close(self) -> None:
        self.tree.close()

    def abort(self) -> None:
        """Interrupted: stop tar and remove the files it left half-written.

        A file counts as half-written when it is not what was there before
        (another inode) and its size is not the member's size.
        """
        for process in self._processes:
            process.kill()
        self._tar = None
        if self.tree.fd < 0:
            return
        written = [*self._written, *self._written_apart]
        self._written.clear()
        self._written_apart.clear()
        for one in written:
            self._settle(one, report=False)  # interrupted: nothing more is reported
        self.tree.close()

    def _settle(self, written: _Written, whole_ok: bool = True, report: bool = True) -> None:
        """tar is done with ``written``: keep the file it made if that is whole (and
        ``whole_ok``); otherwise remove it and put back the file that was there.

        A file counts as whole when tar made it (another inode than what was there),
        it has the member's size, and tar did not say it could not write it.  Only a
        file tar made is removed, never one that was there and not being replaced.
        """
        made, whole = self._made(written)
        if whole and whole_ok:
            if not self._replaced_by_damage(written):  # which names the damage itself
                if (aside := written.aside) is not None:
                    self._quietly(lambda: self.tree.remove_aside(written.name, aside))
                return
        elif report:
            kept = ", the file that was there is kept" if written.aside is not None else ""
            self.unwritten.append(
                (written.name.decode("utf-8", "backslashreplace"), f"not written whole by tar; removed{kept}")
            )
        self.failed.add(written.name)
        if made:
            self._quietly(lambda: self.tree.remove_file(written.name))
        if (aside := written.aside) is None:
            return
        why = self._quietly(lambda: self.tree.put_back(written.name, aside))
        if why is None:
            self.kept.add(written.name)
            return
        where = written.name.rsplit(b"/", 1)[0] + b"/" + aside if b"/" in written.name else aside
        self.tar_errors.append(
            f"{written.name.decode('utf-8', 'backslashreplace')}: the file that was there could not be put "
            f"back ({why}); it is {where.decode('utf-8', 'backslashreplace')}"
        )

    def _made(self, written: _Written) -> tuple[bool, bool]:
        """Whether tar made a regular file for ``written`` (another inode than what was
        there), and whether that file is whole (the member's size)."""
        try:
            st = self.tree.lstat(written.name)
        except UnsafeMember as err:
            # Its directory was checked when tar got it; now the way is a symlink: someone
            # who may write in the target swapped it while tar was behind, and GNU tar
            # follows a symlink in the middle of a path.  Said loudly: the file may be
            # outside the target, where pytp neither looks nor removes.
            self.escaped.append(
                (
                    written.name.decode("utf-8", "backslashreplace"),
                    f"its way in the target was replaced during the restore ({err}): tar may have "
                    "written it outside the target; check, and restore into a directory only you can write to",
                )
            )
            return False, False
        except OSError:
            return False, False
        made = st is not None and stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) != written.before
        return made, made and (written.size is None or (st is not None and st.st_size == written.size))

    def _replaced_by_damage(self, written: _Written) -> bool:
        """Whether the whole new file that replaces one (``--overwrite``) differs from the
        catalog's checksum: the tape's copy is damaged, the old file is worth more."""
        if written.aside is None or written.digest is None:
            return False
        xxh3, sparse_map = written.digest
        try:
            differs = self.tree.digest(written.name, sparse_map) != xxh3
        except (UnsafeMember, OSError):
            differs = True
        if differs:
            self.damaged.append(
                (
                    written.name.decode("utf-8", "backslashreplace"),
                    "checksum differs from the catalog; the file that was there is kept",
                )
            )
        return differs

    def _whole(self, written: _Written) -> bool:
        return self._made(written)[1]

    @staticmethod
    def _quietly(action: Callable[[], None]) -> str | None:
        """Run a clean-up step; what went wrong, or None."""
        try:
            action()
        except UnsafeMember as err:
            return str(err)
        except OSError as err:
            return err.strerror or str(err)
        return None

    def notes(self) -> list[str]:
        """What the user should know although nothing failed."""
        if not self.cleared:
            return []
        sample = ", ".join(self.cleared[:3]) + (f" and {len(self.cleared) - 3} more" if len(self.cleared) > 3 else "")
        return [
            f"{len(self.cleared)} member(s) restored without their setuid/setgid/sticky bits ({sample}); "
            "restore as root with --allow-special to keep them."
        ]

    def problems(self) -> list[str]:
        """Every refused, damaged and tar-reported member, one line each."""
        return [f"{name}: {why}" if name else why for name, why in self.problem_pairs()]

    def problem_pairs(self) -> list[tuple[str, str]]:
        """:meth:`problems` as (member, what) pairs; tar's own lines, whose member is not
        read from them (``_watch``), have an empty member."""
        # Each reason says what happened ("…; refused", "unreadable: …", "damaged tar header …").
        lines = [line.removeprefix("tar: ") for line in self.tar_errors]
        # A file tar did not write whole is named once: by tar's line when one starts with its
        # name (tar says why), else here (tar said nothing: it wrote somewhere else, say).
        unnamed = [(name, what) for name, what in self.unwritten if not any(x.startswith(f"{name}: ") for x in lines)]
        unnamed = [(name, what) for name, what in unnamed if not any(name == e for e, _ in self.escaped)]
        return (
            list(self.escaped)
            + list(self.refused)
            + list(self.damaged)
            + unnamed
            + [("", f"tar: {line}") for line in lines]
        )

    @property
    def has_damage(self) -> bool:
        """Whether anything went wrong besides members refused (exit 10 rather than 12)."""
        return bool(self.escaped or self.damaged or self.unwritten or self.tar_errors)


# -------------------------------------------------------------- raw tape files
def _octal_size(block: bytes) -> int:
    try:
        return tarfile.nti(block[124:136])
    except tarfile.InvalidHeaderError:
        return 0


def _read_exactly(reader: TapeFileReader, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise BlankTape(f"the tape file ends inside a tar header (byte {reader.position})")
    return data


def _next_header(
    reader: TapeFileReader, on_global: Callable[[int, bytes], None] | None = None
) -> tuple[int, bytes] | None:
    """The next member's header bytes (prefix headers included) and their offset; None at the end.

    Global pax headers (``g``) are left out, and handed to ``on_global`` with
    their offset: pytp never writes them and they would change every later
    member behind the guard's back.
    """
    headers = b""
    start = reader.position
    while True:
        at = reader.position
        block = reader.read(RECORD)
        if len(block) < RECORD or (not headers and block == b"\0" * RECORD):
            return None
        if block[156:157] in _PREFIX_TYPES:
            size = _octal_size(block)
            data = _read_exactly(reader, -(-size // RECORD) * RECORD)
            if block[156:157] != tarfile.XGLTYPE:
                headers += block + data
                continue
            if not headers:
                start = reader.position
            if on_global is not None:
                on_global(at, data[:size])
            continue
        return start, headers + block


def extract_here(
    drive: Drive, block_size: int, target: Path, overwrite: bool = False, allow_special: bool = False
) -> GuardedExtraction:
    """The original ``restore``: extract the tape file under the head into ``target``, guarded.

    Reads to the filemark, so the head ends at the start of the next file
    (the original pytp ran ``mt fsf 1`` afterwards for the same effect).  A
    damaged header is reported and the next valid header searched for, as
    GNU tar does; an unreadable block ends the tape file.

    :returns: the extraction, whose ``refused``/``damaged`` lists say what was left out.
    :raises ExtractionProblems: after extracting everything else, if anything was refused or damaged.
    """
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TargetError(f"Cannot create the restore target {target}: {err.strerror}.") from err
    extraction = GuardedExtraction(Path(os.path.realpath(target)), overwrite, allow_special)
    reader = TapeFileReader(drive, block_size)
    try:
        try:
            _extract_stream(reader, extraction)
            reader.drain()  # tar stops at the end-of-archive marker; pass the filemark anyway
            if reader.position == 0:
                raise NothingHere(NOTHING_HERE)  # not "Extracted 0 member(s)", as if that were all
        except (MediumError, BlankTape) as err:
            extraction.damaged.append((f"tape file at byte {reader.position}", f"{err}; the rest was not read"))
        extraction.finish()
    except BaseException:
        extraction.abort()
        raise
    finally:
        extraction.close()
    problems = extraction.problems()
    if problems:
        # Damage outranks a refusal: exit 10 before 12.
        error = ExtractionProblems if extraction.has_damage else UnsafeMember
        raise error(
            f"Extracted {extraction.extracted} member(s) into {target}; {len(problems)} problem(s):\n  "
            + "\n  ".join(problems)
        )
    return extraction


def _extract_stream(reader: TapeFileReader, extraction: GuardedExtraction) -> None:
    searching = False
    while (found := _next_header(reader, extraction.global_records)) is not None:
        offset, header = found
        try:
            member = judge(header, extraction.allow_special)
        except DamagedMember as err:
            # Look for the next valid header one record further on; report the
            # damage once, not for every record passed while searching.
            if not searching:
                extraction.damaged.append((f"member at byte {offset}", str(err)))
            searching = True
            continue
        except UnsafeMember as err:
            searching = False
            extraction.refuse(_name_of(header, offset), str(err).split(": ", 1)[-1])
            reader.skip_to(reader.position + err.skip)
            continue
        searching = False
        start = reader.position
        try:
            extraction.extract(member, reader.read)
        except (MediumError, BlankTape) as err:
            extraction.damaged.append((member.text, f"unreadable: {err}"))
            raise
        reader.skip_to(start + member.data_length)


def _name_of(header: bytes, offset: int) -> str:
    try:
        with tarfile.open(fileobj=BytesIO(header + END_OF_ARCHIVE), mode="r:") as archive:
            info = archive.next()
        return info.name if info else f"member at byte {offset}"
    except (tarfile.TarError, EOFError, ValueError):
        return f"member at byte {offset}"


def list_here(drive: Drive, block_size: int) -> str:
    """The original ``ls``: ``tar -tv`` of the tape file under the head; the head ends past its filemark."""
    tar = TarProcess(["tar", "-t", "-v", "-B", "-f", "-"])
    reader = TapeFileReader(drive, block_size)
    try:
        while not tar.stopped and (chunk := reader.read(_CHUNK)):
            tar.feed(chunk)
        reader.drain()
    except BaseException:
        tar.kill()
        raise
    if reader.position == 0:
        tar.kill()  # tar would say "This does not look like a tar archive"
        raise NothingHere(NOTHING_HERE)
    return tar.finish()


#: what ``ls`` and the raw ``restore`` say where the head is at no tape file's data
NOTHING_HERE = (
    "No tape file data at the head: it is at an empty tape file or at the end of the recorded "
    "data. `pytp position` says which tape file it is in; `pytp rewind` and `pytp ff N` move it."
)
