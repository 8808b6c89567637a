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
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

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
from .errors import CatalogError, NotFound, RestoreRefused, VerifyFailed, WrongTape
from .inventory import locate_barcodes
from .media import Media
from .models import Entry, EntryPart
from .parts import load_parts
from .plan import RestorePlan, build_plan
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
    #: tapes loaded through the changer
    loads: int = 0


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


def _copy(reader: TapeFileReader, length: int, feed: Callable[[bytes], None], what: str) -> None:
    remaining = length
    while remaining:
        data = reader.read(min(remaining, 1 << 20))
        if not data:
            raise CatalogError(f"{what}: the tape file ended {remaining} bytes early.")
        feed(data)
        remaining -= len(data)


def _end_of_stream(fed: int) -> bytes:
    """The end-of-archive marker, padded so tar sees whole records."""
    return END_OF_ARCHIVE + b"\0" * (-(fed + len(END_OF_ARCHIVE)) % TAR_RECORD)


class _SplitMember:
    """A member cut across tapes, rejoined into one tar member as its parts come.

    Parts are fed in order; a part read before its predecessor (tapes of two
    jobs in conflicting order) waits in a spool file.
    """

    def __init__(self, entry: Entry, command: list[str]) -> None:
        self.entry = entry
        self.tar = _Tar(command)
        self.next_part = 1
        self.fed = 0
        self.spooled: dict[int, IO[bytes]] = {}

    def take(self, part: EntryPart, reader: TapeFileReader) -> None:
        header = reader.read(part.header_size)
        if part.part != self.next_part:
            spool = tempfile.TemporaryFile()
            spool.write(header if part.part == 1 else b"")
            _copy(reader, part.data_size, spool.write, self.entry.path_text)
            self.spooled[part.part] = spool
            return
        if part.part == 1:
            self._feed(header)
        _copy(reader, part.data_size, self._feed, self.entry.path_text)
        self.next_part += 1
        while self.next_part in self.spooled:
            spool = self.spooled.pop(self.next_part)
            spool.seek(0)
            while chunk := spool.read(1 << 20):
                self._feed(chunk)
            spool.close()
            self.next_part += 1

    def _feed(self, data: bytes) -> None:
        self.tar.feed(data)
        self.fed += len(data)

    def finish(self) -> None:
        padding = b"\0" * (padded(self.entry.size) - self.entry.size)
        self._feed(padding)
        self.tar.feed(_end_of_stream(self.fed))
        self.tar.finish()


def plan_restore(engine: Engine, config: Config, selection: Selection, options: RestoreOptions) -> RestorePlan:
    """The plan of a restore, without touching a tape (``pytp restore --plan``)."""
    with Session(engine, expire_on_commit=False) as session:
        entries = select_entries(session, options)
        return _plan(session, config, selection, entries)


def _plan(session: Session, config: Config, selection: Selection, entries: list[Found]) -> RestorePlan:
    parts = load_parts(session, [f.entry.id for f in entries])  # type: ignore[misc]
    locations = locate_barcodes(config)
    loaded = None
    if selection.library is not None and selection.element is not None:
        name = selection.drive.name
        loaded = next((b for b, where in locations.items() if where.drive == name), None)
    return build_plan(entries, parts, locations, loaded, selection.drive.block_size, config.planning)


def run_restore(
    engine: Engine,
    config: Config,
    selection: Selection,
    options: RestoreOptions,
    progress: Callable[[str], None] | None = None,
) -> RestoreResult:
    """Restore the selected files into ``options.target``, following its plan.

    :raises NotFound: nothing matched.
    :raises RestoreRefused: a file exists (without overwrite) or a path escapes.
    :raises WrongTape: a tape the restore needs is not in the library (all are listed).
    :raises VerifyFailed: a restored file's checksum differs from the catalog.
    """
    target = Path(os.path.realpath(options.target))
    command = _tar_command(target, options.overwrite)
    with Session(engine, expire_on_commit=False) as session:
        entries = select_entries(session, options)
        target.mkdir(parents=True, exist_ok=True)
        check_target(target, entries, options.overwrite)
        plan = _plan(session, config, selection, entries)
        if plan.missing and selection.library is not None:
            names = ", ".join(f"{v.label} (barcode {v.barcode or '-'})" for v in plan.missing)
            raise WrongTape(
                f"The restore needs tapes that are not in library {selection.library.name}: {names}. "
                "Insert them and run the restore again."
            )
        splits: dict[int, _SplitMember] = {}
        with drive_lock(selection.drive), Media(config, selection) as media:
            for tape in plan.tapes:
                if progress:
                    progress(f"tape {tape.volume.label}: {sum(len(f.items) for f in tape.files)} member(s)")
                media.mount(session, tape.volume)
                ensure_block_size(media.drive, media.block_size)
                for file_plan in tape.files:
                    goto_file(media.drive, file_plan.tape_file.file_number)
                    reader = TapeFileReader(media.drive, media.block_size)
                    tar: _Tar | None = None
                    fed = 0
                    try:
                        for item in file_plan.items:
                            reader.skip_to(item.offset)
                            if item.part is None:
                                tar = tar or _Tar(command)
                                _copy(reader, item.length, tar.feed, item.entry.path_text)
                                fed += item.length
                            else:
                                split = splits.setdefault(item.entry.id, _SplitMember(item.entry, command))  # type: ignore[arg-type]
                                split.take(item.part, reader)
                        if tar is not None:
                            tar.feed(_end_of_stream(fed))
                    finally:
                        if tar is not None:
                            tar.finish()
            for split in splits.values():
                split.finish()
            loads = media.loads
    verified, mismatches = verify_restored(target, entries)
    result = RestoreResult(
        files=len(entries),
        bytes=sum(f.entry.size for f in entries if f.entry.kind == "file"),
        tapes=[t.volume.label for t in plan.tapes],
        target=str(target),
        verified=verified,
        mismatches=mismatches,
        loads=loads,
    )
    if mismatches:
        raise VerifyFailed(
            f"Restored {len(entries)} file(s) into {target}, but {len(mismatches)} do not match the catalog: "
            + "; ".join(mismatches[:5])
        )
    return result


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
