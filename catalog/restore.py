"""The restore job: look files up, go to their blocks, extract with GNU tar.

For each tape (loaded once), tape files are visited in order; inside a tape
file the head spaces to the block of each member (``fsr``) and reads only the
bytes of the members wanted, which are fed to ``tar -x`` with the end-of-
archive marker.  Files land under the target at their absolute path made
relative (``/home/a/x`` → ``TARGET/home/a/x``); nothing is written outside
it, nothing existing is replaced without ``overwrite``, and every restored
file's xxh3 is checked against the catalog afterwards.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from pytp.tapeio.blockio import TapeFileReader
from pytp.tapeio.drive import Drive, ensure_block_size
from pytp.tapeio.hashing import hash_file
from pytp.tapeio.positioning import goto_file
from pytp.tapeio.tarformat import END_OF_ARCHIVE, padded
from pytp.tapeio.tarwriter import member_name

from .config import Config
from .devices import Selection, drive_lock
from .errors import CatalogError, NotFound, RestoreRefused, VerifyFailed
from .media import Media
from .models import Entry
from .parts import Piece, load_parts, read_split_member
from .search import Found, find, find_exact, resolve_as_of

#: GNU tar reads stdin in records of 20 x 512 bytes; the stream is padded to a
#: whole record so tar never sees a short last record.
TAR_RECORD = 20 * 512


@dataclass
class RestoreOptions:
    """What to restore where.

    :param target: the directory to restore into (created if missing).
    :param patterns: ``--match`` patterns; none means the whole job.
    :param job_id: restore from this job only (default: newest good versions).
    :param overwrite: replace existing files under the target.
    """

    target: str
    patterns: list[str] = field(default_factory=list)
    regex: bool = False
    job_id: int | None = None
    tape: str | None = None
    overwrite: bool = False
    #: ``JOB_ID`` or a date: the tree as it was then (see ``search.resolve_as_of``)
    as_of: str | None = None


@dataclass
class RestoreResult:
    files: int
    bytes: int
    tapes: list[str]
    target: str
    verified: int
    mismatches: list[str] = field(default_factory=list)


class TarFailed(CatalogError):
    """GNU tar failed while extracting."""


def _destination(target: Path, entry: Entry) -> Path:
    name = member_name(entry.path)
    parts = name.split(b"/")
    if b".." in parts or name.startswith(b"/"):
        raise RestoreRefused(f"{entry.path_text}: the path would leave the target directory; refusing to restore it.")
    return Path(os.fsdecode(os.path.join(os.fsencode(target), name)))


def _check_inside(target: Path, destination: Path) -> None:
    """Refuse a destination whose existing parent resolves outside ``target``."""
    parent = destination.parent
    while not parent.exists() and parent != target:
        parent = parent.parent
    real = Path(os.path.realpath(parent))
    if real != target and target not in real.parents:
        raise RestoreRefused(
            f"{destination}: an existing directory on the way ({parent}) leads outside {target} "
            "(a symlink?); refusing to restore through it."
        )


def select_entries(session: Session, options: RestoreOptions) -> list[Found]:
    """The entries a restore extracts, hard-link targets included.

    :raises NotFound: nothing matches.
    :raises CatalogError: neither patterns nor a job were given.
    """
    if not options.patterns and options.job_id is None and options.as_of is None:
        raise CatalogError("Say what to restore: --match PATTERN, --job ID and/or --as-of JOB_ID|DATE.")
    as_of = resolve_as_of(session, options.as_of) if options.as_of else None
    found = find(
        session, options.patterns or None, regex=options.regex, job_id=options.job_id, tape=options.tape, as_of=as_of
    )
    if not found:
        what = ", ".join(options.patterns) if options.patterns else f"job {options.job_id}"
        raise NotFound(f"No backed-up file matches {what}. Try `pytp search` with part of the name.")
    chosen = {f.entry.id: f for f in found}
    present = {(f.job.id, f.entry.path) for f in found}
    # A hard link can only be extracted next to the file it links to.
    for f in found:
        link = f.entry.link_target
        if f.entry.kind == "hardlink" and link is not None and (f.job.id, link) not in present:
            target = find_exact(session, f.job.id, link)
            if target is not None:
                chosen[target.entry.id] = target
                present.add((f.job.id, link))
    return sorted(chosen.values(), key=lambda f: (f.volume.label, f.tape_file.file_number, f.entry.offset))


def check_target(target: Path, entries: Iterable[Found], overwrite: bool) -> None:
    """Refuse before reading anything if the restore would escape or overwrite.

    :raises RestoreRefused: listing the first conflicts.
    """
    existing = []
    for f in entries:
        destination = _destination(target, f.entry)
        _check_inside(target, destination)
        if f.entry.kind != "dir" and os.path.lexists(destination):
            existing.append(str(destination))
    if existing and not overwrite:
        sample = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise RestoreRefused(
            f"{len(existing)} file(s) already exist under {target}: {sample}. Nothing was restored. "
            "Use --overwrite to replace them, or restore into an empty directory."
        )


def _tar_command(target: Path, overwrite: bool) -> list[str]:
    command = ["tar", "-x", "-B", "-f", "-", "-C", str(target), "--preserve-permissions"]
    # --unlink-first replaces a file without writing through a symlink in its place.
    command += ["--unlink-first"] if overwrite else ["--keep-old-files"]
    return command


class _Tar:
    """A running GNU tar fed on stdin; its stdout and stderr are collected on
    threads so a chatty tar can never block the feeding."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._threads = [
            threading.Thread(target=lambda: self._out.append(self.process.stdout.read()), daemon=True),  # type: ignore[union-attr]
            threading.Thread(target=lambda: self._err.append(self.process.stderr.read()), daemon=True),  # type: ignore[union-attr]
        ]
        for thread in self._threads:
            thread.start()
        self.stopped = False

    def feed(self, data: bytes) -> None:
        """Send ``data``; sets ``stopped`` when tar has stopped reading."""
        try:
            self.process.stdin.write(data)  # type: ignore[union-attr]
        except BrokenPipeError:
            self.stopped = True

    def finish(self) -> str:
        """Close stdin, wait; return stdout.  :raises TarFailed: on a non-zero exit."""
        try:
            self.process.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
        self.process.wait()
        for thread in self._threads:
            thread.join()
        if self.process.returncode != 0:
            stderr = b"".join(self._err).decode(errors="replace").strip()
            raise TarFailed(f"tar failed (exit {self.process.returncode}): {stderr}")
        return b"".join(self._out).decode("utf-8", "backslashreplace")


def extract_tape_file(
    drive: Drive,
    block_size: int,
    members: list[Entry],
    target: Path,
    overwrite: bool,
) -> None:
    """Feed the byte ranges of ``members`` (sorted by offset) to ``tar -x``.

    The drive must be at block 0 of the tape file.
    """
    tar = _Tar(_tar_command(target, overwrite))
    reader = TapeFileReader(drive, block_size)
    fed = 0
    try:
        for entry in members:
            length = entry.header_size + (-(-entry.size // 512) * 512 if entry.kind == "file" else 0)
            reader.skip_to(entry.offset)
            remaining = length
            while remaining and not tar.stopped:
                data = reader.read(min(remaining, 1 << 20))
                if not data:
                    raise CatalogError(f"{entry.path_text}: the tape file ended before the member did.")
                tar.feed(data)
                fed += len(data)
                remaining -= len(data)
        tar.feed(END_OF_ARCHIVE + b"\0" * (-(fed + len(END_OF_ARCHIVE)) % TAR_RECORD))
    finally:
        tar.finish()


def extract_split(
    media: Media, session: Session, entry: Entry, pieces: list[Piece], target: Path, overwrite: bool
) -> None:
    """Extract one member cut across tapes: its parts rejoined into one tar member."""
    tar = _Tar(_tar_command(target, overwrite))
    try:
        read_split_member(media, session, entry, pieces, tar.feed, with_header=True)
        fed = pieces[0][0].header_size + entry.size
        tail = b"\0" * (padded(entry.size) - entry.size) + END_OF_ARCHIVE
        tar.feed(tail + b"\0" * (-(fed + len(tail)) % TAR_RECORD))
    finally:
        tar.finish()


def verify_restored(target: Path, entries: Iterable[Found]) -> tuple[int, list[str]]:
    """Hash each restored regular file and compare with the catalog."""
    checked, mismatches = 0, []
    for f in entries:
        if f.entry.kind != "file" or f.entry.xxh3 is None:
            continue
        destination = _destination(target, f.entry)
        try:
            digest = hash_file(destination)
        except OSError as err:
            mismatches.append(f"{f.entry.path_text}: not restored ({err.strerror})")
            continue
        checked += 1
        if digest != f.entry.xxh3:
            mismatches.append(f"{f.entry.path_text}: checksum differs from the catalog")
    return checked, mismatches


def run_restore(
    engine: Engine,
    config: Config,
    selection: Selection,
    options: RestoreOptions,
    progress: Callable[[str], None] | None = None,
) -> RestoreResult:
    """Restore the selected files into ``options.target``.

    :raises NotFound: nothing matched.
    :raises RestoreRefused: a file exists (without overwrite) or a path escapes.
    :raises VerifyFailed: a restored file's checksum differs from the catalog.
    """
    target = Path(os.path.realpath(options.target))
    with Session(engine, expire_on_commit=False) as session:
        entries = select_entries(session, options)
        target.mkdir(parents=True, exist_ok=True)
        check_target(target, entries, options.overwrite)
        split = load_parts(session, [f.entry.id for f in entries])  # type: ignore[misc]
        tapes: list[str] = []
        with drive_lock(selection.drive), Media(config, selection) as media:
            whole = [f for f in entries if f.entry.id not in split]
            for label, on_volume in groupby(whole, key=lambda f: f.volume.label):
                group = list(on_volume)
                if progress:
                    progress(f"tape {label}: {len(group)} member(s)")
                media.mount(session, group[0].volume)
                drive = media.drive
                ensure_block_size(drive, media.block_size)
                for _, in_file in groupby(group, key=lambda f: f.tape_file.file_number):
                    members = list(in_file)
                    goto_file(drive, members[0].tape_file.file_number)
                    extract_tape_file(drive, media.block_size, [f.entry for f in members], target, options.overwrite)
                tapes.append(label)
            for f in entries:
                if f.entry.id in split:
                    pieces = split[f.entry.id]  # type: ignore[index]
                    extract_split(media, session, f.entry, pieces, target, options.overwrite)
                    tapes.extend(v.label for _, _, v in pieces if v.label not in tapes)
    verified, mismatches = verify_restored(target, entries)
    result = RestoreResult(
        files=len(entries),
        bytes=sum(f.entry.size for f in entries if f.entry.kind == "file"),
        tapes=tapes,
        target=str(target),
        verified=verified,
        mismatches=mismatches,
    )
    if mismatches:
        raise VerifyFailed(
            f"Restored {len(entries)} file(s) into {target}, but {len(mismatches)} do not match the catalog: "
            + "; ".join(mismatches[:5])
        )
    return result


def extract_here(
    drive: Drive, block_size: int, target: Path | None, overwrite: bool = False, list_only: bool = False
) -> str:
    """The original ``restore``/``ls``: run tar on the tape file under the head.

    Reads to the filemark, so the head ends at the start of the next file
    (the original pytp ran ``mt fsf 1`` afterwards for the same effect).
    :returns: tar's standard output (the listing for ``list_only``).
    """
    if list_only or target is None:
        command = ["tar", "-t", "-v", "-B", "-f", "-"]
    else:
        target.mkdir(parents=True, exist_ok=True)
        command = _tar_command(target, overwrite)
    tar = _Tar(command)
    reader = TapeFileReader(drive, block_size)
    try:
        while not tar.stopped and (chunk := reader.read(1 << 20)):
            tar.feed(chunk)
    finally:
        # tar stops at the end-of-archive marker; pass the filemark anyway.
        reader.drain()
        output = tar.finish()
    return output
