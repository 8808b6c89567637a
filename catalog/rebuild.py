"""Rebuilding the catalog from tapes: labels and manifests, and tar headers where those fail.

For each tape the label gives the volume; then every tape file is looked at
by its first block alone (``rebuild_scan``).  A manifest is read whole and
brings its job, tape files and entries; a data file is skipped by filemark
(``fsf``), so a rebuild costs one block per data file, not the data.  Jobs are
merged by their uuid: rebuilding into a catalog that already has them adds
nothing twice.

Disaster recovery must not stop at the first bad tape (issue 8, defect 3):

* every problem is reported with its tape, tape file and manifest line, and
  the rebuild goes on with the next file and the next tape;
* data files that no readable manifest describes are recovered from their own
  tar headers (``rebuild_import.recover_from_headers``), marked as recovered
  (no checksum, job ``partial``);
* tapes sitting in other drives of the library are read where they are;
* each tape is imported in one transaction, after it was read: a rebuild
  killed at any moment leaves every tape either fully imported or not at all,
  so running it again completes, and no volume is left with a file count that
  disagrees with its tape.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from pytp.tapeio.changer import DriveElement, StorageElement
from pytp.tapeio.drive import Drive, ensure_block_size
from pytp.tapeio.errors import ForeignTape, TapeIOError
from pytp.tapeio.volume_label import FORMAT_VERSION, VolumeLabel

from .config import Config
from .devices import Selection
from .errors import CatalogError, NotFound
from .manifest import ReadManifest
from .media import Media, open_media
from .models import Job, TapeFile, TapeFileStatus, Volume, VolumeStatus, row_id, utcnow
from .progress import NULL
from .progress import Progress as ProgressEvents
from .rebuild_import import (
    GONE,
    Problem,
    import_manifest,
    mark_partial,
    record_snapshot,
    recover_from_headers,
    recovered_job,
    settle_totals,
)
from .rebuild_report import RebuildProblem, RebuildReport, Unclaimed
from .rebuild_scan import (
    DATA,
    EMPTY,
    MANIFEST,
    MAX_LINES_REPORTED,
    SNAPSHOT,
    UNENDED,
    TapeScan,
    first_pytp_file,
    length_against,
    scan_tape,
)
from .rebuild_settle import note_other_hosts, second_pass, settle_unresolved, settle_volumes
from .spool_file import TempSpaceFull


class _SkipTape(Exception):
    """This tape is not imported; the message says why."""


def _check_label(label: VolumeLabel, read_at: int) -> tuple[VolumeLabel, list[str]]:
    """A label's fields checked before they reach the catalog; what it got wrong.

    :param read_at: the block size the label was read with, which the tape has.
    :raises _SkipTape: the label cannot identify a volume.
    """
    for name in ("label", "uuid", "pool"):
        value = getattr(label, name)
        if not isinstance(value, str) or not value.strip() or len(value) > 128:
            raise _SkipTape(f"the volume label's '{name}' is {value!r}: not a usable label, tape not read")
    if label.format_version != FORMAT_VERSION:
        raise _SkipTape(
            f"the volume label says on-tape format {label.format_version!r}; this pytp reads format "
            f"{FORMAT_VERSION} only: tape not read (a newer pytp wrote it?)"
        )
    lies = []
    if not isinstance(label.barcode, (str, type(None))):
        lies.append(f"the volume label's barcode {label.barcode!r} is not text")
        label = VolumeLabel(**{**label.__dict__, "barcode": None})
    if label.block_size != read_at:
        lies.append(f"the volume label says block size {label.block_size!r}, but the tape reads at {read_at}")
        label = VolumeLabel(**{**label.__dict__, "block_size": read_at})
    try:
        if not isinstance(label.created, str):
            raise TypeError
        datetime.fromisoformat(label.created)
    except (TypeError, ValueError):
        lies.append(f"the volume label's creation time {label.created!r} is not a time")
        label = VolumeLabel(**{**label.__dict__, "created": utcnow().isoformat()})
    return label, lies


def _volume_for(session: Session, label: VolumeLabel, barcode: str | None, library: str | None) -> Volume:
    """The volume of ``label``, created on first sight.

    :raises _SkipTape: the label claims another tape's identity.
    """
    volume = session.exec(select(Volume).where(Volume.uuid == label.uuid)).first()
    if volume is not None:
        if volume.label != label.label:
            raise _SkipTape(
                f"its label '{label.label}' carries the uuid of tape {volume.label}: a copied or forged label, "
                "tape not read"
            )
        return volume
    other = session.exec(select(Volume).where(Volume.label == label.label)).first()
    if other is not None:
        raise _SkipTape(
            f"another tape with label '{label.label}' (uuid {other.uuid}) is in the catalog; this one has uuid "
            f"{label.uuid}: tape not read"
        )
    volume = volume_from_label(label, barcode, library)
    session.add(volume)
    session.flush()
    return volume


def volume_from_label(
    label: VolumeLabel, barcode: str | None, library: str | None, copy_of_id: int | None = None
) -> Volume:
    """The catalog row a rebuild makes for a tape it read the label of (not yet added to a session).

    :param barcode: the changer's barcode, used when the label names none.
    :param copy_of_id: the source tape's row, for a copy tape.
    """
    return Volume(
        label=label.label,
        barcode=label.barcode or barcode,
        uuid=label.uuid,
        pool=label.pool,
        block_size=label.block_size,
        library=library,
        created_at=datetime.fromisoformat(label.created),
        copy_of_id=copy_of_id,
    )


def _orphan_runs(scan: TapeScan, claimed: set[int]) -> list[tuple[list[int], ReadManifest | None]]:
    """Runs of data files no manifest claims, each with the unreadable-header manifest after it (if any).

    A job's data files come right before its manifest, so a run ends at any
    other kind of tape file; one that reaches end of data is an unfinished job.
    """
    runs: list[tuple[list[int], ReadManifest | None]] = []
    run: list[int] = []
    for seen in scan.files:
        if seen.kind == DATA and seen.number not in claimed:
            run.append(seen.number)
            continue
        if run:
            lost_header = seen.manifest if seen.kind == MANIFEST and seen.manifest and not seen.manifest.job else None
            runs.append((run, lost_header))
            run = []
    if run:
        runs.append((run, None))
    return runs


def _recovered(
    session: Session, volume: Volume, run: list[int], why: str, report: RebuildReport, problem: Problem
) -> Job:
    span = f"{run[0]}" if len(run) == 1 else f"{run[0]}..{run[-1]}"
    problem(run[0], f"data file(s) {span}: {why}; their members are recovered from the tar headers", None)
    return recovered_job(session, volume, run, why, report)


def import_tape(
    session: Session,
    drive: Drive,
    volume: Volume,
    scan: TapeScan,
    report: RebuildReport,
    problem: Problem,
    problem_name: str,
    barcode: str | None,
) -> None:
    """Merge everything ``scan`` found on ``volume``; recover what manifests lost.

    The drive still holds the tape: recovery walks the tar headers of data
    files no usable manifest describes.  Nothing is committed here.
    """
    claimed = set(
        session.exec(
            select(TapeFile.file_number).where(TapeFile.volume_id == volume.id, col(TapeFile.status).not_in(GONE))
        ).all()
    )
    to_recover: list[tuple[int, list[int]]] = []  # (job id, data file numbers)
    lengths_to_check: set[int] = set()
    jobs: dict[int, Job] = {}
    for seen in scan.files:
        if seen.kind == MANIFEST and seen.manifest is not None and seen.manifest.job is not None:
            outcome = import_manifest(
                session, volume, seen.number, seen.blocks, seen.manifest, report.kinds, report, problem
            )
            claimed.update(outcome.data_files)
            lengths_to_check.update(outcome.data_files)
            claimed.add(seen.number)
            jobs[outcome.job.id] = outcome.job
            if outcome.damaged and outcome.data_files:
                to_recover.append((row_id(outcome.job), outcome.data_files))
            if outcome.pending:
                pending = (volume.id, volume.label, seen.number, seen.blocks, seen.manifest)
                report.pending.append(pending)  # type: ignore[arg-type]
        elif seen.kind == SNAPSHOT:
            whole = length_against(drive, seen.number, seen.blocks, volume.block_size) in (None, UNENDED)
            record_snapshot(session, volume, seen.number, seen.blocks, whole)
            if whole:
                report.snapshots += 1
            else:
                report.notes.append(f"{problem_name} file {seen.number}: a catalog snapshot cut short, not counted")
        elif seen.kind == DATA:
            report.data_files_skipped += 1
        elif seen.kind == EMPTY:
            report.empty_files += 1
    _check_lengths(session, drive, volume, lengths_to_check, problem)
    for run, lost_header in _orphan_runs(scan, claimed):
        if lost_header is None and run[-1] == len(scan.files):
            # At the end of the tape: the job may go on on another tape, whose
            # manifest describes these files too.  Decided once all tapes are read.
            report.unclaimed.append(Unclaimed(row_id(volume), problem_name, barcode, run))
            continue
        job = _recovered(session, volume, run, "its manifest is unreadable", report, problem)
        jobs[job.id] = job
        if lost_header is not None and lost_header.line_count:
            # The header line is lost, not the member lines: what they say
            # (checksums included) is better than the headers alone.
            lost_header.job = {"uuid": job.uuid, "final": False, "tape_files": []}
            import_manifest(session, volume, run[-1] + 1, 0, lost_header, report.kinds, report, problem)
        to_recover.append((row_id(job), run))
    for job_id, numbers in to_recover:
        for number in numbers:
            recover_from_headers(session, drive, volume, jobs[job_id], number, report, problem)
        settle_totals(session, jobs[job_id])
    if scan.reached_end:
        volume.file_count = scan.file_count
    elif volume.status == VolumeStatus.APPENDABLE:
        # Where its data ends is unknown: no backup may append to it.
        volume.status = VolumeStatus.ERROR
        if hasattr(volume, "status_reason"):
            volume.status_reason = "catalog rebuild could not read this tape to its end of data"
    files = session.exec(select(TapeFile).where(TapeFile.volume_id == volume.id)).all()
    volume.bytes_written = sum(t.total_bytes for t in files if t.status != TapeFileStatus.OVERWRITTEN)
    session.add(volume)
    session.flush()


def _check_lengths(session: Session, drive: Drive, volume: Volume, numbers: set[int], problem: Problem) -> None:
    """Each data file a manifest claims on this tape holds the blocks the manifest says.

    A rebuild passes data files by filemark, so a tape file cut short (a
    damaged or truncated tape, a manifest that lies) would otherwise come in
    whole: its job ``ok`` and its last members missing until a restore fails.
    Spacing over the blocks (``fsr``) and finding the filemark right after
    them costs one positioning and one read per data file.
    """
    if not numbers:
        return
    rows = session.exec(
        select(TapeFile).where(
            TapeFile.volume_id == volume.id,
            col(TapeFile.file_number).in_(sorted(numbers)),
            TapeFile.kind == "data",
            col(TapeFile.status).not_in(GONE),
        )
    ).all()
    for tape_file in sorted(rows, key=lambda t: t.file_number):
        length = length_against(drive, tape_file.file_number, tape_file.blocks, volume.block_size)
        if length == "longer":
            message = f"holds more blocks than the {tape_file.blocks} its manifest names"
            problem(tape_file.file_number, message, None)
            job = session.get(Job, tape_file.job_id)
            if job is not None:
                mark_partial(job, f"manifest on tape {volume.label} understates data file {tape_file.file_number}")
                session.add(job)
        elif length == "shorter":
            message = (
                f"holds fewer than the {tape_file.blocks} blocks its manifest names (or they cannot be spaced "
                "over): members past its end are lost"
            )
            problem(tape_file.file_number, message, None)
            # Its rows stay (search offers them): the members before the cut
            # restore, and a restore or verify names each one that does not.
            job = session.get(Job, tape_file.job_id)
            if job is not None:
                mark_partial(job, f"data file {tape_file.file_number} of tape {volume.label} is cut short")
                session.add(job)
    session.flush()


def _read_tape(
    engine: Engine, media: Media, barcode: str | None, where: str, wanted: str | None, report: RebuildReport
) -> None:
    """Read the tape in ``media``'s drive and import it in one transaction."""
    name = barcode or where
    problem, unlisted = _problem_collector(report, name)
    try:
        found = media.read_label()
    except ForeignTape as err:
        pytp_file = first_pytp_file(media.drive, media.block_size)
        known = _known_barcode(engine, barcode)
        if pytp_file is None and not known and "label is damaged" not in str(err):
            if wanted:  # asked for by name: reading nothing of it is not a success
                problem(0, f"{str(err).removesuffix(' Use another tape.')}: not a pytp tape, nothing rebuilt")
            else:
                report.notes.append(f"{name}: not a pytp tape, skipped")
        else:
            what = f"; tape file {pytp_file[0]} holds a pytp {pytp_file[1]}" if pytp_file else ""
            what += f"; the catalog has it as tape {known}" if known else ""
            problem(
                0,
                f"{str(err).removesuffix(' Use another tape.')}{what}: a pytp tape whose label cannot be read; "
                "tape not read, its jobs are not in the catalog (GNU tar still reads its tape files)",
            )
        return
    except TapeIOError as err:
        problem(0, f"the volume label cannot be read ({err}); tape not read")
        return
    if found is None:
        report.notes.append(f"{name}: blank, skipped")
        return
    if wanted and wanted not in (found.label, barcode):
        raise NotFound(f"The tape in {where} is {found.label}, not {wanted}.")
    name = found.label if barcode in (None, found.label) else f"{found.label} ({barcode})"
    try:
        label, lies = _check_label(found, media.block_size)
    except _SkipTape as err:
        problem(0, str(err))
        return
    for lie in lies:
        problem(0, lie)
    if label.barcode and barcode and label.barcode != barcode:
        problem(0, f"the label was written for barcode {label.barcode}, the library reads {barcode}: tape not read")
        return
    ensure_block_size(media.drive, label.block_size)
    if label.copy_of_uuid:
        _read_copy_tape(engine, media, label, barcode, name, report)
        return
    scan = scan_tape(media.drive, label.block_size)
    pending = len(report.pending)
    try:
        _import_scan(engine, media, label, barcode, name, scan, report, problem, unlisted)
    finally:
        if len(report.pending) > pending:
            report.spools.append(scan.spool)  # their lines are read again by the second pass
        else:
            scan.spool.close()


def _import_scan(
    engine: Engine,
    media: Media,
    label: VolumeLabel,
    barcode: str | None,
    name: str,
    scan: TapeScan,
    report: RebuildReport,
    problem: Problem,
    unlisted: dict[int | None, int],
) -> None:
    """Import what ``scan`` read of the tape ``label`` in one transaction; report what went wrong."""
    for finding in scan.findings:
        if finding.problem:
            problem(finding.file, finding.message, finding.line)
        else:
            report.notes.append(f"{name} file {finding.file}: {finding.message}")
    saved = _counters(report)
    library = media.selection.library.name if media.selection.library else None
    with Session(engine) as session:
        try:
            volume = _volume_for(session, label, barcode, library)
            if volume.capacity is None:
                volume.capacity = media.drive.capacity()  # what `pytp tapes` and `pools` count free space with
            report.kinds[label.label] = [seen.kind for seen in scan.files]
            import_tape(session, media.drive, volume, scan, report, problem, name, barcode)
            session.commit()
        except Exception as err:  # noqa: BLE001 - one tape must not stop the others (issue 8)
            session.rollback()
            _restore_counters(report, saved)
            report.kinds.pop(label.label, None)
            if isinstance(err, TempSpaceFull):
                raise  # every tape after this one would fail alike: the rebuild stops, and says why
            if isinstance(err, _SkipTape):
                problem(0, str(err))
            elif isinstance(err, (TapeIOError, CatalogError)):
                problem(None, f"tape not imported: {err}")
            else:
                problem(None, f"tape not imported: unexpected {type(err).__name__}: {err}")
            return
    for file, count in unlisted.items():
        problem(file, f"and {count} more bad line(s), not listed")
    if not scan.reached_end:
        problem(None, "end of data not reached: the tape is marked 'error' so that no backup appends to it")
    report.tapes.append(label.label)


def _read_copy_tape(
    engine: Engine, media: Media, label: VolumeLabel, barcode: str | None, name: str, report: RebuildReport
) -> None:
    """A copy tape (``pytp copy``) is recorded as a copy of its source, never imported as a second original."""
    from .copy_rebuild import SourceNotInCatalog, import_copy_tape

    library = media.selection.library.name if media.selection.library else None
    with Session(engine) as session:
        try:
            note = import_copy_tape(session, media.drive, label, barcode, library)
            session.commit()
        except SourceNotInCatalog:
            session.rollback()
            report.orphan_copies.append((barcode, name, label))  # decided once every tape is read
            return
        except (CatalogError, TapeIOError) as err:
            session.rollback()
            report.problems.append(RebuildProblem(name, 0, None, str(err)))
            return
    report.notes.append(f"{name}: {note}")
    report.tapes.append(label.label)


def _counters(report: RebuildReport) -> tuple[int, ...]:
    return (
        len(report.jobs_added),
        len(report.recovered_jobs),
        report.jobs_known,
        report.entries,
        report.recovered_entries,
        len(report.pending),
    )


def _restore_counters(report: RebuildReport, saved: tuple[int, ...]) -> None:
    """Forget what a rolled-back tape import counted."""
    del report.jobs_added[saved[0] :]
    del report.recovered_jobs[saved[1] :]
    report.jobs_known, report.entries, report.recovered_entries = saved[2:5]
    del report.pending[saved[5] :]


def _known_barcode(engine: Engine, barcode: str | None) -> str | None:
    """The label the catalog gives the cartridge of ``barcode``, if it knows it."""
    if not barcode:
        return None
    with Session(engine) as session:
        return session.exec(select(Volume.label).where(Volume.barcode == barcode)).first()


def _recover_unclaimed(engine: Engine, media: Media, report: RebuildReport) -> None:
    """Data files at the end of a tape that no manifest of any tape read claims: recover them.

    They are an unfinished job, or a job whose manifest is on a tape that was
    not read; either way their tar headers are all that describes them.  The
    tape is loaded again for that (only then is it known that it is needed).
    """
    for item in report.unclaimed:

        def problem(file: int | None, message: str, line: int | None = None, name: str = item.name) -> None:
            report.problems.append(RebuildProblem(name, file, line, message))

        with Session(engine) as session:
            owned = set(
                session.exec(
                    select(TapeFile.file_number).where(
                        TapeFile.volume_id == item.volume_id,
                        col(TapeFile.file_number).in_(item.files),
                        col(TapeFile.status).not_in(GONE),
                    )
                ).all()
            )
        remaining = [n for n in item.files if n not in owned]
        if not remaining:
            continue
        why = "no manifest describes them (an unfinished job, or its manifest is on a tape not read)"
        with Session(engine) as session:
            volume = session.get(Volume, item.volume_id)
            assert volume is not None
            try:
                drive = _load_again(media, volume.label, volume.uuid, volume.block_size, item.barcode)
            except (TapeIOError, CatalogError) as err:
                problem(remaining[0], f"data file(s) {remaining}: {why}; not recovered: {err}")
                continue
            job = _recovered(session, volume, remaining, why, report, problem)
            for number in remaining:
                recover_from_headers(session, drive, volume, job, number, report, problem)
            settle_totals(session, job)
            session.commit()
    report.unclaimed = []


def _import_orphan_copies(engine: Engine, media: Media, report: RebuildReport, all_tapes: bool) -> None:
    """Copy tapes whose source no tape of this rebuild brought: after ``--all``, their jobs come from the copy.

    A copy is recorded as a copy of its source (``copy_rebuild``), but after a
    fire took the originals, or once the original was recycled (its copy took
    over, ``copy_promote``), the copy is all there is: its manifests, which
    name the source's label, are read as naming the copy, and it becomes the
    original of its jobs, closed to new data.  Only when every tape of the
    library was read: after ``--tape`` the source may just not be read yet.
    A source read later in this rebuild makes it an ordinary copy.
    """
    heirs: dict[str | None, str] = {}  # the lost source's uuid: the copy that stands for it now
    for barcode, name, label in report.orphan_copies:
        problem, unlisted = _problem_collector(report, name)
        if not all_tapes:
            problem(
                0,
                f"it is a copy of tape {label.copy_of_label}, which is not in the catalog: rebuild from "
                f"{label.copy_of_label} first, then from this copy (tape not read); if {label.copy_of_label} is "
                "lost or was recycled, `pytp catalog rebuild --all` imports this copy as the original of its jobs",
            )
            continue
        try:
            _load_again(media, label.label, label.uuid, label.block_size, barcode)
        except (TapeIOError, CatalogError) as err:
            problem(None, f"a copy of tape {label.copy_of_label}; not read again: {err}")
            continue
        with Session(engine) as session:
            source = session.exec(select(Volume).where(Volume.uuid == label.copy_of_uuid)).first()
            heir = session.exec(select(Volume).where(Volume.uuid == heirs.get(label.copy_of_uuid))).first()
            mirrors = session.exec(
                select(TapeFile.id)
                .join(Volume, col(Volume.id) == TapeFile.volume_id)
                .where(Volume.uuid == label.uuid, col(TapeFile.copy_of_id).is_not(None))
            ).first()
        if source is not None:
            _read_copy_tape(engine, media, label, barcode, name, report)
            continue
        if mirrors is not None:
            # The catalog has it as a copy of the copy that took over when its source was recycled.
            report.notes.append(f"{name}: known as a copy of a tape that stands for {label.copy_of_label}")
            report.tapes.append(label.label)
            continue
        if heir is not None:
            # A second copy of the same lost tape: it mirrors the one that became the original.
            _record_copy_of(engine, media, label, barcode, name, heir, report)
            continue
        original = VolumeLabel(**{**label.__dict__, "copy_of_uuid": None, "copy_of_label": None})
        scan = scan_tape(media.drive, label.block_size)
        try:
            for seen in scan.files:
                if seen.manifest is not None and label.copy_of_label:
                    seen.manifest.alias_tapes({label.copy_of_label: label.label})
            _import_scan(engine, media, original, barcode, name, scan, report, problem, unlisted)
        finally:
            scan.spool.close()
        with Session(engine) as session:
            volume = session.exec(select(Volume).where(Volume.uuid == label.uuid)).first()
            if volume is not None and volume.status == VolumeStatus.APPENDABLE:
                volume.status = VolumeStatus.FULL  # it mirrors a tape that is gone: nothing is appended
                session.add(volume)
                session.commit()
        report.notes.append(
            f"{name}: a copy of tape {label.copy_of_label}, which no tape read and the catalog do not hold "
            "(lost or recycled): imported as the original of its jobs"
        )
        heirs[label.copy_of_uuid] = label.uuid
    report.orphan_copies = []


def _record_copy_of(
    engine: Engine,
    media: Media,
    label: VolumeLabel,
    barcode: str | None,
    name: str,
    heir: Volume,
    report: RebuildReport,
) -> None:
    """Record the copy tape under the head as a copy of ``heir``, the copy of the same lost tape
    that became the original of its jobs (their tape files are block-exact alike)."""
    from .copy_rebuild import import_copy_tape

    library = media.selection.library.name if media.selection.library else None
    with Session(engine) as session:
        try:
            note = import_copy_tape(session, media.drive, label, barcode, library, source=heir)
            session.commit()
        except (CatalogError, TapeIOError) as err:
            session.rollback()
            report.problems.append(RebuildProblem(name, 0, None, str(err)))
            return
    report.notes.append(
        f"{name}: a copy of tape {label.copy_of_label}, like {heir.label}, which stands for it now: "
        f"recorded as a copy of {heir.label} ({note})"
    )
    report.tapes.append(label.label)


def _problem_collector(report: RebuildReport, name: str) -> tuple[Problem, dict[int | None, int]]:
    """A ``problem(file, message, line)`` for tape ``name`` that lists at most
    ``MAX_LINES_REPORTED`` bad lines per tape file, and the count of the others by file."""
    listed: dict[int | None, int] = {}
    unlisted: dict[int | None, int] = {}

    def problem(file: int | None, message: str, line: int | None = None) -> None:
        if line is not None:
            if listed.get(file, 0) >= MAX_LINES_REPORTED:
                unlisted[file] = unlisted.get(file, 0) + 1
                return
            listed[file] = listed.get(file, 0) + 1
        report.problems.append(RebuildProblem(name, file, line, message))

    return problem, unlisted


def _load_again(media: Media, label: str, uuid: str, block_size: int, barcode: str | None) -> Drive:
    """Put the tape ``label`` back under this drive's head, checked by its label's ``uuid``."""
    if media.changer is not None:
        place = media.changer.status().find_barcode(barcode) if barcode else None
        if isinstance(place, StorageElement):
            media.load(place.number)
        elif not (isinstance(place, DriveElement) and place.index == media.selection.element):
            raise NotFound(f"tape {label} is not in a slot of library {media.changer.name} or in this drive")
    found = media.read_label()
    if found is None or found.uuid != uuid:
        raise NotFound(f"the drive no longer holds tape {label}")
    ensure_block_size(media.drive, block_size)
    return media.drive


def rebuild(
    engine: Engine,
    config: Config,
    selection: Selection,
    *,
    tape: str | None = None,
    all_tapes: bool = False,
    progress: ProgressEvents | None = None,
) -> RebuildReport:
    """Recreate volumes, jobs, tape files and entries from tapes.

    :param tape: the label or barcode of one tape (loaded through the changer,
        read in the drive that holds it, or already in the drive).
    :param all_tapes: every cartridge in the library: the slots, this drive
        and the other drives (each read in place while no one else uses it).
    :returns: what was added, and every problem by tape, tape file and line.
    :param progress: the listener (``catalog/progress.py``): a note per tape, tapes counted.
    :raises NotFound: the tape is not in the library or drive.
    """
    report = RebuildReport()
    events = progress if progress is not None else NULL
    with open_media(config, selection) as media:
        events.start("rebuild", None, None, unit="tapes")
        full: TempSpaceFull | None = None
        for place, barcode, where in _places(config, media, tape, all_tapes, report):
            events.note(f"reading tape {barcode or '(in drive)'} in {where}")
            events.file("", 0)
            try:
                _read_tape(engine, place, barcode, where, tape if not all_tapes else None, report)
            except NotFound:
                raise
            except TempSpaceFull as err:
                # Every tape after this one would fail alike: stop, keep what the tapes
                # before it gave (each is one transaction), and say why.  Run again, the
                # tapes already imported are recognised.
                full = err
                break
            except (TapeIOError, CatalogError) as err:
                # A changer or drive failure on this tape: the next one may still work.
                report.problems.append(RebuildProblem(barcode or where, None, None, f"tape not read: {err}"))
            except Exception as err:  # noqa: BLE001 - a tape that trips pytp must not hide the others
                message = f"tape not read: unexpected {type(err).__name__}: {err}"
                report.problems.append(RebuildProblem(barcode or where, None, None, message))
        try:
            unresolved = second_pass(engine, report)
        finally:
            for spool in report.spools:
                spool.close()
            report.spools = []
        if full is not None:
            raise full
        _import_orphan_copies(engine, media, report, all_tapes)
        _recover_unclaimed(engine, media, report)
        settle_unresolved(engine, report, unresolved, all_tapes)
        note_other_hosts(engine, report)
        settle_volumes(engine, report)
        events.done()
    return report


def _places(
    config: Config, media: Media, tape: str | None, all_tapes: bool, report: RebuildReport
) -> Iterator[tuple[Media, str | None, str]]:
    """Each tape to rebuild, under a head: ``(media holding it, barcode, where)``.

    Slot tapes are loaded into this drive; a tape in another drive of the
    library is read there, with that drive locked like any pytp command
    locks it (a busy drive is reported, not waited for).
    """
    here = f"drive {media.selection.drive.name}"
    if media.changer is None:
        if not media.has_tape():
            raise NotFound(f"No tape in drive {media.selection.drive.name}.")
        yield media, None, here
        return
    status = media.changer.status()
    others = [d for d in status.drives if d.full and d.index != media.selection.element]
    if all_tapes:
        if media.has_tape_in_drive():
            yield media, media.current_barcode(), here
        for slot in status.slots:
            if slot.full and not slot.import_export and not slot.is_cleaning:
                try:
                    media.load(slot.number)
                except TapeIOError as err:
                    name = slot.barcode or f"slot {slot.number}"
                    report.problems.append(RebuildProblem(name, None, None, f"cannot be loaded: {err}"))
                    continue
                yield media, slot.barcode, f"{here} (from slot {slot.number})"
        for element in others:
            yield from _in_other_drive(config, media, element, report)
        return
    place = status.find_barcode(tape) if tape else None
    if isinstance(place, StorageElement):
        media.load(place.number)
        yield media, tape, f"{here} (from slot {place.number})"
        return
    if isinstance(place, DriveElement) and place.index != media.selection.element:
        yield from _in_other_drive(config, media, place, report)
        return
    # Labels default to barcodes; any other label must already be in the drive.
    if not media.has_tape_in_drive():
        if tape is None:
            raise NotFound(
                f"Drive {media.selection.drive.name} is empty: give --tape LABEL, or --all for every tape "
                f"of library {media.changer.name}."
            )
        raise NotFound(f"No cartridge with barcode {tape} in library {media.changer.name}, and the drive is empty.")
    yield media, media.current_barcode(), here


def _in_other_drive(
    config: Config, media: Media, element: DriveElement, report: RebuildReport
) -> Iterator[tuple[Media, str | None, str]]:
    library = media.selection.library
    assert library is not None
    name = element.barcode or f"tape in drive element {element.index}"
    if element.index >= len(library.drives):
        report.problems.append(
            RebuildProblem(name, None, None, f"sits in drive element {element.index}, which the configuration lacks")
        )
        return
    other = Selection(config.drive(library.drives[element.index]), library, element.index)
    with ExitStack() as stack:
        try:
            there = stack.enter_context(open_media(config, other))
            there.has_tape()  # opens the drive now: one another program has open is busy too
        except TapeIOError as err:
            report.problems.append(
                RebuildProblem(name, None, None, f"sits in drive {other.drive.name}, which is in use: not read ({err})")
            )
            return
        yield there, element.barcode, f"drive {other.drive.name}"


def load_tape_for_rebuild(media: Media, tape: str | None) -> VolumeLabel:
    """Load ``tape`` (a barcode, or whatever is in the drive) and read its label.

    :raises NotFound: the tape is not there, is in another drive, or is blank or foreign.
    """
    for place, _, where in _places(media.config, media, tape, False, RebuildReport()):
        if place is not media:
            raise NotFound(f"Tape {tape} is in {where}: unload it, or use that drive (--drive).")
        try:
            found = media.read_label()
        except ForeignTape:
            found = None
        if found is None:
            raise NotFound(f"The tape in drive {media.selection.drive.name} is not a pytp tape.")
        if tape and tape not in (found.label, found.barcode, media.current_barcode()):
            raise NotFound(f"The tape in drive {media.selection.drive.name} is {found.label}, not {tape}.")
        return found
    raise NotFound(f"Tape {tape} not found.")
