"""Verification: tape against catalog, and live files against catalog.

``verify_tape`` reads the tape files of a job (or of a tape) start to end,
parses each member's header at its recorded offset and recomputes the xxh3
of its data.  Every mismatch, unreadable block and missing member is reported
by path; nothing stops at the first problem.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from pytp.tapeio.errors import BlankTape, MediumError
from pytp.tapeio.hashing import ContentHasher, hash_file
from pytp.tapeio.tarwriter import catalog_ns, member_kind, walk

from .chain_state import KNOWN_COLUMNS, ChainState, Known
from .config import Config
from .copy_read import copies_to_read
from .devices import Selection
from .errors import CatalogError, NotFound
from .health_log import JOB_PHASES, HealthWatch
from .integrity import check_offsets
from .levels import DELETED
from .light_sql import CoreReader
from .media import Media, open_media
from .models import Entry, Job, JobStatus, TapeFile, TapeFileStatus, Volume, VolumeStatus, row_id, utcnow
from .parts import Piece, load_parts, read_split_member
from .progress import NULL
from .progress import Progress as ProgressEvents
from .search import FoundEntry, iter_found
from .search_query import other_hosts_hint
from .tape_reading import read_tape_files
from .verify_batch import check_tape_file


@dataclass
class VerifyReport:
    """What a verification found.  ``ok`` when there are no problems."""

    checked: int = 0
    bytes: int = 0
    tapes: list[str] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, what)
    #: each tape's own share (volume id → members checked, problems found on it), so
    #: that a job read from several tapes marks only the tape its damage is on
    tape_checked: dict[int, int] = field(default_factory=dict)
    tape_problems: dict[int, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def charge(self, volume_ids: Iterable[int], checked_before: int, problems_before: int) -> None:
        """Count what was checked and found since ``checked_before``/``problems_before`` to these tapes."""
        found = self.problems[problems_before:]
        for volume_id in volume_ids:
            self.tape_checked[volume_id] = self.tape_checked.get(volume_id, 0) + self.checked - checked_before
            if found:
                self.tape_problems.setdefault(volume_id, []).extend(found)


def _check_split(media: Media, session: Session, entry: Entry, pieces: list[Piece], report: VerifyReport) -> None:
    """A member cut across tapes: hash its data part after part."""
    hasher = ContentHasher()
    try:
        read_split_member(media, session, entry, pieces, hasher.update, with_header=False)
    except (MediumError, BlankTape, CatalogError) as err:
        report.problems.append((entry.path_text, f"unreadable: {err}"))
        return
    if hasher.hexdigest() != entry.xxh3:
        report.problems.append((entry.path_text, "checksum mismatch: the data on tape is damaged"))
        return
    report.checked += 1
    report.bytes += entry.size
    for _, _, volume in pieces:
        if volume.label not in report.tapes:
            report.tapes.append(volume.label)


def _listed_in(report: VerifyReport) -> Callable[[Volume], None]:
    """Adds each tape mounted to the report's tapes."""
    return lambda volume: report.tapes.append(volume.label)


def _tape_files(
    session: Session, job_id: int | None, tape: str | None, host: str | None = None
) -> list[tuple[TapeFile, Volume, Job]]:
    query = (
        select(TapeFile, Volume, Job)
        .join(Volume, col(Volume.id) == TapeFile.volume_id)
        .join(Job, col(Job.id) == TapeFile.job_id)
        .where(TapeFile.kind == "data", TapeFile.status == TapeFileStatus.COMPLETE)
    )
    if job_id is not None:
        query = query.where(TapeFile.job_id == job_id)
    elif tape is not None:
        query = query.where(Volume.label == tape, col(Job.status).in_(JobStatus.GOOD))
    else:
        newest_query = select(Job).where(col(Job.status).in_(JobStatus.GOOD))
        if host is not None:
            # another host's newest job is not this one's (jobs from before hosts were belong to all)
            newest_query = newest_query.where((col(Job.host) == host) | col(Job.host).is_(None))
        newest = session.exec(newest_query.order_by(col(Job.started_at).desc(), col(Job.id).desc())).first()
        if newest is None:
            hint = other_hosts_hint(CoreReader(session), host)
            raise NotFound(f"There is no finished backup job to verify yet.{hint}")
        query = query.where(TapeFile.job_id == newest.id)
    rows = list(session.exec(query.order_by(col(Volume.label), col(TapeFile.file_number))).all())
    if tape is not None and job_id is None:
        rows += _copy_rows(session, tape)
    if not rows:
        what = f"job {job_id}" if job_id is not None else f"tape {tape}"
        raise NotFound(f"No data written by {what} is in the catalog.")
    return rows


def _copy_rows(session: Session, tape: str) -> list[tuple[TapeFile, Volume, Job]]:
    """A copy tape's tape files (``pytp copy``), each with the job of the source tape file it mirrors.

    Copy rows carry no job and no entries of their own: a copy's tape file N
    holds the source's tape file N byte for byte, so its members are checked
    against the source's entries (``_entries_of``).
    """
    source = aliased(TapeFile)
    return [
        (copy, volume, job)
        for copy, volume, job in session.exec(
            select(TapeFile, Volume, Job)
            .join(Volume, col(Volume.id) == TapeFile.volume_id)
            .join(source, col(source.id) == TapeFile.copy_of_id)
            .join(Job, col(Job.id) == source.job_id)
            .where(
                Volume.label == tape,
                TapeFile.status == TapeFileStatus.COMPLETE,
                source.kind == "data",
                source.status == TapeFileStatus.COMPLETE,
                col(Job.status).in_(JobStatus.GOOD),
            )
            .order_by(col(TapeFile.file_number))
        ).all()
    ]


def _entries_of(session: Session, tape_file: TapeFile) -> TapeFile:
    """The tape file whose entries describe ``tape_file``'s members: its source when it is a copy."""
    if tape_file.copy_of_id is None:
        return tape_file
    return session.get(TapeFile, tape_file.copy_of_id) or tape_file


def verify_tape(
    engine: Engine,
    config: Config,
    selection: Selection,
    job_id: int | None = None,
    tape: str | None = None,
    progress: ProgressEvents | None = None,
    phases: tuple[str, str] = JOB_PHASES,
    keep_loaded: bool | None = None,
    host: str | None = None,
) -> VerifyReport:
    """Read back the data of a job (default: the newest good one, of ``host`` when
    given) or a tape and compare every member with the catalog.

    Health readings are taken before and after (``health_log.HealthWatch``,
    with ``phases``); a tape whose every good job was read gets its
    ``last_verified_*`` recorded (:func:`record_verification`).

    :param keep_loaded: as ``media.open_media``'s (the verify command passes
        False unless ``--keep-loaded``; None: a borrowed tape goes back).
    :param progress: the listener of the verify's progress (``catalog/progress.py``);
        the total is the catalog's count and size of the members to read.
    :raises NotFound: there is nothing to verify.
    """
    report = VerifyReport()
    split: list[tuple[Entry, list[Piece]]] = []
    with Session(engine, expire_on_commit=False) as session:
        rows = _tape_files(session, job_id, tape, host)
        report.jobs = sorted({row_id(job) for _, _, job in rows})
        whole_tapes = _whole_tapes(session, rows)
        with (
            open_media(config, selection, borrow=True, keep_loaded=keep_loaded) as media,
            HealthWatch(engine, media, phases) as health,
        ):
            health.job_ids.extend(report.jobs)
            events = progress if progress is not None else NULL
            paths = events.wants_paths
            events.start("verify", *_totals(session, [row_id(t) for t, _, _ in rows]))
            wanted = [(volume, tape_file, _entries_of(session, tape_file)) for tape_file, volume, _ in rows]
            # An original that is away is read from a copy in the library (``copy_read``); the
            # original's last-verified record stays as it was: it was not read.
            instead = _copies_instead(session, config, media, rows)
            if instead:
                wanted = [(instead.get(row_id(v), v), t, e) for v, t, e in wanted]
                whole_tapes = [v for v in whole_tapes if v not in instead]
            for tape_file, access in read_tape_files(media, session, wanted, on_mount=_listed_in(report)):
                label = access.volume.label
                where = f"tape file {tape_file.file_number} of {label}"
                # Rows streamed in offset order, blocks read in chunks (verify_batch, issue 9).
                problems_before = len(report.problems)
                found = check_tape_file(
                    session,
                    access,
                    row_id(tape_file),
                    where,
                    report.problems,
                    # nobody listening: no call per member
                    on_member=None if progress is None else lambda path, size: events.file(path if paths else "", size),
                )
                report.checked += found.checked
                report.bytes += found.bytes
                report.charge([tape_file.volume_id], report.checked - found.checked, problems_before)
                if found.split:
                    cut = session.exec(
                        select(Entry).where(col(Entry.id).in_(found.split)).order_by(col(Entry.offset))
                    ).all()
                    parts = load_parts(session, [row_id(e) for e in cut])
                    split.extend((e, parts[row_id(e)]) for e in cut)
            for entry, pieces in split:
                pieces = [(part, f, instead.get(row_id(v), v)) for part, f, v in pieces]
                for part, part_file, volume in pieces:
                    where = f"tape file {part_file.file_number} of {volume.label}"
                    check_offsets([(entry.path_text, part.offset)], where)
                checked_before, problems_before = report.checked, len(report.problems)
                _check_split(media, session, entry, pieces, report)
                # a member cut across tapes: its damage cannot be placed on one of them
                report.charge({f.volume_id for _, f, _ in pieces}, checked_before, problems_before)
                events.file(entry.path_text if paths else "", entry.size)
            events.done()
    record_verification(engine, whole_tapes, report)
    return report


def _copies_instead(
    session: Session, config: Config, media: Media, rows: list[tuple[TapeFile, Volume, Job]]
) -> dict[int, Volume]:
    """Copy tapes to mount instead of originals that are away (``copy_read.copies_to_read``)."""
    needed: dict[int, tuple[Volume, set[int]]] = {}
    for tape_file, volume, _ in rows:
        needed.setdefault(row_id(volume), (volume, set()))[1].add(row_id(tape_file))
    return copies_to_read(session, config, needed, media.current_barcode())


def _totals(session: Session, tape_file_ids: list[int]) -> tuple[int, int]:
    """Members and bytes the catalog records in these tape files (one query: the ETA's total)."""
    if not tape_file_ids:
        return 0, 0
    count, size = session.exec(
        select(func.count(), func.coalesce(func.sum(Entry.size), 0)).where(
            col(Entry.tape_file_id).in_(tape_file_ids), Entry.kind != DELETED
        )
    ).one()
    return int(count), int(size)


def _whole_tapes(session: Session, rows: list[tuple[TapeFile, Volume, Job]]) -> list[int]:
    """The tapes of ``rows`` whose every complete data tape file of a good job is among them."""
    chosen: dict[int, set[int]] = {}
    for tape_file, volume, _ in rows:
        chosen.setdefault(row_id(volume), set()).add(row_id(tape_file))
    whole = []
    for volume_id, ids in chosen.items():
        on_tape = session.exec(
            select(TapeFile.id)
            .join(Job, col(Job.id) == TapeFile.job_id)
            .where(
                TapeFile.volume_id == volume_id,
                TapeFile.kind == "data",
                TapeFile.status == TapeFileStatus.COMPLETE,
                col(Job.status).in_(JobStatus.GOOD),
            )
        ).all()
        if set(on_tape) <= ids:
            whole.append(volume_id)
    return whole


def _verdict(report: VerifyReport, volume_id: int) -> tuple[str, str]:
    """The result and message recorded on one tape: its own members and problems only."""
    problems = report.tape_problems.get(volume_id)
    if not problems:
        return "ok", f"{report.tape_checked.get(volume_id, 0)} member(s) checked, every xxh3 matched"
    path, what = problems[0]
    return "failed", f"{len(problems)} problem(s); the first: {path}: {what}"


#: the start of the ``status_reason`` of a tape ``pytp scrub`` set aside (``scrub.py``)
SCRUB_FAILED = "scrub failed"


def record_verification(engine: Engine, volume_ids: list[int], report: VerifyReport) -> None:
    """Record on each tape of ``volume_ids`` (read whole) when it was verified and the result.

    A tape a failed scrub set aside (status ``error``, reason starting with
    :data:`SCRUB_FAILED`) that now verifies clean becomes ``full``: readable
    again, but no new job is appended to a tape that once failed.
    """
    if not volume_ids:
        return
    with Session(engine) as session:
        for volume_id in volume_ids:
            volume = session.get(Volume, volume_id)
            if volume is None:
                continue
            result, message = _verdict(report, volume_id)
            volume.last_verified_at = utcnow()
            volume.last_verify_result = result
            volume.last_verify_message = message
            if (
                result == "ok"
                and volume.status == VolumeStatus.ERROR
                and (volume.status_reason or "").startswith(SCRUB_FAILED)
            ):
                volume.status, volume.status_reason = VolumeStatus.FULL, None
            session.add(volume)
        session.commit()


@dataclass
class DiskReport:
    """Live files compared with the newest good catalog version."""

    checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.new)


def verify_disk(engine: Engine, directory: str, checksum: bool = True, host: str | None = None) -> DiskReport:
    """Compare the files under ``directory`` with the catalog's newest versions.

    :param checksum: also compare xxh3 of files whose size and mtime agree.
    :param host: the newest versions of this host's jobs (None: of every host's,
        the last one read where two hosts have a path).
    """
    root = os.path.normpath(os.path.abspath(os.fsencode(directory)))
    report = DiskReport()
    # The newest versions on disk, not in memory: a dict of every path's entry and a
    # set of every path seen grew ~2 KiB a file (issue 9, as an incremental's state did).
    with ChainState(root, "the newest versions verify --against-disk compares with") as known:
        with Session(engine) as session:
            found = iter_found(session, under=root, host=host)
            loaded = known.load(_known_row(hit.entry) for hit in found)
        if not loaded:
            raise NotFound(f"The catalog holds no backup of {directory}.")
        for path, st in walk(
            root,
            lambda problem: report.changed.append(f"{problem.path.decode(errors='replace')}: {problem.message}"),
            on_prune=known.prune,  # what it could not look at is not missing
        ):
            known.add(path, stat.S_ISDIR(st.st_mode))
            kind = member_kind(st.st_mode)
            if kind is None:
                continue  # a socket: no backup stores one (GNU tar neither)
            entry = known.get(path)
            text = path.decode("utf-8", "backslashreplace")
            if entry is None:
                report.new.append(text)
                continue
            report.checked += 1
            expected_kind = "file" if entry.kind == "hardlink" else entry.kind
            if kind != expected_kind:
                report.changed.append(f"{text}: was a {expected_kind}, is a {kind}")
            elif kind == "symlink" and os.readlink(path) != entry.link_target:
                report.changed.append(f"{text}: link target changed")
            elif kind == "file" and entry.kind == "file":
                if st.st_size != entry.size:
                    report.changed.append(f"{text}: size {entry.size} → {st.st_size}")
                elif catalog_ns(st.st_mtime_ns) != entry.mtime_ns:
                    report.changed.append(f"{text}: modification time changed")
                elif checksum and entry.xxh3 is not None and hash_file(path, entry.sparse_map) != entry.xxh3:
                    report.changed.append(f"{text}: content differs (same size and time)")
            if kind == expected_kind:
                report.changed.extend(f"{text}: {change}" for change in _attribute_changes(entry, st, kind))
        report.missing = [p.decode("utf-8", "backslashreplace") for p in known.missing()]
    return report


def _attribute_changes(entry: Known, st: os.stat_result, kind: str) -> list[str]:
    """Permission bits and owner that differ from the catalog's (as ``tar --compare`` reports
    them; an incremental stores such a file again): a symlink's own mode means nothing."""
    changes = []
    mode = stat.S_IMODE(st.st_mode)
    if kind != "symlink" and mode != entry.mode:
        changes.append(f"mode {entry.mode:04o} → {mode:04o}")
    if (st.st_uid, st.st_gid) != (entry.uid, entry.gid):
        changes.append(f"owner {entry.uid}:{entry.gid} → {st.st_uid}:{st.st_gid}")
    return changes


def _known_row(entry: FoundEntry) -> tuple[object, ...]:
    """``ChainState.load``'s row of a found entry."""
    return (entry.path, *(getattr(entry, name) for name in KNOWN_COLUMNS))
