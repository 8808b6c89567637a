"""The restore job: look files up, go to their blocks, extract with GNU tar.

For each tape (loaded once), tape files are visited in order; inside a tape
file the head spaces to the block of each member (``fsr``) and reads only the
bytes of the members wanted.  Files land under the target at their absolute
path made relative (``/home/a/x`` → ``TARGET/home/a/x``).

Every member goes through ``tapeio.gnutar.GuardedExtraction`` (issue 8): its
header on tape is read and compared with the catalog before tar sees it, tar
only receives files and directories, and symlinks and hard links are placed
after the whole restore, with no symlink followed on the way, so nothing lands
outside the target whatever the tapes hold.  A damaged or unreadable member is
named and the restore goes on with the next one; every restored file's xxh3 is
checked against the catalog afterwards.  A full target file system is the
exception: the restore stops at the first member that did not fit (going on
would only fail member after member), removes what tar wrote of it and of any
later member, puts back the files they were to replace (``--overwrite``), and
says how many files are in place (``RestoreTargetFull``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from pytp.tapeio import exitcodes
from pytp.tapeio.blockio import TapeFileReader
from pytp.tapeio.errors import BlankTape, MediumError
from pytp.tapeio.extract_guard import DamagedMember, Member, SafeTree, UnsafeMember, judge, safe_name
from pytp.tapeio.gnutar import GuardedExtraction, TargetFull, TarProcess
from pytp.tapeio.tarwriter import member_name

from .config import Config
from .devices import Selection, take_instead
from .errors import BadArgument, CatalogError, RestoreRefused, VerifyFailed, WrongTape
from .health_log import HealthWatch
from .inventory import locate_barcodes
from .media import open_media
from .models import EntryPart, Volume, row_id
from .plan import FilePlan, Item, RestorePlan
from .progress import NULL
from .progress import Progress as ProgressEvents
from .restore_selection import Query, SelectionSpool, spool_selection
from .search import FoundEntry, resolve_as_of
from .spool_file import SpoolFile
from .tape_reading import TapeFileAccess, feed_bytes, read_tape_files


class RestoreTargetFull(CatalogError):
    """The restore target's file system is full: the restore stopped at the first member that did not fit."""

    exit_code = exitcodes.EXIT_ERROR


@dataclass
class RestoreOptions:
    """What to restore where.

    :param target: the directory to restore into (created if missing).
    :param patterns: ``--match`` patterns; none means the whole job.
    :param job_id: restore from this job only (default: newest good versions).
    :param overwrite: replace existing files under the target (directories are kept).
    :param include_deleted: also files a later backup recorded as deleted.
    :param allow_special: create device nodes and fifos and keep setuid/setgid/
        sticky bits from tape (root only).
    """

    target: str
    patterns: list[str] = field(default_factory=list)
    regex: bool = False
    job_id: int | None = None
    tape: str | None = None
    overwrite: bool = False
    #: ``JOB_ID`` or a date: the tree as it was then (see ``search.resolve_as_of``)
    as_of: str | None = None
    include_deleted: bool = False
    allow_special: bool = False
    #: only this host's jobs (``--host``); None: every host
    host: str | None = None
    #: what the restore leaves in the drive (``media.open_media``): False, the
    #: command's default, sends the tape home and reloads the one found there;
    #: True (``--keep-loaded``) leaves it loaded; None: a borrowed tape goes back
    keep_loaded: bool | None = None


@dataclass
class RestoreResult:
    files: int
    bytes: int
    tapes: list[str]
    target: str
    verified: int
    mismatches: list[tuple[str, str]] = field(default_factory=list)
    #: tapes loaded through the changer
    loads: int = 0
    #: things the user should know (a deleted file restored from its last version)
    notes: list[str] = field(default_factory=list)


def _destination_name(entry: FoundEntry) -> bytes:
    """The entry's name below the target.  :raises UnsafeMember: it would leave the target."""
    return safe_name(member_name(entry.path))


def select_entries(
    session: Session, options: RestoreOptions, block_size: int, notes: list[str] | None = None
) -> SelectionSpool:
    """The entries a restore extracts, hard-link targets included, spooled in tape order
    (``restore_selection``: memory does not grow with their number).

    Files a later backup recorded as deleted are left out unless
    ``include_deleted``; a selection that finds nothing else but names
    exactly one deleted file restores its last version (said in ``notes``).
    Close the spool when done.

    :raises NotFound: nothing matches.
    :raises CatalogError: neither patterns nor a job were given.
    """
    if not options.patterns and options.job_id is None and options.as_of is None:
        raise CatalogError("Say what to restore: --match PATTERN, --job ID and/or --as-of JOB_ID|DATE.")
    query = Query(
        patterns=options.patterns or None,
        regex=options.regex,
        job_id=options.job_id,
        tape=options.tape,
        as_of=resolve_as_of(session, options.as_of) if options.as_of else None,
        include_deleted=options.include_deleted,
        host=options.host,
    )
    return spool_selection(session, query, block_size, notes)


def check_target(target: Path, entries: Iterable[FoundEntry], overwrite: bool) -> None:
    """Refuse before reading anything if the restore would go through a symlink or overwrite.

    Names that would leave the target are not refused here: the extraction
    refuses each of them by name and restores the rest.

    :raises RestoreRefused: listing the first conflicts.
    """
    tree = SafeTree(target)
    existing, shown = 0, []
    try:
        for entry in entries:
            try:
                name = _destination_name(entry)
            except UnsafeMember:
                continue  # refused by name during the extraction
            try:
                st = tree.lstat(name) if name else None
            except UnsafeMember as err:
                raise RestoreRefused(f"{err} Nothing was restored.") from None
            if st is not None and entry.kind != "dir" and not overwrite:
                existing += 1
                if len(shown) < 3:
                    shown.append(str(target / os.fsdecode(name)))
    finally:
        tree.close()
    if existing:
        sample = ", ".join(shown) + (f" and {existing - 3} more" if existing > 3 else "")
        raise RestoreRefused(
            f"{existing} file(s) already exist under {target}: {sample}. Nothing was restored. "
            "Use --overwrite to replace them, or restore into an empty directory."
        )


def _read_exactly(reader: TapeFileReader, size: int, what: str) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise BlankTape(f"the tape file ends inside the headers of {what}")
    return data


def _member_of(entry: FoundEntry, header: bytes, allow_special: bool, expected: bytes | None = None) -> Member:
    """The member whose headers are ``header``, checked against its catalog entry.

    :param expected: the entry's destination name, if the caller has it already.
    :raises DamagedMember: the header is damaged or is not the catalog's member.
    :raises UnsafeMember: the member must not be extracted.
    """
    member = judge(header, allow_special)
    if expected is None:
        expected = _destination_name(entry)
    kind = "dir" if member.kind == "root" else member.kind
    if member.name != expected or kind != entry.kind or (kind == "file" and member.size != _stored_size(entry)):
        raise DamagedMember(f"the tar header on tape ({member.text}, {member.kind}) does not match the catalog")
    return member


def _stored_size(entry: FoundEntry) -> int:
    # Entry.data_size counts what a sparse file holds on tape (map + regions).
    return int(getattr(entry, "data_size", entry.size))


class _SplitMember:
    """A member cut across tapes, rejoined into one tar member as its parts come.

    Parts are fed in order; a part read before its predecessor (tapes of two
    jobs in conflicting order) waits in a spool file.
    """

    def __init__(self, entry: FoundEntry, extraction: GuardedExtraction) -> None:
        self.entry = entry
        self.extraction = extraction
        self.member: Member | None = None
        self.tar: TarProcess | None = None
        self.done = False
        self.next_part = 1
        self.fed = 0
        self.spooled: dict[int, SpoolFile] = {}
        #: its tar finished it (a full target stops a restore before that)
        self.closed = False

    def take(self, part: EntryPart, reader: TapeFileReader) -> None:
        if self.done:
            return
        header = _read_exactly(reader, part.header_size, self.entry.path_text)
        if part.part != self.next_part:
            spool = SpoolFile("a piece of a member cut across tapes", prefix="pytp-piece-")
            spool.write(header if part.part == 1 else b"")
            _copy(reader, part.data_size, spool.write, self.entry.path_text)
            self.spooled[part.part] = spool
            return
        if part.part == 1:
            self._start(header)
        _copy(reader, part.data_size, self._feed, self.entry.path_text)
        self.next_part += 1
        while self.next_part in self.spooled:
            spool = self.spooled.pop(self.next_part)
            spool.seek(0)
            if self.next_part == 1:
                self._start(spool.read(part.header_size))
            while chunk := spool.read(1 << 20):
                self._feed(chunk)
            spool.close()
            self.next_part += 1

    def _start(self, header: bytes) -> None:
        self.member = _member_of(self.entry, header, self.extraction.allow_special)
        entry = self.entry
        digest = (entry.xxh3, entry.sparse_map) if entry.kind == "file" and entry.xxh3 else None
        self.tar = self.extraction.open_member(self.member, digest)
        if self.tar is None:
            self.done = True

    def _feed(self, data: bytes) -> None:
        if self.tar is not None:
            self.tar.feed(data)
            self.fed += len(data)

    def finish(self) -> None:
        if self.tar is not None and self.member is not None:
            tar, self.tar = self.tar, None
            self.extraction.close_member(tar, self.member, self.fed)
            self.closed = True
        self.done = True


def _copy(reader: TapeFileReader, length: int, feed: Callable[[bytes], None], what: str) -> None:
    missing = feed_bytes(reader, length, feed)
    if missing:
        raise BlankTape(f"{what}: the tape file ended {missing} bytes early.")


def _drive_holding_first_tape(config: Config, selection: Selection, plan: RestorePlan) -> Selection | None:
    """Another free drive of the library that already holds the plan's first tape (pytp chose the drive)."""
    if not selection.automatic or not plan.tapes or plan.tapes[0].volume.barcode is None:
        return None
    where = locate_barcodes(config).get(plan.tapes[0].volume.barcode)
    if where is None or where.drive is None or where.drive == selection.drive.name:
        return None
    return take_instead(config, selection, where.drive)


def plan_restore(engine: Engine, config: Config, selection: Selection, options: RestoreOptions) -> RestorePlan:
    """The plan of a restore, without touching a tape (``pytp restore --plan``)."""
    with Session(engine, expire_on_commit=False) as session:
        spool = select_entries(session, options, selection.drive.block_size)
        try:
            return spool.plan(config, selection)
        finally:
            spool.close()


def run_restore(
    engine: Engine,
    config: Config,
    selection: Selection,
    options: RestoreOptions,
    progress: ProgressEvents | None = None,
) -> RestoreResult:
    """Restore the selected files into ``options.target``, following its plan.

    :param progress: the listener of the restore's progress (``catalog/progress.py``):
        the total is the selected files and their sizes.

    Every intact member is restored even when others are damaged, unreadable
    or refused; those are all named in the error raised at the end.

    :raises NotFound: nothing matched.
    :raises RestoreRefused: a file exists (without overwrite), the way goes
        through a symlink, or members were refused (named, after the rest was restored).
    :raises WrongTape: a tape the restore needs is not in the library (all are listed).
    :raises VerifyFailed: members were damaged or a restored file's checksum differs from the catalog.
    :raises RestoreTargetFull: the target's file system filled up (no space, no inode,
        over quota): the restore stopped there; the files restored before stay, verified.
    """
    if options.allow_special and os.geteuid() != 0:
        raise RestoreRefused("--allow-special creates device nodes and setuid files: run the restore as root.")
    target = Path(os.path.realpath(options.target))
    notes: list[str] = []
    with (
        Session(engine, expire_on_commit=False) as session,
        closing(select_entries(session, options, selection.drive.block_size, notes)) as entries,
    ):
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BadArgument(f"Cannot create the restore target {target}: {err.strerror}.") from err
        check_target(target, entries.entries(), options.overwrite)
        plan = entries.plan(config, selection)
        holder = _drive_holding_first_tape(config, selection, plan)
        if holder is not None:
            # Read the tape where it is instead of moving it (issue 11), and plan again for that drive.
            selection = holder
            plan = entries.plan(config, selection)
        if plan.missing and selection.library is not None:
            # An exported tape says which vault to fetch it from (``pytp vault``).
            names = ", ".join(
                f"{v.label} (barcode {v.barcode or '-'}" + (f", in vault {v.vault})" if v.vault else ")")
                for v in plan.missing
            )
            raise WrongTape(
                f"The restore needs tapes that are not in library {selection.library.name}: {names}. "
                "Insert them and run the restore again"
                + (
                    " (`pytp vault import` takes them from the import/export slots)."
                    if any(v.vault for v in plan.missing)
                    else "."
                )
                + "".join(f" {line[0].upper()}{line[1:]}." for line in plan.fetch)
            )
        extraction = GuardedExtraction(target, options.overwrite, options.allow_special)
        splits: dict[int, _SplitMember] = {}
        full: TargetFull | None = None
        reached: list[tuple[FilePlan, list[int]]] = []
        try:
            with (
                open_media(config, selection, borrow=True, keep_loaded=options.keep_loaded) as media,
                HealthWatch(engine, media),
            ):
                members = {t.volume.id: sum(len(f.items) for f in t.files) for t in plan.tapes}
                events = progress if progress is not None else NULL
                events.start("restore", entries.count, entries.bytes)

                def mounting(volume: Volume) -> None:
                    events.note(f"tape {volume.label}: {members[volume.id]} member(s)")

                wanted = [(t.volume, f.tape_file, f) for t in plan.tapes for f in t.files]
                try:
                    for file_plan, access in read_tape_files(media, session, wanted, on_mount=mounting):
                        done = [0]
                        reached.append((file_plan, done))
                        _restore_file(access, file_plan, extraction, splits, events, done)
                    for split in splits.values():
                        split.finish()
                except TargetFull as err:
                    full = err  # the tape goes home as after any restore
                events.done()
                loads = media.loads
            if full is None:
                try:
                    extraction.finish()
                except TargetFull as err:
                    full = err
            if full is not None:
                extraction.abort()  # a member cut across tapes may still have its own tar
        except BaseException:
            # Ctrl-C or a failure of the drive itself: stop tar, remove what it left half-written.
            extraction.abort()
            raise
        finally:
            extraction.close()
        notes += extraction.notes()
        # Refused, damaged and unwritten members are named already, and a file put back in
        # place of a member is not the member; the checksum pass checks the rest.
        left_out = {name.lstrip("/") for name, _ in extraction.refused + extraction.damaged}
        skip = extraction.failed | extraction.kept

        def checked(found: Iterable[FoundEntry]) -> Iterator[FoundEntry]:
            return (e for e in found if e.path_text.lstrip("/") not in left_out and not _failed(e, skip))

        if full is not None:
            # Only the members this restore gave tar before it stopped are checked (a file
            # it removed is not there); the rest were not restored, whatever is in their place.
            verified, mismatches = verify_restored(target, checked(_reached(reached, splits)), missing_ok=True)
            files = sum(1 for e in entries.entries() if e.kind == "file")
            pairs = extraction.problem_pairs() + mismatches
            stopped = RestoreTargetFull(
                _full_message(full, target, (verified, files), options.overwrite, [f"{p}: {m}" for p, m in pairs])
            )
            stopped.summary = _summary(entries, plan, target, verified, loads, pairs)
            raise stopped
        verified, mismatches = verify_restored(target, checked(entries.entries()))
        result = RestoreResult(
            files=entries.count,
            bytes=entries.bytes,
            tapes=[t.volume.label for t in plan.tapes],
            target=str(target),
            verified=verified,
            mismatches=mismatches,
            loads=loads,
            notes=notes,
        )
    pairs = extraction.problem_pairs() + mismatches
    if pairs:
        # Damage outranks a refusal: a script reading the exit code must not take a damaged
        # file for a fifo that was skipped (exit 10 before 12).
        kind = VerifyFailed if extraction.has_damage or mismatches else RestoreRefused
        error = kind(
            f"Restored into {target}, but with {len(pairs)} problem(s) "
            f"({verified} file checksum(s) verified):\n  " + "\n  ".join(f"{p}: {m}" for p, m in pairs)
        )
        # The job log and the notify hook get what was restored and each problem, not an empty summary.
        error.summary = _summary(entries, plan, target, verified, loads, pairs)
        raise error
    return result


def _summary(
    entries: SelectionSpool, plan: RestorePlan, target: Path, verified: int, loads: int, pairs: list[tuple[str, str]]
) -> dict[str, Any]:
    """``JobSummary`` fields of a restore that ends with an error: what it restored, and each problem."""
    return {
        "files": entries.count,
        "bytes": entries.bytes,
        "tapes": [t.volume.label for t in plan.tapes],
        "problems": pairs,
        "details": {"target": str(target), "verified": verified, "loads": loads},
    }


def _reached(reached: list[tuple[FilePlan, list[int]]], splits: dict[int, _SplitMember]) -> Iterator[FoundEntry]:
    """The entries whose members the restore went through before it stopped, in plan order:
    the first ``done`` items of each tape file it read (a member cut across tapes: if its tar
    finished it)."""
    for file_plan, done in reached:
        for item in itertools.islice(file_plan.items, done[0]):
            if item.part is None:
                yield item.entry
    for split in splits.values():
        if split.closed:
            yield split.entry


def _failed(entry: FoundEntry, failed: set[bytes]) -> bool:
    """Whether tar complained about ``entry`` (its line names it: not checked again)."""
    if not failed or entry.kind != "file":
        return False
    try:
        return _destination_name(entry) in failed
    except UnsafeMember:
        return False


def _full_message(full: TargetFull, target: Path, counts: tuple[int, int], overwrite: bool, others: list[str]) -> str:
    """One line for a full target (which member, how many files are in place, how to go on),
    then any other problem met before it filled, one line each.

    :param counts: files restored and verified, files selected.
    """
    verified, files = counts
    done = "the file that was there is kept unchanged" if full.kept else "what it wrote of it was removed"
    what = f"; tar could not write /{full.member}, and {done}" if full.member else ""
    # Without --overwrite a rerun refuses the files restored now (never an existing file replaced).
    again = (
        "run the same restore again"
        if overwrite or not verified
        else f"run the same restore again with --overwrite (it replaces the {verified} file(s) restored now)"
    )
    message = (
        f"No space left on device in {target}: restored {verified} of {files} file(s) (checksums verified) "
        f"before it filled{what}; the rest were not restored. Free space and {again}, "
        "or restore into a target with room for all of it."
    )
    if others:
        message += f" Also {len(others)} problem(s) before it filled:\n  " + "\n  ".join(others)
    return message


def _restore_file(
    access: TapeFileAccess,
    file_plan: FilePlan,
    extraction: GuardedExtraction,
    splits: dict[int, _SplitMember],
    events: ProgressEvents = NULL,
    done: list[int] | None = None,
) -> None:
    """Extract the planned members of one tape file, going on after damage.

    After an unreadable block the head's place is unknown, so the next member
    is reached again from the start of the tape file by spacing.

    :param done: its one number counts the items gone through (a full target stops
        the restore inside one: ``TargetFull`` is raised before it is counted).
    """
    paths = events.wants_paths
    for item in file_plan.items:
        entry = item.entry
        if item.part is None or item.part.part == 1:  # a member cut across tapes counts once
            events.file(entry.path_text if paths else "", entry.size if entry.kind == "file" else 0)
        try:
            reader = access.at(item.offset)
            if item.part is not None:
                split = splits.setdefault(row_id(entry), _SplitMember(entry, extraction))
                split.take(item.part, reader)
            else:
                _restore_member(reader, item, extraction)
        except DamagedMember as err:
            extraction.damaged.append((entry.path_text, str(err)))
            _give_up_split(splits, item)
        except UnsafeMember as err:
            extraction.refuse(entry.path_text, str(err).split(": ", 1)[-1])
            _give_up_split(splits, item)
        except (MediumError, BlankTape) as err:
            extraction.damaged.append((entry.path_text, f"unreadable: {err}"))
            _give_up_split(splits, item)
            access.lost()
        if done is not None:
            done[0] += 1


def _restore_member(reader: TapeFileReader, item: Item, extraction: GuardedExtraction) -> None:
    entry = item.entry
    try:
        expected = _destination_name(entry)
    except UnsafeMember as err:
        raise UnsafeMember(f"{entry.path_text}: {str(err).split(': ', 1)[-1]}") from None
    header = _read_exactly(reader, entry.header_size, entry.path_text)
    member = _member_of(entry, header, extraction.allow_special, expected)
    # With --overwrite, a file whose new content does not match the catalog must not stay in
    # place of the one it replaced: checked before that one is let go (``GuardedExtraction._settle``).
    digest = (entry.xxh3, entry.sparse_map) if entry.kind == "file" and entry.xxh3 else None
    extraction.extract(member, reader.read, digest)


def _give_up_split(splits: dict[int, _SplitMember], item: Item) -> None:
    split = splits.get(row_id(item.entry))
    if split is not None:
        split.finish()


def verify_restored(target: Path, entries: Iterable[FoundEntry], missing_ok: bool = False) -> tuple[int, list[str]]:
    """Hash each restored regular file and compare with the catalog (no symlink followed).

    :param missing_ok: a missing file is not counted (a restore stopped by a full disk
        removed what tar made of the member that did not fit and of those after it).
    :returns: how many matched, and a line for each one that did not.
    """
    checked, mismatches = 0, []  # mismatches: (path, what)
    tree = SafeTree(target)
    try:
        for entry in entries:
            if entry.kind != "file" or entry.xxh3 is None:
                continue
            try:
                name = _destination_name(entry)
                if missing_ok and tree.lstat(name) is None:
                    continue
                digest = tree.digest(name, entry.sparse_map)
            except UnsafeMember as err:
                mismatches.append((entry.path_text, f"not checked ({err})"))
                continue
            except OSError as err:
                mismatches.append((entry.path_text, f"not restored ({err.strerror})"))
                continue
            if digest != entry.xxh3:
                mismatches.append((entry.path_text, "checksum differs from the catalog"))
            else:
                checked += 1
    finally:
        tree.close()
    return checked, mismatches
